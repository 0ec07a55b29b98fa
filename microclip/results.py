"""The result files every stage writes and the report reads, in one place (torch-free).

Per run, ``results/{run}/{method}/{dataset}/{backbone}/seed{seed}/``:

- ``metrics.json``: one ``RunRecord``, a flat JSON object. Nested settings are written with
  dotted keys (``method_config.gamma``, ``train_settings.lr``, ``packages.torch``), exactly
  the columns of ``runs.csv``; a missing value is ``null``, never left out.
- ``epochs.jsonl``: one ``EpochRecord`` per line (empty for methods that do not train).

Per run folder: ``grid.json`` (which runs form which table, their titles and order) and,
per dataset, ``data/{dataset}/dataset.json`` (``DatasetInfo``: title, label, K, split sizes).
The report reads only these files, ``runs.csv`` and ``epochs.csv``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microclip.errors import RunError
from microclip.io import atomic_write_json, atomic_write_text

ID_KEYS = ("run", "method", "dataset", "backbone", "seed")
NESTED = ("method_config", "train_settings", "packages")  # flattened with dotted keys


@dataclass
class RunRecord:
    """One finished run: what ran, on what, with which settings, and its test score."""

    run: str
    method: str  # the configured name (variant or method)
    base_method: str  # the registered method
    dataset: str
    backbone: str  # config key
    model: str  # open_clip architecture
    pretrained: str | None
    description_set: str
    seed: int
    split: str  # always "test"
    top1: float  # percent
    mean_per_class_recall: float  # percent
    report: str  # "last", or "best" (selected on test labels: reference only)
    n_train: int
    n_test: int
    num_classes: int
    wall_s: float  # the whole run: loading, adaptation (every session of a resumed run), scoring
    adapt_wall_s: float  # adaptation only, summed over resumed sessions
    score_s: float  # scoring the test split (decoding included)
    trainable_params: int
    config_hash: str
    version: str
    git_commit: str | None
    device: str
    precision: str  # what ran (bf16 only on CUDA)
    reported_epoch: int
    method_config: dict[str, Any] = field(default_factory=dict)
    train_settings: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, str | None] = field(default_factory=dict)

    def to_flat(self) -> dict[str, Any]:
        """The flat mapping written to metrics.json (and one row of runs.csv)."""
        flat = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in NESTED:
                for key, inner in value.items():
                    flat[f"{f.name}.{key}"] = list(inner) if isinstance(inner, tuple) else inner
            else:
                flat[f.name] = value
        return flat

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any], *, where: str = "metrics.json") -> RunRecord:
        scalars = {f.name for f in dataclasses.fields(cls)} - set(NESTED)
        missing = sorted(scalars - set(flat))
        if missing:
            raise RunError(
                f"{where}: lacks key(s) {missing} of the result record; rerun rule adapt_method "
                "for this run (the file predates this version or was edited)"
            )
        nested: dict[str, dict[str, Any]] = {name: {} for name in NESTED}
        for key, value in flat.items():
            head, dot, tail = key.partition(".")
            if dot and head in nested:
                nested[head][tail] = value
        return cls(**{k: flat[k] for k in scalars}, **nested)

    def write(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_flat())

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        return cls.from_flat(read_json_object(path), where=str(path))


@dataclass
class EpochRecord:
    """One epoch of adaptation, as the loop logs it."""

    epoch: int
    test_top1: float | None  # None unless runtime.eval_each_epoch
    pseudo_label_acc: float | None  # None for methods without pseudo-labels
    loss: float
    lr: float
    images_per_s: float | None
    seconds: float


EPOCH_KEYS = tuple(f.name for f in dataclasses.fields(EpochRecord))


def write_epochs(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(dict(r)) + "\n" for r in rows))


def read_epochs(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an epochs.jsonl file (keys of ``EpochRecord``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: epoch log not found (written by rule adapt_method)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise RunError(f"{path}:{n}: not a JSON line ({err.msg})") from None
        missing = [k for k in EPOCH_KEYS if k not in row]
        if missing:
            raise RunError(f"{path}:{n}: lacks epoch key(s) {missing}")
        rows.append({k: row[k] for k in EPOCH_KEYS})
    return rows


@dataclass
class DatasetInfo:
    """What the report needs of a dataset, written by rule prepare_dataset."""

    key: str
    title: str  # e.g. "FGVC-Aircraft"
    label: str  # short column label, e.g. "Aircraft"
    num_classes: int
    n_train: int
    n_test: int

    def write(self, path: str | Path) -> None:
        atomic_write_json(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: str | Path) -> DatasetInfo:
        data = read_json_object(path)
        try:
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})
        except KeyError as err:
            raise RunError(f"{path}: lacks key {err}; rerun rule prepare_dataset") from None


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or malformed file names the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (was its rule run?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RunError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise RunError(f"{path} holds a {type(data).__name__}, not a JSON object")
    return data


def write_grid(path: str | Path, grid: Mapping[str, Any], datasets: Iterable[DatasetInfo]) -> None:
    """grid.json: ``microclip.grid.report_grid`` plus every dataset's title and label."""
    atomic_write_json(
        path, {**grid, "datasets": {d.key: dataclasses.asdict(d) for d in datasets}}
    )
