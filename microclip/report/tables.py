"""Paper-style tables from ``runs.csv`` + ``grid.json``: main, per-dataset and ablation tables.

This module computes table content (a ``Table``: display strings, bold cells, notes and the
tidy cells behind them); ``render`` writes it. ``make_tables`` writes every table of a run
under ``results/{run}/tables/``::

    main/{backbone}.{csv,md,tex,html}              rows methods, columns datasets + mean
    main/{backbone}_stats.csv                      per-dataset paired tests vs every baseline
    main/{backbone}_stats_overall.csv              Wilcoxon + bootstrap CI vs every baseline
    datasets/{backbone}/{dataset}.{csv,md,tex,html}
    ablations/{ablation}.{csv,md,tex,html}         one per ablation table of grid.json
    provenance.{md,html}                           versions, commits, config hashes

Rows, columns, their order and labels come from grid.json (``ReportGrid``). Cells are mean ±
sample std (ddof=1) over seeds. The "mean" column averages the per-dataset means; its std is
over seeds of the per-seed average across datasets (seeds present on every dataset). A method
missing a dataset has a NaN mean: partial averages are not comparable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from microclip.report import stats as st
from microclip.report.collect import load_runs
from microclip.report.grid import MEAN, ReportGrid, TableGrid
from microclip.report.provenance import write_provenance
from microclip.report.published import PublishedValue, load_published, published_cells
from microclip.report.render import write_csv, write_table

log = logging.getLogger(__name__)

IMAGE_MARK = "‡"  # published value typed from an image of the table, not yet verified
BEST_MARK = " (best epoch†)"  # a row whose runs report the best epoch over the test set
MAIN_GRID_SUFFIX = " (main grid)"  # the focus method's main-grid runs in an ablation table


@dataclass
class Table:
    """A table's display grid plus the tidy cells behind it."""

    name: str  # file stem, e.g. "ViT-B-32"
    caption: str
    header: list[str]  # column labels, first is the row label column
    rows: list[list[str]]  # display strings
    bold: list[list[bool]]  # same shape as rows
    italic_rows: set[int] = field(default_factory=set)  # published rows
    rules_after: set[int] = field(default_factory=set)  # \midrule after these row indices
    notes: list[str] = field(default_factory=list)
    tidy: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class Cell:
    """Mean, sample std and number of seeds of one measured cell."""

    mean: float
    std: float
    n: int


MISSING = Cell(math.nan, math.nan, 0)
Grid = dict[str, dict[str, Cell]]  # row -> column -> cell


# -- numbers ----------------------------------------------------------------------------------
def is_nan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell_stats(runs: pd.DataFrame, *, metric: str = "top1") -> pd.DataFrame:
    """mean, std (ddof=1; NaN for one seed) and n over seeds per (method, dataset)."""
    grouped = runs.groupby(["method", "dataset"])[metric]
    out = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1)})
    out["n"] = grouped.count()
    return out


def mean_column_stats(
    runs: pd.DataFrame, datasets: Sequence[str], *, metric: str = "top1"
) -> pd.DataFrame:
    """Per method: mean over ``datasets`` of per-dataset means; std over complete seeds.

    NaN mean when a dataset has no value; std over seeds that have every dataset (ddof=1).
    """
    rows = {}
    for method, part in runs.groupby("method"):
        per_ds = part.groupby("dataset")[metric].mean().reindex(list(datasets))
        mean = per_ds.mean(skipna=False) if len(per_ds) else math.nan
        by_seed = part.pivot_table(index="seed", columns="dataset", values=metric, aggfunc="mean")
        seed_means = by_seed.reindex(columns=list(datasets)).dropna().mean(axis=1)
        std = seed_means.std(ddof=1) if len(seed_means) >= 2 else math.nan
        rows[method] = {"mean": mean, "std": std, "n": len(seed_means)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "std", "n"])


