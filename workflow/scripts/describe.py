"""Generate (record) or replay one LLM description set for one dataset (rule describe)."""

import json
import logging
from pathlib import Path

from microclip.text.describe import describe_dataset

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
sm = snakemake  # noqa: F821
describe_dataset(
    dataset=sm.wildcards.dataset,
    classes=json.loads(Path(sm.input.classes).read_text(encoding="utf-8")),
    questions_path=Path(sm.input.questions),
    styles_path=Path(sm.input.styles),
    generation=dict(sm.params.generation),
    cache_dir=Path(sm.params.cache_dir),
    out_path=Path(sm.output.descriptions),
    manifest_path=Path(sm.output.manifest),
    set_name=sm.wildcards.set,
    mode=sm.params.mode,
    max_retries=int(sm.params.max_retries),
    malformed_retries=int(sm.params.malformed_retries),
    timeout_s=float(sm.params.timeout_s),
)
