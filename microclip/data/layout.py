"""Shared parts of the dataset modules: folder scans, class-name matching, seeded splits.

Each dataset module states facts about its on-disk layout (which file lists which images,
which folder is which class) and its protocol; the repetitive parts live here so that a
module reads as its protocol. Every failure is a ``DatasetError`` that names the dataset,
the missing or unexpected thing, and (via ``spec.download_help``) how to get the files.

Seeded splits rank files by ``sha256(salt:seed:relative path)``: the order depends only on
the file names, so it is the same on every machine and numpy version, and a file added to
a class does not reshuffle the others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from microclip.data.base import DatasetError, DatasetSpec, Manifest, Sample

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)


def norm_name(name: str) -> str:
    """Spelling-insensitive key, so 'Apply_Eye_Makeup', 'ApplyEyeMakeup' and 'Apply Eye Makeup' agree."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _examples(items: Sequence[object], limit: int = 5) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def not_found(spec: DatasetSpec, root: Path, what: Path | str, detail: str = "") -> DatasetError:
    """The error for a missing file or folder: what is missing, then how to get the files."""
    return DatasetError(f"{spec.key}: {what} not found{detail}. {spec.download_help(Path(root))}")


def require_dir(spec: DatasetSpec, root: Path, path: Path) -> Path:
    if not path.is_dir():
        raise not_found(spec, root, f"folder {path}")
    return path


def require_file(spec: DatasetSpec, root: Path, path: Path) -> Path:
    if not path.is_file():
        raise not_found(spec, root, f"file {path}")
    return path


def first_dir(candidates: Iterable[Path]) -> Path | None:
    """The first existing folder among layouts that differ only in nesting (e.g. dtd/dtd vs dtd)."""
    return next((p for p in candidates if p.is_dir()), None)


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (no recursion, no hidden files), sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of an annotation text file (``#`` starts a comment line)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


class ClassIndex:
    """Maps a raw class identifier (folder name, annotation string) to its label.

    Exact matches win; otherwise names are compared with ``norm_name``, so the package's
    spelling (CuPL's keys) and the dataset's spelling (folder names) need no per-dataset
    table except where the words themselves differ (``renamed``).
    """

    def __init__(
        self, spec: DatasetSpec, classes: Sequence[str], renamed: Mapping[str, str] | None = None
    ):
        self.spec = spec
        self.classes = list(classes)
        self.renamed = dict(renamed or {})
        self.exact = {name: i for i, name in enumerate(self.classes)}
        self.loose: dict[str, int] = {}
        for i, name in enumerate(self.classes):
            self.loose.setdefault(norm_name(name), i)

    def get(self, raw: str) -> int | None:
        name = self.renamed.get(raw, raw)
        if name in self.exact:
            return self.exact[name]
        return self.loose.get(norm_name(name))

    def __call__(self, raw: str, *, where: str) -> int:
        label = self.get(raw)
        if label is None:
            raise DatasetError(
                f"{self.spec.key}: {where}: class '{raw}' is not one of the {len(self.classes)} "
                f"classes of {self.spec.classes_source()} (e.g. "
                f"{_examples(self.classes, 3)}); is this the right dataset or version?"
            )
        return label


def class_folders(
    spec: DatasetSpec,
    root: Path,
    folder: Path,
    *,
    renamed: Mapping[str, str] | None = None,
    ignore: Iterable[str] = (),
) -> dict[int, Path]:
    """Label -> class folder for a folder-per-class layout; every class must have its folder."""
    require_dir(spec, root, folder)
    classes = spec.classes()
    index = ClassIndex(spec, classes, renamed)
    skip = set(ignore)
    found: dict[int, Path] = {}
    unknown: list[str] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name in skip:
            continue
        label = index.get(sub.name)
        if label is None:
            unknown.append(sub.name)
        elif label in found:
            raise DatasetError(
                f"{spec.key}: folders {found[label]} and {sub} both match class "
                f"'{classes[label]}'; keep one of them"
            )
        else:
            found[label] = sub
    if unknown:
        raise DatasetError(
            f"{spec.key}: {folder} has folders that are not classes of this dataset: "
            f"{_examples(unknown)}; remove them or check the dataset version"
        )
    absent = [classes[i] for i in range(len(classes)) if i not in found]
    if absent:
        raise not_found(
            spec,
            root,
            f"class folders under {folder} for {len(absent)} classes ({_examples(absent)})",
        )
    return found


def rank_by_hash(items: Iterable[str], *, seed: int, salt: str) -> list[str]:
    """``items`` in a seeded pseudo-random order that is identical on every machine."""

    def key(item: str) -> str:
        return hashlib.sha256(f"{salt}:{seed}:{item}".encode()).hexdigest()

    return sorted(items, key=lambda item: (key(item), item))


def seeded_partition(
    files: Sequence[Path], sizes: Sequence[int], *, base: Path, seed: int, salt: str
) -> list[list[Path]]:
    """Split one class's files into ``len(sizes) + 1`` seeded parts; the last part is the rest.

    Files are ranked by the hash of their path relative to ``base`` (the dataset folder),
    so the split does not depend on where the data root lives.
    """
    if sum(sizes) > len(files):
        raise ValueError(f"need {sum(sizes)} files, have {len(files)}")
    rel = {f.relative_to(base).as_posix(): f for f in files}
    ranked = [rel[r] for r in rank_by_hash(rel, seed=seed, salt=salt)]
    parts, start = [], 0
    for size in sizes:
        parts.append(sorted(ranked[start : start + size]))
        start += size
    parts.append(sorted(ranked[start:]))
    return parts


def make_manifest(
    spec: DatasetSpec, train: Iterable[tuple[Path, int]], test: Iterable[tuple[Path, int]]
) -> Manifest:
    """A manifest with absolute paths and the package's class names."""
    return Manifest(
        classes=spec.classes(),
        train=[Sample(str(path), int(label)) for path, label in train],
        test=[Sample(str(path), int(label)) for path, label in test],
    )


class FolderSplitSpec(DatasetSpec):
    """``<root>/<folder>/{train,test}/<class>/<image>``: datasets with no canonical split file.

    Birdsnap, RESISC45 and AID are published as image folders without a fixed
    train/test split (Birdsnap's images come from a URL list); the suite reads the split
    the user provides as two folder trees, class folders matched to the package's class
    names by spelling-insensitive comparison (``Allens_Hummingbird`` = "Allens Hummingbird").
    """

    source = "manual"
    protocol = "train/ -> test/ folders"
    folder: ClassVar[str]
    origin: ClassVar[str]  # where the images are published

    def base(self, root: Path) -> Path:
        return Path(root) / self.folder

    def is_present(self, root: Path) -> bool:
        base = self.base(root)
        return (base / "train").is_dir() and (base / "test").is_dir()

    def download_help(self, root: Path) -> str:
        base = self.base(root)
        return (
            f"{self.title} is a manual download ({self.origin}). Arrange it as "
            f"{base}/train/<class>/<image> (adapted on, labels unused) and "
            f"{base}/test/<class>/<image> (scored), one folder per class named as in "
            f"microclip/data/classnames/{self.key}.json (underscores, case and punctuation "
            "may differ)."
        )

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        splits = {}
        for split in ("train", "test"):
            folders = class_folders(self, root, self.base(root) / split)
            splits[split] = [
                (path, label)
                for label, folder in sorted(folders.items())
                for path in image_files(folder)
            ]
        return make_manifest(self, splits["train"], splits["test"])