def measured_grid(
    runs: pd.DataFrame, rows: Sequence[str], datasets: Sequence[str], *, metric: str = "top1"
) -> Grid:
    """{row: {dataset or "mean": Cell}} for every row (``runs.method``), MISSING where no run."""
    cells = cell_stats(runs, metric=metric)
    means = mean_column_stats(runs, datasets, metric=metric)

    def cell(frame: pd.DataFrame, key: object) -> Cell:
        if key not in frame.index:
            return MISSING
        r = frame.loc[key]
        return Cell(float(r["mean"]), float(r["std"]), int(r["n"]))

    return {
        row: {**{d: cell(cells, (row, d)) for d in datasets}, MEAN: cell(means, row)}
        for row in rows
    }


def column_best(grid: Grid, columns: Sequence[str]) -> dict[str, float]:
    """Highest measured mean per column (NaN when the column is empty)."""
    best = {}
    for col in columns:
        values = [cells[col].mean for cells in grid.values() if not is_nan(cells[col].mean)]
        best[col] = max(values) if values else math.nan
    return best


def is_best(cell: Cell, best: float) -> bool:
    return not is_nan(cell.mean) and abs(cell.mean - best) < 1e-9


def strongest_baselines(
    grid: Grid, focus: str, baselines: Sequence[str], columns: Sequence[str]
) -> dict[str, tuple[str | None, float]]:
    """Per column: (strongest baseline, focus mean - its mean); (None, NaN) without both."""
    out: dict[str, tuple[str | None, float]] = {}
    for col in columns:
        cands = [(grid[b][col].mean, b) for b in baselines if not is_nan(grid[b][col].mean)]
        if focus in grid and cands:
            top_value, top_method = max(cands)
            out[col] = (top_method, grid[focus][col].mean - top_value)
        else:
            out[col] = (None, math.nan)
    return out


# -- formatting -------------------------------------------------------------------------------
def fmt_cell(mean: float, std: float = math.nan, *, digits: int = 2) -> str:
    """'76.17 ± 0.40', '76.17' for a single seed, '–' when missing."""
    if is_nan(mean):
        return "–"
    if is_nan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_signed(value: float, *, digits: int = 2) -> str:
    return "–" if is_nan(value) else f"{value:+.{digits}f}"


def fmt_p(p: float) -> str:
    if is_nan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_num(value: float, digits: int = 2) -> str:
    return "n/a" if is_nan(value) else f"{value:.{digits}f}"


def fmt_published(entry: PublishedValue | None, digits: int) -> str:
    if entry is None:
        return ""
    return f"{entry.value:.{digits}f}" + (IMAGE_MARK if entry.read_from == "image" else "")


# -- building rows ----------------------------------------------------------------------------
@dataclass
class _Rows:
    """Display rows, bold flags, italic/rule marks and tidy records, added in order."""

    rows: list[list[str]] = field(default_factory=list)
    bold: list[list[bool]] = field(default_factory=list)
    italic: set[int] = field(default_factory=set)
    rules: set[int] = field(default_factory=set)
    tidy: list[dict] = field(default_factory=list)

    def add(
        self, cells: list[str], bold: list[bool] | None = None, *, italic: bool = False
    ) -> None:
        if italic:
            self.italic.add(len(self.rows))
        self.rows.append(cells)
        self.bold.append(bold if bold is not None else [False] * len(cells))

    def rule(self) -> None:
        if self.rows:
            self.rules.add(len(self.rows) - 1)


def _reports_best(part: pd.DataFrame, method: str) -> bool:
    return bool((part.loc[part["method"] == method, "report"] == "best").any())


def backbone_methods(runs: pd.DataFrame, grid: ReportGrid, backbone: str) -> list[str]:
    """The main-grid methods with a run on ``backbone``, in the grid's order (focus last).

    grid.json's main grid spans every backbone (scaling backbones run fewer methods), so a
    method that never ran on this backbone gets no row; one failed run stays a '–' cell.
    """
    return grid.method_order(grid.main_runs(runs, backbone=backbone)["method"].unique())


# -- main table -------------------------------------------------------------------------------
def _main_tidy(backbone: str, row: str, method: str, column: str, **values: object) -> dict:
    base = {"mean": math.nan, "std": math.nan, "n": 0, "best": False}
    base |= {"strongest_baseline": "", "source": "", "read_from": ""}
    return {"backbone": backbone, "row": row, "method": method, "dataset": column, **base, **values}


