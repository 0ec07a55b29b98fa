"""Figures from runs.csv / epochs.csv + grid.json (matplotlib, each as PNG and PDF).

Layout under ``results/{run}/plots/``::

    accuracy/{backbone}/{dataset}.{png,pdf}   top-1 per method (bars, mean +- std over seeds)
    overview/{backbone}.{png,pdf}             every dataset at once, grouped bars
    epochs/{backbone}/{dataset}.{png,pdf}     test and pseudo-label accuracy per epoch
    delta/{backbone}.{png,pdf}                focus method - strongest baseline per dataset
    gamma/{backbone}.{png,pdf}                gamma sweep of grid.json's gamma_ablation table
    saliency/{backbone}/{dataset}.{png,pdf}   plot_saliency(npz), one figure per explained run

Methods, their order and colours, datasets and their labels come from grid.json. Figures are
built on ``matplotlib.figure.Figure`` (no pyplot state), so they render headless and in
parallel jobs; each ``*_figure`` function returns the figure, ``make_plots`` saves them. A
figure with nothing to show still renders, saying so, so the set of files a rule promises
never depends on which runs succeeded.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from microclip.errors import RunError
from microclip.io import atomic_write_with
from microclip.report.collect import load_epochs, load_runs
from microclip.report.grid import ReportGrid

log = logging.getLogger(__name__)

GAMMA_COLUMN = "method_config.gamma"
FOCUS_COLOR = "#C44E52"  # the focus method is always red
PALETTE = (
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
    "#222222",
)


# -- shared pieces ----------------------------------------------------------------------------
def save_figure(fig: Figure, out_png: str | Path, out_pdf: str | Path) -> list[Path]:
    """PNG (150 dpi) and PDF, each written atomically."""
    paths = [Path(out_png), Path(out_pdf)]
    for path, fmt in zip(paths, ("png", "pdf"), strict=True):
        kwargs = {"format": fmt, "bbox_inches": "tight", **({"dpi": 150} if fmt == "png" else {})}
        atomic_write_with(path, lambda handle, kw=kwargs: fig.savefig(handle, **kw), binary=True)
    return paths


def method_colors(methods: list[str], focus: str) -> dict[str, str]:
    others = [m for m in methods if m != focus]
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(others)}
    colors[focus] = FOCUS_COLOR
    return colors


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _backbone_runs(runs: pd.DataFrame, grid: ReportGrid, backbone: str) -> pd.DataFrame:
    return grid.main_runs(runs, backbone=backbone)


def _methods(part: pd.DataFrame, grid: ReportGrid) -> list[str]:
    return grid.method_order(part["method"].unique())


def _cell_means(part: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Mean and sample std of top-1 over seeds per (method, dataset)."""
    g = part.groupby(["method", "dataset"])["top1"]
    return g.mean(), g.std(ddof=1)


# -- accuracy ---------------------------------------------------------------------------------
def accuracy_figure(runs: pd.DataFrame, grid: ReportGrid, *, dataset: str, backbone: str) -> Figure:
    """Top-1 per method on one dataset: bar = mean over seeds, whisker = std, dots = seeds."""
    part = _backbone_runs(runs, grid, backbone)
    methods = _methods(part, grid)
    part = part[part["dataset"] == dataset]
    colors = method_colors(methods, grid.focus_method)
    fig = Figure(figsize=(max(4.0, 0.7 * len(methods) + 1.5), 3.6))
    ax = fig.add_subplot()
    if part["top1"].notna().any():
        means, stds = _cell_means(part)
        x = np.arange(len(methods))
        height = [means.get((m, dataset), np.nan) for m in methods]
        err = [np.nan_to_num(stds.get((m, dataset), np.nan)) for m in methods]
        ax.bar(x, height, yerr=err, capsize=3, color=[colors[m] for m in methods], alpha=0.85)
        for i, m in enumerate(methods):
            seeds = part.loc[part["method"] == m, "top1"].to_numpy()
            ax.scatter(np.full(seeds.shape, i), seeds, s=8, color="k", zorder=3)
        ax.set_xticks(x, methods, rotation=40, ha="right")
        lo, hi = np.nanmin(part["top1"]), np.nanmax(part["top1"])
        ax.set_ylim(max(0.0, lo - 10.0), min(100.0, hi + 5.0))
        ax.set_ylabel("top-1 (%)")
        ax.grid(axis="y", alpha=0.3)
    else:
        _empty(ax, f"no runs for {grid.label(dataset)} / {backbone}")
    ax.set_title(f"{grid.label(dataset)} — {backbone}")
    return fig


