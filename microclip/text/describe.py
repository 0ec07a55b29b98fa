"""Generate class descriptions with a chat model (spec/datasets.md): the `describe` rule's job.

This module only orchestrates; each step lives in its own module:

- ``prompts``: the settings (``GenerationConfig``), the prompt styles, the plan (one
  canonical request per class x question) and the answer parsers;
- ``llm_cache``: the content-addressed record/replay cache every request goes through;
- ``llm_client``: the openai call, its retries and the translation of its faults;
- ``description_files``: writing ``descriptions/{set}/{dataset}.json`` and its manifest.

``mode="replay"`` (the default) never opens a connection: a request that is not cached is an
error naming its classes. ``mode="record"`` asks only the cache misses, storing each answer
as soon as it arrives, so an interrupted or failed run resumes where it stopped. Rate limits
(429), server errors (5xx) and timeouts are retried by the SDK with exponential backoff
(``max_retries``); when those run out the job stops with one line naming the class, the
question, the cause and how many requests are answered and cached. A malformed answer or
body (truncated JSON, no ``choices``) is asked again up to ``malformed_retries`` times, then
reported and never written. The API key is read by the SDK from ``OPENAI_API_KEY`` and never
stored; the SDK honours ``OPENAI_BASE_URL`` (vLLM, Ollama and other compatible servers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from microclip.errors import TextError, quoted_names
from microclip.io import sha256_file
from microclip.text.description_files import write_description_set
from microclip.text.descriptions import validate_descriptions
from microclip.text.llm_cache import LLMCache
from microclip.text.llm_client import ChatClient, LLMCallError, MalformedBodyError
from microclip.text.prompts import (
    SENTENCES_SCHEMA,
    AnswerFormatError,
    GenerationConfig,
    PlannedRequest,
    PromptStyle,
    load_prompt_style,
    load_questions,
    parse_numbered_list,
    plan_requests,
    sentences_from_response,
)

__all__ = [
    "SENTENCES_SCHEMA",
    "AnswerFormatError",
    "GenerationConfig",
    "MalformedAnswerError",
    "MissingAPIKeyError",
    "PlannedRequest",
    "PromptStyle",
    "ReplayMissError",
    "RequestFailedError",
    "describe_dataset",
    "load_prompt_style",
    "load_questions",
    "parse_numbered_list",
    "plan_requests",
    "sentences_from_response",
]

logger = logging.getLogger(__name__)

Mode = Literal["replay", "record"]


class ReplayMissError(TextError):
    """Replay mode met a request that is not in the cache."""


class MissingAPIKeyError(TextError):
    """Record mode has requests to send but no OPENAI_API_KEY."""


class MalformedAnswerError(TextError):
    """The model kept answering in a form the suite cannot read."""


class RequestFailedError(TextError):
    """A request got no answer after the SDK's retries; the answered ones stay cached."""


@dataclass(frozen=True)
class _Job:
    """What every message of one describe run names: dataset, set, cache and plan size."""

    dataset: str
    set_name: str
    cache: LLMCache
    total: int

    def progress(self, answered: int) -> str:
        return f"{answered} of {self.total} requests are answered and cached in {self.cache.root}"

    @property
    def settings_key(self) -> str:
        return f"descriptions.generate.{self.set_name or '<set>'}"