def _add_measured(out: _Rows, part, method, grid, best, columns, backbone, digits) -> None:
    cells = grid[method]
    label = method + (BEST_MARK if _reports_best(part, method) else "")
    flags = [is_best(cells[c], best[c]) for c in columns]
    out.add(
        [label] + [fmt_cell(cells[c].mean, cells[c].std, digits=digits) for c in columns],
        [False, *flags],
    )
    for c, flag in zip(columns, flags, strict=True):
        cell = cells[c]
        out.tidy.append(
            _main_tidy(
                backbone, "measured", method, c, mean=cell.mean, std=cell.std, n=cell.n, best=flag
            )
        )


def _add_published(out: _Rows, method, pub, columns, backbone, digits, label) -> None:
    out.add([label] + [fmt_published(pub.get(c), digits) for c in columns], italic=True)
    for c, v in pub.items():
        out.tidy.append(
            _main_tidy(
                backbone,
                "published",
                method,
                c,
                mean=v.value,
                source=v.source,
                read_from=v.read_from,
            )
        )


def _add_delta(out: _Rows, focus, strongest, columns, backbone, digits) -> None:
    texts = []
    for c in columns:
        name, delta = strongest[c]
        texts.append(fmt_signed(delta, digits=digits) + (f" ({name})" if name else ""))
        out.tidy.append(
            _main_tidy(backbone, "delta", focus, c, mean=delta, strongest_baseline=name or "")
        )
    out.add([f"Δ {focus} − strongest baseline", *texts])


def main_table(
    runs: pd.DataFrame,
    grid: ReportGrid,
    published: pd.DataFrame | None,
    *,
    backbone: str,
    metric: str = "top1",
    digits: int = 2,
    n_boot: int = st.BOOTSTRAP_REPLICATES,
) -> tuple[Table, pd.DataFrame, pd.DataFrame]:
    """The paper's main table for one backbone of the grid's main runs.

    Returns (table, per_dataset_tests, overall_tests); see ``stats.compare_methods``.
    """
    part = grid.main_runs(runs, backbone=backbone)
    datasets, focus = list(grid.main.datasets), grid.focus_method
    methods = backbone_methods(runs, grid, backbone)
    columns = [*datasets, MEAN]
    cells = measured_grid(part, methods, datasets, metric=metric)
    best = column_best(cells, columns)
    baselines = [m for m in methods if m != focus]
    strongest = strongest_baselines(cells, focus, baselines, columns)
    pub = published_cells(published, backbone, datasets, mean_column=MEAN)
    out = _Rows()
    for method in methods:
        _add_measured(out, part, method, cells, best, columns, backbone, digits)
        if method in pub:
            _add_published(out, method, pub[method], columns, backbone, digits, "  published")
    out.rule()
    has_focus = focus in methods
    if has_focus and baselines:
        _add_delta(out, focus, strongest, columns, backbone, digits)
    extra = sorted(set(pub) - set(methods))
    if extra:
        out.rule()
    for method in extra:
        label = f"{method} (published only)"
        _add_published(out, method, pub[method], columns, backbone, digits, label)
    per_ds, overall = (
        st.compare_methods(part, focus, baselines, datasets, metric=metric, n_boot=n_boot)
        if has_focus
        else (pd.DataFrame(), pd.DataFrame())
    )
    sources = sorted({v.source for row in pub.values() for v in row.values()})
    notes = _main_notes(part, grid, methods, strongest, per_ds, overall, metric, digits)
    notes += _published_note(published, sources)
    table = Table(
        name=backbone,
        caption=f"Top-1 accuracy (%) on the test split, backbone {backbone}, run {grid.run}: "
        "mean ± std over seeds; best measured value per column in bold.",
        header=["Method", *[grid.label(c) for c in columns]],
        rows=out.rows,
        bold=out.bold,
        italic_rows=out.italic,
        rules_after=out.rules,
        notes=notes,
        tidy=pd.DataFrame(out.tidy),
    )
    return table, per_ds, overall


