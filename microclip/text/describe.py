"""Generate class descriptions with a chat model through the openai SDK (spec/datasets.md).

Two prompt styles, both data in ``descriptions/questions/prompt_styles.yaml``:

- ``cupl``: CuPL's recipe moved to a chat model; each dataset question is asked
  ``samples_per_question`` times (the ``n`` of one request), every answer is one sentence.
- ``numbered``: the newer recipe; a system prompt asks for N short, visually identifiable
  sentences, the user prompt is the dataset question plus "Include '<class>' in each
  sentence.". The answer is read from a JSON schema (``response_format`` json_schema)
  where ``structured`` is on, else parsed from a numbered list.

Every request goes through ``LLMCache`` (llm_cache.py). ``mode="replay"`` (the default)
never opens a connection: a request that is not cached is an error naming its classes.
``mode="record"`` asks only the cached-miss requests, storing each answer as soon as it
arrives, so an interrupted run resumes where it stopped. Rate limits (429), server errors
(5xx) and timeouts are retried by the SDK with exponential backoff (``max_retries``); a
malformed answer is asked again up to ``malformed_retries`` times, then reported and never
written. The API key is read by the SDK from ``OPENAI_API_KEY`` and never stored; the
SDK honours ``OPENAI_BASE_URL`` (vLLM, Ollama and other OpenAI-compatible servers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import yaml

from microclip import __version__
from microclip.text.descriptions import overlong_or_none, validate_descriptions
from microclip.text.llm_cache import LLMCache, atomic_write_text, request_key

logger = logging.getLogger(__name__)

Mode = Literal["replay", "record"]
AnswerKind = Literal["single", "list"]

# The JSON schema of a "list" answer (OpenAI structured outputs, strict mode).
SENTENCES_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "class_descriptions",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"sentences": {"type": "array", "items": {"type": "string"}}},
            "required": ["sentences"],
            "additionalProperties": False,
        },
    },
}

_NUMBERED_LINE = re.compile(r"^\s*\(?(\d{1,3})\s*[.):]\s+(\S.*)$")
_LEADING_NUMBER = re.compile(r"^\s*\(?\d{1,3}\s*[.):]\s+")


class ReplayMissError(ValueError):
    """Replay mode met a request that is not in the cache."""


class MissingAPIKeyError(ValueError):
    """Record mode has requests to send but no OPENAI_API_KEY."""


class MalformedAnswerError(RuntimeError):
    """The model kept answering in a form the suite cannot read."""


@dataclass(frozen=True)
class GenerationConfig:
    """How one description set is generated (config.yaml: descriptions.generate.<set>)."""

    style: str = "numbered"  # a key of prompt_styles.yaml: "cupl" or "numbered"
    model: str = "gpt-4o"  # any chat model the server knows
    temperature: float = 0.1  # CuPL used 0.99; the newer sets 0.1
    samples_per_question: int = 1  # `n` of each request (CuPL: 10)
    sentences: int = 10  # sentences asked per answer ("list" styles only)
    seed: int | None = 0  # best-effort determinism where the server supports it
    structured: bool = True  # JSON-schema answers; False: parse a numbered list
    max_tokens: int | None = None  # answer length cap (CuPL: 50)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], *, where: str) -> GenerationConfig:
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(
                f"{where}: unknown generation setting(s) {unknown}; allowed: {sorted(allowed)}"
            )
        config = cls(**values)  # type: ignore[arg-type]
        if config.samples_per_question < 1 or config.sentences < 1:
            raise ValueError(f"{where}: samples_per_question and sentences must be >= 1")
        return config


@dataclass(frozen=True)
class PromptStyle:
    name: str
    answer: AnswerKind  # "single": one description per sample; "list": N sentences
    system: str | None  # may use {sentences}
    user: str  # uses {question}; may use {classname}


@dataclass(frozen=True)
class PlannedRequest:
    classname: str
    question: int  # index into the dataset's question list
    request: dict  # the canonical request (what is hashed, stored and sent)

    @property
    def key(self) -> str:
        return request_key(self.request)


def load_prompt_style(path: Path, name: str) -> PromptStyle:
    """Read style ``name`` from a prompt-style YAML file (``{name: {answer, system, user}}``)."""
    styles = _read_yaml(path)
    if not isinstance(styles, dict) or name not in styles:
        known = sorted(styles) if isinstance(styles, dict) else []
        raise KeyError(f"{path}: no prompt style '{name}'; defined: {', '.join(known)}")
    entry = styles[name]
    answer = entry.get("answer")
    if answer not in ("single", "list") or "{question}" not in entry.get("user", ""):
        raise ValueError(
            f"{path}: style '{name}' needs answer: single|list and a user prompt containing "
            f"{{question}}; got answer={answer!r}, user={entry.get('user')!r}"
        )
    return PromptStyle(name, answer, entry.get("system"), entry["user"])


def load_questions(path: Path) -> list[str]:
    """Read a dataset's question list (``questions: [...]``, ``{classname}`` placeholders)."""
    data = _read_yaml(path)
    questions = data.get("questions") if isinstance(data, dict) else None
    if (
        not isinstance(questions, list)
        or not questions
        or not all(isinstance(q, str) and "{classname}" in q for q in questions)
    ):
        raise ValueError(
            f"{path}: expected 'questions:' as a non-empty list of strings, each containing "
            "'{classname}'"
        )
    return questions


