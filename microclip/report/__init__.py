"""Reporting: runs.csv/epochs.csv, paper-style tables, statistics, figures.

Reads only result files (metrics.json + epochs.jsonl, grid.json, runs.csv, epochs.csv,
reference/published.csv); never imports the training stack. Which runs form which table, their
order, titles and dataset labels come from grid.json alone, so a new method or dataset never
touches this package.

Submodules: ``grid`` (ReportGrid from grid.json), ``collect`` (runs.csv, epochs.csv, summary),
``tables`` (table content), ``render`` (Markdown/LaTeX/HTML/CSV), ``provenance``, ``stats``,
``published`` (reference numbers), ``plots`` (figures), ``commands`` (CLI subcommands).

Nothing heavy is imported here: ``microclip --help`` imports ``microclip.report.commands``,
and pandas/scipy/matplotlib would make it slow. The entry points below load on first use:

- ``collect_runs(metrics_paths, out_runs_csv, out_epochs_csv, *, grid, published_csv=None,
  echo=True)``
- ``make_tables(runs_csv, grid_json, published_csv, out_dir)``
- ``make_plots(runs_csv, epochs_csv, grid_json, out_dir)``
- ``plot_saliency(npz_path, out_png, out_pdf, *, max_images, title=None)``
- ``load_published(path=None)``, ``ReportGrid.read(grid_json)``
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ReportGrid": "microclip.report.grid",
    "collect_runs": "microclip.report.collect",
    "load_runs": "microclip.report.collect",
    "load_epochs": "microclip.report.collect",
    "summary_table": "microclip.report.collect",
    "make_tables": "microclip.report.tables",
    "make_plots": "microclip.report.plots",
    "plot_saliency": "microclip.report.plots",
    "load_published": "microclip.report.published",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import an entry point's module only when the entry point is first used."""
    if name not in _LAZY:
        raise AttributeError(f"module 'microclip.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
