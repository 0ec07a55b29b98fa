"""CUB-200-2011 (Wah et al., 2011): 200 bird species.

Layout (the official CUB_200_2011.tgz, unpacked): ``<root>/CUB_200_2011/`` with
``classes.txt`` (``<id> 001.Black_footed_Albatross``), ``images.txt`` (``<image id>
<relative path>``), ``image_class_labels.txt`` (``<image id> <class id>``),
``train_test_split.txt`` (``<image id> <1 = train, 0 = test>``) and ``images/``. Label =
class id - 1; class names are the folder names without the number, underscores as spaces
("Black footed Albatross", the spelling of CuPL's bird keys), except where the archive
misspells a name: ``141.Artic_Tern`` (so spelled in classes.txt and in the image folder of
every public copy) is the prompt's "Arctic Tern" (``RENAMED``). CuPL has no CUB set.

Protocol: official split, train (5,994) adapted on, test (5,794) scored.
"""

from __future__ import annotations

from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import make_manifest, norm_name, read_lines, require_file

URL = "https://data.caltech.edu/records/65de6-vp158 (CUB_200_2011.tgz)"
# classes.txt entry -> the package's class name, where the archive's words are not the
# prompt's: a typo in CUB_200_2011.tgz itself (classes.txt line 141, images/141.Artic_Tern/).
# Every other entry must match its package name up to case and punctuation.
RENAMED = {"141.Artic_Tern": "Arctic Tern"}


class Cub(DatasetSpec):
    key = "cub"
    title = "CUB-200-2011"
    label = "CUB"
    num_classes = 200
    source = "manual"
    expected_train = 5_994
    expected_test = 5_794
    protocol = "official train -> test"

    def base(self, root: Path) -> Path:
        return Path(root) / "CUB_200_2011"

    def is_present(self, root: Path) -> bool:
        return (self.base(root) / "images.txt").is_file()

    def download_help(self, root: Path) -> str:
        base = self.base(root)
        return (
            f"CUB-200-2011 is a manual download ({URL}); unpack it into {Path(root)} so that "
            f"{base}/images.txt, {base}/classes.txt, {base}/image_class_labels.txt, "
            f"{base}/train_test_split.txt and {base}/images/001.Black_footed_Albatross/ exist."
        )

    def _table(self, root: Path, name: str) -> dict[str, str]:
        """``<id> <value>`` lines of one annotation file as a dict."""
        path = require_file(self, root, self.base(root) / name)
        table = {}
        for n, line in enumerate(read_lines(path), start=1):
            key, sep, value = line.partition(" ")
            if not sep:
                raise DatasetError(f"{self.key}: {path}:{n}: expected '<id> <value>', got '{line}'")
            table[key] = value.strip()
        return table

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        classes = self.classes()
        for class_id, folder in self._table(root, "classes.txt").items():
            label = int(class_id) - 1
            name = RENAMED.get(folder, folder.split(".", 1)[-1])
            if not 0 <= label < len(classes) or norm_name(name) != norm_name(classes[label]):
                raise DatasetError(
                    f"{self.key}: classes.txt id {class_id} is '{folder}', but the package's class "
                    f"{class_id} is '{classes[label] if 0 <= label < len(classes) else '?'}'; "
                    "is this CUB-200-2011?"
                )
        paths = self._table(root, "images.txt")
        labels = self._table(root, "image_class_labels.txt")
        is_train = self._table(root, "train_test_split.txt")
        train, test = [], []
        for image_id, rel in paths.items():
            if image_id not in labels or image_id not in is_train:
                raise DatasetError(
                    f"{self.key}: image {image_id} ({rel}) lacks a label or split line; the "
                    "annotation files disagree, re-extract the archive"
                )
            sample = (self.base(root) / "images" / rel, int(labels[image_id]) - 1)
            (train if is_train[image_id] == "1" else test).append(sample)
        return make_manifest(self, train, test)


DATASETS.add(Cub.key, Cub())