def overview_figure(runs: pd.DataFrame, grid: ReportGrid, *, backbone: str) -> Figure:
    """Grouped bars: the grid's datasets on x, one bar per method (mean over seeds, std)."""
    part = _backbone_runs(runs, grid, backbone)
    datasets, methods = list(grid.main.datasets), _methods(part, grid)
    colors = method_colors(methods, grid.focus_method)
    fig = Figure(figsize=(max(6.0, 1.1 * len(datasets) + 2), 4.0))
    ax = fig.add_subplot()
    if methods and datasets:
        means, stds = _cell_means(part)
        width, x = 0.8 / len(methods), np.arange(len(datasets))
        for i, m in enumerate(methods):
            ax.bar(
                x + (i - (len(methods) - 1) / 2) * width,
                [means.get((m, d), np.nan) for d in datasets],
                width,
                yerr=[np.nan_to_num(stds.get((m, d), np.nan)) for d in datasets],
                capsize=1.5,
                label=m,
                color=colors[m],
            )
        ax.set_xticks(x, [grid.label(d) for d in datasets], rotation=30, ha="right")
        ax.set_ylabel("top-1 (%)")
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis="y", alpha=0.3)
    else:
        _empty(ax, f"no runs for {backbone}")
    ax.set_title(f"Top-1 per dataset — {backbone}")
    return fig


# -- epochs -----------------------------------------------------------------------------------
def _draw_epoch_lines(ax: Axes, em: pd.DataFrame, method: str, color: str, band: bool) -> bool:
    drawn = False
    for col, style in (("test_top1", "-"), ("pseudo_label_acc", "--")):
        g = em.groupby("epoch")[col]
        mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
        if not mean.notna().any():
            continue
        label = method if col == "test_top1" else f"{method} (pseudo-labels)"
        ax.plot(mean.index, mean.values, style, color=color, label=label)
        if band:
            ax.fill_between(mean.index, mean - std, mean + std, color=color, alpha=0.15)
        drawn = True
    return drawn


def epochs_figure(
    epochs: pd.DataFrame, runs: pd.DataFrame, grid: ReportGrid, *, dataset: str, backbone: str
) -> Figure:
    """Test top-1 (solid) and pseudo-label accuracy (dashed) per epoch, mean over seeds (± std
    bands for the focus method, or for every method when there are at most four).

    Only main-grid epochs are drawn. Methods without epochs (zero-shot) are dotted lines at
    their top-1.
    """
    part = _backbone_runs(runs, grid, backbone)
    methods = _methods(part, grid)
    part = part[part["dataset"] == dataset]
    ep = grid.main.select(epochs, backbone=backbone)
    ep = ep[ep["dataset"] == dataset]
    colors = method_colors(methods, grid.focus_method)
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    drawn = False
    for m in methods:
        em = ep[ep["method"] == m]
        if len(em):
            band = m == grid.focus_method or len(methods) <= 4  # bands clutter many lines
            drawn |= _draw_epoch_lines(ax, em, m, colors[m], band)
            continue
        top = part.loc[part["method"] == m, "top1"].mean()
        if not math.isnan(top):
            ax.axhline(top, ls=":", color=colors[m], label=f"{m} (no training)")
            drawn = True
    if drawn:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(alpha=0.3)
    else:
        _empty(ax, f"no per-epoch logs for {grid.label(dataset)} / {backbone}")
    ax.set_title(f"{grid.label(dataset)} — {backbone}: test vs pseudo-label acc.")
    return fig


