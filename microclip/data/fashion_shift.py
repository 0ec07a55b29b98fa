"""The offline demo world (version 2): Fashion-MNIST objects in scenes, under a domain shift.

A miniature of what microCLIP relies on in real photographs: an object that fills only part
of a larger image, at varied scale and position, over a background. Every image is a
``CANVAS`` x ``CANVAS`` RGB scene: one Fashion-MNIST item, resized to a side drawn from
``OBJECT_SCALE`` x canvas, tinted, pasted at a uniform position over a smooth two-colour
background with pixel noise. The object's box is known and recorded in the manifest (only the
mechanism diagnostics read it).

Domains (fixed, part of the benchmark, not a run seed):

- SOURCE (only the demo CLIP's pretraining sees it): the first 30,000 training items on calm
  dark backgrounds (``SOURCE_STYLE``).
- TARGET: the held-out training items (a seeded, class-balanced 100 per class are the
  unlabelled adaptation split) and a seeded, class-balanced 200 per class of the test items
  (scored), on busier, brighter, noisier backgrounds with a dimmer object (``TARGET_STYLE``).
  The README's demo section gives the figures that fixed the shift.

Files come from Debian's ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist/,
gzipped idx files), unpacked into torchvision's FashionMNIST layout under the data root;
when they are absent and ``download=True``, torchvision's own downloader is used.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest, Sample
from microclip.io import atomic_write_json

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SOURCE_END = 30_000  # train[:SOURCE_END] is the source domain, the rest is held out
ADAPT_PER_CLASS = 100
TEST_PER_CLASS = 200
CANVAS = 48  # scene side in pixels (the demo CLIP sees 48 x 48 with 8 px patches: 6 x 6)
OBJECT_SCALE = (0.55, 0.85)  # object side / canvas side
OBJECT_JITTER = 0.4  # the object's centre moves up to this share of its free range off centre
OBJECT_THRESHOLD = 0.15  # item intensity (0-1) above which a pixel counts as object
WORLD_SEED = 20251002  # the scenes and the shift are part of the benchmark: fixed
WORLD_VERSION = 2


@dataclass(frozen=True)
class SceneStyle:
    """How the scenes of one domain look (colours in [0, 1])."""

    background_lo: tuple[float, float]  # range of the first background colour's channels
    background_hi: tuple[float, float]  # range of the second colour's channels
    background_cells: int  # the background blends the two colours over a cells x cells field
    object_level: tuple[float, float]  # the object's brightness
    noise_sigma: float  # Gaussian pixel noise
    object_blur: float = 0.0  # Gaussian blur radius (px of the 28 px item) before pasting
    object_pixels: int = 0  # > 0: the item is pixelated to this many pixels a side first
    object_tint: float = 0.15  # each colour channel of the object loses up to this share


SOURCE_STYLE = SceneStyle((0.05, 0.45), (0.05, 0.45), 3, (0.65, 1.0), 0.03)
# The shift: the object is out of focus (Gaussian blur, radius 2.5 px at the item's 28 px
# scale) and the pixel noise doubles; the backgrounds stay the source's.
TARGET_STYLE = SceneStyle((0.05, 0.45), (0.05, 0.45), 3, (0.65, 1.0), 0.06, object_blur=2.5)


def _smooth_fields(rng: np.random.Generator, n: int, cells: int, size: int) -> np.ndarray:
    """(n, size, size) fields in [0, 1]: bicubic upsampling of cells x cells random values."""
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.random((n, 1, cells, cells)).astype(np.float32))
    fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return fine[:, 0].clamp(0.0, 1.0).numpy()


def _resized_items(items: np.ndarray, sides: np.ndarray, style: SceneStyle) -> list[np.ndarray]:
    """Every item at its own side length (float in [0, 1]), batched by side."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(items.astype(np.float32) / 255.0)[:, None]  # (n, 1, 28, 28)
    if style.object_pixels:
        x = F.interpolate(x, size=(style.object_pixels,) * 2, mode="bilinear", antialias=True,
                          align_corners=False)
    if style.object_blur:
        radius = int(np.ceil(3 * style.object_blur))
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1) / style.object_blur) ** 2)
        taps = (taps / taps.sum()).view(1, 1, 1, -1)
        x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), taps)
        x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), taps.transpose(2, 3))
    out: list[np.ndarray] = [np.empty(0)] * len(items)
    for side in np.unique(sides):
        rows = np.flatnonzero(sides == side)
        resized = F.interpolate(x[rows], size=(int(side),) * 2, mode="bilinear",
                                align_corners=False).clamp(0.0, 1.0)
        for row, image in zip(rows, resized[:, 0].numpy(), strict=True):
            out[row] = image
    return out


