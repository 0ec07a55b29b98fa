"""Fetch one published description set for one dataset (rule fetch_descriptions)."""

import json
import logging
from pathlib import Path

from microclip.text.published import fetch_published

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
sm = snakemake  # noqa: F821
fetch_published(
    set_name=sm.wildcards.set,
    dataset=sm.wildcards.dataset,
    classes=json.loads(Path(sm.input.classes).read_text(encoding="utf-8")),
    out_path=Path(sm.output.descriptions),
    manifest_path=Path(sm.output.manifest),
    sources_path=Path(sm.input.sources),
    base_urls=sm.params.base_urls,
    timeout_s=float(sm.params.timeout_s),
)
