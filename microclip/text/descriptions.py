"""Description files: ``{class name: [sentence, ...]}`` per dataset (spec/datasets.md).

A description file is keyed by exactly the dataset's class names. ``load_descriptions``
checks that on load and returns the sentences in class order; ``count_overlong`` counts the
sentences that CLIP's tokenizer truncates at its 77-token context (spec/method.md §5), so
the prototype manifest can report them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from microclip.errors import TextError, quoted_names

CLIP_CONTEXT_LENGTH = 77  # tokens, including the start and end tokens


def validate_descriptions(
    data: object, classes: Sequence[str], *, where: str
) -> dict[str, list[str]]:
    """Check a parsed description object against ``classes``; return it in class order.

    ``where`` names the file (or URL) in error messages. Raises ValueError when the object
    is not ``{str: [str, ...]}``, when a class has no key or no non-empty sentence, or when
    a key is not a class name; the message lists every offending name.
    """
    if not isinstance(data, Mapping):
        raise TextError(
            f"{where}: expected a JSON object {{class name: [sentences]}}, got {type(data).__name__}"
        )
    bad_values = [
        str(key)
        for key, value in data.items()
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value)
    ]
    if bad_values:
        raise TextError(
            f"{where}: the value of each class must be a list of strings; not so for "
            f"{quoted_names(bad_values)}"
        )
    known = set(classes)
    unknown = [key for key in data if key not in known]
    missing = [name for name in classes if name not in data]
    empty = [name for name in classes if name in data and not any(s.strip() for s in data[name])]
    problems = []
    if missing:
        problems.append(f"{len(missing)} class(es) have no entry: {quoted_names(missing)}")
    if empty:
        problems.append(f"{len(empty)} class(es) have no non-empty sentence: {quoted_names(empty)}")
    if unknown:
        problems.append(f"{len(unknown)} key(s) are not class names: {quoted_names(unknown)}")
    if problems:
        raise TextError(
            f"{where}: the description file does not match the {len(classes)} class names; "
            + "; ".join(problems)
            + ". Regenerate or refetch it for this dataset's class list."
        )
    return {name: [s.strip() for s in data[name] if s.strip()] for name in classes}


def load_descriptions(path: Path, classes: list[str]) -> dict[str, list[str]]:
    """Read a description file and return ``{class: [sentences]}`` ordered as ``classes``.

    Every class must have at least one non-empty sentence and every key must be a class
    name; otherwise a ValueError names the file and lists the classes/keys at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: description file not found (run `fetch_descriptions` or `describe`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise TextError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "save the description file as UTF-8"
        ) from None
    except json.JSONDecodeError as err:
        raise TextError(f"{path}: not valid JSON ({err})") from None
    return validate_descriptions(data, classes, where=str(path))


@lru_cache(maxsize=1)
def _tokenizer():
    # Imported lazily: open_clip pulls in torch, which the LLM side does not need.
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def token_lengths(sentences: Iterable[str]) -> list[int]:
    """Number of CLIP tokens of each sentence, counting the start and end tokens."""
    tok = _tokenizer()
    return [len(tok.encode(s)) + 2 for s in sentences]


def count_overlong(sentences: Iterable[str], context_length: int = CLIP_CONTEXT_LENGTH) -> int:
    """How many sentences exceed CLIP's context and are truncated by its tokenizer.

    open_clip's tokenizer keeps the first ``context_length`` tokens (the last one replaced
    by the end token), so such a sentence is encoded cut short; callers report the count.
    """
    return sum(n > context_length for n in token_lengths(sentences))


def overlong_or_none(
    descriptions: Mapping[str, Sequence[str]], context_length: int = CLIP_CONTEXT_LENGTH
) -> int | None:
    """``count_overlong`` over a whole description set; None where open_clip is missing."""
    try:
        return count_overlong((s for v in descriptions.values() for s in v), context_length)
    except ImportError:
        return None
