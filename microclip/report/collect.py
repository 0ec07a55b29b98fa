"""Merge per-run ``metrics.json`` files into ``runs.csv`` and ``epochs.csv``.

The caller passes the exact list of metrics files (the DAG derives it from config with
``expand()``); nothing here lists a directory. The layout of both CSVs is the result-file
contract of ``docs/architecture.md``: ``runs.csv`` holds every scalar key of metrics.json in the
contract's order, followed by the flattened ``method_config.<key>`` and ``packages.<name>``
scalars (the gamma sweep and the provenance note need them); ``epochs.csv`` one row per
(run, method, dataset, backbone, seed, epoch). A value missing from a file stays NaN.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

FOCUS_METHOD = "microclip"
# Row order of the paper-style tables: zero-shot first, the focus method last.
METHOD_ORDER = (
    "zs_templates",
    "zs_descriptions",
    "cls_selftrain",
    "multiview_cls_selftrain",
    "reclip",
    "lafter",
    "must",
    "must_ln",
    "dpa",
    "microclip",
)


def order_methods(methods: Sequence[str], focus: str = FOCUS_METHOD) -> list[str]:
    """Paper order: known baselines in METHOD_ORDER, others alphabetically, the focus last."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    others = sorted(m for m in set(methods) if m != focus)
    ordered = sorted(others, key=lambda m: (rank.get(m, len(rank)), m))
    return ordered + ([focus] if focus in set(methods) else [])


RUN_KEYS = (
    "run",
    "method",
    "base_method",
    "ablation",
    "dataset",
    "backbone",
    "model",
    "pretrained",
    "description_set",
    "seed",
    "split",
    "top1",
    "mean_per_class_recall",
    "report",
    "n_train",
    "n_test",
    "num_classes",
    "wall_s",
    "adapt_wall_s",
    "trainable_params",
    "config_hash",
    "version",
    "git_commit",
)
ID_KEYS = ("run", "method", "dataset", "backbone", "seed")
EPOCH_KEYS = ("epoch", "test_top1", "pseudo_label_acc", "loss", "lr", "images_per_s", "seconds")
STRING_KEYS = (
    "run",
    "method",
    "base_method",
    "ablation",
    "dataset",
    "backbone",
    "model",
    "pretrained",
    "description_set",
    "split",
    "report",
    "config_hash",
    "version",
    "git_commit",
)


def read_metrics(path: str | Path) -> dict:
    """Load one metrics.json; raises FileNotFoundError / ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"collect: {path} does not exist (was its run finished?)")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"collect: {path} is not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise ValueError(f"collect: {path} holds a {type(record).__name__}, not a JSON object")
    return record


def _flatten(prefix: str, obj: object, out: dict) -> None:
    """{'a': {'b': 1}, 'c': [1, 2]} -> {'prefix.a.b': 1, 'prefix.c': '[1, 2]'} (scalars only)."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(f"{prefix}.{key}", value, out)
    elif isinstance(obj, (list, tuple)):
        out[prefix] = json.dumps(obj)
    else:
        out[prefix] = obj


def _run_row(record: dict, path: Path) -> dict:
    row = {}
    for key in RUN_KEYS:
        if key not in record:
            log.warning("%s: key %r missing (contract: write null); kept as NaN", path, key)
        row[key] = record.get(key)
    extra = sorted(k for k in record if k not in RUN_KEYS and k != "epochs")
    for key in extra:  # scalar keys added after the contract, and flattened objects
        value = record[key]
        if isinstance(value, Mapping):
            _flatten(key, value, row)  # method_config.gamma, packages.torch, ...
        else:
            row[key] = json.dumps(value) if isinstance(value, list) else value
    missing_id = [k for k in ID_KEYS if row.get(k) is None]
    if missing_id:
        raise ValueError(f"collect: {path} lacks identifying key(s) {missing_id}")
    row["ablation"] = row["ablation"] or ""
    return row


