"""Snakemake wrapper: runs.csv + published.csv -> results/{run}/tables/ (CSV, MD, LaTeX, HTML)."""

import logging
from pathlib import Path

from microclip.report import make_tables

logging.basicConfig(
    filename=snakemake.log[0],  # noqa: F821 (injected by Snakemake)
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)

make_tables(
    snakemake.input.runs,  # noqa: F821
    snakemake.input.published,  # noqa: F821
    Path(snakemake.output.main).parent,  # noqa: F821 (main/, datasets/, ablations/ siblings)
    focus_method=snakemake.params.focus_method,  # noqa: F821
    datasets=snakemake.params.datasets,  # noqa: F821
    backbones=snakemake.params.backbones,  # noqa: F821
    ablations=snakemake.params.ablations,  # noqa: F821
)