# -- gain over the strongest baseline ---------------------------------------------------------
def strongest_baseline_delta(
    runs: pd.DataFrame, grid: ReportGrid, *, backbone: str
) -> pd.DataFrame:
    """Per grid dataset: focus mean - best baseline mean; columns dataset, delta, baseline."""
    part = _backbone_runs(runs, grid, backbone)
    focus = grid.focus_method
    means = part.groupby(["method", "dataset"])["top1"].mean().unstack("dataset")
    rows = []
    if focus in means.index:
        base = means.drop(index=focus)
        for d in grid.main.datasets:
            if d not in means.columns:
                continue
            col = base[d].dropna()
            if col.empty or math.isnan(means.loc[focus, d]):
                continue
            rows.append(
                {"dataset": d, "delta": means.loc[focus, d] - col.max(), "baseline": col.idxmax()}
            )
    return pd.DataFrame(rows, columns=["dataset", "delta", "baseline"])


def delta_figure(runs: pd.DataFrame, grid: ReportGrid, *, backbone: str) -> Figure:
    """Focus method minus the strongest baseline per dataset (green gain, grey loss)."""
    focus = grid.focus_method
    delta = strongest_baseline_delta(runs, grid, backbone=backbone)
    fig = Figure(figsize=(max(5.0, 0.7 * len(delta) + 2), 3.6))
    ax = fig.add_subplot()
    if delta.empty:
        _empty(ax, f"no {focus} and baseline runs for {backbone}")
    else:
        x = np.arange(len(delta))
        ax.bar(
            x, delta["delta"], color=["#55A868" if v >= 0 else "#8C8C8C" for v in delta["delta"]]
        )
        for i, (v, b) in enumerate(zip(delta["delta"], delta["baseline"], strict=True)):
            up = v >= 0
            ax.annotate(
                b,
                (i, v),
                ha="center",
                va="bottom" if up else "top",
                fontsize=6,
                xytext=(0, 2 if up else -2),
                textcoords="offset points",
            )
        ax.axhline(0, color="k", lw=0.8)
        mean = delta["delta"].mean()
        ax.axhline(
            mean, color=FOCUS_COLOR, ls="--", lw=1, label=f"mean of per-dataset Δ {mean:+.2f}"
        )
        ax.set_xticks(x, [grid.label(d) for d in delta["dataset"]], rotation=30, ha="right")
        ax.set_ylabel("Δ top-1 vs strongest baseline (points)")
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{focus} − strongest baseline — {backbone}")
    return fig


# -- gamma sweep ------------------------------------------------------------------------------
def gamma_runs(runs: pd.DataFrame, grid: ReportGrid, *, backbone: str) -> pd.DataFrame:
    """Runs of grid.json's gamma_ablation table on ``backbone`` with a numeric ``gamma``."""
    name = grid.gamma_ablation
    if name not in grid.ablations or GAMMA_COLUMN not in runs.columns:
        return runs.iloc[0:0].assign(gamma=pd.Series(dtype=float))
    part = grid.ablation_runs(runs, name, backbone=backbone)
    part = part.assign(gamma=pd.to_numeric(part[GAMMA_COLUMN], errors="coerce"))
    return part[part["gamma"].notna()]


def gamma_figure(runs: pd.DataFrame, grid: ReportGrid, *, backbone: str) -> Figure:
    """Top-1 against ``method_config.gamma``, one line per dataset plus their mean;
    whiskers = std over seeds."""
    part = gamma_runs(runs, grid, backbone=backbone)
    name = grid.gamma_ablation or "-"
    fig = Figure(figsize=(5.0, 3.6))
    ax = fig.add_subplot()
    if part.empty:
        _empty(ax, f"no gamma-sweep runs (ablation '{name}', {GAMMA_COLUMN}) for {backbone}")
    else:
        datasets = [d for d in grid.ablation(name).datasets if (part["dataset"] == d).any()]
        handles = []  # datasets in the table's order, then the mean
        for i, d in enumerate(datasets):
            g = part[part["dataset"] == d].groupby("gamma")["top1"]
            handle = ax.errorbar(
                g.mean().index,
                g.mean().values,
                yerr=g.std(ddof=1).fillna(0).values,
                marker="o",
                ms=3,
                capsize=2,
                color=PALETTE[i % len(PALETTE)],
                label=grid.label(d),
            )
            handles.append(handle)
        per_ds = part.groupby(["gamma", "dataset"])["top1"].mean().unstack("dataset")
        mean = per_ds.mean(axis=1, skipna=False)
        handles += ax.plot(mean.index, mean.values, "k-", lw=2, marker="s", label="mean")
        ax.set_xlabel(f"γ ({GAMMA_COLUMN})")
        ax.set_ylabel("top-1 (%)")
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(alpha=0.3)
    ax.set_title(f"γ sweep, {grid.ablation_title(name)} — {backbone}", fontsize=9, wrap=True)
    return fig


