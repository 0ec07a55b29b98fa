"""Atomic file writes and content hashes, the one implementation every layer uses.

A write goes to a temporary file in the target folder and is renamed into place, so a killed
job never leaves half a file, and readers see the old or the new content, nothing between.
The temporary file is created private (0600) by ``mkstemp``; before the rename it gets the
mode a plain ``open()`` would have given (0666 minus the umask), so colleagues on a shared
cluster can read results. A write that fails (disk full, read-only folder) raises a
``RunError`` naming the path and the cause, and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from microclip.errors import RunError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """``with atomic_open(p) as f: f.write(...)``: ``p`` appears only when the block succeeds."""
    path = Path(path)
    binary = "b" in mode
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise RunError(f"{path}: cannot write ({err.strerror or err})") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else _TEXT)) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise RunError(f"{path}: cannot write ({err.strerror or err}); nothing was left") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_TEXT = {"encoding": "utf-8", "newline": ""}


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, default=str, ensure_ascii=False) + "\n")


def atomic_write_with(path: str | Path, write: Callable[[IO], None], *, binary: bool) -> None:
    """Atomic write through a writer callback, e.g. ``frame.to_csv`` or ``np.savez``."""
    with atomic_open(path, "wb" if binary else "w") as handle:
        write(handle)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through an atomic write (torch imported here only).

    The object is serialised in memory first, so a full disk surfaces as one ``RunError``
    naming the path, not as a zip-writer error from inside torch.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: one spelling per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_hash(obj: Any, *, length: int = 16) -> str:
    """Short sha256 of an object's canonical JSON (config hashes, cache keys)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
