"""What a grid costs before it runs: training images per dataset and estimated GPU hours.

For every run of the grid the planner multiplies the dataset's unlabelled training split by
the run's epochs (zero-shot runs train on nothing), sums per dataset, and divides by a
throughput in training images per second. The throughput is the one ``python -m
benchmarks.gpu_check`` measured on this project's GPU (it writes ``THROUGHPUT_FILE``), or
``--images-per-s``; without either, the authors' release's 55 images/s (its microCLIP step
on one GPU, as the speed issue measured it), said so in the output. A method with fewer
views per step (DPA, [CLS] self-training) costs less than microCLIP's step: the estimate is
an upper bound for them. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microclip import grid
from microclip.spec import RunSpec

THROUGHPUT_FILE = Path("results/benchmarks/throughput.json")
RELEASE_IMAGES_PER_S = 55.0


@dataclass(frozen=True)
class DatasetCost:
    dataset: str
    n_train: int | None  # None: not known before rule prepare_dataset has run
    approximate: bool  # n_train is the dataset's approximate size (files decide the exact one)
    runs: int
    training_runs: int
    training_images: int | None  # sum over runs of n_train x epochs


def dataset_size(config: Mapping[str, Any], dataset: str) -> tuple[int | None, bool]:
    """(training-split size, approximate?): the prepared manifest's if it exists, else the
    protocol's, else the dataset's approximate size."""
    from microclip.data import DATASETS
    from microclip.results import DatasetInfo

    info = Path(grid.manifest_dir(config, dataset)) / "dataset.json"
    if info.is_file():
        return DatasetInfo.read(info).n_train, False
    if dataset not in DATASETS:
        return None, False
    spec = DATASETS.get(dataset)
    if spec.expected_train is not None:
        return spec.expected_train, False
    return spec.approx_train, spec.approx_train is not None


def grid_cost(config: Mapping[str, Any]) -> list[DatasetCost]:
    rows: dict[str, dict[str, int]] = {}
    known = {d: dataset_size(config, d) for d in grid.grid_datasets(config)}
    sizes = {d: size for d, (size, _) in known.items()}
    unknown: set[str] = set()
    for run in grid.grid_runs(config):
        row = rows.setdefault(run.dataset, {"runs": 0, "training_runs": 0, "images": 0})
        row["runs"] += 1
        spec = RunSpec.from_config(config, method=run.method, dataset=run.dataset,
                                   backbone=run.backbone, seed=run.seed)
        if not spec.declaration.trains or spec.train["epochs"] == 0:
            continue
        row["training_runs"] += 1
        if sizes[run.dataset] is None:
            unknown.add(run.dataset)
        else:
            row["images"] += sizes[run.dataset] * spec.train["epochs"]
    return [
        DatasetCost(
            dataset=d, n_train=sizes[d], approximate=known[d][1], runs=r["runs"],
            training_runs=r["training_runs"],
            training_images=None if d in unknown else r["images"],
        )
        for d, r in rows.items()
    ]


def default_throughput() -> tuple[float, str]:
    """(images/s, where it comes from)."""
    if THROUGHPUT_FILE.is_file():
        data = json.loads(THROUGHPUT_FILE.read_text(encoding="utf-8"))
        return float(data["images_per_s"]), f"measured: {data.get('source', THROUGHPUT_FILE)}"
    return RELEASE_IMAGES_PER_S, (
        "the authors' release (no measurement here yet: run `python -m benchmarks.gpu_check` "
        "on your GPU, or pass --images-per-s)"
    )


def _millions(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.2f} M"


def _hours(images: int | None, images_per_s: float) -> str:
    return "?" if images is None else f"{images / images_per_s / 3600:.1f}"


def plan_table(config: Mapping[str, Any], *, images_per_s: float | None = None) -> str:
    """Per dataset: train images, runs, training images x epochs, GPU hours; then the total."""
    rate, source = (images_per_s, "--images-per-s") if images_per_s else default_throughput()
    costs = grid_cost(config)
    header = ("dataset", "train images", "runs", "training runs", "images x epochs", "GPU h")
    rows = [header]
    for c in costs:
        size = "?" if c.n_train is None else ("~" if c.approximate else "") + f"{c.n_train:,}"
        rows.append((c.dataset, size, str(c.runs),
                     str(c.training_runs), _millions(c.training_images),
                     _hours(c.training_images, rate)))
    known = [c.training_images for c in costs if c.training_images is not None]
    total = sum(known) if len(known) == len(costs) else None
    rows.append(("total", "", str(sum(c.runs for c in costs)),
                 str(sum(c.training_runs for c in costs)), _millions(total), _hours(total, rate)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(-1, lines[1])
    unknown = [c.dataset for c in costs if c.training_images is None]
    notes = [f"GPU hours at {rate:,.0f} training images/s ({source}); microCLIP's step, an "
             "upper bound for methods with fewer views; scoring not included."]
    if any(c.approximate for c in costs):
        notes.append("'~': approximate split size (the files decide the exact one).")
    if unknown:
        notes.append(f"'?': split size known after rule prepare_dataset ({', '.join(unknown)}).")
    return "\n".join([*lines, *notes])


def plan_line(config: Mapping[str, Any]) -> str:
    """One line for the start of a snakemake run."""
    rate, source = default_throughput()
    costs = grid_cost(config)
    known = [c.training_images for c in costs if c.training_images is not None]
    total = sum(known)
    partial = "" if len(known) == len(costs) else " (+ datasets of unknown size)"
    return (
        f"microclip plan: {sum(c.runs for c in costs)} runs, {_millions(total)} training "
        f"images x epochs{partial}, about {_hours(total, rate)} GPU hours at {rate:,.0f} "
        f"images/s ({source.split(' (')[0]}); `microclip plan CONFIG...` for the table"
    )


_announced: set[str] = set()


def announce_once(config: Mapping[str, Any], emit) -> None:
    """``emit(plan_line(config))`` once per process and run (Snakemake may parse twice)."""
    if config["run"] not in _announced:
        _announced.add(config["run"])
        emit(plan_line(config))