def _blend(lo, hi, mix, colour, alpha, noise_sigma: float, *, seed: int) -> np.ndarray:
    """background(lo, hi, mix) x (1 - alpha) + colour x alpha + noise -> uint8 (n, C, C, 3).

    In torch (several threads, in place): the source domain is 30,000 scenes."""
    import torch

    t = {k: torch.from_numpy(v) for k, v in
         {"lo": lo, "hi": hi, "mix": mix, "colour": colour, "alpha": alpha}.items()}
    scene = t["hi"] - t["lo"]  # (n, 1, 1, 3) -> broadcast below
    scene = t["lo"] + scene * t["mix"]  # (n, C, C, 3) background
    scene.mul_(1.0 - t["alpha"]).add_(t["colour"] * t["alpha"])
    noise = torch.randn(scene.shape, generator=torch.Generator().manual_seed(seed))
    scene.add_(noise.mul_(noise_sigma)).clamp_(0.0, 1.0).mul_(255.0).add_(0.5)
    return scene.to(torch.uint8).numpy()


def compose_scenes(
    items: np.ndarray, style: SceneStyle, *, seed: int | list[int], with_alpha: bool = False
) -> tuple[np.ndarray, ...]:
    """Scenes of Fashion-MNIST items: uint8 (n, 28, 28) -> uint8 (n, C, C, 3), boxes (n, 4)
    [, the object's opacity uint8 (n, C, C) with ``with_alpha``].

    Boxes are (x0, y0, x1, y1) in scene pixels, tight around the object's pixels. The same
    items, style and seed give the same scenes on every machine.
    """
    rng = np.random.default_rng(seed)
    n = len(items)
    alpha = np.zeros((n, CANVAS, CANVAS), np.float32)  # the object's opacity
    boxes = np.zeros((n, 4), np.float32)
    sides = np.round(rng.uniform(*OBJECT_SCALE, n) * CANVAS).astype(int)
    offsets = 0.5 + OBJECT_JITTER * (rng.random((n, 2)) - 0.5)  # in [0, 1] of the free range
    for i, item in enumerate(_resized_items(items, sides, style)):
        side = sides[i]
        x0, y0 = np.round(offsets[i] * (CANVAS - side)).astype(int)
        alpha[i, y0 : y0 + side, x0 : x0 + side] = item
        ys, xs = np.nonzero(alpha[i] > OBJECT_THRESHOLD)
        boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else (
            x0, y0, x0 + side, y0 + side)
    lo = rng.uniform(*style.background_lo, (n, 1, 1, 3)).astype(np.float32)
    hi = rng.uniform(*style.background_hi, (n, 1, 1, 3)).astype(np.float32)
    mix = _smooth_fields(rng, n, style.background_cells, CANVAS)[..., None]  # (n, C, C, 1)
    tint = 1.0 - style.object_tint * rng.random((n, 1, 1, 3)).astype(np.float32)
    colour = rng.uniform(*style.object_level, (n, 1, 1, 1)).astype(np.float32) * tint
    scene = _blend(lo, hi, mix, colour, alpha[..., None], style.noise_sigma,
                   seed=int(rng.integers(2**31)))
    if with_alpha:
        return scene, boxes, (alpha * 255.0 + 0.5).astype(np.uint8)
    return scene, boxes


