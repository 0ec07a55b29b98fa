"""SUN397 (Xiao et al., 2010): 397 scene categories.

Layout (torchvision.datasets.SUN397): ``<root>/SUN397/ClassName.txt`` (lines like
``/a/abbey`` or ``/a/apartment_building/outdoor``) and the images in
``<root>/SUN397/<that path>/sun_*.jpg``. Label order is ``ClassName.txt`` (sorted); class
names are CuPL's keys: ``/a/apartment_building/outdoor`` -> "apartment building (outdoor)".

Protocol (spec: "seeded random 70/10/20 split, test = the 20 %"): per class, images in a
seeded hash order; the first round(0.7 n) are adapted on, the next round(0.1 n) are the
(unused) validation part, and the remaining ~20 % are scored. Counts depend on the files.
"""

from __future__ import annotations

from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import (
    ClassIndex,
    image_files,
    make_manifest,
    read_lines,
    require_dir,
    require_file,
    seeded_partition,
)

TRAIN_FRACTION, VAL_FRACTION = 0.7, 0.1


def display_name(class_path: str) -> str:
    """``/a/apartment_building/outdoor`` -> ``apartment building (outdoor)``."""
    parts = [p.replace("_", " ") for p in class_path.strip("/").split("/")[1:]]
    return parts[0] + (f" ({' '.join(parts[1:])})" if len(parts) > 1 else "")


def split_sizes(n: int) -> list[int]:
    """Adapted and validation counts of a class with ``n`` images (the rest is scored)."""
    return [int(n * TRAIN_FRACTION + 0.5), int(n * VAL_FRACTION + 0.5)]


class Sun397(DatasetSpec):
    approx_train = 76_128  # 70 % of SUN397's 108,754 images (per-class rounding varies)
    key = "sun397"
    title = "SUN397"
    label = "SUN397"
    num_classes = 397
    source = "torchvision"
    protocol = "seeded 70/10/20 per class, 70 -> 20"

    def base(self, root: Path) -> Path:
        return Path(root) / "SUN397"

    def is_present(self, root: Path) -> bool:
        return (self.base(root) / "ClassName.txt").is_file()

    def download(self, root: Path) -> None:
        from torchvision.datasets import SUN397

        SUN397(str(root), download=True)

    def download_help(self, root: Path) -> str:
        return (
            "Prepare with download enabled (torchvision.datasets.SUN397 fetches SUN397.tar.gz, "
            f"37 GB), or unpack it so that {self.base(root)}/ClassName.txt and "
            f"{self.base(root)}/a/abbey/sun_*.jpg exist."
        )

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        base = self.base(root)
        listing = require_file(self, root, base / "ClassName.txt")
        class_paths = read_lines(listing)
        index = ClassIndex(self, self.classes())
        labels = [index(display_name(c), where=str(listing)) for c in class_paths]
        if sorted(labels) != list(range(self.num_classes)):
            raise DatasetError(
                f"{self.key}: {listing} lists {len(class_paths)} classes, not the "
                f"{self.num_classes} of the package; is this SUN397.tar.gz?"
            )
        train, test = [], []
        for class_path, label in zip(class_paths, labels, strict=True):
            folder = require_dir(self, root, base / class_path.strip("/"))
            files = image_files(folder)
            if len(files) < 3:
                raise DatasetError(
                    f"{self.key}: {folder} holds {len(files)} images; a 70/10/20 split needs at "
                    "least 3. Re-extract the archive."
                )
            adapt, _, scored = seeded_partition(
                files, split_sizes(len(files)), base=base, seed=seed, salt=self.key
            )
            train += [(p, label) for p in adapt]
            test += [(p, label) for p in scored]
        return make_manifest(self, train, test)


DATASETS.add(Sun397.key, Sun397())