def _main_notes(part, grid, methods, strongest, per_ds, overall, metric, digits) -> list[str]:
    notes = [
        f"Cells: mean ± sample std (ddof=1) of {metric} over seeds; one seed shows the mean only; "
        "'–' = no run. Mean column: average of the per-dataset means (NaN if a dataset is "
        "missing); its std is over seeds of the per-seed average across datasets.",
    ]
    seeds = part.groupby("method")["seed"].nunique()
    if len(seeds):
        listed = [m for m in methods if m in seeds.index]
        notes.append("Seeds per method: " + ", ".join(f"{m} {int(seeds[m])}" for m in listed))
    if (part["report"] == "best").any():
        notes.append(
            "† reports the best epoch over the test set, which peeks at test labels; "
            "every other row reports the last epoch."
        )
    if not per_ds.empty:
        notes += _test_notes(grid, strongest, per_ds, overall, digits)
    return notes


def _test_notes(grid, strongest, per_ds, overall, digits) -> list[str]:
    focus, datasets = grid.focus_method, list(grid.main.datasets)
    parts = []
    for ds in datasets:
        base = strongest[ds][0]
        if not base:
            continue
        row = per_ds[(per_ds["baseline"] == base) & (per_ds["dataset"] == ds)].iloc[0]
        parts.append(
            f"{grid.label(ds)} vs {base}: Δ={fmt_signed(row['mean_diff'], digits=digits)}, "
            f"t={fmt_num(row['t'])}, p={fmt_p(row['p'])}, n={int(row['n_pairs'])}"
        )
    notes = [
        "Per dataset, paired t-test over seeds (scipy ttest_rel; seed i of every method shares "
        "data order and augmentations, so differences are paired; a t-test because an exact "
        "Wilcoxon test cannot reach p < 0.25 with 3 seeds; NaN with < 2 seeds or zero spread), "
        f"{focus} vs the strongest baseline of each column: " + "; ".join(parts) + "."
    ]
    over = [
        f"{r.baseline}: W={fmt_num(r.wilcoxon_w)}, p={fmt_p(r.wilcoxon_p)}, n={int(r.wilcoxon_n)}"
        for r in overall.itertuples()
    ]
    if len(datasets) < 2:
        over = ["not computed with fewer than 2 datasets"]
    notes.append(
        f"Across datasets, Wilcoxon signed-rank test on per-dataset means ({focus} vs "
        "each baseline, two-sided, exact for small n): " + "; ".join(over) + "."
    )
    base = strongest[MEAN][0]
    if base:
        r = overall[overall["baseline"] == base].iloc[0]
        notes.append(
            f"Mean Δ over {base} (strongest baseline on the mean): "
            f"{fmt_signed(r['mean_delta'], digits=digits)} points, "
            f"{int(st.CI_LEVEL * 100)}% bootstrap CI "
            f"[{fmt_num(r['ci_low'], digits)}, {fmt_num(r['ci_high'], digits)}] "
            f"(seeds resampled within each dataset, paired, {st.BOOTSTRAP_REPLICATES} "
            f"replicates, numpy seed {st.BOOTSTRAP_SEED}; NaN with < 2 seeds)."
        )
    return notes


def _published_note(published: pd.DataFrame | None, sources: list[str]) -> list[str]:
    if not sources or published is None:
        return []
    cites = (
        published[published["source"].isin(sources)]
        .drop_duplicates("source")
        .set_index("source")["citation"]
    )
    return [
        "Published rows (reference data, not results): "
        + "; ".join(f"{s} = {cites.get(s, s)}" for s in sources)
        + ". ‡ = typed from an image of the table, unverified. A published mean appears only "
        "when the table's datasets are the ones it averages (published.csv mean_of); "
        "protocols may differ (see the notes in reference/published.csv)."
    ]


# -- per-dataset tables -----------------------------------------------------------------------
def _paired_test(per_ds: pd.DataFrame, method: str, dataset: str) -> pd.Series | None:
    if per_ds.empty:
        return None
    hit = per_ds[(per_ds["baseline"] == method) & (per_ds["dataset"] == dataset)]
    return hit.iloc[0] if len(hit) else None