def source_scenes(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The source domain (pretraining only): scenes, labels and object opacity of
    train[:SOURCE_END]."""
    train_x, train_y = load_split(Path(root), train=True)
    scenes, _, alpha = compose_scenes(
        train_x[:SOURCE_END], SOURCE_STYLE, seed=[WORLD_SEED, 0], with_alpha=True
    )
    return scenes, train_y[:SOURCE_END], alpha


def source_test_scenes(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Source-domain scenes of the test items (the pretrained CLIP's source zero-shot)."""
    test_x, test_y = load_split(Path(root), train=False)
    ids = balanced_subset(test_y, TEST_PER_CLASS, seed=0)
    scenes, _ = compose_scenes(test_x[ids], SOURCE_STYLE, seed=[WORLD_SEED, 3])
    return scenes, test_y[ids]


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
    """Clean uint8 items (n, 28, 28) and int64 labels of one official split."""
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
            Image.fromarray(image).save(tmp, format="PNG")
            tmp.replace(path)
        paths.append(str(path.resolve()))
    return paths


def target_split_ids(
    train_y: np.ndarray, test_y: np.ndarray, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Item ids of the demo's unlabelled adaptation split (class-balanced, from the held-out
    train[SOURCE_END:]) and of its scored test split (class-balanced test items)."""
    held_out = np.arange(SOURCE_END, len(train_y))
    adapt_ids = held_out[balanced_subset(train_y[held_out], ADAPT_PER_CLASS, seed=seed)]
    return adapt_ids, balanced_subset(test_y, TEST_PER_CLASS, seed=seed)


def write_scenes(
    items: np.ndarray, labels: np.ndarray, ids: np.ndarray, style: SceneStyle, *,
    seed: list[int], folder: Path,
) -> list[Sample]:
    """Scenes of ``items[ids]`` in ``style`` written as ``folder/<id>.png``, as boxed samples."""
    scenes, boxes = compose_scenes(items[ids], style, seed=seed)
    paths = _write_pngs(scenes, folder, ids)
    return [
        Sample(p, int(y), tuple(float(v) for v in b))
        for p, y, b in zip(paths, labels[ids], boxes, strict=True)
    ]


class FashionShift(DatasetSpec):
    key = "fashion_shift"
    title = "Fashion-MNIST objects in scenes; target: blurred objects, stronger noise (offline demo)"
    label = "Fashion-shift"
    num_classes = 10
    source = "generated"
    expected_train = ADAPT_PER_CLASS * 10
    expected_test = TEST_PER_CLASS * 10

    def is_present(self, root: Path) -> bool:
        raw = Path(root) / "FashionMNIST" / "raw"
        return all((raw / n).is_file() or (DEBIAN_DIR / f"{n}.gz").is_file() for n in RAW_FILES)

    def download_help(self, root: Path) -> str:
        return f"apt-get install dataset-fashion-mnist (files appear in {DEBIAN_DIR})"

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root)
        train_x, train_y = load_split(root, train=True)
        test_x, test_y = load_split(root, train=False)
        # The folder name carries the world's version and seed: generated files are keyed
        # by content, so a changed world never reuses old images.
        target = root / f"scenes-v{WORLD_VERSION}-s{WORLD_SEED}-p{seed}"
        adapt_ids, test_ids = target_split_ids(train_y, test_y, seed=seed)
        adapt = write_scenes(train_x, train_y, adapt_ids, TARGET_STYLE, seed=[WORLD_SEED, 1],
                             folder=target / "adapt")
        test = write_scenes(test_x, test_y, test_ids, TARGET_STYLE, seed=[WORLD_SEED, 2],
                            folder=target / "test")
        atomic_write_json(target / "world.json", {
            "version": WORLD_VERSION, "seed": WORLD_SEED, "canvas": CANVAS,
            "object_scale": OBJECT_SCALE, "source_style": SOURCE_STYLE.__dict__,
            "target_style": TARGET_STYLE.__dict__,
        })
        return Manifest(classes=self.classes(), train=adapt, test=test)


DATASETS.add(FashionShift.key, FashionShift())


# -- the README's "Adding a new dataset" example -----------------------------------------------
FOLDER_EXAMPLE_CLASSES = ("sandal", "sneaker", "bag", "ankle boot")


def write_folder_dataset(
    root: Path,
    out: Path,
    *,
    classes: tuple[str, ...] = FOLDER_EXAMPLE_CLASSES,
    train_per_class: int = 50,
    test_per_class: int = 50,
    seed: int = 0,
) -> Path:
    """Write target-style scenes of a class subset as ``out/{train,test}/<class>/<id>.png``.

    A custom dataset the demo CLIP can read (the demo world's shift, another label set), so
    the config-only example scores above chance and a class-order mistake shows. Its items
    are disjoint from the pretraining items, the demo's adaptation split and its test split.
    """
    all_classes = FashionShift().classes()
    unknown = [c for c in classes if c not in all_classes]
    if unknown:
        raise DatasetError(f"classes {unknown} are not demo-world classes; allowed: {all_classes}")
    root, out = Path(root), Path(out)
    train_x, train_y = load_split(root, train=True)
    test_x, test_y = load_split(root, train=False)
    used_adapt, used_test = target_split_ids(train_y, test_y, seed=seed)
    held_out = np.arange(SOURCE_END, len(train_y))
    pools = {
        "train": (train_x, train_y, np.setdiff1d(held_out, used_adapt), train_per_class, 4),
        "test": (test_x, test_y, np.setdiff1d(np.arange(len(test_y)), used_test),
                 test_per_class, 5),
    }
    rng = np.random.default_rng([WORLD_SEED, seed, 6])
    for split, (items, labels, pool, per_class, stream) in pools.items():
        for name in classes:
            label = all_classes.index(name)
            ids = np.sort(rng.choice(pool[labels[pool] == label], size=per_class, replace=False))
            write_scenes(items, labels, ids, TARGET_STYLE, seed=[WORLD_SEED, stream, label],
                         folder=out / split / name.replace(" ", "_"))
    return out
