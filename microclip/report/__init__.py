"""Reporting: runs.csv/epochs.csv, paper-style tables, statistics, figures.

Reads only result files (metrics.json, runs.csv, epochs.csv, reference/published.csv); never
imports the training stack. Entry points for the CLI and the workflow scripts:

- ``collect_runs(metrics_paths, out_runs_csv, out_epochs_csv, *, echo=True)``
- ``make_tables(runs_csv, published_csv, out_dir, *, focus_method="microclip", ...)``
- ``make_plots(runs_csv, epochs_csv, out_dir, *, focus_method="microclip", ...)``
- ``plot_saliency(npz_path, out_png, out_pdf, *, max_images=8)``
- ``load_published(path=None)``
"""

from microclip.report.collect import collect_runs, read_epochs, read_runs, summary_table
from microclip.report.plots import make_plots, plot_saliency
from microclip.report.published import load_published
from microclip.report.tables import make_tables

__all__ = [
    "collect_runs",
    "load_published",
    "make_plots",
    "make_tables",
    "plot_saliency",
    "read_epochs",
    "read_runs",
    "summary_table",
]
