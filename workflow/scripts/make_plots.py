"""Snakemake wrapper: runs.csv + epochs.csv -> results/{run}/plots/ (PNG and PDF)."""

import logging
from pathlib import Path

from microclip.report import make_plots

logging.basicConfig(
    filename=snakemake.log[0],  # noqa: F821 (injected by Snakemake)
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)

make_plots(
    snakemake.input.runs,  # noqa: F821
    snakemake.input.epochs,  # noqa: F821
    Path(snakemake.output.accuracy).parent,  # noqa: F821 (accuracy/, epochs/, ... siblings)
    focus_method=snakemake.params.focus_method,  # noqa: F821
    datasets=snakemake.params.datasets,  # noqa: F821
    backbones=snakemake.params.backbones,  # noqa: F821
)
