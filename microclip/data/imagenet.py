"""ImageNet-1k (ILSVRC 2012, Russakovsky et al., 2015): 1,000 classes.

Layout (torchvision.datasets.ImageNet after its one-time parsing, i.e. the common
ImageFolder layout): ``<root>/imagenet/train/<wnid>/*.JPEG`` and
``<root>/imagenet/val/<wnid>/*.JPEG``. Label order is the sorted WordNet ids (shipped in
``meta/imagenet_wnids.json``). Class names are the CLIP/open_clip names
(``open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES``), which CuPL's ImageNet file is keyed
by; they are shipped as ``classnames/imagenet.json`` (copied from open_clip 3.3) so the data
layer needs no open_clip import. Two pairs share a name ("missile", "sunglasses"), as in CLIP.

Protocol: per class, the 50 training images first in a seeded hash order are adapted on
(50,000 in all); the whole validation set (50,000) is scored.
"""

from __future__ import annotations

from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest, package_json
from microclip.data.layout import image_files, make_manifest, not_found, seeded_partition


def wnids() -> list[str]:
    return list(package_json("meta", "imagenet_wnids"))  # type: ignore[arg-type]


class ImageNet(DatasetSpec):
    key = "imagenet"
    title = "ImageNet-1k (50/class subset -> val)"
    label = "ImageNet"
    num_classes = 1000
    source = "manual"
    expected_train = 50_000
    expected_test = 50_000
    protocol = "50/class of train, seeded -> val"

    def __init__(self, *, train_per_class: int = 50) -> None:
        self.train_per_class = train_per_class

    def base(self, root: Path) -> Path:
        return Path(root) / "imagenet"

    def is_present(self, root: Path) -> bool:
        return (self.base(root) / "train").is_dir() and (self.base(root) / "val").is_dir()

    def download_help(self, root: Path) -> str:
        base = self.base(root)
        return (
            "ImageNet is a manual download (image-net.org, after registration). Unpack "
            "ILSVRC2012_img_train.tar and sort the validation images into class folders "
            "(torchvision.datasets.ImageNet(root, split='val') does this with the devkit), so "
            f"that {base}/train/n01440764/*.JPEG and {base}/val/n01440764/*.JPEG exist."
        )

    def _class_dirs(self, root: Path, split: str, ids: list[str]) -> list[Path]:
        folder = self.base(root) / split
        if not folder.is_dir():
            raise not_found(self, root, f"folder {folder}")
        present = {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
        absent = [w for w in ids if w not in present]
        extra = sorted(present - set(ids))
        if absent or extra:
            detail = (
                f"{len(absent)} class folders missing (e.g. {', '.join(absent[:3])})"
                if absent
                else ""
            )
            detail += f"; unexpected folders {', '.join(extra[:3])}" if extra else ""
            raise not_found(
                self, root, f"the 1,000 ImageNet-1k class folders in {folder}", f": {detail}"
            )
        return [folder / w for w in ids]

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        ids = wnids()
        base = self.base(root)
        train, test = [], []
        for label, folder in enumerate(self._class_dirs(root, "train", ids)):
            files = image_files(folder)
            if len(files) < self.train_per_class:
                raise DatasetError(
                    f"{self.key}: {folder} holds {len(files)} images; the protocol adapts on "
                    f"{self.train_per_class} per class. Re-extract the training archive."
                )
            adapt, _ = seeded_partition(
                files, [self.train_per_class], base=base, seed=seed, salt=self.key
            )
            train += [(p, label) for p in adapt]
        for label, folder in enumerate(self._class_dirs(root, "val", ids)):
            test += [(p, label) for p in image_files(folder)]
        return make_manifest(self, train, test)


DATASETS.add(ImageNet.key, ImageNet())