def _dataset_tidy(backbone, dataset, method, top: Cell, rec: Cell, pub, test) -> dict:
    return {
        "backbone": backbone,
        "dataset": dataset,
        "method": method,
        "top1_mean": top.mean,
        "top1_std": top.std,
        "n": top.n,
        "recall_mean": rec.mean,
        "recall_std": rec.std,
        "published": math.nan if pub is None else pub.value,
        "published_source": "" if pub is None else pub.source,
        "delta_vs_row": math.nan if test is None else test["mean_diff"],
        "n_pairs": 0 if test is None else int(test["n_pairs"]),
        "t": math.nan if test is None else test["t"],
        "p": math.nan if test is None else test["p"],
    }


def dataset_table(
    runs: pd.DataFrame,
    grid: ReportGrid,
    published: pd.DataFrame | None,
    per_ds: pd.DataFrame,
    *,
    dataset: str,
    backbone: str,
    digits: int = 2,
) -> Table:
    """One dataset x backbone: top-1, per-class recall, published, Δ and paired test per method.

    Rows are the main table's (``backbone_methods``), so a failed run shows as '–'.
    """
    part = grid.main_runs(runs, backbone=backbone)
    part = part[part["dataset"] == dataset]
    methods, focus = backbone_methods(runs, grid, backbone), grid.focus_method
    top = measured_grid(part, methods, [dataset], metric="top1")
    rec = measured_grid(part, methods, [dataset], metric="mean_per_class_recall")
    best = column_best(top, [dataset])[dataset]
    pub = published_cells(published, backbone, [dataset], mean_column=MEAN)
    out = _Rows()
    for method in methods:
        t, r = top[method][dataset], rec[method][dataset]
        p = pub.get(method, {}).get(dataset)
        test = None if method == focus else _paired_test(per_ds, method, dataset)
        out.add(
            [
                method,
                fmt_cell(t.mean, t.std, digits=digits),
                str(t.n),
                fmt_cell(r.mean, r.std, digits=digits),
                fmt_published(p, digits),
                "" if test is None else fmt_signed(test["mean_diff"], digits=digits),
                "" if test is None else fmt_num(test["t"]),
                "" if test is None else fmt_p(test["p"]),
            ],
            [False, is_best(t, best)] + [False] * 6,
        )
        out.tidy.append(_dataset_tidy(backbone, dataset, method, t, r, p, test))
    notes = [
        "Top-1 and mean per-class recall: mean ± sample std over seeds. Δ/t/p: paired t-test over "
        f"seeds of {focus} − the row's method (n/a with < 2 paired seeds or zero spread).",
        "Published: highest-priority source for this method, dataset and backbone; ‡ = read from "
        "an image of the table, unverified.",
    ]
    header = ["Method", "Top-1", "Seeds", "Mean per-class recall", "Published"]
    header += [f"Δ {focus} − row", "t", "p"]
    return Table(
        name=dataset,
        caption=f"{grid.title(dataset)}, backbone {backbone}",
        header=header,
        rows=out.rows,
        bold=out.bold,
        notes=notes,
        tidy=pd.DataFrame(out.tidy),
    )


# -- ablation tables --------------------------------------------------------------------------
def _ablation_rows(runs: pd.DataFrame, grid: ReportGrid, spec: TableGrid) -> pd.DataFrame:
    """The table's runs plus, when it lacks the focus method, that method's main-grid runs
    (as "<focus> (main grid)"), each labelled in ``row``."""
    part = spec.select(runs).copy()
    focus = grid.focus_method
    if focus not in spec.methods and focus in grid.main.methods:
        ref = grid.main_runs(runs)
        ref = ref[(ref["method"] == focus) & ref["dataset"].isin(list(spec.datasets))]
        ref = ref[ref["backbone"].isin(list(spec.backbones))].copy()
        ref["method"] = focus + MAIN_GRID_SUFFIX
        part = pd.concat([part, ref], ignore_index=True)
    multi = len(spec.backbones) > 1
    part["row"] = part["method"] + (" / " + part["backbone"] if multi else "")
    return part


def _ablation_labels(grid: ReportGrid, spec: TableGrid) -> list[tuple[str, str, str]]:
    """(row label, method, backbone) in the table's method order, then the reference row."""
    methods = list(spec.methods)
    if grid.focus_method not in spec.methods and grid.focus_method in grid.main.methods:
        methods.append(grid.focus_method + MAIN_GRID_SUFFIX)
    multi = len(spec.backbones) > 1
    return [(f"{m} / {b}" if multi else m, m, b) for m in methods for b in spec.backbones]


