"""Oxford Flowers-102 (Nilsback & Zisserman, 2008): 102 flower species.

Layout: torchvision's ``<root>/flowers-102/jpg/image_NNNNN.jpg`` plus CoOp's split file
``<root>/flowers-102/split_zhou_OxfordFlowers.json`` (``{"train"|"val"|"test": [[file,
label, name], ...]}``, labels 0-based in ``imagelabels.mat`` order). Class names are CuPL's
keys in label order (three differ from torchvision's spelling, e.g. "globe flower").

Protocol (spec): the CoOp split; its ``train`` list (4,093) is adapted on and its ``test``
list (2,463) scored; ``val`` is unused. torchvision's own ``setid.mat`` split is not used.
"""

from __future__ import annotations

import json
from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import make_manifest, require_dir, require_file

SPLIT_FILE = "split_zhou_OxfordFlowers.json"
SPLIT_URL = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md (section OxfordFlowers)"


class Flowers(DatasetSpec):
    key = "flowers"
    title = "Oxford Flowers-102 (CoOp split)"
    label = "Flowers"
    num_classes = 102
    source = "torchvision"
    expected_train = 4_093
    expected_test = 2_463
    protocol = "CoOp train -> CoOp test"

    def base(self, root: Path) -> Path:
        return Path(root) / "flowers-102"

    def is_present(self, root: Path) -> bool:
        return (self.base(root) / "jpg").is_dir() and (self.base(root) / SPLIT_FILE).is_file()

    def download(self, root: Path) -> None:
        from torchvision.datasets import Flowers102

        Flowers102(str(root), download=True)
        if not (self.base(root) / SPLIT_FILE).is_file():
            raise DatasetError(
                f"{self.key}: images downloaded, but CoOp's {SPLIT_FILE} must be added by hand "
                f"to {self.base(root)} (from {SPLIT_URL})"
            )

    def download_help(self, root: Path) -> str:
        return (
            "Prepare with download enabled (torchvision.datasets.Flowers102 fetches 102flowers.tgz) "
            f"and put CoOp's {SPLIT_FILE} (from {SPLIT_URL}) into {self.base(root)}; the expected "
            f"layout is {self.base(root)}/jpg/image_00001.jpg and {self.base(root)}/{SPLIT_FILE}."
        )

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        images = require_dir(self, root, self.base(root) / "jpg")
        split_path = require_file(self, root, self.base(root) / SPLIT_FILE)
        try:
            split = json.loads(split_path.read_text(encoding="utf-8"))
            parts = {
                name: [(images / str(item[0]), int(item[1])) for item in split[name]]
                for name in ("train", "test")
            }
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as err:
            raise DatasetError(
                f"{self.key}: {split_path} is not CoOp's split file (expected keys train/test "
                f"holding [file, label, name] lists): {err!r}. Fetch it from {SPLIT_URL}."
            ) from None
        return make_manifest(self, parts["train"], parts["test"])


DATASETS.add(Flowers.key, Flowers())
