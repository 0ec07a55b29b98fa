"""What every dataset provides, and the manifest format every rule downstream reads.

A dataset entry knows its class names (package JSON, in label order), its templates, its
unsupervised-adaptation protocol (which images are adapted on, which are scored) and how
to turn the files under a data root into a *manifest*: ``train.csv`` and ``test.csv``
(columns ``path,label``) plus ``classes.json``. Everything after ``prepare`` reads only
the manifest, so a dataset is one module plus a registry entry.
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar, Literal

from microclip.errors import DataError
from microclip.io import atomic_write_text
from microclip.registry import Registry

Source = Literal["torchvision", "manual", "generated", "custom"]


DatasetError = DataError  # the name the dataset modules use

BOX_COLUMNS = ("x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class Sample:
    path: str
    label: int
    # The object's box in the image's pixels (x0, y0, x1, y1), where the dataset knows it
    # (the demo world does); only the mechanism diagnostics read it.
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class Manifest:
    """The prepared protocol of one dataset: adaptation images, scored images, class names."""

    classes: list[str]
    train: list[Sample]
    test: list[Sample]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def package_json(folder: str, key: str) -> object:
    """Read ``microclip/data/<folder>/<key>.json`` shipped inside the package."""
    ref = resources.files("microclip.data").joinpath(folder, f"{key}.json")
    if not ref.is_file():
        raise FileNotFoundError(f"microclip/data/{folder}/{key}.json is not in the package")
    return json.loads(ref.read_text(encoding="utf-8"))


class DatasetSpec(ABC):
    """One benchmark: class names, templates, protocol, and how to build its manifest."""

    key: ClassVar[str]
    title: ClassVar[str]  # full name, e.g. "FGVC-Aircraft (variant)"
    label: ClassVar[str] = ""  # short table-column name, e.g. "Aircraft"; default: the key
    num_classes: ClassVar[int]
    source: ClassVar[Source]
    # Protocol split sizes (adapt, score) as the spec states them; None where they depend
    # on the files (folder layouts) and cannot be known in advance.
    expected_train: ClassVar[int | None] = None
    expected_test: ClassVar[int | None] = None
    # For planning only, where the exact size depends on the files: about how many
    # images the adaptation split has (``microclip plan`` marks it with "~").
    approx_train: ClassVar[int | None] = None

    def classes(self) -> list[str]:
        names = package_json("classnames", self.key)
        assert isinstance(names, list) and len(names) == self.num_classes, (
            f"classnames/{self.key}.json has {len(names)} names, spec says {self.num_classes}"
        )
        return names

    def templates(self) -> list[str]:
        return list(package_json("templates", self.key))  # type: ignore[arg-type]

    def classes_source(self) -> str:
        """Where the class names come from, for messages."""
        return f"microclip/data/classnames/{self.key}.json"

    @abstractmethod
    def is_present(self, root: Path) -> bool:
        """Whether the dataset's files appear to be under ``root`` (cheap check, no decoding)."""

    @abstractmethod
    def build_manifest(self, root: Path, *, seed: int) -> Manifest:
        """Parse the on-disk layout under ``root`` into the protocol split; raise DatasetError."""

    def download_help(self, root: Path) -> str:
        """How to get the files: the downloader to run, or the folder layout to create."""
        return f"place the {self.title} files under {root}"


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def get_dataset(key: str) -> DatasetSpec:
    return DATASETS.get(key)


def _samples_csv(samples: list[Sample]) -> str:
    boxed = bool(samples) and all(s.box is not None for s in samples)
    lines = [",".join(("path", "label", *(BOX_COLUMNS if boxed else ())))]
    for sample in samples:
        path = sample.path
        if "," in path or '"' in path:
            path = '"' + path.replace('"', '""') + '"'
        box = [f"{v:g}" for v in sample.box] if boxed else []
        lines.append(",".join([path, str(sample.label), *box]))
    return "\n".join(lines) + "\n"


def write_manifest(manifest: Manifest, out_dir: Path) -> None:
    """Write ``train.csv``, ``test.csv`` and ``classes.json`` atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "train.csv", _samples_csv(manifest.train))
    atomic_write_text(out_dir / "test.csv", _samples_csv(manifest.test))
    atomic_write_text(out_dir / "classes.json", json.dumps(manifest.classes, indent=1) + "\n")


def read_samples(csv_path: Path) -> list[Sample]:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: manifest file not found (run rule prepare_dataset)")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
            raise DataError(f"{csv_path}: expected columns 'path,label', got {reader.fieldnames}")
        boxed = set(BOX_COLUMNS) <= set(reader.fieldnames)
        return [
            Sample(row["path"], int(row["label"]),
                   tuple(float(row[c]) for c in BOX_COLUMNS) if boxed else None)
            for row in reader
        ]


def read_manifest(manifest_dir: Path) -> Manifest:
    manifest_dir = Path(manifest_dir)
    classes_file = manifest_dir / "classes.json"
    if not classes_file.is_file():
        raise DataError(f"{classes_file}: manifest file not found (run rule prepare_dataset)")
    classes = json.loads(classes_file.read_text(encoding="utf-8"))
    return Manifest(
        classes=classes,
        train=read_samples(manifest_dir / "train.csv"),
        test=read_samples(manifest_dir / "test.csv"),
    )
