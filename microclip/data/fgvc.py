"""FGVC-Aircraft 2013b (Maji et al., 2013), variant level: 100 aircraft models.

Layout (torchvision.datasets.FGVCAircraft): ``<root>/fgvc-aircraft-2013b/data/`` with
``variants.txt`` (one class per line), ``images_variant_{train,test}.txt`` (lines
``<image id> <variant>``) and ``images/<image id>.jpg``. The package's class list is
``variants.txt`` in file order (sorted), spelled as CuPL's keys (identical).

Protocol: the ``train`` split (3,334 images, not trainval) is adapted on; ``test`` (3,333)
is scored.
"""

from __future__ import annotations

from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import ClassIndex, make_manifest, read_lines, require_file


class Fgvc(DatasetSpec):
    key = "fgvc"
    title = "FGVC-Aircraft (variant)"
    label = "Aircraft"
    num_classes = 100
    source = "torchvision"
    expected_train = 3_334
    expected_test = 3_333
    protocol = "train -> test"

    def data_dir(self, root: Path) -> Path:
        return Path(root) / "fgvc-aircraft-2013b" / "data"

    def is_present(self, root: Path) -> bool:
        return (self.data_dir(root) / "variants.txt").is_file()

    def download(self, root: Path) -> None:
        from torchvision.datasets import FGVCAircraft

        FGVCAircraft(str(root), download=True)

    def download_help(self, root: Path) -> str:
        return (
            "Prepare with download enabled (torchvision.datasets.FGVCAircraft fetches "
            "fgvc-aircraft-2013b.tar.gz from robots.ox.ac.uk), or unpack it so that "
            f"{self.data_dir(root)}/variants.txt exists."
        )

    def _read(self, root: Path, data: Path, split: str, index: ClassIndex) -> list:
        listing = require_file(self, root, data / f"images_variant_{split}.txt")
        samples = []
        for n, line in enumerate(read_lines(listing), start=1):
            image_id, _, variant = line.partition(" ")
            label = index(variant, where=f"{listing}:{n}")
            samples.append((data / "images" / f"{image_id}.jpg", label))
        return samples

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        data = self.data_dir(root)
        variants = read_lines(require_file(self, root, data / "variants.txt"))
        classes = self.classes()
        if sorted(variants) != sorted(classes):
            raise DatasetError(
                f"{self.key}: {data / 'variants.txt'} lists {len(variants)} variants that differ "
                f"from microclip/data/classnames/{self.key}.json; is this fgvc-aircraft-2013b?"
            )
        index = ClassIndex(self, classes)
        return make_manifest(
            self, self._read(root, data, "train", index), self._read(root, data, "test", index)
        )


DATASETS.add(Fgvc.key, Fgvc())
