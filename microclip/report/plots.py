"""Figures from runs.csv / epochs.csv (matplotlib, Agg backend, each as PNG and PDF).

Layout under ``results/{run}/plots/``::

    accuracy/{backbone}/{dataset}.{png,pdf}   top-1 per method (bars, mean +- std over seeds)
    overview/{backbone}.{png,pdf}             every dataset at once, grouped bars
    epochs/{backbone}/{dataset}.{png,pdf}     test and pseudo-label accuracy per epoch
    delta/{backbone}.{png,pdf}                focus method - strongest baseline per dataset
    gamma/{backbone}.{png,pdf}                DKA gamma sweep (ablation "dka")
    saliency/...                              plot_saliency(npz) for the lead's saliency rule

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state), so they render headless
and in parallel jobs. A figure with nothing to show still renders, saying so, so the set of
files a rule promises never depends on which runs succeeded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from microclip.report.collect import (  # noqa: E402
    ID_KEYS,
    ablation_grid,
    main_grid,
    read_epochs,
    read_runs,
)
from microclip.report.tables import (  # noqa: E402
    DATASET_LABELS,
    FOCUS_METHOD,
    cell_stats,
    order_methods,
)

log = logging.getLogger(__name__)

GAMMA_COLUMN = "method_config.gamma"
PALETTE = [
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
]


def _save(fig: Figure, out_png: str | Path, out_pdf: str | Path) -> list[Path]:
    paths = [Path(out_png), Path(out_pdf)]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths


def _colors(methods: Sequence[str], focus: str) -> dict[str, str]:
    colors = {}
    others = [m for m in methods if m != focus]
    for i, m in enumerate(others):
        colors[m] = PALETTE[i % len(PALETTE)] if PALETTE[i % len(PALETTE)] != "#C44E52" else "#222"
    colors[focus] = "#C44E52"  # the focus method is always red
    return colors


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _main(runs: pd.DataFrame, backbone: str) -> pd.DataFrame:
    """The caller selects the runs to compare (make_plots passes ``collect.main_grid``)."""
    return runs[runs["backbone"] == backbone]


def plot_accuracy_bars(
    runs: pd.DataFrame,
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    dataset: str,
    backbone: str,
    focus_method: str = FOCUS_METHOD,
) -> list[Path]:
    """Top-1 per method on one dataset: bar = mean over seeds, whisker = std, dots = seeds."""
    part = _main(runs, backbone)
    part = part[part["dataset"] == dataset]
    methods = order_methods(part["method"].unique(), focus_method)
    colors = _colors(methods, focus_method)
    fig = Figure(figsize=(max(4.0, 0.7 * len(methods) + 1.5), 3.6))
    ax = fig.add_subplot()
    if not methods:
        _empty(ax, f"no runs for {dataset} / {backbone}")
    else:
        cells = cell_stats(part)
        x = np.arange(len(methods))
        means = [cells.loc[(m, dataset), "mean"] for m in methods]
        stds = [np.nan_to_num(cells.loc[(m, dataset), "std"]) for m in methods]
        ax.bar(x, means, yerr=stds, capsize=3, color=[colors[m] for m in methods], alpha=0.85)
        for i, m in enumerate(methods):
            seeds = part.loc[part["method"] == m, "top1"].to_numpy()
            ax.scatter(np.full(seeds.shape, i), seeds, s=8, color="k", zorder=3)
        ax.set_xticks(x, methods, rotation=40, ha="right")
        lo = np.nanmin(part["top1"]) if part["top1"].notna().any() else 0.0
        ax.set_ylim(max(0.0, lo - 10.0), min(100.0, np.nanmax(part["top1"]) + 5.0))
        ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)} — {backbone}")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out_png, out_pdf)


def plot_overview(
    runs: pd.DataFrame,
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    backbone: str,
    datasets: Sequence[str] | None = None,
    focus_method: str = FOCUS_METHOD,
) -> list[Path]:
    """Grouped bars: datasets on x, one bar per method (mean over seeds, std whiskers)."""
    part = _main(runs, backbone)
    datasets = list(datasets) if datasets is not None else sorted(part["dataset"].unique())
    methods = order_methods(part["method"].unique(), focus_method)
    colors = _colors(methods, focus_method)
    fig = Figure(figsize=(max(6.0, 1.1 * len(datasets) + 2), 4.0))
    ax = fig.add_subplot()
    if not methods or not datasets:
        _empty(ax, f"no runs for {backbone}")
    else:
        cells = cell_stats(part)
        width = 0.8 / len(methods)
        x = np.arange(len(datasets))
        for i, m in enumerate(methods):
            mean = [cells["mean"].get((m, d), np.nan) for d in datasets]
            std = [np.nan_to_num(cells["std"].get((m, d), np.nan)) for d in datasets]
            ax.bar(
                x + (i - (len(methods) - 1) / 2) * width,
                mean,
                width,
                yerr=std,
                capsize=1.5,
                label=m,
                color=colors[m],
            )
        ax.set_xticks(x, [DATASET_LABELS.get(d, d) for d in datasets], rotation=30, ha="right")
        ax.set_ylabel("top-1 (%)")
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"Top-1 per dataset — {backbone}")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out_png, out_pdf)


def plot_epoch_curves(
    epochs: pd.DataFrame,
    runs: pd.DataFrame,
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    dataset: str,
    backbone: str,
    focus_method: str = FOCUS_METHOD,
) -> list[Path]:
    """Test top-1 (solid) and pseudo-label accuracy (dashed) per epoch, mean over seeds (+- std
    bands for the focus method, or for every method when there are at most four).

    Only the epochs of the given ``runs`` are drawn. Methods without epochs (zero-shot) are
    horizontal dotted lines at their top-1.
    """
    part = _main(runs, backbone)
    part = part[part["dataset"] == dataset]
    ep = epochs.merge(part[list(ID_KEYS)].drop_duplicates(), on=list(ID_KEYS), how="inner")
    methods = order_methods(set(part["method"]) | set(ep["method"]), focus_method)
    colors = _colors(methods, focus_method)
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    drawn = False
    for m in methods:
        em = ep[ep["method"] == m]
        if len(em):
            for col, style in (("test_top1", "-"), ("pseudo_label_acc", "--")):
                g = em.groupby("epoch")[col]
                mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
                if mean.notna().any():
                    label = m if col == "test_top1" else f"{m} (pseudo-labels)"
                    ax.plot(mean.index, mean.values, style, color=colors[m], label=label)
                    if m == focus_method or len(methods) <= 4:  # bands clutter many lines
                        ax.fill_between(
                            mean.index, mean - std, mean + std, color=colors[m], alpha=0.15
                        )
                    drawn = True
        else:
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
        _empty(ax, f"no per-epoch logs for {dataset} / {backbone}")
    ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)} — {backbone}: test vs pseudo-label acc.")
    return _save(fig, out_png, out_pdf)


def strongest_baseline_delta(
    runs: pd.DataFrame, *, backbone: str, focus_method: str = FOCUS_METHOD
) -> pd.DataFrame:
    """Per dataset: focus mean - best baseline mean (main grid); columns dataset, delta, baseline."""
    part = _main(runs, backbone)
    cells = cell_stats(part)["mean"].unstack("dataset") if len(part) else pd.DataFrame()
    rows = []
    if focus_method in cells.index:
        base = cells.drop(index=focus_method)
        for d in cells.columns:
            col = base[d].dropna()
            if col.empty or math.isnan(cells.loc[focus_method, d]):
                continue
            rows.append(
                {
                    "dataset": d,
                    "delta": cells.loc[focus_method, d] - col.max(),
                    "baseline": col.idxmax(),
                }
            )
    return pd.DataFrame(rows, columns=["dataset", "delta", "baseline"])


def plot_delta(
    runs: pd.DataFrame,
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    backbone: str,
    focus_method: str = FOCUS_METHOD,
) -> list[Path]:
    """Focus method minus the strongest baseline per dataset (green gain, grey loss)."""
    delta = strongest_baseline_delta(runs, backbone=backbone, focus_method=focus_method)
    fig = Figure(figsize=(max(5.0, 0.7 * len(delta) + 2), 3.6))
    ax = fig.add_subplot()
    if delta.empty:
        _empty(ax, f"no {focus_method} and baseline runs for {backbone}")
    else:
        x = np.arange(len(delta))
        colors = ["#55A868" if v >= 0 else "#8C8C8C" for v in delta["delta"]]
        ax.bar(x, delta["delta"], color=colors)
        for i, (v, b) in enumerate(zip(delta["delta"], delta["baseline"], strict=True)):
            ax.annotate(
                b,
                (i, v),
                ha="center",
                va="bottom" if v >= 0 else "top",
                fontsize=6,
                xytext=(0, 2 if v >= 0 else -2),
                textcoords="offset points",
            )
        ax.axhline(0, color="k", lw=0.8)
        mean = delta["delta"].mean()
        ax.axhline(mean, color="#C44E52", ls="--", lw=1, label=f"mean of per-dataset Δ {mean:+.2f}")
        ax.set_xticks(
            x, [DATASET_LABELS.get(d, d) for d in delta["dataset"]], rotation=30, ha="right"
        )
        ax.set_ylabel("Δ top-1 vs strongest baseline (points)")
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{focus_method} − strongest baseline — {backbone}")
    return _save(fig, out_png, out_pdf)


def plot_gamma_sweep(
    runs: pd.DataFrame,
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    backbone: str,
    ablation: str = "dka",
    spec: Mapping[str, Sequence] | None = None,
    gamma_column: str = GAMMA_COLUMN,
) -> list[Path]:
    """Top-1 against DKA's gamma (runs of ``ablation`` with a gamma value), one line per
    dataset plus their mean; whiskers = std over seeds. ``spec``: see ``collect.ablation_grid``."""
    part = ablation_grid(runs, ablation, spec)
    part = part[part["backbone"] == backbone]
    if gamma_column in part.columns:
        part = part.assign(gamma=pd.to_numeric(part[gamma_column], errors="coerce"))
        part = part[part["gamma"].notna()]
    else:
        part = part.iloc[0:0].assign(gamma=[])
    fig = Figure(figsize=(5.0, 3.6))
    ax = fig.add_subplot()
    if part.empty:
        _empty(ax, f"no gamma-sweep runs (ablation '{ablation}', {gamma_column}) for {backbone}")
    else:
        datasets = sorted(part["dataset"].unique())
        for i, d in enumerate(datasets):
            g = part[part["dataset"] == d].groupby("gamma")["top1"]
            ax.errorbar(
                g.mean().index,
                g.mean().values,
                yerr=g.std(ddof=1).fillna(0).values,
                marker="o",
                ms=3,
                capsize=2,
                color=PALETTE[i % len(PALETTE)],
                label=DATASET_LABELS.get(d, d),
            )
        per_ds = part.groupby(["gamma", "dataset"])["top1"].mean().unstack("dataset")
        mean = per_ds.mean(axis=1, skipna=False)
        ax.plot(mean.index, mean.values, "k-", lw=2, marker="s", label="mean")
        ax.set_xlabel("γ (weight of the fixed CLIP/LLM prior)")
        ax.set_ylabel("top-1 (%)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(alpha=0.3)
    ax.set_title(f"DKA γ sweep — {backbone}")
    return _save(fig, out_png, out_pdf)


def _to_rgb(images: np.ndarray) -> np.ndarray:
    """(n,H,W,3) uint8 or float -> float in [0, 1] (min-max per image if outside [0, 1])."""
    img = images.astype(float)
    if images.dtype == np.uint8:
        return img / 255.0
    lo = img.min(axis=(1, 2, 3), keepdims=True)
    hi = img.max(axis=(1, 2, 3), keepdims=True)
    outside = (lo < 0) | (hi > 1)
    scaled = (img - lo) / np.maximum(hi - lo, 1e-12)
    return np.where(outside, scaled, img)


def _check_saliency_arrays(arrays: dict[str, np.ndarray], source: str) -> int:
    need = ("images", "ncut_mask", "soap_attention", "cls_attention")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise KeyError(f"{source}: missing array(s) {missing}; expected keys {list(need)}")
    images = arrays["images"]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{source}: images must be (n, H, W, 3), got {images.shape}")
    n = images.shape[0]
    for key in need[1:]:
        a = arrays[key]
        if a.ndim != 3 or a.shape[0] != n:
            raise ValueError(f"{source}: {key} must be (n={n}, h, w), got {a.shape}")
    return n


def plot_saliency_arrays(
    images: np.ndarray,
    ncut_mask: np.ndarray,
    soap_attention: np.ndarray,
    cls_attention: np.ndarray,
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    title: str = "",
    max_images: int = 8,
) -> list[Path]:
    """Rows = images; columns = image, NCut foreground mask, SOAP attention, [CLS] attention.

    images (n,H,W,3) uint8 or float; maps (n,h,w) on the patch grid, stretched over the image
    (nearest patch), each attention map normalised to [0, 1] per image for display.
    """
    arrays = {
        "images": np.asarray(images),
        "ncut_mask": np.asarray(ncut_mask),
        "soap_attention": np.asarray(soap_attention),
        "cls_attention": np.asarray(cls_attention),
    }
    n = min(_check_saliency_arrays(arrays, "plot_saliency"), max_images)
    rgb = _to_rgb(arrays["images"][:n])
    cols = (
        ("image", None, None),
        ("NCut foreground", "ncut_mask", "gray"),
        ("SOAP attention [FG]", "soap_attention", "inferno"),
        ("[CLS] attention", "cls_attention", "inferno"),
    )
    fig = Figure(figsize=(2.2 * len(cols), 2.2 * max(n, 1)))
    axes = fig.subplots(max(n, 1), len(cols), squeeze=False)
    for i in range(n):
        height, width = rgb[i].shape[:2]
        for j, (name, key, cmap) in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(rgb[i])
            if key is not None:
                m = arrays[key][i].astype(float)
                span = m.max() - m.min()
                m = (m - m.min()) / span if span > 0 else np.zeros_like(m)
                ax.imshow(
                    m,
                    cmap=cmap,
                    alpha=0.6,
                    extent=(0, width, height, 0),
                    interpolation="nearest",
                    vmin=0.0,
                    vmax=1.0,
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
    if n == 0:
        _empty(axes[0, 0], "no images")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, out_png, out_pdf)


def plot_saliency(
    npz_path: str | Path,
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    title: str | None = None,
    max_images: int = 8,
) -> list[Path]:
    """Saliency figure (paper figs. 1 and 4) from an .npz with keys images (n,H,W,3),
    ncut_mask, soap_attention, cls_attention (each (n,h,w))."""
    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise FileNotFoundError(f"plot_saliency: {npz_path} does not exist")
    with np.load(npz_path) as data:
        arrays = {k: data[k] for k in data.files}
    _check_saliency_arrays(arrays, str(npz_path))
    return plot_saliency_arrays(
        arrays["images"],
        arrays["ncut_mask"],
        arrays["soap_attention"],
        arrays["cls_attention"],
        out_png,
        out_pdf,
        title=npz_path.stem if title is None else title,
        max_images=max_images,
    )


def make_plots(
    runs_csv: str | Path,
    epochs_csv: str | Path,
    out_dir: str | Path,
    *,
    focus_method: str = FOCUS_METHOD,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    gamma_ablation: str = "dka",
    gamma_spec: Mapping[str, Sequence] | None = None,
) -> list[Path]:
    """Every figure of a run under ``out_dir`` (layout in the module docstring).

    ``methods``/``datasets``/``backbones``/``seeds`` define the main grid as in
    ``make_tables``; pass the config's lists so the set of files is fixed. The gamma sweep
    plots ablation table ``gamma_ablation`` (its config ``gamma_spec`` when given).
    Returns the written paths (PNG and PDF).
    """
    all_runs = read_runs(runs_csv)
    epochs = read_epochs(epochs_csv)
    out = Path(out_dir)
    main = runs = main_grid(all_runs, methods=methods, datasets=datasets, seeds=seeds)
    backbones = list(backbones) if backbones is not None else sorted(main["backbone"].unique())
    written: list[Path] = []
    for bb in backbones:
        ds = (
            list(datasets)
            if datasets is not None
            else sorted(main.loc[main["backbone"] == bb, "dataset"].unique())
        )
        written += plot_overview(
            runs,
            out / "overview" / f"{bb}.png",
            out / "overview" / f"{bb}.pdf",
            backbone=bb,
            datasets=ds,
            focus_method=focus_method,
        )
        written += plot_delta(
            runs,
            out / "delta" / f"{bb}.png",
            out / "delta" / f"{bb}.pdf",
            backbone=bb,
            focus_method=focus_method,
        )
        written += plot_gamma_sweep(
            all_runs,
            out / "gamma" / f"{bb}.png",
            out / "gamma" / f"{bb}.pdf",
            backbone=bb,
            ablation=gamma_ablation,
            spec=gamma_spec,
        )
        for d in ds:
            acc = out / "accuracy" / bb
            written += plot_accuracy_bars(
                runs,
                acc / f"{d}.png",
                acc / f"{d}.pdf",
                dataset=d,
                backbone=bb,
                focus_method=focus_method,
            )
            epo = out / "epochs" / bb
            written += plot_epoch_curves(
                epochs,
                runs,
                epo / f"{d}.png",
                epo / f"{d}.pdf",
                dataset=d,
                backbone=bb,
                focus_method=focus_method,
            )
    log.info("wrote %d figure files under %s", len(written), out)
    return written
