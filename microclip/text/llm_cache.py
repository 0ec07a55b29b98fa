"""A content-addressed cache of LLM requests: the record/replay tape of `describe`.

Each request is reduced to its canonical form (model, messages, response schema,
temperature, seed, n, max_tokens; never an API key, base URL or header) and keyed by the
sha256 of that form's canonical JSON. One entry is one file, ``<root>/<key[:2]>/<key>.json``,
holding the key, the request, the raw response and a UTC timestamp, written atomically, so
a killed run leaves whole entries only and a rerun asks only what is not stored yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

CACHE_FORMAT = 1


def canonical_json(obj: object) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: one spelling per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(request: dict) -> str:
    """sha256 (hex) of the canonical request."""
    return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class CacheEntry:
    key: str
    request: dict
    response: dict  # the raw chat-completion object as the server sent it
    created: str  # ISO 8601, UTC


class LLMCache:
    """Request -> response store under ``root`` (one JSON file per request key)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def __contains__(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def get(self, key: str) -> CacheEntry | None:
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}: corrupt cache entry ({err}); delete it and rerun in record mode"
            ) from None
        if data.get("key") != key:
            raise ValueError(f"{path}: cache entry holds key {data.get('key')!r}, not {key!r}")
        return CacheEntry(data["key"], data["request"], data["response"], data["created"])

    def put(self, request: dict, response: dict) -> CacheEntry:
        """Store ``response`` for ``request``; return the entry written."""
        key = request_key(request)
        entry = CacheEntry(
            key=key,
            request=request,
            response=response,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        record = {"format": CACHE_FORMAT, **entry.__dict__}
        atomic_write_text(
            self.path_for(key), json.dumps(record, indent=1, ensure_ascii=False) + "\n"
        )
        return entry
