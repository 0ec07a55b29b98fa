"""Paper-style tables from ``runs.csv``: main table, per-dataset tables, ablation tables.

Every table is written as CSV (tidy, one row per cell, for further analysis), Markdown, LaTeX
(booktabs) and HTML (for the Snakemake report), under ``results/{run}/tables/``::

    main/{backbone}.{csv,md,tex,html}              rows methods, columns datasets + mean
    main/{backbone}_stats.csv                      per-dataset paired tests vs every baseline
    main/{backbone}_stats_overall.csv              Wilcoxon + bootstrap CI vs every baseline
    datasets/{backbone}/{dataset}.{csv,md,tex,html}
    ablations/{ablation}.{csv,md,tex,html}         one per table of method.md section 11
    provenance.{md,html}                           versions, commits, config hashes

Cells are mean +- sample std (ddof=1) over seeds. The "mean" column averages the per-dataset
means; its std is over seeds of the per-seed average across datasets (seeds present on every
dataset). A method missing a dataset has a NaN mean: partial averages are not comparable.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from microclip.report import stats as st
from microclip.report.collect import (
    FOCUS_METHOD,
    ablation_grid,
    ablation_names,
    main_grid,
    order_methods,
    read_runs,
)
from microclip.report.published import load_published, published_lookup

log = logging.getLogger(__name__)

DATASET_LABELS = {
    "imagenet": "ImageNet",
    "caltech101": "Caltech101",
    "dtd": "DTD",
    "eurosat": "EuroSAT",
    "fgvc": "Aircraft",
    "food101": "Food101",
    "flowers": "Flowers",
    "pets": "Pets",
    "sun397": "SUN397",
    "cars": "Cars",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "ucf101": "UCF101",
    "cub": "CUB",
    "birdsnap": "Birdsnap",
    "resisc45": "RESISC45",
    "gtsrb": "GTSRB",
    "aid": "AID",
    "mean": "Mean",
}
# One table per row of method.md section 11; runs name their table in the `ablation` column.
ABLATION_TITLES = {
    "coarse_fine": "Coarse vs fine cues (CLS-only, multi-view prior + CLS, TokenFusion, supervised)",
    "soap": "SOAP variants (patch mean, NCut mean, query variants, learnable null token)",
    "dka": "Dynamic Knowledge Aggregation (gamma sweep, single vs multi-view prior)",
    "head_init": "Head initialisation (descriptions vs templates, fixed head)",
    "descriptions": "Description sets (CuPL GPT-3 vs newer LLM descriptions)",
    "backbone": "Backbones (ViT-B/32, ViT-B/16, ViT-L/14)",
}
# The datasets a source's printed average covers; a published "mean" is shown only when the
# table's datasets are exactly these.
SOURCE_MEAN_DATASETS = {
    "dpa_wacv2025_table1": frozenset(
        [
            "imagenet",
            "caltech101",
            "dtd",
            "eurosat",
            "fgvc",
            "food101",
            "flowers",
            "pets",
            "sun397",
            "cars",
            "cifar10",
            "cifar100",
            "ucf101",
        ]
    ),
}
SOURCE_MEAN_DATASETS["microclip_abstract"] = SOURCE_MEAN_DATASETS["dpa_wacv2025_table1"]
IMAGE_MARK = "‡"  # published value typed from an image of the table, not yet verified


@dataclass
class Table:
    """A rendered table: display grid plus the tidy cells behind it."""

    name: str  # file stem, e.g. "ViT-B-32"
    caption: str
    header: list[str]  # column labels, first is the row label column
    rows: list[list[str]]  # display strings
    bold: list[list[bool]]  # same shape as rows
    italic_rows: set[int] = field(default_factory=set)  # published rows
    rules_after: set[int] = field(default_factory=set)  # \midrule after these row indices
    notes: list[str] = field(default_factory=list)
    tidy: pd.DataFrame = field(default_factory=pd.DataFrame)


# -- numbers ------------------------------------------------------------------------------------


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
        by_seed = by_seed.reindex(columns=list(datasets)).dropna()
        seed_means = by_seed.mean(axis=1)
        std = seed_means.std(ddof=1) if len(seed_means) >= 2 else math.nan
        rows[method] = {"mean": mean, "std": std, "n": len(seed_means)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "std", "n"])


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


# -- main table ---------------------------------------------------------------------------------


def main_table(
    runs: pd.DataFrame,
    published: pd.DataFrame | None,
    *,
    backbone: str,
    focus_method: str = FOCUS_METHOD,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    metric: str = "top1",
    digits: int = 2,
    n_boot: int = st.BOOTSTRAP_REPLICATES,
) -> tuple[Table, pd.DataFrame, pd.DataFrame]:
    """The paper's main table for one backbone, from the main-grid runs (``collect.main_grid``:
    the config's ``methods``/``seeds`` when given).

    Returns (table, per_dataset_tests, overall_tests); see ``stats.compare_methods``.
    """
    part = main_grid(runs, methods=methods, datasets=datasets, backbones=[backbone], seeds=seeds)
    if datasets is None:
        datasets = sorted(part["dataset"].unique())
    datasets = list(datasets)
    methods = order_methods(part["method"].unique(), focus_method)
    cells = cell_stats(part, metric=metric)
    meancol = mean_column_stats(part, datasets, metric=metric)
    columns = [*datasets, "mean"]

    def measured(method: str, col: str) -> tuple[float, float, int]:
        if col == "mean":
            r = meancol.loc[method] if method in meancol.index else None
        else:
            r = cells.loc[(method, col)] if (method, col) in cells.index else None
        if r is None:
            return math.nan, math.nan, 0
        return float(r["mean"]), float(r["std"]), int(r["n"])

    grid = {m: {c: measured(m, c) for c in columns} for m in methods}
    best = {}
    for col in columns:
        vals = [grid[m][col][0] for m in methods if not is_nan(grid[m][col][0])]
        best[col] = max(vals) if vals else math.nan

    baselines = [m for m in methods if m != focus_method]
    has_focus = focus_method in methods
    strongest, delta = {}, {}
    for col in columns:
        cands = [(grid[b][col][0], b) for b in baselines if not is_nan(grid[b][col][0])]
        if has_focus and cands:
            top_value, top_method = max(cands)
            strongest[col] = top_method
            delta[col] = grid[focus_method][col][0] - top_value
        else:
            strongest[col], delta[col] = None, math.nan

    pub = published_lookup(published, backbone) if published is not None else None
    if pub is not None:
        mean_ok = {s for s, ds in SOURCE_MEAN_DATASETS.items() if ds == frozenset(datasets)}
        pub = pub[(pub["dataset"] != "mean") | pub["source"].isin(mean_ok)]
        pub = pub[pub["dataset"].isin(columns)]

    def published_cells(method: str) -> dict[str, tuple[float, str, str]]:
        if pub is None:
            return {}
        rows = pub[pub["method"] == method]
        return {r.dataset: (r.value, r.source, r.read_from) for r in rows.itertuples()}

    header = ["Method", *[DATASET_LABELS.get(c, c) for c in columns]]
    rows, bold, italic, tidy = [], [], set(), []
    sources_used: set[str] = set()
    for method in methods:
        label = method + (" (best epoch†)" if _reports_best(part, method) else "")
        rows.append([label] + [fmt_cell(*grid[method][c][:2], digits=digits) for c in columns])
        bold.append(
            [False]
            + [
                not is_nan(grid[method][c][0]) and abs(grid[method][c][0] - best[c]) < 1e-9
                for c in columns
            ]
        )
        for c in columns:
            m, s, n = grid[method][c]
            tidy.append(
                {
                    "backbone": backbone,
                    "row": "measured",
                    "method": method,
                    "dataset": c,
                    "mean": m,
                    "std": s,
                    "n": n,
                    "best": bool(not is_nan(m) and abs(m - best[c]) < 1e-9),
                    "strongest_baseline": "",
                    "source": "",
                    "read_from": "",
                }
            )
        pcells = published_cells(method)
        if pcells:
            italic.add(len(rows))
            rows.append(["  published"] + [_fmt_pub(pcells.get(c), digits) for c in columns])
            bold.append([False] * (len(columns) + 1))
            tidy += _tidy_published(backbone, method, pcells)
            sources_used |= {v[1] for v in pcells.values()}
    rules_after = {len(rows) - 1}
    if has_focus and baselines:
        rows.append(
            [f"Δ {focus_method} − strongest baseline"]
            + [
                fmt_signed(delta[c], digits=digits) + (f" ({strongest[c]})" if strongest[c] else "")
                for c in columns
            ]
        )
        bold.append([False] * (len(columns) + 1))
        for c in columns:
            tidy.append(
                {
                    "backbone": backbone,
                    "row": "delta",
                    "method": focus_method,
                    "dataset": c,
                    "mean": delta[c],
                    "std": math.nan,
                    "n": 0,
                    "best": False,
                    "strongest_baseline": strongest[c] or "",
                    "source": "",
                    "read_from": "",
                }
            )
    if pub is not None:
        extra = sorted(set(pub["method"]) - set(methods))
        extra_rows = []
        for method in extra:
            pcells = published_cells(method)
            if not pcells:
                continue
            extra_rows.append(
                [f"{method} (published only)"] + [_fmt_pub(pcells.get(c), digits) for c in columns]
            )
            tidy += _tidy_published(backbone, method, pcells)
            sources_used |= {v[1] for v in pcells.values()}
        if extra_rows:
            rules_after.add(len(rows) - 1)
            for r in extra_rows:
                italic.add(len(rows))
                rows.append(r)
                bold.append([False] * (len(columns) + 1))

    per_ds, overall = (
        st.compare_methods(part, focus_method, baselines, datasets, metric=metric, n_boot=n_boot)
        if has_focus
        else (pd.DataFrame(), pd.DataFrame())
    )
    notes = _main_notes(
        part,
        focus_method=focus_method,
        strongest=strongest,
        datasets=datasets,
        per_ds=per_ds,
        overall=overall,
        sources=sorted(sources_used),
        published=published,
        metric=metric,
        digits=digits,
    )
    table = Table(
        name=backbone,
        caption=f"Top-1 accuracy (%) on the test split, backbone {backbone}, "
        f"run {_first(part, 'run')}: mean ± std over seeds; best measured value per column in bold.",
        header=header,
        rows=rows,
        bold=bold,
        italic_rows=italic,
        rules_after=rules_after,
        notes=notes,
        tidy=pd.DataFrame(tidy),
    )
    return table, per_ds, overall


def _first(frame: pd.DataFrame, col: str) -> str:
    return str(frame[col].iloc[0]) if len(frame) else "?"


def _reports_best(part: pd.DataFrame, method: str) -> bool:
    rep = part.loc[part["method"] == method, "report"]
    return bool((rep == "best").any())


def _fmt_pub(entry: tuple[float, str, str] | None, digits: int) -> str:
    if entry is None:
        return ""
    value, _source, read_from = entry
    return f"{value:.{digits}f}" + (IMAGE_MARK if read_from == "image" else "")


def _tidy_published(backbone: str, method: str, pcells: dict) -> list[dict]:
    return [
        {
            "backbone": backbone,
            "row": "published",
            "method": method,
            "dataset": ds,
            "mean": value,
            "std": math.nan,
            "n": 0,
            "best": False,
            "strongest_baseline": "",
            "source": source,
            "read_from": read_from,
        }
        for ds, (value, source, read_from) in pcells.items()
    ]


def _main_notes(
    part: pd.DataFrame,
    *,
    focus_method: str,
    strongest: dict,
    datasets: list[str],
    per_ds: pd.DataFrame,
    overall: pd.DataFrame,
    sources: list[str],
    published: pd.DataFrame | None,
    metric: str,
    digits: int,
) -> list[str]:
    notes = [
        f"Cells: mean ± sample std (ddof=1) of {metric} over seeds; one seed shows the mean only; "
        "'–' = no run. Mean column: average of the per-dataset means (NaN if a dataset is "
        "missing); its std is over seeds of the per-seed average across datasets.",
    ]
    seeds = part.groupby("method")["seed"].nunique()
    if len(seeds):
        notes.append(
            "Seeds per method: " + ", ".join(f"{m} {int(n)}" for m, n in seeds.sort_index().items())
        )
    if (part["report"] == "best").any():
        notes.append(
            "† reports the best epoch over the test set, which peeks at test labels; "
            "every other row reports the last epoch."
        )
    if not per_ds.empty:
        parts = []
        for ds in datasets:
            base = strongest.get(ds)
            if not base:
                continue
            row = per_ds[(per_ds["baseline"] == base) & (per_ds["dataset"] == ds)].iloc[0]
            parts.append(
                f"{ds} vs {base}: Δ={fmt_signed(row['mean_diff'], digits=digits)}, "
                f"t={_fmt_num(row['t'])}, p={fmt_p(row['p'])}, n={int(row['n_pairs'])}"
            )
        notes.append(
            "Per dataset, paired t-test over seeds (scipy ttest_rel; seed i of every method shares "
            "data order and augmentations, so differences are paired; a t-test because an exact "
            "Wilcoxon test cannot reach p < 0.25 with 3 seeds; NaN with < 2 seeds or zero spread), "
            f"{focus_method} vs the strongest baseline of each column: " + "; ".join(parts) + "."
        )
        over = []
        for r in overall.itertuples():
            over.append(
                f"{r.baseline}: W={_fmt_num(r.wilcoxon_w)}, p={fmt_p(r.wilcoxon_p)}, "
                f"n={int(r.wilcoxon_n)}"
            )
        if len(datasets) < 2:
            over = ["not computed with fewer than 2 datasets"]
        notes.append(
            f"Across datasets, Wilcoxon signed-rank test on per-dataset means ({focus_method} vs "
            "each baseline, two-sided, exact for small n): " + "; ".join(over) + "."
        )
        base = strongest.get("mean")
        if base:
            r = overall[overall["baseline"] == base].iloc[0]
            notes.append(
                f"Mean Δ over {base} (strongest baseline on the mean): "
                f"{fmt_signed(r['mean_delta'], digits=digits)} points, "
                f"{int(st.CI_LEVEL * 100)}% bootstrap CI "
                f"[{_fmt_num(r['ci_low'], digits)}, {_fmt_num(r['ci_high'], digits)}] "
                f"(seeds resampled within each dataset, paired, {st.BOOTSTRAP_REPLICATES} "
                f"replicates, numpy seed {st.BOOTSTRAP_SEED}; NaN with < 2 seeds)."
            )
    if sources and published is not None:
        cites = (
            published[published["source"].isin(sources)]
            .drop_duplicates("source")
            .set_index("source")["citation"]
        )
        notes.append(
            "Published rows (reference data, not results): "
            + "; ".join(f"{s} = {cites.get(s, s)}" for s in sources)
            + ". ‡ = typed from an image of the table, unverified. Published means appear only "
            "when the table's datasets are the source's own set; protocols may differ "
            "(see reference/published.csv notes)."
        )
    return notes


def _fmt_num(value: float, digits: int = 2) -> str:
    return "n/a" if is_nan(value) else f"{value:.{digits}f}"


# -- per-dataset tables -------------------------------------------------------------------------


def dataset_table(
    runs: pd.DataFrame,
    published: pd.DataFrame | None,
    per_ds: pd.DataFrame,
    *,
    dataset: str,
    backbone: str,
    focus_method: str = FOCUS_METHOD,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    digits: int = 2,
) -> Table:
    """One dataset x backbone: top-1, per-class recall, published, Δ and paired test per method."""
    part = main_grid(runs, methods=methods, datasets=[dataset], backbones=[backbone], seeds=seeds)
    methods = order_methods(part["method"].unique(), focus_method)
    top = cell_stats(part, metric="top1")
    rec = cell_stats(part, metric="mean_per_class_recall")
    pub = published_lookup(published, backbone) if published is not None else None
    best = top["mean"].max() if len(top) else math.nan
    header = [
        "Method",
        "Top-1",
        "Seeds",
        "Mean per-class recall",
        "Published",
        f"Δ {focus_method} − row",
        "t",
        "p",
    ]
    rows, bold, tidy = [], [], []
    for method in methods:
        t = top.loc[(method, dataset)]
        r = rec.loc[(method, dataset)]
        prow = None
        if pub is not None:
            hit = pub[(pub["method"] == method) & (pub["dataset"] == dataset)]
            prow = hit.iloc[0] if len(hit) else None
        test = None
        if not per_ds.empty and method != focus_method:
            hit = per_ds[(per_ds["baseline"] == method) & (per_ds["dataset"] == dataset)]
            test = hit.iloc[0] if len(hit) else None
        rows.append(
            [
                method,
                fmt_cell(t["mean"], t["std"], digits=digits),
                str(int(t["n"])),
                fmt_cell(r["mean"], r["std"], digits=digits),
                "" if prow is None else _fmt_pub((prow.value, prow.source, prow.read_from), digits),
                "" if test is None else fmt_signed(test["mean_diff"], digits=digits),
                "" if test is None else _fmt_num(test["t"]),
                "" if test is None else fmt_p(test["p"]),
            ]
        )
        bold.append([False, abs(t["mean"] - best) < 1e-9] + [False] * 6)
        tidy.append(
            {
                "backbone": backbone,
                "dataset": dataset,
                "method": method,
                "top1_mean": t["mean"],
                "top1_std": t["std"],
                "n": int(t["n"]),
                "recall_mean": r["mean"],
                "recall_std": r["std"],
                "published": math.nan if prow is None else prow.value,
                "published_source": "" if prow is None else prow.source,
                "delta_vs_row": math.nan if test is None else test["mean_diff"],
                "n_pairs": 0 if test is None else int(test["n_pairs"]),
                "t": math.nan if test is None else test["t"],
                "p": math.nan if test is None else test["p"],
            }
        )
    notes = [
        "Top-1 and mean per-class recall: mean ± sample std over seeds. Δ/t/p: paired t-test over "
        f"seeds of {focus_method} − the row's method (n/a with < 2 paired seeds or zero spread).",
        "Published: highest-priority source for this method, dataset and backbone; ‡ = read from "
        "an image of the table, unverified.",
    ]
    return Table(
        name=dataset,
        caption=f"{DATASET_LABELS.get(dataset, dataset)}, backbone {backbone}",
        header=header,
        rows=rows,
        bold=bold,
        notes=notes,
        tidy=pd.DataFrame(tidy),
    )


# -- ablation tables ----------------------------------------------------------------------------


def ablation_table(
    runs: pd.DataFrame,
    *,
    ablation: str,
    spec: Mapping[str, Sequence] | None = None,
    focus_method: str = FOCUS_METHOD,
    digits: int = 2,
    metric: str = "top1",
) -> Table:
    """Rows = the ablation's variants (plus the full focus method from the main grid as the
    reference when the ablation has no run named ``focus_method``), columns = datasets + mean.

    ``spec`` is the config's table (``methods``, optional ``datasets``/``backbones``/``seeds``);
    without it the rows are the runs whose ``ablation`` column names the table.
    """
    part = ablation_grid(runs, ablation, spec).copy()
    datasets = sorted(part["dataset"].unique())
    backbones = sorted(part["backbone"].unique())
    main = runs[
        (runs["method"] == focus_method)
        & runs["dataset"].isin(datasets)
        & runs["backbone"].isin(backbones)
    ].copy()
    if len(main) and not (part["method"] == focus_method).any():
        main["method"] = f"{focus_method} (main grid)"
        part = pd.concat([part, main], ignore_index=True)
    multi_bb = len(backbones) > 1
    part["row"] = part["method"] + (" / " + part["backbone"] if multi_bb else "")
    columns = [*datasets, "mean"]
    labels = sorted(part["row"].unique(), key=lambda r: (r.startswith(focus_method + " ("), r))
    grid = {}
    for label, rows in part.groupby("row"):
        rows = rows.assign(method=label)
        cells = cell_stats(rows, metric=metric)
        meancol = mean_column_stats(rows, datasets, metric=metric)
        grid[label] = {}
        for c in columns:
            if c == "mean":
                src = meancol.loc[label]
            else:
                src = cells.loc[(label, c)] if (label, c) in cells.index else None
            if src is None:
                grid[label][c] = (math.nan, math.nan, 0)
            else:
                grid[label][c] = (float(src["mean"]), float(src["std"]), int(src["n"]))
    best = {}
    for c in columns:
        vals = [grid[r][c][0] for r in labels if not is_nan(grid[r][c][0])]
        best[c] = max(vals) if vals else math.nan
    rows_out, bold, tidy = [], [], []
    for label in labels:
        rows_out.append([label] + [fmt_cell(*grid[label][c][:2], digits=digits) for c in columns])
        bold.append(
            [False]
            + [
                not is_nan(grid[label][c][0]) and abs(grid[label][c][0] - best[c]) < 1e-9
                for c in columns
            ]
        )
        for c in columns:
            m, s, n = grid[label][c]
            tidy.append(
                {"ablation": ablation, "row": label, "dataset": c, "mean": m, "std": s, "n": n}
            )
    title = ABLATION_TITLES.get(ablation, ablation)
    reference = ""
    if any(r.startswith(focus_method + " (main grid)") for r in labels):
        reference = f" '{focus_method} (main grid)' is the full method from the main grid."
    return Table(
        name=ablation,
        caption=f"Ablation — {title}: {metric} (%), mean ± std over seeds; best per column in bold.",
        header=["Variant", *[DATASET_LABELS.get(c, c) for c in columns]],
        rows=rows_out,
        bold=bold,
        notes=[
            (
                f"Rows are the runs of the config's ablation table '{ablation}'."
                if spec is not None
                else f"Rows are runs whose `ablation` column names '{ablation}'."
            )
            + reference
        ],
        tidy=pd.DataFrame(tidy),
    )


# -- writers ------------------------------------------------------------------------------------


def to_markdown(table: Table) -> str:
    def cell(text: str, b: bool, i: bool) -> str:
        text = text.replace("|", "\\|")
        if b and text:
            text = f"**{text}**"
        if i and text.strip():
            text = f"*{text.strip()}*"
        return text

    lines = [f"**{table.caption}**", ""]
    lines.append("| " + " | ".join(table.header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|")
    for k, (row, bold) in enumerate(zip(table.rows, table.bold, strict=True)):
        italic = k in table.italic_rows
        lines.append(
            "| " + " | ".join(cell(t, b, italic) for t, b in zip(row, bold, strict=True)) + " |"
        )
    if table.notes:
        lines.append("")
        lines += [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


_TEX_ESCAPE = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
}


def tex_escape(text: str) -> str:
    out = "".join(_TEX_ESCAPE.get(ch, ch) for ch in text)
    return (
        out.replace("±", r"$\pm$")
        .replace("Δ", r"$\Delta$")
        .replace("−", "$-$")
        .replace("–", "--")
        .replace("†", r"$^\dagger$")
        .replace("‡", r"$^\ddagger$")
    )


def to_latex(table: Table, *, label: str) -> str:
    """booktabs table; needs \\usepackage{booktabs,graphicx}."""
    ncol = len(table.header)
    lines = [
        "% generated by microclip.report.tables; needs \\usepackage{booktabs,graphicx}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{tex_escape(table.caption)}}}",
        f"\\label{{{label}}}",
        "\\resizebox{\\linewidth}{!}{%",
        f"\\begin{{tabular}}{{l{'r' * (ncol - 1)}}}",
        "\\toprule",
        " & ".join(tex_escape(h) for h in table.header) + " \\\\",
        "\\midrule",
    ]
    for k, (row, bold) in enumerate(zip(table.rows, table.bold, strict=True)):
        cells = []
        for text, b in zip(row, bold, strict=True):
            t = tex_escape(text.strip() if k in table.italic_rows else text)
            if b and t:
                t = f"\\textbf{{{t}}}"
            if k in table.italic_rows and t:
                t = f"\\textit{{{t}}}"
            cells.append(t)
        lines.append(" & ".join(cells) + " \\\\")
        if k in table.rules_after and k != len(table.rows) - 1:
            lines.append("\\midrule")
    lines += ["\\bottomrule", "\\end{tabular}}"]
    if table.notes:
        lines.append("\\par\\smallskip\\footnotesize")
        lines += [tex_escape(n) + "\\par" for n in table.notes]
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><style>"
        "table{border-collapse:collapse;font-family:sans-serif;font-size:13px}"
        "th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #ddd}"
        "td:first-child,th:first-child{text-align:left}.pub{color:#666;font-style:italic}"
        "tr.rule td{border-bottom:2px solid #444}</style></head><body>",
        f"<p><b>{esc(table.caption)}</b></p><table><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in table.header)
        + "</tr>",
    ]
    for k, (row, bold) in enumerate(zip(table.rows, table.bold, strict=True)):
        cls = []
        if k in table.italic_rows:
            cls.append("pub")
        if k in table.rules_after:
            cls.append("rule")
        attr = f" class='{' '.join(cls)}'" if cls else ""
        cells = "".join(
            f"<td>{'<b>' if b else ''}{esc(t)}{'</b>' if b else ''}</td>"
            for t, b in zip(row, bold, strict=True)
        )
        out.append(f"<tr{attr}>{cells}</tr>")
    out.append("</table>")
    if table.notes:
        out.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in table.notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_table(table: Table, out_stem: Path, *, label: str) -> list[Path]:
    """Write ``table`` as out_stem.{csv,md,tex,html}; returns the paths."""
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_name(out_stem.name + ext) for ext in (".csv", ".md", ".tex", ".html")]
    table.tidy.to_csv(paths[0], index=False, na_rep="")
    paths[1].write_text(to_markdown(table))
    paths[2].write_text(to_latex(table, label=label))
    paths[3].write_text(to_html(table))
    return paths


def provenance_markdown(runs: pd.DataFrame) -> str:
    """Versions, commits and package versions behind the collected runs."""
    import matplotlib
    import numpy
    import scipy

    lines = ["# Provenance", ""]
    for col in ("version", "git_commit", "report"):
        vals = sorted(str(v) for v in runs[col].dropna().unique()) if col in runs else []
        lines.append(f"- {col}: {', '.join(vals) or 'n/a'}")
    hashes = runs.groupby("method")["config_hash"].nunique() if "config_hash" in runs else {}
    lines.append(
        "- distinct config hashes per method: "
        + ", ".join(f"{m} {int(n)}" for m, n in dict(hashes).items())
    )
    pkg_cols = sorted(c for c in runs.columns if c.startswith("packages."))
    for col in pkg_cols:
        vals = sorted(str(v) for v in runs[col].dropna().unique())
        lines.append(f"- {col.removeprefix('packages.')} (training): {', '.join(vals) or 'n/a'}")
    lines.append(
        f"- reporting: pandas {pd.__version__}, scipy {scipy.__version__}, "
        f"matplotlib {matplotlib.__version__}, numpy {numpy.__version__}"
    )
    return "\n".join(lines) + "\n"


def make_tables(
    runs_csv: str | Path,
    published_csv: str | Path | None,
    out_dir: str | Path,
    *,
    focus_method: str = FOCUS_METHOD,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    ablations: Sequence[str] | Mapping[str, Mapping[str, Sequence]] | None = None,
    n_boot: int = st.BOOTSTRAP_REPLICATES,
) -> list[Path]:
    """Write every table of a run under ``out_dir`` (see the module docstring for the layout).

    ``methods``/``datasets``/``backbones``/``seeds`` define the main grid (default: inferred
    from runs.csv, see ``collect.main_grid``); pass the config's lists so the set of files does
    not depend on which runs succeeded. ``ablations``: table names (rows from the ``ablation``
    column) or ``{name: {"methods": [...], "datasets": [...], "backbones": [...],
    "seeds": [...]}}`` (rows exactly that grid); default: the names in the ``ablation`` column.
    Returns the written paths.
    """
    runs = read_runs(runs_csv)
    published = load_published(published_csv) if published_csv is not None else None
    out_dir = Path(out_dir)
    main_runs = main_grid(runs, methods=methods, datasets=datasets, seeds=seeds)
    backbones = list(backbones) if backbones is not None else sorted(main_runs["backbone"].unique())
    written: list[Path] = []
    for backbone in backbones:
        bb_runs = main_runs[main_runs["backbone"] == backbone]
        ds = list(datasets) if datasets is not None else sorted(bb_runs["dataset"].unique())
        table, per_ds, overall = main_table(
            runs,
            published,
            backbone=backbone,
            focus_method=focus_method,
            datasets=ds,
            methods=methods,
            seeds=seeds,
            n_boot=n_boot,
        )
        written += write_table(table, out_dir / "main" / backbone, label=f"tab:main-{backbone}")
        for name, frame in (("stats", per_ds), ("stats_overall", overall)):
            path = out_dir / "main" / f"{backbone}_{name}.csv"
            frame.to_csv(path, index=False, na_rep="")
            written.append(path)
        for dataset in ds:
            dt = dataset_table(
                runs,
                published,
                per_ds,
                dataset=dataset,
                backbone=backbone,
                focus_method=focus_method,
                methods=methods,
                seeds=seeds,
            )
            written += write_table(
                dt, out_dir / "datasets" / backbone / dataset, label=f"tab:{dataset}-{backbone}"
            )
    if ablations is None:
        ablations = sorted({t for v in runs["ablation"] for t in ablation_names(v)})
    specs = dict(ablations) if isinstance(ablations, Mapping) else dict.fromkeys(ablations)
    for ablation, spec in specs.items():
        at = ablation_table(runs, ablation=ablation, spec=spec, focus_method=focus_method)
        written += write_table(at, out_dir / "ablations" / ablation, label=f"tab:abl-{ablation}")
    (out_dir / "ablations").mkdir(parents=True, exist_ok=True)
    prov = provenance_markdown(runs)
    (out_dir / "provenance.md").write_text(prov)
    (out_dir / "provenance.html").write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><pre>"
        + html.escape(prov)
        + "</pre></body></html>\n"
    )
    written += [out_dir / "provenance.md", out_dir / "provenance.html"]
    log.info("wrote %d table files under %s", len(written), out_dir)
    return written
