"""CIFAR-10 (Krizhevsky, 2009): 10 classes of 32 x 32 images, 50,000 train / 10,000 test.

Layout (torchvision.datasets.CIFAR10): ``<root>/cifar-10-batches-py/`` with the pickled
batches ``data_batch_1..5``, ``test_batch`` and ``batches.meta``. The manifest format lists
image files, so ``build_manifest`` writes each image once as PNG under
``<root>/cifar10_png/{train,test}/<index>.png`` (skipped when already complete) and lists
those. Label order is the pickles'; class names are CuPL's keys (identical).

Protocol: official train (50,000) adapted on, official test (10,000) scored.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import ClassIndex, make_manifest, require_file


class CifarSpec(DatasetSpec):
    """CIFAR-10 and CIFAR-100 differ only in file names and label keys."""

    source = "torchvision"
    expected_train = 50_000
    expected_test = 10_000
    protocol = "train -> test"
    folder: ClassVar[str]
    train_files: ClassVar[tuple[str, ...]]
    test_files: ClassVar[tuple[str, ...]]
    meta_file: ClassVar[str]
    meta_key: ClassVar[str]
    label_key: ClassVar[str]

    def batches_dir(self, root: Path) -> Path:
        return Path(root) / self.folder

    def png_dir(self, root: Path) -> Path:
        return Path(root) / f"{self.key}_png"

    def is_present(self, root: Path) -> bool:
        return (self.batches_dir(root) / self.meta_file).is_file()

    def download_help(self, root: Path) -> str:
        return (
            f"Prepare with download enabled (torchvision.datasets.{type(self).__name__.upper()} "
            f"fetches the python version from cs.toronto.edu), or unpack it so that "
            f"{self.batches_dir(root)}/{self.meta_file} exists."
        )

    def _unpickle(self, root: Path, name: str) -> dict:
        path = require_file(self, root, self.batches_dir(root) / name)
        try:
            with path.open("rb") as handle:
                return pickle.load(handle, encoding="latin1")  # Python-2 pickles
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise DatasetError(
                f"{self.key}: {path} is not a CIFAR batch ({err!r}); re-download"
            ) from None

    def _load(self, root: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (n, 32, 32, 3) and int labels (n,) of the listed batch files."""
        images, labels = [], []
        for name in names:
            batch = self._unpickle(root, name)
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[self.label_key], dtype=np.int64))
        return np.concatenate(images).transpose(0, 2, 3, 1), np.concatenate(labels)

    def _write_pngs(self, images: np.ndarray, folder: Path) -> list[Path]:
        """Write ``<index>.png`` files once; a finished folder carries a ``complete.json``."""
        paths = [folder / f"{i:05d}.png" for i in range(len(images))]
        marker = folder / "complete.json"
        if marker.is_file() and json.loads(marker.read_text()).get("count") == len(images):
            return paths
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(tmp / f"{i:05d}.png", format="PNG", compress_level=1)
        (tmp / "complete.json").write_text(json.dumps({"count": len(images)}) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return paths

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        meta = self._unpickle(root, self.meta_file)
        index = ClassIndex(self, self.classes())
        names = list(meta[self.meta_key])
        mapping = [index(str(n), where=str(self.batches_dir(root) / self.meta_file)) for n in names]
        if mapping != list(range(self.num_classes)):
            raise DatasetError(
                f"{self.key}: {self.meta_file} lists classes in another order than "
                f"microclip/data/classnames/{self.key}.json; is this the python version?"
            )
        parts = []
        for split, files in (("train", self.train_files), ("test", self.test_files)):
            images, labels = self._load(root, files)
            paths = self._write_pngs(images, self.png_dir(root) / split)
            parts.append(list(zip(paths, labels.tolist(), strict=True)))
        return make_manifest(self, parts[0], parts[1])


class Cifar10(CifarSpec):
    key = "cifar10"
    title = "CIFAR-10"
    label = "CIFAR-10"
    num_classes = 10
    folder = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    meta_file = "batches.meta"
    meta_key = "label_names"
    label_key = "labels"

    def download(self, root: Path) -> None:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)


DATASETS.add(Cifar10.key, Cifar10())
