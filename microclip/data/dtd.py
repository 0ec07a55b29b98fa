"""DTD, the Describable Textures Dataset (Cimpoi et al., 2014): 47 texture classes.

Layout (torchvision.datasets.DTD): ``<root>/dtd/dtd/images/<class>/<image>.jpg`` and
``<root>/dtd/dtd/labels/{train,val,test}<k>.txt`` (lines ``banded/banded_0002.jpg``); the
archive unpacked directly as ``<root>/dtd/{images,labels}`` is accepted too. Label order is
the sorted class names (torchvision's), which are also CuPL's keys.

Protocol: official split 1, train1 + val1 (3,760 images) adapted on, test1 (1,880) scored.
"""

from __future__ import annotations

from pathlib import Path

from microclip.data.base import DATASETS, DatasetSpec, Manifest
from microclip.data.layout import (
    ClassIndex,
    first_dir,
    make_manifest,
    not_found,
    read_lines,
    require_file,
)

PARTITION = 1


class Dtd(DatasetSpec):
    key = "dtd"
    title = "Describable Textures (split 1)"
    label = "DTD"
    num_classes = 47
    source = "torchvision"
    expected_train = 3_760
    expected_test = 1_880
    protocol = "train1+val1 -> test1"

    def data_dir(self, root: Path) -> Path | None:
        return first_dir(
            d for d in (Path(root) / "dtd" / "dtd", Path(root) / "dtd") if (d / "labels").is_dir()
        )

    def is_present(self, root: Path) -> bool:
        return self.data_dir(root) is not None

    def download(self, root: Path) -> None:
        from torchvision.datasets import DTD

        DTD(str(root), download=True)

    def download_help(self, root: Path) -> str:
        return (
            "Prepare with download enabled (torchvision.datasets.DTD fetches dtd-r1.0.1.tar.gz "
            f"from robots.ox.ac.uk), or unpack it so that {Path(root) / 'dtd' / 'dtd'}/images/"
            "<class>/ and .../labels/train1.txt exist."
        )

    def _read(self, root: Path, data: Path, names: list[str], index: ClassIndex) -> list:
        samples = []
        for name in names:
            listing = require_file(self, root, data / "labels" / f"{name}{PARTITION}.txt")
            for n, line in enumerate(read_lines(listing), start=1):
                cls = line.split("/", 1)[0]
                label = index(cls, where=f"{listing}:{n}")
                samples.append((data / "images" / line, label))
        return samples

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        data = self.data_dir(root)
        if data is None:
            raise not_found(self, root, f"folder {root / 'dtd' / 'dtd' / 'labels'}")
        index = ClassIndex(self, self.classes())
        train = self._read(root, data, ["train", "val"], index)
        test = self._read(root, data, ["test"], index)
        return make_manifest(self, train, test)


DATASETS.add(Dtd.key, Dtd())
