"""A content-addressed cache of LLM requests: the record/replay tape of `describe`.

Each request is reduced to its canonical form (model, messages, response schema,
temperature, seed, n, max_tokens; never an API key, base URL or header) and keyed by the
sha256 of that form's canonical JSON. One entry is one file, ``<root>/<key[:2]>/<key>.json``,
holding the key, the request, the raw response and a UTC timestamp, written atomically, so
a killed or failed run leaves whole entries only and a rerun asks only what is not stored
yet. Only well-formed answers are stored (describe.py checks each before ``put``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from microclip.errors import TextError
from microclip.io import atomic_write_text, canonical_json

CACHE_FORMAT = 1


def request_key(request: dict) -> str:
    """sha256 (hex) of the canonical request."""
    return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()


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
        """Where the entry of ``key`` lives (two-character fan-out keeps folders small)."""
        return self.root / key[:2] / f"{key}.json"

    def __contains__(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def get(self, key: str) -> CacheEntry | None:
        """The entry stored for ``key``; None when there is none. An entry that cannot be
        read is a TextError naming the file, since replaying around it would be silent."""
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entry = CacheEntry(data["key"], data["request"], data["response"], data["created"])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise TextError(
                f"{path}: corrupt cache entry ({type(err).__name__}: {err}); delete it and "
                "rerun rule describe in record mode"
            ) from None
        if entry.key != key:
            raise TextError(f"{path}: cache entry holds key {entry.key!r}, not {key!r}")
        return entry

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
