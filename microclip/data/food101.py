"""Food-101 (Bossard et al., 2014): 101 dishes, 750 training and 250 test images each.

Layout (torchvision.datasets.Food101): ``<root>/food-101/meta/{train,test}.json`` (class ->
list of ``<class>/<id>``) and ``<root>/food-101/images/<class>/<id>.jpg``. Label order is the
sorted folder names (torchvision's); class names are CuPL's keys (underscores as spaces).

Protocol: official train (75,750) adapted on, official test (25,250) scored.
"""

from __future__ import annotations

import json
from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import ClassIndex, make_manifest, require_file


class Food101(DatasetSpec):
    key = "food101"
    title = "Food-101"
    label = "Food101"
    num_classes = 101
    source = "torchvision"
    expected_train = 75_750
    expected_test = 25_250
    protocol = "train -> test"

    def base(self, root: Path) -> Path:
        return Path(root) / "food-101"

    def is_present(self, root: Path) -> bool:
        return (self.base(root) / "meta" / "train.json").is_file()

    def download(self, root: Path) -> None:
        from torchvision.datasets import Food101 as TorchvisionFood101

        TorchvisionFood101(str(root), download=True)

    def download_help(self, root: Path) -> str:
        return (
            "Prepare with download enabled (torchvision.datasets.Food101 fetches food-101.tar.gz "
            f"from data.vision.ee.ethz.ch), or unpack it so that {self.base(root)}/meta/train.json "
            "and .../images/<class>/ exist."
        )

    def _read(self, root: Path, split: str, index: ClassIndex) -> list:
        listing = require_file(self, root, self.base(root) / "meta" / f"{split}.json")
        try:
            meta = json.loads(listing.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DatasetError(
                f"{self.key}: {listing} is not valid JSON ({err}); re-extract"
            ) from None
        images = self.base(root) / "images"
        samples = []
        for cls in sorted(meta):
            label = index(cls, where=str(listing))
            samples += [(images / f"{rel}.jpg", label) for rel in meta[cls]]
        return samples

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        index = ClassIndex(self, self.classes())
        return make_manifest(
            self, self._read(root, "train", index), self._read(root, "test", index)
        )


DATASETS.add(Food101.key, Food101())
