"""Snakemake wrapper: metrics.json files -> results/{run}/runs.csv + epochs.csv (+ summary)."""

import logging

from microclip.report import collect_runs

logging.basicConfig(
    filename=snakemake.log[0],  # noqa: F821 (injected by Snakemake)
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)

collect_runs(
    list(snakemake.input.metrics),  # noqa: F821
    snakemake.output.runs,  # noqa: F821
    snakemake.output.epochs,  # noqa: F821
    echo=True,  # the one-screen summary goes to the terminal
)