def plan_requests(
    classes: Sequence[str],
    questions: Sequence[str],
    style: PromptStyle,
    config: GenerationConfig,
) -> list[PlannedRequest]:
    """One request per (class, question), in class order then question order."""
    plans = []
    for classname in classes:
        for index, question in enumerate(questions):
            text = question.replace("{classname}", classname)
            user = style.user.replace("{question}", text).replace("{classname}", classname)
            messages = []
            if style.system:
                messages.append(
                    {
                        "role": "system",
                        "content": style.system.replace("{sentences}", str(config.sentences)),
                    }
                )
            messages.append({"role": "user", "content": user})
            schema = SENTENCES_SCHEMA if (style.answer == "list" and config.structured) else None
            request = {
                "model": config.model,
                "messages": messages,
                "schema": schema,
                "temperature": config.temperature,
                "seed": config.seed,
                "n": config.samples_per_question,
                "max_tokens": config.max_tokens,
            }
            plans.append(PlannedRequest(classname, index, request))
    return plans


def parse_numbered_list(text: str) -> list[str]:
    """Sentences of a numbered list ("1. ...", "2) ..."); lines without a number are
    continuations of the item above. Empty when the text holds no numbered item."""
    items: list[str] = []
    for line in text.splitlines():
        match = _NUMBERED_LINE.match(line)
        if match:
            items.append(match.group(2).strip())
        elif items and line.strip():
            items[-1] += " " + line.strip()
    return [_clean(s) for s in items if _clean(s)]


