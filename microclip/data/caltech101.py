"""Caltech-101 (Fei-Fei, Fergus & Perona, 2004): 100 object classes.

Layout (torchvision.datasets.Caltech101): ``<root>/caltech101/101_ObjectCategories/<class>/
image_NNNN.jpg``. Label order is torchvision's (sorted folder names) without
``BACKGROUND_Google`` (clutter, not a class) and ``Faces_easy`` (tight crops of the same
faces as ``Faces``); dropping both gives the spec's 100 classes, as CoOp does. Class names
are CuPL's keys (``Faces`` -> "off-center face", ``car_side`` -> "side of a car", ...).

Protocol (spec: "30 images/class train, the rest test (seed 0)"): per class, the 30 images
first in a seeded hash order are the unlabelled adaptation split and every other image is
scored. The 100 classes hold 8,242 images, so 3,000 are adapted on and 5,242 scored.
"""

from __future__ import annotations

from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import class_folders, image_files, make_manifest, seeded_partition

EXCLUDED = ("BACKGROUND_Google", "Faces_easy")
# Folder name -> CuPL's class name, where the words differ (other folders match after
# ignoring case and underscores).
RENAMED = {
    "Faces": "off-center face",
    "Leopards": "leopard",
    "Motorbikes": "motorbike",
    "airplanes": "airplane",
    "car_side": "side of a car",
    "cougar_body": "body of a cougar cat",
    "cougar_face": "face of a cougar cat",
    "crocodile_head": "head of a crocodile",
    "flamingo_head": "head of a flamingo",
    "snoopy": "snoopy (cartoon beagle)",
    "yin_yang": "yin and yang symbol",
}


class Caltech101(DatasetSpec):
    key = "caltech101"
    title = "Caltech-101"
    label = "Caltech101"
    num_classes = 100
    source = "torchvision"
    expected_train = 3_000
    expected_test = 5_242
    protocol = "30/class seeded -> rest"

    def __init__(self, *, train_per_class: int = 30) -> None:
        self.train_per_class = train_per_class

    def images_dir(self, root: Path) -> Path:
        return Path(root) / "caltech101" / "101_ObjectCategories"

    def is_present(self, root: Path) -> bool:
        return self.images_dir(root).is_dir()

    def download(self, root: Path) -> None:
        from torchvision.datasets import Caltech101 as TorchvisionCaltech101

        TorchvisionCaltech101(str(root), download=True)

    def download_help(self, root: Path) -> str:
        return (
            "Prepare with download enabled (torchvision.datasets.Caltech101 fetches "
            "caltech-101.zip from data.caltech.edu), or unpack 101_ObjectCategories.tar.gz so "
            f"that {self.images_dir(root)}/<class>/image_0001.jpg exists."
        )

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        base = self.images_dir(root)
        folders = class_folders(self, root, base, renamed=RENAMED, ignore=EXCLUDED)
        train, test = [], []
        for label, folder in sorted(folders.items()):
            files = image_files(folder)
            if len(files) <= self.train_per_class:
                raise DatasetError(
                    f"{self.key}: {folder} holds {len(files)} images; the protocol adapts on "
                    f"{self.train_per_class} per class and scores the rest, so it needs more. "
                    "Re-extract the archive."
                )
            adapt, scored = seeded_partition(
                files, [self.train_per_class], base=base, seed=seed, salt=self.key
            )
            train += [(p, label) for p in adapt]
            test += [(p, label) for p in scored]
        return make_manifest(self, train, test)


DATASETS.add(Caltech101.key, Caltech101())