def _epoch_rows(record: dict, path: Path) -> list[dict]:
    epochs = record.get("epochs") or []
    if not isinstance(epochs, list):
        raise ValueError(f"collect: {path}: 'epochs' must be a list of objects")
    rows = []
    for entry in epochs:
        row = {k: record.get(k) for k in ID_KEYS}
        row["ablation"] = record.get("ablation") or ""
        row.update({k: entry.get(k) for k in EPOCH_KEYS})
        rows.append(row)
    return rows


def write_csv_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` to ``path`` through a temporary file in the same folder + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            frame.to_csv(handle, index=False, na_rep="")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def collect_runs(
    metrics_paths: Iterable[str | Path],
    out_runs_csv: str | Path,
    out_epochs_csv: str | Path,
    *,
    published_csv: str | Path | None = None,
    echo: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the given metrics.json files into runs.csv and epochs.csv (atomic writes).

    Returns (runs, epochs) as DataFrames. With ``echo`` the one-screen summary table goes to
    stdout (it is what the user sees at the end of a run); it is always logged at INFO. With
    ``published_csv`` the summary shows published numbers under the measured ones.
    """
    paths = [Path(p) for p in metrics_paths]
    if not paths:
        raise ValueError("collect: no metrics.json paths given; check the run's methods/datasets")
    run_rows, epoch_rows = [], []
    for path in paths:
        record = read_metrics(path)
        run_rows.append(_run_row(record, path))
        epoch_rows.extend(_epoch_rows(record, path))

    runs = pd.DataFrame(run_rows)
    ordered = list(RUN_KEYS) + [c for c in runs.columns if c not in RUN_KEYS]
    runs = runs[ordered]
    dup = runs.duplicated(list(ID_KEYS), keep=False)
    if dup.any():
        clash = runs.loc[dup, list(ID_KEYS)].iloc[0].to_dict()
        raise ValueError(f"collect: two metrics files share the same identifying keys {clash}")
    runs = runs.sort_values(list(ID_KEYS), kind="stable").reset_index(drop=True)

    epoch_cols = [*ID_KEYS, "ablation", *EPOCH_KEYS]
    epochs = pd.DataFrame(epoch_rows, columns=epoch_cols)
    epochs = epochs.sort_values([*ID_KEYS, "epoch"], kind="stable").reset_index(drop=True)

    write_csv_atomic(runs, out_runs_csv)
    write_csv_atomic(epochs, out_epochs_csv)
    published = None
    if published_csv is not None:
        from microclip.report.published import load_published

        published = load_published(published_csv)
    text = summary_table(runs, published=published)
    log.info("collected %d runs into %s\n%s", len(runs), out_runs_csv, text)
    if echo:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return runs, epochs


def read_runs(path: str | Path) -> pd.DataFrame:
    """Read runs.csv back: text keys as str (NaN when missing, ``ablation`` "" when none),
    numbers as numbers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"runs table {path} does not exist; run collect_results first")
    runs = pd.read_csv(path, dtype={k: str for k in STRING_KEYS})
    runs["ablation"] = runs["ablation"].fillna("")
    return runs


def read_epochs(path: str | Path) -> pd.DataFrame:
    """Read epochs.csv back (numeric per-epoch fields, ``ablation`` "" when none)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"epochs table {path} does not exist; run collect_results first")
    text_keys = ("run", "method", "dataset", "backbone", "ablation")
    epochs = pd.read_csv(path, dtype={k: str for k in text_keys})
    epochs["ablation"] = epochs["ablation"].fillna("")
    for key in EPOCH_KEYS:
        epochs[key] = pd.to_numeric(epochs[key], errors="coerce")
    return epochs


def ablation_names(value: object) -> list[str]:
    """The tables an ``ablation`` cell names: "" -> [], "dka" -> ["dka"], "dka,soap" -> both."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [name.strip() for name in str(value).split(",") if name.strip()]


def main_grid(
    runs: pd.DataFrame,
    *,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> pd.DataFrame:
    """The runs of the main comparison (also works on epochs.csv rows).

    With ``methods`` (the config's method list) a run belongs when its method is listed, even if
    an ablation table also uses it. Without, a run belongs when it is not a variant
    (``method == base_method``) or names no ablation table. ``datasets``, ``backbones`` and
    ``seeds`` restrict further when given.
    """
    if methods is not None:
        mask = runs["method"].isin(list(methods))
    elif "base_method" in runs.columns:
        mask = (runs["method"] == runs["base_method"]) | (runs["ablation"].fillna("") == "")
    else:
        mask = runs["ablation"].fillna("") == ""
    for column, allowed in (("dataset", datasets), ("backbone", backbones), ("seed", seeds)):
        if allowed is not None:
            mask &= runs[column].isin(list(allowed))
    return runs[mask]


def ablation_grid(
    runs: pd.DataFrame, name: str, spec: Mapping[str, Sequence] | None = None
) -> pd.DataFrame:
    """The runs of ablation table ``name``.

    With ``spec`` (the config's table: ``methods`` and optionally ``datasets``, ``backbones``,
    ``seeds``) exactly those runs; without, the runs whose ``ablation`` column names the table.
    """
    if spec is None:
        return runs[runs["ablation"].map(lambda v: name in ablation_names(v))]
    mask = pd.Series(True, index=runs.index)
    for column, key in (
        ("method", "methods"),
        ("dataset", "datasets"),
        ("backbone", "backbones"),
        ("seed", "seeds"),
    ):
        if spec.get(key) is not None:
            mask &= runs[column].isin(list(spec[key]))
    return runs[mask]


def _fmt(value: float, digits: int = 1) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def summary_table(
    runs: pd.DataFrame, *, published: pd.DataFrame | None = None, max_width: int = 120
) -> str:
    """One-screen text summary: mean top-1 over seeds per method x dataset, per backbone.

    Main-grid runs only (``main_grid`` without config); ablation-only runs are counted in a
    footer line. With ``published`` (``load_published()``), a "<method> (pub)" row under each
    method holds its published numbers. The table is transposed (datasets as rows) when
    methods-as-rows would exceed ``max_width``.
    """
    from microclip.report.published import published_lookup

    lines = []
    main = main_grid(runs)
    for backbone, part in main.groupby("backbone", sort=True):
        means = part.groupby(["method", "dataset"])["top1"].mean().unstack("dataset")
        means = means.reindex(order_methods(means.index))
        seeds = part.groupby("method")["seed"].nunique()
        means["mean"] = means.mean(axis=1, skipna=False)
        if published is not None:
            pub = published_lookup(published, backbone)
            pub = pub[pub["dataset"].isin(means.columns) & (pub["dataset"] != "mean")]
            pub = pub.pivot_table(index="method", columns="dataset", values="value")
            rows = []
            for method in means.index:
                rows.append(means.loc[[method]])
                if method in pub.index:
                    extra = pub.loc[[method]].reindex(columns=means.columns)
                    rows.append(extra.rename(index={method: f"{method} (pub)"}))
            means = pd.concat(rows)
        head = f"top-1 % (mean over seeds), backbone {backbone}, run {part['run'].iloc[0]}"
        body = _grid_text(means, seeds)
        if max(len(s) for s in body) > max_width:
            body = _grid_text(means.T, None)
        lines += [head, *body, ""]
    n_other = len(runs) - len(main)
    tables = sorted({t for v in runs["ablation"] for t in ablation_names(v)})
    if n_other or tables:
        lines.append(f"+ {n_other} ablation-only runs; ablation tables: {', '.join(tables) or '-'}")
    if not lines:
        lines.append("no runs collected")
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
        if seeds is not None:
            line += f"  {int(seeds[idx]):5d}" if idx in seeds.index else ""
        out.append(line)
    return out