def sentences_from_response(response: Mapping, style: PromptStyle, structured: bool) -> list[str]:
    """The sentences of a raw chat-completion response; ValueError when it is malformed."""
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("the response has no choices")
    sentences: list[str] = []
    for choice in sorted(choices, key=lambda c: c.get("index", 0)):
        message = choice.get("message") or {}
        if message.get("refusal"):
            raise ValueError(f"the model refused: {message['refusal']!r}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValueError("an answer is empty")
        if style.answer == "single":
            sentences.append(_clean(content))
        elif structured:
            try:
                items = json.loads(content)["sentences"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"not the JSON object of the schema: {content[:120]!r}") from None
            if (
                not isinstance(items, list)
                or not items
                or not all(isinstance(s, str) and s.strip() for s in items)
            ):
                raise ValueError(
                    f"'sentences' is not a non-empty list of strings: {content[:120]!r}"
                )
            # Models sometimes number the items of the JSON list too.
            sentences.extend(_clean(_LEADING_NUMBER.sub("", s)) for s in items)
        else:
            items = parse_numbered_list(content)
            if not items:
                raise ValueError(f"no numbered sentences in the answer: {content[:120]!r}")
            sentences.extend(items)
    return sentences


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
    if mode not in ("replay", "record"):
        raise ValueError(f"mode = {mode!r} is not one of: replay, record")
    if not isinstance(generation, GenerationConfig):
        generation = GenerationConfig.from_mapping(generation, where=f"generation of '{set_name}'")
    questions = load_questions(questions_path)
    style = load_prompt_style(styles_path, generation.style)
    if style.answer == "single" and generation.sentences != 1:
        logger.info("style '%s' answers one sentence per sample; 'sentences' unused", style.name)
    plans = plan_requests(classes, questions, style, generation)
    cache = LLMCache(cache_dir)
    misses = [p for p in plans if p.key not in cache]
    logger.info(
        "%s: %d classes x %d questions = %d requests; %d cached, %d to ask (mode %s)",
        dataset, len(classes), len(questions), len(plans), len(plans) - len(misses), len(misses), mode,
    )  # fmt: skip

    if misses and mode == "replay":
        missing = list(dict.fromkeys(p.classname for p in misses))
        raise ReplayMissError(
            f"{dataset}: replay mode, but {len(misses)} of {len(plans)} requests are not in the "
            f"cache {cache_dir} (model {generation.model!r}); classes missing answers: "
            f"{_names(missing)}. Record them with mode=record (needs OPENAI_API_KEY), or check "
            "that the generation settings match the recorded ones."
        )
    if misses:
        _record(misses, cache, style, generation, max_retries, malformed_retries, timeout_s)

    # Assemble from the cache: one code path for recorded and replayed answers.
    result: dict[str, list[str]] = {name: [] for name in classes}
    unreadable = []
    for plan in plans:
        entry = cache.get(plan.key)
        assert entry is not None, f"request {plan.key} vanished from {cache_dir}"
        try:
            result[plan.classname].extend(
                sentences_from_response(entry.response, style, generation.structured)
            )
        except ValueError as err:
            unreadable.append(f"{cache.path_for(plan.key)} ({err})")
    if unreadable:
        raise MalformedAnswerError(
            f"{dataset}: {len(unreadable)} cached answer(s) cannot be read: "
            f"{'; '.join(unreadable[:5])}. Delete these entries and record them again."
        )
    result = validate_descriptions(result, classes, where=f"generated descriptions of {dataset}")

    text = json.dumps(result, indent=1, ensure_ascii=False) + "\n"
    atomic_write_text(Path(out_path), text)
    if manifest_path is not None:
        counts = [len(s) for s in result.values()]
        manifest = {
            "set": set_name,
            "dataset": dataset,
            "source": "generated",
            "generation": asdict(generation),
            "prompt_style": asdict(style),
            "questions_file": str(questions_path),
            "questions_sha256": _sha256_file(questions_path),
            "questions": questions,
            "num_classes": len(classes),
            "requests": len(plans),
            "recorded_now": len(misses),
            "cache_dir": str(cache_dir),
            "sentences_per_class": {"min": min(counts), "max": max(counts), "total": sum(counts)},
            "overlong_sentences": overlong_or_none(result),  # > 77 CLIP tokens: truncated
            "output_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "microclip_version": __version__,
        }
        atomic_write_text(Path(manifest_path), json.dumps(manifest, indent=1) + "\n")
    logger.info("%s: wrote %s (%d sentences)", dataset, out_path, sum(map(len, result.values())))
    return result


def _record(
    misses: list[PlannedRequest],
    cache: LLMCache,
    style: PromptStyle,
    config: GenerationConfig,
    max_retries: int,
    malformed_retries: int,
    timeout_s: float,
) -> None:
    """Ask every missing request, storing each well-formed answer at once."""
    if not os.environ.get("OPENAI_API_KEY"):
        raise MissingAPIKeyError(
            f"record mode has {len(misses)} request(s) to send but OPENAI_API_KEY is not set. "
            "Export OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server such as vLLM "
            "or Ollama; a local server that ignores keys accepts any value), or use "
            "mode=replay with a recorded cache."
        )
    from openai import OpenAI  # the SDK reads OPENAI_API_KEY and OPENAI_BASE_URL itself

    client = OpenAI(max_retries=max_retries, timeout=timeout_s)
    failed = []
    for done, plan in enumerate(misses, start=1):
        for attempt in range(1 + malformed_retries):
            response = _send(client, plan.request)
            try:
                sentences_from_response(response, style, config.structured)
            except ValueError as err:
                logger.warning(
                    "%s, question %d: malformed answer (attempt %d of %d): %s",
                    plan.classname, plan.question + 1, attempt + 1, 1 + malformed_retries, err,
                )  # fmt: skip
                continue
            cache.put(plan.request, response)
            break
        else:
            failed.append(f"{plan.classname} (question {plan.question + 1})")
        logger.info(
            "asked %d/%d: %s, question %d", done, len(misses), plan.classname, plan.question + 1
        )
    if failed:
        raise MalformedAnswerError(
            f"{len(failed)} request(s) got no well-formed answer after {1 + malformed_retries} "
            f"attempts each: {_names(failed)}. The answers that were well formed are cached; "
            "rerun to ask the rest again, or switch structured/style for this model."
        )


def _send(client, request: dict) -> dict:
    """One chat-completion call for a canonical request; the raw response as a dict."""
    kwargs: dict = {
        "model": request["model"],
        "messages": request["messages"],
        "temperature": request["temperature"],
        "n": request["n"],
    }
    if request["seed"] is not None:
        kwargs["seed"] = request["seed"]
    if request["max_tokens"] is not None:
        kwargs["max_tokens"] = request["max_tokens"]
    if request["schema"] is not None:
        kwargs["response_format"] = request["schema"]
    completion = client.chat.completions.create(**kwargs)
    return completion.to_dict()


def _clean(sentence: str) -> str:
    text = " ".join(sentence.split())
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def _read_yaml(path: Path) -> object:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _names(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