# -- saliency ---------------------------------------------------------------------------------
MAP_COLORMAPS = {"mask": "gray", "attention": "inferno"}  # the kinds the explain stage writes
CELL_INCHES = 1.6  # one image tile


@dataclass(frozen=True)
class SaliencyMap:
    """One map of the explain stage's .npz: (n, gh, gw) values on the patch grid."""

    key: str
    title: str
    kind: str  # a key of MAP_COLORMAPS
    values: np.ndarray


def _map_index(raw: np.ndarray, source: str) -> list[dict]:
    text = raw.item() if raw.shape == () else None
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        index = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        index = None
    if not isinstance(index, list) or not all(isinstance(e, dict) for e in index):
        raise RunError(
            f"{source}: 'maps' must be a 0-d string array holding a JSON list of "
            "{key, title, kind}; rerun rule explain"
        )
    return index


def _check_map(entry: dict, arrays: dict[str, np.ndarray], n: int, source: str) -> SaliencyMap:
    missing = [k for k in ("key", "title", "kind") if k not in entry]
    if missing:
        raise RunError(f"{source}: a 'maps' entry lacks {missing}: {entry}")
    key, kind = str(entry["key"]), str(entry["kind"])
    if kind not in MAP_COLORMAPS:
        raise RunError(f"{source}: map '{key}' has kind '{kind}'; allowed: {sorted(MAP_COLORMAPS)}")
    if key not in arrays:
        raise RunError(f"{source}: 'maps' lists '{key}' but the file has no such array")
    values = arrays[key]
    if values.ndim != 3 or values.shape[0] != n:
        raise RunError(f"{source}: map '{key}' must be (n={n}, gh, gw), got {values.shape}")
    return SaliencyMap(key, str(entry["title"]), kind, values)


def saliency_arrays(
    arrays: dict[str, np.ndarray], source: str
) -> tuple[np.ndarray, list[SaliencyMap]]:
    """The images and the maps (in drawing order) of an explain-stage .npz, checked."""
    for need in ("images", "maps"):
        if need not in arrays:
            raise RunError(
                f"{source}: no '{need}' array; expected images, maps and one array per map"
            )
    images = arrays["images"]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise RunError(f"{source}: images must be (n, H, W, 3), got {images.shape}")
    index = _map_index(arrays["maps"], source)
    return images, [_check_map(e, arrays, images.shape[0], source) for e in index]


def _to_rgb(images: np.ndarray) -> np.ndarray:
    """(n,H,W,3) uint8 or float -> float in [0, 1] (min-max per image if outside [0, 1])."""
    img = images.astype(float)
    if images.dtype == np.uint8:
        return img / 255.0
    lo = img.min(axis=(1, 2, 3), keepdims=True)
    hi = img.max(axis=(1, 2, 3), keepdims=True)
    scaled = (img - lo) / np.maximum(hi - lo, 1e-12)
    return np.where((lo < 0) | (hi > 1), scaled, img)


