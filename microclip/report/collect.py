"""Merge per-run result files into ``runs.csv`` and ``epochs.csv``, and print a summary.

The caller passes the exact list of metrics.json files (the DAG derives it from the config);
nothing here lists a directory. Each metrics.json is one ``microclip.results.RunRecord`` and the
``epochs.jsonl`` beside it its epochs. ``runs.csv`` is one row per ``RunRecord.to_flat()``, the
columns in record order (dotted ``method_config.<k>``, ``train_settings.<k>``,
``packages.<k>`` included; keys one run lacks are empty for it); ``epochs.csv`` one row per
(run, method, dataset, backbone, seed, epoch). No report grouping is stored in either file:
which runs form which table comes from grid.json (``ReportGrid``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from microclip.errors import RunError
from microclip.report.grid import MEAN, ReportGrid
from microclip.report.published import PublishedValue, published_cells
from microclip.report.render import write_csv
from microclip.results import EPOCH_KEYS, ID_KEYS, RunRecord, read_epochs

log = logging.getLogger(__name__)

EPOCHS_FILE = "epochs.jsonl"  # beside every metrics.json
# Text columns of runs.csv, from the record's own type hints (so a version "2.4" stays text).
STRING_KEYS = tuple(
    f.name for f in dataclasses.fields(RunRecord) if f.type in ("str", "str | None")
)
TEXT_PREFIXES = ("packages.",)


# -- reading result files ---------------------------------------------------------------------
def _csv_value(value: Any) -> Any:
    """Lists and objects go to one CSV cell as JSON; scalars stay as they are."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def read_run(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One run's runs.csv row (``RunRecord.to_flat``) and its epochs.csv rows."""
    path = Path(path)
    flat = {k: _csv_value(v) for k, v in RunRecord.read(path).to_flat().items()}
    ids = {k: flat[k] for k in ID_KEYS}
    epochs = [{**ids, **row} for row in read_epochs(path.with_name(EPOCHS_FILE))]
    return flat, epochs


def _runs_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    runs = pd.DataFrame(rows)  # columns: first-seen order, i.e. the record's order
    dup = runs.duplicated(list(ID_KEYS), keep=False)
    if dup.any():
        clash = runs.loc[dup, list(ID_KEYS)].iloc[0].to_dict()
        raise RunError(f"collect: two metrics files share the same identifying keys {clash}")
    return runs.sort_values(list(ID_KEYS), kind="stable").reset_index(drop=True)


def _epochs_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    epochs = pd.DataFrame(rows, columns=[*ID_KEYS, *EPOCH_KEYS])
    return epochs.sort_values([*ID_KEYS, "epoch"], kind="stable").reset_index(drop=True)


def collect_runs(
    metrics_paths: Iterable[str | Path],
    out_runs_csv: str | Path,
    out_epochs_csv: str | Path,
    *,
    grid: str | Path | ReportGrid,
    published_csv: str | Path | None = None,
    echo: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the given metrics.json files (+ their epochs.jsonl) into runs.csv and epochs.csv.

    Both files are written atomically, and only once every input has been read, so a bad
    input leaves neither. Returns (runs, epochs). The one-screen summary of the grid's main
    runs (with published numbers when ``published_csv`` is given) is logged at INFO and, with
    ``echo``, printed: it is what the user sees at the end of a run.
    """
    paths = [Path(p) for p in metrics_paths]
    if not paths:
        raise RunError("collect: no metrics.json paths given; check the run's methods/datasets")
    report_grid = grid if isinstance(grid, ReportGrid) else ReportGrid.read(grid)
    run_rows, epoch_rows = [], []
    for path in paths:
        flat, epochs = read_run(path)
        run_rows.append(flat)
        epoch_rows.extend(epochs)
    runs, epochs = _runs_frame(run_rows), _epochs_frame(epoch_rows)
    write_csv(runs, out_runs_csv)
    write_csv(epochs, out_epochs_csv)
    published = None
    if published_csv is not None:
        from microclip.report.published import load_published

        published = load_published(published_csv)
    text = summary_table(runs, report_grid, published=published)
    log.info("collected %d runs into %s\n%s", len(runs), out_runs_csv, text)
    if echo:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return runs, epochs


# -- reading the CSVs back --------------------------------------------------------------------
def load_runs(path: str | Path) -> pd.DataFrame:
    """runs.csv: text columns as str (NaN when empty), numbers as numbers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"runs table {path} does not exist; run rule collect_results")
    header = pd.read_csv(path, nrows=0).columns
    text = [c for c in header if c in STRING_KEYS or c.startswith(TEXT_PREFIXES)]
    return pd.read_csv(path, dtype=dict.fromkeys(text, str))