def ablation_table(
    runs: pd.DataFrame, grid: ReportGrid, name: str, *, digits: int = 2, metric: str = "top1"
) -> Table:
    """Rows = the ablation table's methods in grid.json order (one per backbone when it has
    several), plus the focus method's main-grid runs as the reference when the table lacks it;
    columns = its datasets + mean."""
    spec = grid.ablation(name)
    datasets, columns = list(spec.datasets), [*spec.datasets, MEAN]
    part = _ablation_rows(runs, grid, spec)
    labels = _ablation_labels(grid, spec)
    cells = measured_grid(
        part.assign(method=part["row"]), [r for r, _, _ in labels], datasets, metric=metric
    )
    best = column_best(cells, columns)
    out = _Rows()
    for label, method, backbone in labels:
        row = cells[label]
        out.add(
            [label] + [fmt_cell(row[c].mean, row[c].std, digits=digits) for c in columns],
            [False] + [is_best(row[c], best[c]) for c in columns],
        )
        for c in columns:
            out.tidy.append(
                {
                    "ablation": name,
                    "row": label,
                    "method": method,
                    "backbone": backbone,
                    "dataset": c,
                    "mean": row[c].mean,
                    "std": row[c].std,
                    "n": row[c].n,
                }
            )
    note = f"Rows are the runs of ablation table '{name}' of grid.json, in its order."
    if any(m.endswith(MAIN_GRID_SUFFIX) for _, m, _ in labels):
        note += f" '{grid.focus_method}{MAIN_GRID_SUFFIX}' is the full method from the main grid."
    return Table(
        name=name,
        caption=f"Ablation — {grid.ablation_title(name)}: {metric} (%), mean ± std over seeds; "
        "best per column in bold.",
        header=["Variant", *[grid.label(c) for c in columns]],
        rows=out.rows,
        bold=out.bold,
        notes=[note],
        tidy=pd.DataFrame(out.tidy),
    )


# -- every table of a run ---------------------------------------------------------------------
def _write_backbone(runs, grid, published, out_dir: Path, backbone: str, n_boot: int) -> list[Path]:
    table, per_ds, overall = main_table(runs, grid, published, backbone=backbone, n_boot=n_boot)
    written = write_table(table, out_dir / "main" / backbone, label=f"tab:main-{backbone}")
    for suffix, frame in (("stats", per_ds), ("stats_overall", overall)):
        written.append(write_csv(frame, out_dir / "main" / f"{backbone}_{suffix}.csv"))
    for dataset in grid.main.datasets:
        dt = dataset_table(runs, grid, published, per_ds, dataset=dataset, backbone=backbone)
        stem = out_dir / "datasets" / backbone / dataset
        written += write_table(dt, stem, label=f"tab:{dataset}-{backbone}")
    return written


def make_tables(
    runs_csv: str | Path,
    grid_json: str | Path | ReportGrid,
    published_csv: str | Path | None,
    out_dir: str | Path,
    *,
    n_boot: int = st.BOOTSTRAP_REPLICATES,
) -> list[Path]:
    """Write every table of a run under ``out_dir`` (layout in the module docstring).

    The set of files depends only on grid.json (one main table per backbone, one per-dataset
    table per backbone and dataset, one per ablation table), never on which runs succeeded.
    Returns the written paths.
    """
    runs = load_runs(runs_csv)
    grid = grid_json if isinstance(grid_json, ReportGrid) else ReportGrid.read(grid_json)
    published = load_published(published_csv) if published_csv is not None else None
    out_dir = Path(out_dir)
    for folder in ("main", "datasets", "ablations"):  # Snakemake directory() outputs
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for backbone in grid.main.backbones:
        written += _write_backbone(runs, grid, published, out_dir, backbone, n_boot)
    for name in grid.ablations:
        table = ablation_table(runs, grid, name)
        written += write_table(table, out_dir / "ablations" / name, label=f"tab:abl-{name}")
    written += write_provenance(runs, out_dir)
    log.info("wrote %d table files under %s", len(written), out_dir)
    return written