def _display_values(m: SaliencyMap, i: int) -> np.ndarray:
    """A mask as it is (0..1); an attention map min-max normalised per image."""
    values = m.values[i].astype(float)
    if m.kind == "mask":
        return np.clip(values, 0.0, 1.0)
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def _draw_tile(ax: Axes, rgb: np.ndarray, overlay: np.ndarray | None, cmap: str | None) -> None:
    ax.imshow(rgb)
    if overlay is not None:
        height, width = rgb.shape[:2]
        ax.imshow(
            overlay,
            cmap=cmap,
            alpha=0.6,
            extent=(0, width, height, 0),
            interpolation="nearest",
            vmin=0.0,
            vmax=1.0,
        )
    ax.set_xticks([])
    ax.set_yticks([])


def saliency_figure(
    images: np.ndarray, maps: list[SaliencyMap], *, max_images: int, title: str = ""
) -> Figure:
    """Columns = images (up to ``max_images``); rows = the image, then one row per map.

    Wider than tall for the usual 8 images and 3 maps: the Snakemake report centres a figure,
    so a tall one cannot be scrolled to its top. Maps (on the patch grid) are stretched over
    the image, nearest patch.
    """
    if max_images < 1:
        raise RunError(f"saliency: max_images must be at least 1, got {max_images}")
    n = min(images.shape[0], max_images)
    rgb = _to_rgb(np.asarray(images)[:n])
    rows = [("image", None), *((m.title, m) for m in maps)]
    size = (CELL_INCHES * max(n, 1) + 0.6, CELL_INCHES * len(rows) + 0.4)
    fig = Figure(figsize=size, layout="compressed")  # image grid: no gaps under the title
    axes = fig.subplots(len(rows), max(n, 1), squeeze=False)
    for r, (label, m) in enumerate(rows):
        for i in range(n):
            overlay = None if m is None else _display_values(m, i)
            _draw_tile(axes[r, i], rgb[i], overlay, None if m is None else MAP_COLORMAPS[m.kind])
        axes[r, 0].set_ylabel(label, fontsize=8)
    if n == 0:
        _empty(axes[0, 0], "no images")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_saliency(
    npz_path: str | Path,
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    max_images: int,
    title: str | None = None,
) -> list[Path]:
    """Saliency figure from the explain stage's .npz (images, one array per map, ``maps``).

    ``max_images`` has no default here: it is a config setting (``saliency.max_images``).
    The title defaults to the file's stem.
    """
    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise FileNotFoundError(f"saliency: {npz_path} does not exist (written by rule explain)")
    with np.load(npz_path) as data:
        arrays = {k: data[k] for k in data.files}
    images, maps = saliency_arrays(arrays, str(npz_path))
    fig = saliency_figure(
        images, maps, max_images=max_images, title=npz_path.stem if title is None else title
    )
    return save_figure(fig, out_png, out_pdf)


# -- every figure of a run --------------------------------------------------------------------
def make_plots(
    runs_csv: str | Path,
    epochs_csv: str | Path,
    grid_json: str | Path | ReportGrid,
    out_dir: str | Path,
) -> list[Path]:
    """Every figure of a run under ``out_dir`` (layout in the module docstring), one set per
    main-grid backbone and dataset of grid.json. Returns the written paths (PNG and PDF)."""
    runs, epochs = load_runs(runs_csv), load_epochs(epochs_csv)
    grid = grid_json if isinstance(grid_json, ReportGrid) else ReportGrid.read(grid_json)
    out = Path(out_dir)
    written: list[Path] = []

    def save(fig: Figure, stem: Path) -> None:
        written.extend(save_figure(fig, f"{stem}.png", f"{stem}.pdf"))

    for bb in grid.main.backbones:
        save(overview_figure(runs, grid, backbone=bb), out / "overview" / bb)
        save(delta_figure(runs, grid, backbone=bb), out / "delta" / bb)
        save(gamma_figure(runs, grid, backbone=bb), out / "gamma" / bb)
        for d in grid.main.datasets:
            save(accuracy_figure(runs, grid, dataset=d, backbone=bb), out / "accuracy" / bb / d)
            save(epochs_figure(epochs, runs, grid, dataset=d, backbone=bb), out / "epochs" / bb / d)
    log.info("wrote %d figure files under %s", len(written), out)
    return written