def load_epochs(path: str | Path) -> pd.DataFrame:
    """epochs.csv: identifying keys as text (seed int), per-epoch fields as numbers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"epochs table {path} does not exist; run rule collect_results")
    text_keys = [k for k in ID_KEYS if k != "seed"]
    epochs = pd.read_csv(path, dtype=dict.fromkeys(text_keys, str))
    for key in EPOCH_KEYS:
        epochs[key] = pd.to_numeric(epochs[key], errors="coerce")
    return epochs


# -- the one-screen summary -------------------------------------------------------------------
def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _summary_means(part: pd.DataFrame, grid: ReportGrid) -> pd.DataFrame:
    """Mean top-1 over seeds, methods x grid datasets, plus the mean over datasets."""
    datasets = list(grid.main.datasets)
    means = part.groupby(["method", "dataset"])["top1"].mean().unstack("dataset")
    means = means.reindex(index=grid.method_order(part["method"].unique()), columns=datasets)
    means[MEAN] = means.mean(axis=1, skipna=False)
    return means


def _with_published(
    means: pd.DataFrame, cells: dict[str, dict[str, PublishedValue]]
) -> pd.DataFrame:
    """A "<method> (pub)" row under each method that has published numbers."""
    rows = []
    for method in means.index:
        rows.append(means.loc[[method]])
        if method in cells:
            values = {c: v.value for c, v in cells[method].items()}
            pub = pd.DataFrame([values], index=[f"{method} (pub)"])
            rows.append(pub.reindex(columns=means.columns))
    return pd.concat(rows)


def summary_table(
    runs: pd.DataFrame,
    grid: ReportGrid,
    *,
    published: pd.DataFrame | None = None,
    max_width: int = 120,
) -> str:
    """One-screen text: mean top-1 over seeds per method x dataset of the main grid, per backbone.

    Runs outside the main grid are counted in a footer. The table is transposed (datasets as
    rows) when methods-as-rows would exceed ``max_width``.
    """
    lines = []
    for backbone in grid.main.backbones:
        part = grid.main_runs(runs, backbone=backbone)
        if part.empty:
            continue
        means = _summary_means(part, grid)
        seeds = part.groupby("method")["seed"].nunique()
        cells = published_cells(published, backbone, grid.main.datasets, mean_column=MEAN)
        if cells:
            means = _with_published(means, cells)
        means.columns = [grid.label(c) for c in means.columns]
        head = f"top-1 % (mean over seeds), backbone {backbone}, run {grid.run}"
        body = _grid_text(means, seeds)
        if max(len(s) for s in body) > max_width:
            body = _grid_text(means.T, None)
        lines += [head, *body, ""]
    n_other = len(runs) - len(grid.main_runs(runs))
    if n_other or grid.ablations:
        tables = ", ".join(grid.ablations) or "-"
        lines.append(f"+ {n_other} runs outside the main grid; ablation tables: {tables}")
    if not lines:
        lines.append("no runs of the main grid collected")
    return "\n".join(lines).rstrip()


def _grid_text(grid: pd.DataFrame, seeds: pd.Series | None) -> list[str]:
    cols = [str(c) for c in grid.columns]
    label_w = max([len(str(i)) for i in grid.index] + [6])
    widths = [max(len(c), 5) for c in cols]
    header = " " * label_w + "  " + "  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))
    if seeds is not None:
        header += "  seeds"
    out = [header]
    for idx, row in grid.iterrows():
        cells = "  ".join(_fmt(v).rjust(w) for v, w in zip(row.tolist(), widths, strict=True))
        line = f"{str(idx).ljust(label_w)}  {cells}"
        if seeds is not None and idx in seeds.index:
            line += f"  {int(seeds[idx]):5d}"
        out.append(line)
    return out
