"""Oxford-IIIT Pets (Parkhi et al., 2012): 37 cat and dog breeds.

Layout (torchvision.datasets.OxfordIIITPet): ``<root>/oxford-iiit-pet/images/<id>.jpg``
and ``<root>/oxford-iiit-pet/annotations/{trainval,test}.txt`` (lines ``<id> <class id>
<species> <breed id>``, class ids 1-37). Label = class id - 1; class names are CuPL's keys
(the image-id prefix with spaces, cats capitalised), checked against each line.

Protocol: trainval (3,680) adapted on, test (3,669) scored.
"""

from __future__ import annotations

from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import make_manifest, norm_name, read_lines, require_file


class Pets(DatasetSpec):
    key = "pets"
    title = "Oxford-IIIT Pets"
    label = "Pets"
    num_classes = 37
    source = "torchvision"
    expected_train = 3_680
    expected_test = 3_669
    protocol = "trainval -> test"

    def base(self, root: Path) -> Path:
        return Path(root) / "oxford-iiit-pet"

    def is_present(self, root: Path) -> bool:
        return (self.base(root) / "annotations" / "trainval.txt").is_file()

    def download(self, root: Path) -> None:
        from torchvision.datasets import OxfordIIITPet

        OxfordIIITPet(str(root), download=True)

    def download_help(self, root: Path) -> str:
        return (
            "Prepare with download enabled (torchvision.datasets.OxfordIIITPet fetches images.tar.gz "
            f"and annotations.tar.gz), or unpack both into {self.base(root)} "
            "(images/<id>.jpg, annotations/trainval.txt, annotations/test.txt)."
        )

    def _read(self, root: Path, split: str, classes: list[str]) -> list:
        listing = require_file(self, root, self.base(root) / "annotations" / f"{split}.txt")
        samples = []
        for n, line in enumerate(read_lines(listing), start=1):
            fields = line.split()
            try:
                image_id, label = fields[0], int(fields[1]) - 1
            except (IndexError, ValueError):
                raise DatasetError(f"{self.key}: {listing}:{n}: cannot parse '{line}'") from None
            breed = image_id.rsplit("_", 1)[0]
            if not 0 <= label < len(classes) or norm_name(breed) != norm_name(classes[label]):
                raise DatasetError(
                    f"{self.key}: {listing}:{n}: class id {label + 1} of '{image_id}' does not "
                    f"match the package's class order; is this the official annotations.tar.gz?"
                )
            samples.append((self.base(root) / "images" / f"{image_id}.jpg", label))
        return samples

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        classes = self.classes()
        return make_manifest(
            self, self._read(root, "trainval", classes), self._read(root, "test", classes)
        )


DATASETS.add(Pets.key, Pets())
