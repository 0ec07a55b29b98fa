"""Writing a description set: ``descriptions/{set}/{dataset}.json`` and its manifest.

Both files are written atomically, the description file first, so a reader never sees a
manifest whose ``output_sha256`` belongs to a file that is not there yet. The manifest's
common part (counts, overlong sentences, checksum, time, version) is computed here; the
caller adds where the sentences came from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from microclip import __version__
from microclip.io import atomic_write_json, atomic_write_text
from microclip.text.descriptions import overlong_or_none


def description_text(descriptions: Mapping[str, list[str]]) -> str:
    """The file's exact text (class order kept), so its sha256 can go into the manifest."""
    return json.dumps(descriptions, indent=1, ensure_ascii=False) + "\n"


def write_description_set(
    descriptions: Mapping[str, list[str]],
    *,
    out_path: Path,
    manifest_path: Path | None,
    provenance: Mapping[str, object],
) -> None:
    """Write the description file, then (if asked) its manifest: ``provenance`` first,
    followed by the sentence counts, the overlong count and the output's sha256."""
    text = description_text(descriptions)
    atomic_write_text(Path(out_path), text)
    if manifest_path is None:
        return
    counts = [len(sentences) for sentences in descriptions.values()]
    manifest = {
        **provenance,
        "sentences_per_class": {"min": min(counts), "max": max(counts), "total": sum(counts)},
        "overlong_sentences": overlong_or_none(descriptions),  # > 77 CLIP tokens: truncated
        "output_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "microclip_version": __version__,
    }
    atomic_write_json(Path(manifest_path), manifest)
