"""GTSRB (Stallkamp et al., 2011): 43 German traffic-sign classes.

Layout (torchvision.datasets.GTSRB): ``<root>/gtsrb/GTSRB/Training/<00000..00042>/*.ppm``
and ``<root>/gtsrb/GTSRB/Final_Test/Images/*.ppm`` with labels in
``<root>/gtsrb/GT-final_test.csv`` (``;``-separated, columns ``Filename`` and ``ClassId``).
Label = the folder number / ClassId; class names are CLIP's descriptive names
("red and white circle 20 kph speed limit", ...).

Protocol: the Training folders adapted on (26,640 images in torchvision's download,
GTSRB-Training_fixed.zip, the count spec/datasets.md gives), the final test set (12,630)
scored.
"""

from __future__ import annotations

import csv
from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import image_files, make_manifest, not_found, require_dir, require_file


class Gtsrb(DatasetSpec):
    key = "gtsrb"
    title = "GTSRB"
    label = "GTSRB"
    num_classes = 43
    source = "torchvision"
    expected_train = 26_640
    expected_test = 12_630
    protocol = "Training -> Final_Test"

    def base(self, root: Path) -> Path:
        return Path(root) / "gtsrb"

    def is_present(self, root: Path) -> bool:
        base = self.base(root) / "GTSRB"
        return (base / "Training").is_dir() and (base / "Final_Test" / "Images").is_dir()

    def download(self, root: Path) -> None:
        from torchvision.datasets import GTSRB

        GTSRB(str(root), split="train", download=True)
        GTSRB(str(root), split="test", download=True)

    def download_help(self, root: Path) -> str:
        base = self.base(root)
        return (
            "Prepare with download enabled (torchvision.datasets.GTSRB fetches the training "
            "images, test images and test labels from sid.erda.dk), or unpack them so that "
            f"{base}/GTSRB/Training/00000/*.ppm, {base}/GTSRB/Final_Test/Images/*.ppm and "
            f"{base}/GT-final_test.csv exist."
        )

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        training = require_dir(self, root, self.base(root) / "GTSRB" / "Training")
        train = []
        for label in range(self.num_classes):
            folder = training / f"{label:05d}"
            if not folder.is_dir():
                raise not_found(self, root, f"class folder {folder}")
            train += [(p, label) for p in image_files(folder)]
        images = require_dir(self, root, self.base(root) / "GTSRB" / "Final_Test" / "Images")
        labels = require_file(self, root, self.base(root) / "GT-final_test.csv")
        test = []
        with labels.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter=";", skipinitialspace=True)
            for n, row in enumerate(reader, start=2):
                try:
                    test.append((images / row["Filename"], int(row["ClassId"])))
                except (KeyError, TypeError, ValueError):
                    raise DatasetError(
                        f"{self.key}: {labels}:{n}: expected ';'-separated columns Filename and "
                        f"ClassId, got {row}; fetch GTSRB_Final_Test_GT.zip again"
                    ) from None
        return make_manifest(self, train, test)


DATASETS.add(Gtsrb.key, Gtsrb())