def describe_dataset(
    *,
    dataset: str,
    classes: Sequence[str],
    questions_path: Path,
    styles_path: Path,
    generation: GenerationConfig | Mapping[str, object],
    cache_dir: Path,
    out_path: Path,
    manifest_path: Path | None = None,
    set_name: str = "",
    mode: Mode = "replay",
    max_retries: int = 5,
    malformed_retries: int = 2,
    timeout_s: float = 60.0,
) -> dict[str, list[str]]:
    """Write ``out_path`` ({class: [sentences]}, class order) and its manifest; return it.

    ``mode="replay"`` reads answers from ``cache_dir`` only (a miss raises ReplayMissError
    naming the classes); ``mode="record"`` asks the API for the misses (OPENAI_API_KEY and,
    optionally, OPENAI_BASE_URL from the environment). Nothing is written unless every
    class has at least one well-formed sentence.
    """
    _check_run_settings(mode, max_retries, malformed_retries, timeout_s)
    if not isinstance(generation, GenerationConfig):
        where = f"descriptions.generate.{set_name}" if set_name else "generation"
        generation = GenerationConfig.from_mapping(generation, where=where)
    questions = load_questions(questions_path)
    style = load_prompt_style(styles_path, generation.style)
    if style.answer == "single" and generation.sentences != 1:
        logger.info("style '%s' answers one sentence per sample; 'sentences' unused", style.name)
    plans = plan_requests(classes, questions, style, generation)
    job = _Job(dataset, set_name, LLMCache(cache_dir), len(plans))
    misses = [p for p in plans if p.key not in job.cache]
    logger.info(
        "%s: %d classes x %d questions = %d requests; %d cached, %d to ask (mode %s)",
        dataset, len(classes), len(questions), len(plans), len(plans) - len(misses), len(misses), mode,
    )  # fmt: skip

    if misses and mode == "replay":
        raise _replay_miss(job, misses, generation)
    if misses:
        client = _open_client(job, misses, max_retries, timeout_s)
        _record(job, misses, client, style, generation.structured, 1 + malformed_retries)

    result = _assemble(job, plans, classes, style, generation.structured)
    provenance = {
        "set": set_name,
        "dataset": dataset,
        "source": "generated",
        "generation": asdict(generation),
        "prompt_style": asdict(style),
        "questions_file": str(questions_path),
        "questions_sha256": sha256_file(questions_path),
        "questions": questions,
        "num_classes": len(classes),
        "requests": len(plans),
        "recorded_now": len(misses),
        "cache_dir": str(cache_dir),
    }
    write_description_set(
        result, out_path=Path(out_path), manifest_path=manifest_path, provenance=provenance
    )
    logger.info("%s: wrote %s (%d sentences)", dataset, out_path, sum(map(len, result.values())))
    return result


