"""The offline demo world: Fashion-MNIST with a fixed domain shift.

Source domain: the first 30,000 clean training images (only the demo CLIP's contrastive
pretraining sees them). Target domain: the same images after a fixed shift (contrast x0.5
around mid-grey plus Gaussian noise, sigma 0.15): a class-balanced, seeded 100-per-class
subset of the *held-out* training half (indices 30,000-59,999) is the unlabelled adaptation
split, and all 10,000 shifted test images are scored. The shift lowers zero-shot accuracy
clearly without destroying the signal (rotations or inversion drop it to chance).

Files come from Debian's ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist/,
gzipped idx files), unpacked into torchvision's FashionMNIST layout under the data root;
when they are absent and ``download=True``, torchvision's own downloader is used.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest, Sample

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SOURCE_END = 30_000  # train[:SOURCE_END] is the source domain, the rest is held out
ADAPT_PER_CLASS = 100
SHIFT_CONTRAST = 0.5
SHIFT_NOISE_SIGMA = 0.15
SHIFT_SEED = 20251002  # the shift is part of the benchmark: fixed, not a run seed


def apply_shift(images: np.ndarray, *, stream: int) -> np.ndarray:
    """The target-domain transformation: uint8 (n, H, W) -> uint8 (n, H, W), deterministic."""
    rng = np.random.default_rng([SHIFT_SEED, stream])
    x = images.astype(np.float32) / 255.0
    x = 0.5 + SHIFT_CONTRAST * (x - 0.5)
    x = x + rng.normal(0.0, SHIFT_NOISE_SIGMA, size=x.shape).astype(np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def ensure_raw_files(root: Path, *, download: bool = False) -> Path:
    """Unpack Fashion-MNIST into ``root/FashionMNIST/raw`` (torchvision's layout)."""
    raw = Path(root) / "FashionMNIST" / "raw"
    if all((raw / name).is_file() for name in RAW_FILES):
        return raw
    if all((DEBIAN_DIR / f"{name}.gz").is_file() for name in RAW_FILES):
        raw.mkdir(parents=True, exist_ok=True)
        for name in RAW_FILES:
            tmp = raw / f".{name}.tmp"
            with gzip.open(DEBIAN_DIR / f"{name}.gz", "rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(raw / name)
        return raw
    if download:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
        return raw
    raise DatasetError(
        f"Fashion-MNIST not found: looked in {DEBIAN_DIR} (Debian package 'dataset-fashion-mnist': "
        f"apt-get install dataset-fashion-mnist) and in {raw} (torchvision's FashionMNIST layout). "
        "Install the package, or allow torchvision's download where the network is reachable."
    )


def load_split(root: Path, *, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Clean uint8 images (n, 28, 28) and int64 labels of one official split."""
    from torchvision.datasets import FashionMNIST

    ensure_raw_files(root)
    ds = FashionMNIST(str(root), train=train, download=False)
    return ds.data.numpy(), ds.targets.numpy().astype(np.int64)


def balanced_subset(labels: np.ndarray, per_class: int, *, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` seeded random picks from every class."""
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False)
        for c in np.unique(labels)
    ]
    return np.sort(np.concatenate(picks))


def _write_pngs(images: np.ndarray, folder: Path, ids: np.ndarray) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for image, idx in zip(images, ids, strict=True):
        path = folder / f"{int(idx):05d}.png"
        if not path.is_file():
            tmp = folder / f".{int(idx):05d}.png.tmp"
            Image.fromarray(image, mode="L").save(tmp, format="PNG")
            tmp.replace(path)
        paths.append(str(path.resolve()))
    return paths


class FashionShift(DatasetSpec):
    key = "fashion_shift"
    title = "Fashion-MNIST under a fixed contrast + noise shift (offline demo)"
    label = "Fashion-shift"
    num_classes = 10
    source = "generated"
    expected_train = ADAPT_PER_CLASS * 10
    expected_test = 10_000

    def is_present(self, root: Path) -> bool:
        raw = Path(root) / "FashionMNIST" / "raw"
        return all((raw / n).is_file() or (DEBIAN_DIR / f"{n}.gz").is_file() for n in RAW_FILES)

    def download_help(self, root: Path) -> str:
        return f"apt-get install dataset-fashion-mnist (files appear in {DEBIAN_DIR})"

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root)
        train_x, train_y = load_split(root, train=True)
        test_x, test_y = load_split(root, train=False)
        # The folder name carries the shift's parameters: generated files are keyed by content.
        target = root / f"target-c{SHIFT_CONTRAST}-n{SHIFT_NOISE_SIGMA}-s{SHIFT_SEED}-p{seed}"
        held_out = np.arange(SOURCE_END, len(train_y))
        picked = held_out[balanced_subset(train_y[held_out], ADAPT_PER_CLASS, seed=seed)]
        adapt_paths = _write_pngs(apply_shift(train_x[picked], stream=1), target / "adapt", picked)
        test_ids = np.arange(len(test_y))
        test_paths = _write_pngs(apply_shift(test_x, stream=2), target / "test", test_ids)
        return Manifest(
            classes=self.classes(),
            train=[Sample(p, int(y)) for p, y in zip(adapt_paths, train_y[picked], strict=True)],
            test=[Sample(p, int(y)) for p, y in zip(test_paths, test_y, strict=True)],
        )


DATASETS.add(FashionShift.key, FashionShift())
