"""Stanford Cars (Krause et al., 2013): 196 car models, names "Make Model Type Year".

Layout (torchvision.datasets.StanfordCars, current version): ``<root>/stanford_cars/`` with
``devkit/cars_meta.mat`` (``class_names``), ``devkit/cars_train_annos.mat`` and
``cars_test_annos_withlabels.mat`` (struct arrays with ``fname`` and 1-based ``class``),
and the images in ``cars_train/`` and ``cars_test/``. Label order is ``cars_meta.mat``;
class names are CuPL's keys, which equal ``class_names`` except "Ram C/V Cargo Van
Minivan 2012" -> "Ram CV Cargo Van Minivan 2012". Reading the .mat files needs scipy.

Protocol: official train (8,144) adapted on, official test (8,041) scored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import make_manifest, require_dir, require_file

RENAMED = {"Ram C/V Cargo Van Minivan 2012": "Ram CV Cargo Van Minivan 2012"}


def _loadmat(path: Path, key: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        return np.atleast_1d(loadmat(str(path), squeeze_me=True)[key])
    except (KeyError, ValueError, OSError) as err:
        raise DatasetError(
            f"cars: {path} has no readable '{key}' ({err!r}); re-download it"
        ) from None


class Cars(DatasetSpec):
    key = "cars"
    title = "Stanford Cars"
    label = "Cars"
    num_classes = 196
    source = "manual"
    expected_train = 8_144
    expected_test = 8_041
    protocol = "train -> test"

    def base(self, root: Path) -> Path:
        return Path(root) / "stanford_cars"

    def is_present(self, root: Path) -> bool:
        return (self.base(root) / "devkit" / "cars_meta.mat").is_file()

    def download_help(self, root: Path) -> str:
        base = self.base(root)
        return (
            "Stanford Cars is a manual download (the original URL is gone; torchvision cannot "
            "fetch it; mirrors exist on Kaggle). Expected layout: "
            f"{base}/devkit/cars_meta.mat, {base}/devkit/cars_train_annos.mat, "
            f"{base}/cars_test_annos_withlabels.mat, {base}/cars_train/*.jpg, {base}/cars_test/*.jpg."
        )

    def _test_annotations(self, root: Path) -> Path:
        for path in (
            self.base(root) / "cars_test_annos_withlabels.mat",
            self.base(root) / "devkit" / "cars_test_annos_withlabels.mat",
        ):
            if path.is_file():
                return path
        return require_file(self, root, self.base(root) / "cars_test_annos_withlabels.mat")

    def _read(self, root: Path, annotations: Path, images: Path) -> list:
        samples = []
        for row in _loadmat(require_file(self, root, annotations), "annotations"):
            label = int(row["class"]) - 1
            if not 0 <= label < self.num_classes:
                raise DatasetError(f"{self.key}: {annotations}: class {label + 1} out of 1..196")
            samples.append((images / str(row["fname"]), label))
        return samples

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        base = self.base(root)
        meta = require_file(self, root, base / "devkit" / "cars_meta.mat")
        names = [RENAMED.get(str(n), str(n)) for n in _loadmat(meta, "class_names")]
        classes = self.classes()
        if names != classes:
            first = next(
                (i for i, (a, b) in enumerate(zip(names, classes, strict=False)) if a != b),
                min(len(names), len(classes)),
            )
            raise DatasetError(
                f"{self.key}: {meta} class_names differ from microclip/data/classnames/cars.json "
                f"from index {first} on ({len(names)} names); is this the Stanford Cars devkit?"
            )
        train = self._read(
            root,
            base / "devkit" / "cars_train_annos.mat",
            require_dir(self, root, base / "cars_train"),
        )
        test = self._read(
            root, self._test_annotations(root), require_dir(self, root, base / "cars_test")
        )
        return make_manifest(self, train, test)


DATASETS.add(Cars.key, Cars())
