"""Request planning and answer parsing for `describe`: what is asked, and how answers are read.

Nothing here opens a connection or writes a file, so the plan (one canonical request per
class x question) and the parsers can be checked offline and imported cheaply: config
validation imports ``GenerationConfig`` without the openai SDK or torch.

Two prompt styles, both data in ``descriptions/questions/prompt_styles.yaml``:

- ``cupl``: CuPL's recipe moved to a chat model; each dataset question is asked
  ``samples_per_question`` times (the ``n`` of one request), every answer is one sentence.
- ``numbered``: the newer recipe; a system prompt asks for N short, visually identifiable
  sentences, the user prompt is the dataset question plus "Include '<class>' in each
  sentence.". The answer is read from a JSON schema (``response_format`` json_schema)
  where ``structured`` is on, else parsed from a numbered list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import yaml

from microclip.errors import TextError
from microclip.fields import coerce, override_problems
from microclip.text.llm_cache import request_key

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


class AnswerFormatError(TextError):
    """One answer is not in the form its style asks for (the request may be asked again)."""


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
        """Build from YAML values, so that a typo or a wrong type is a TextError naming the
        key, the value and what is allowed, before any request is planned."""
        if not isinstance(values, Mapping):
            raise TextError(f"{where}: expected a mapping of generation settings, got {values!r}")
        allowed = sorted(f.name for f in fields(cls))
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise TextError(f"{where}: unknown generation setting(s) {unknown}; allowed: {allowed}")
        problems = override_problems(cls, values, where=where)
        problems += _range_problems(values, where)
        if problems:
            raise TextError("; ".join(problems))
        return cls(**coerce(cls, values))


def _range_problems(values: Mapping[str, object], where: str) -> list[str]:
    """Counts that must be positive and a model name that must not be empty (types are
    already known to fit, or reported, when this runs)."""
    problems = []
    for key in ("samples_per_question", "sentences", "max_tokens"):
        value = values.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            problems.append(f"{where}.{key} = {value!r}: expected an integer >= 1")
    model = values.get("model")
    if isinstance(model, str) and not model.strip():
        problems.append(f"{where}.model = {model!r}: expected a model name")
    return problems


@dataclass(frozen=True)
class PromptStyle:
    name: str
    answer: AnswerKind  # "single": one description per sample; "list": N sentences
    system: str | None  # may use {sentences}
    user: str  # uses {question}; may use {classname}


@dataclass(frozen=True)
class PlannedRequest:
    """One (class, question) request; the class and question travel with it so that any
    failure can name them."""

    classname: str
    question: int  # index into the dataset's question list
    question_text: str  # the question with the class name filled in
    request: dict  # the canonical request (what is hashed, stored and sent)

    @property
    def key(self) -> str:
        return request_key(self.request)

    def label(self) -> str:
        """'<class>', question <i> '<text>': how messages name this request."""
        return f"{self.classname!r}, question {self.question + 1} {self.question_text!r}"


def load_prompt_style(path: Path, name: str) -> PromptStyle:
    """Read style ``name`` from a prompt-style YAML file (``{name: {answer, system, user}}``)."""
    styles = read_yaml(path)
    if not isinstance(styles, dict) or name not in styles:
        known = sorted(styles) if isinstance(styles, dict) else []
        raise TextError(f"{path}: no prompt style '{name}'; defined: {', '.join(known)}")
    entry = styles[name]
    entry = entry if isinstance(entry, dict) else {}
    answer = entry.get("answer")
    user = entry.get("user")
    if answer not in ("single", "list") or not isinstance(user, str) or "{question}" not in user:
        raise TextError(
            f"{path}: style '{name}' needs answer: single|list and a user prompt containing "
            f"{{question}}; got answer={answer!r}, user={user!r}"
        )
    return PromptStyle(name, answer, entry.get("system"), user)


def load_questions(path: Path) -> list[str]:
    """Read a dataset's question list (``questions: [...]``, ``{classname}`` placeholders)."""
    data = read_yaml(path)
    questions = data.get("questions") if isinstance(data, dict) else None
    if (
        not isinstance(questions, list)
        or not questions
        or not all(isinstance(q, str) and "{classname}" in q for q in questions)
    ):
        raise TextError(
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
            request = build_request(classname, text, style, config)
            plans.append(PlannedRequest(classname, index, text, request))
    return plans


def build_request(
    classname: str, question: str, style: PromptStyle, config: GenerationConfig
) -> dict:
    """The canonical request: every field that changes the answer and nothing else (no key,
    no base URL), since it is what the cache hashes."""
    user = style.user.replace("{question}", question).replace("{classname}", classname)
    messages = []
    if style.system:
        system = style.system.replace("{sentences}", str(config.sentences))
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    schema = SENTENCES_SCHEMA if (style.answer == "list" and config.structured) else None
    return {
        "model": config.model,
        "messages": messages,
        "schema": schema,
        "temperature": config.temperature,
        "seed": config.seed,
        "n": config.samples_per_question,
        "max_tokens": config.max_tokens,
    }


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
    """The sentences of a raw chat-completion response; AnswerFormatError when it is
    malformed, so the caller can ask again instead of storing an unusable answer."""
    choices = response.get("choices") if isinstance(response, Mapping) else None
    if not isinstance(choices, list) or not choices:
        raise AnswerFormatError("the response has no choices")
    if not all(isinstance(c, dict) for c in choices):
        raise AnswerFormatError("a choice of the response is not an object")
    sentences: list[str] = []
    for choice in sorted(choices, key=lambda c: c.get("index") or 0):
        sentences.extend(_sentences_of_choice(choice, style, structured))
    return sentences


def _sentences_of_choice(choice: dict, style: PromptStyle, structured: bool) -> list[str]:
    """The sentences of one sample, read the way its style asks for."""
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    if message.get("refusal"):
        raise AnswerFormatError(f"the model refused: {message['refusal']!r}")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise AnswerFormatError("an answer is empty")
    if style.answer == "single":
        return [_clean(content)]
    if structured:
        return _sentences_of_json(content)
    items = parse_numbered_list(content)
    if not items:
        raise AnswerFormatError(f"no numbered sentences in the answer: {content[:120]!r}")
    return items


def _sentences_of_json(content: str) -> list[str]:
    """The ``sentences`` list of a JSON-schema answer."""
    try:
        items = json.loads(content)["sentences"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise AnswerFormatError(f"not the JSON object of the schema: {content[:120]!r}") from None
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(s, str) and s.strip() for s in items)
    ):
        raise AnswerFormatError(
            f"'sentences' is not a non-empty list of strings: {content[:120]!r}"
        )
    # Models sometimes number the items of the JSON list too.
    return [_clean(_LEADING_NUMBER.sub("", s)) for s in items]


def _clean(sentence: str) -> str:
    """One line, without the quotes some models wrap a sentence in."""
    text = " ".join(sentence.split())
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def read_yaml(path: Path) -> object:
    """A YAML file's data; a missing or unparseable file is a TextError naming it."""
    path = Path(path)
    if not path.is_file():
        raise TextError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TextError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
