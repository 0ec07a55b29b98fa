"""EuroSAT RGB (Helber et al., 2019): 10 land-use classes of Sentinel-2 patches.

Layout (torchvision.datasets.EuroSAT): ``<root>/eurosat/2750/<Class>/<Class>_<n>.jpg``.
Label order is torchvision's (sorted folder names); class names are LaFTer's keys
(``AnnualCrop`` -> "Annual Crop Land", ...), because microCLIP's default description set
uses LaFTer's EuroSAT file (CuPL has none).

Protocol: class-balanced and seeded; per class, the first 1,000 images of a seeded hash
order are adapted on and the next 500 scored (10,000 -> 5,000). Every class has >= 2,000.
"""

from __future__ import annotations

from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import class_folders, image_files, make_manifest, seeded_partition

RENAMED = {
    "AnnualCrop": "Annual Crop Land",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "SeaLake": "Sea or Lake",
}


class EuroSat(DatasetSpec):
    key = "eurosat"
    title = "EuroSAT RGB"
    label = "EuroSAT"
    num_classes = 10
    source = "torchvision"
    expected_train = 10_000
    expected_test = 5_000
    protocol = "1000/class -> 500/class, seeded"

    def __init__(self, *, train_per_class: int = 1_000, test_per_class: int = 500) -> None:
        self.train_per_class = train_per_class
        self.test_per_class = test_per_class

    def images_dir(self, root: Path) -> Path:
        return Path(root) / "eurosat" / "2750"

    def is_present(self, root: Path) -> bool:
        return self.images_dir(root).is_dir()

    def download(self, root: Path) -> None:
        from torchvision.datasets import EuroSAT

        EuroSAT(str(root), download=True)

    def download_help(self, root: Path) -> str:
        return (
            "Prepare with download enabled (torchvision.datasets.EuroSAT fetches EuroSAT.zip), "
            f"or unpack the RGB archive so that {self.images_dir(root)}/<Class>/*.jpg exists."
        )

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        base = self.images_dir(root)
        sizes = [self.train_per_class, self.test_per_class]
        train, test = [], []
        for label, folder in sorted(class_folders(self, root, base, renamed=RENAMED).items()):
            files = image_files(folder)
            if len(files) < sum(sizes):
                raise DatasetError(
                    f"{self.key}: {folder} holds {len(files)} images; the protocol takes "
                    f"{sizes[0]} + {sizes[1]} per class. Re-extract the archive."
                )
            adapt, scored, _ = seeded_partition(files, sizes, base=base, seed=seed, salt=self.key)
            train += [(p, label) for p in adapt]
            test += [(p, label) for p in scored]
        return make_manifest(self, train, test)


DATASETS.add(EuroSat.key, EuroSat())