def _check_run_settings(
    mode: str, max_retries: int, malformed_retries: int, timeout_s: float
) -> None:
    """Reject impossible descriptions.llm settings before anything is planned or sent."""
    if mode not in ("replay", "record"):
        raise TextError(f"descriptions.llm.mode = {mode!r} is not one of: replay, record")
    for key, value in (("max_retries", max_retries), ("malformed_retries", malformed_retries)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TextError(f"descriptions.llm.{key} = {value!r}: expected an integer >= 0")
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or timeout_s <= 0:
        raise TextError(f"descriptions.llm.timeout_s = {timeout_s!r}: expected a number > 0")


def _replay_miss(
    job: _Job, misses: Sequence[PlannedRequest], generation: GenerationConfig
) -> ReplayMissError:
    """The replay-miss error: which classes lack answers and the two ways out."""
    missing = list(dict.fromkeys(p.classname for p in misses))
    return ReplayMissError(
        f"{job.dataset}: replay mode, but {len(misses)} of {job.total} requests are not in the "
        f"cache {job.cache.root} (model {generation.model!r}); classes missing answers: "
        f"{quoted_names(missing)}. Record them by running rule describe with descriptions.llm.mode: "
        f"record (needs OPENAI_API_KEY), or check that {job.settings_key} matches the "
        "settings the cache was recorded with."
    )


def _open_client(
    job: _Job, misses: Sequence[PlannedRequest], max_retries: int, timeout_s: float
) -> ChatClient:
    """A client for record mode; without OPENAI_API_KEY a one-line error instead of the SDK's."""
    if not os.environ.get("OPENAI_API_KEY"):
        classes = list(dict.fromkeys(p.classname for p in misses))
        raise MissingAPIKeyError(
            f"{job.dataset}: record mode has {len(misses)} request(s) to send for "
            f"{len(classes)} class(es) ({quoted_names(classes, limit=5)}) but OPENAI_API_KEY is not "
            "set. Export OPENAI_API_KEY (and "
            "OPENAI_BASE_URL for a compatible server such as vLLM or Ollama; a local server "
            "that ignores keys accepts any value) and rerun rule describe, or use "
            "descriptions.llm.mode: replay with a recorded cache."
        )
    return ChatClient(max_retries=max_retries, timeout_s=timeout_s)


def _record(
    job: _Job,
    misses: Sequence[PlannedRequest],
    client: ChatClient,
    style: PromptStyle,
    structured: bool,
    attempts: int,
) -> None:
    """Ask every missing request, storing each well-formed answer at once.

    A request with no answer (retries exhausted) stops the run at once: the server is
    unlikely to answer the next one. Malformed answers are collected and reported at the
    end, since the other classes may well be answered.
    """
    answered = job.total - len(misses)
    failed: list[tuple[PlannedRequest, str]] = []
    for done, plan in enumerate(misses, start=1):
        try:
            cause = _ask(client, plan, job.cache, style, structured, attempts)
        except LLMCallError as err:
            raise RequestFailedError(
                f"{job.dataset}: no answer for class {plan.label()}: {err}. "
                f"{job.progress(answered)}; to resume, rerun the same command (or rule "
                "describe): answered requests are cached and not asked again."
            ) from None
        if cause is None:
            answered += 1
        else:
            failed.append((plan, cause))
        logger.info(
            "asked %d/%d: %s, question %d", done, len(misses), plan.classname, plan.question + 1
        )
    if failed:
        raise _malformed(job, failed, answered, attempts)


def _ask(
    client: ChatClient,
    plan: PlannedRequest,
    cache: LLMCache,
    style: PromptStyle,
    structured: bool,
    attempts: int,
) -> str | None:
    """Ask until a well-formed answer is cached; None then, else the last answer's fault.

    Only well-formed answers are stored, so a replay never meets an unusable entry.
    LLMCallError (no answer at all) propagates to the caller.
    """
    cause = ""
    for attempt in range(1, attempts + 1):
        try:
            response = client.complete(plan.request)
            sentences_from_response(response, style, structured)
        except MalformedBodyError as err:
            cause = str(err)
        except AnswerFormatError as err:
            cause = f"malformed answer: {err}"
        else:
            cache.put(plan.request, response)
            return None
        logger.warning(
            "%s, question %d: attempt %d of %d: %s",
            plan.classname, plan.question + 1, attempt, attempts, cause,
        )  # fmt: skip
    return cause


def _malformed(
    job: _Job, failed: Sequence[tuple[PlannedRequest, str]], answered: int, attempts: int
) -> MalformedAnswerError:
    """One line for every request that never got a usable answer, and the ways out."""
    shown = "; ".join(f"{plan.label()} ({cause})" for plan, cause in failed[:5])
    more = f"; ... ({len(failed) - 5} more)" if len(failed) > 5 else ""
    causes = [cause for _, cause in failed]
    hints = []
    if any(c.startswith("malformed answer") for c in causes):
        hints.append(f"set structured: false or another style for this model in {job.settings_key}")
    if any(c.startswith("malformed body") for c in causes):
        hints.append("check that OPENAI_BASE_URL points at an OpenAI-compatible server")
    return MalformedAnswerError(
        f"{job.dataset}: {len(failed)} request(s) got no well-formed answer after {attempts} "
        f"attempt(s) each: {shown}{more}. {job.progress(answered)}; rerun the same command "
        "(or rule describe) to ask the rest again (answered requests are not asked again)"
        + "".join(f", or {hint}" for hint in hints)
        + "."
    )


def _assemble(
    job: _Job,
    plans: Sequence[PlannedRequest],
    classes: Sequence[str],
    style: PromptStyle,
    structured: bool,
) -> dict[str, list[str]]:
    """{class: sentences} from the cache: one code path for recorded and replayed answers."""
    result: dict[str, list[str]] = {name: [] for name in classes}
    unreadable = []
    for plan in plans:
        entry = job.cache.get(plan.key)
        if entry is None:
            raise TextError(
                f"{job.cache.path_for(plan.key)}: cache entry of {plan.label()} vanished "
                "during the run; rerun rule describe"
            )
        try:
            result[plan.classname].extend(
                sentences_from_response(entry.response, style, structured)
            )
        except AnswerFormatError as err:
            unreadable.append(f"{job.cache.path_for(plan.key)} ({err})")
    if unreadable:
        raise MalformedAnswerError(
            f"{job.dataset}: {len(unreadable)} cached answer(s) cannot be read: "
            f"{'; '.join(unreadable[:5])}. Delete these entries and rerun rule describe "
            "in record mode."
        )
    return validate_descriptions(result, classes, where=f"generated descriptions of {job.dataset}")
