"""The README's "Adding a new dataset" example: a folder-per-class dataset of drawn shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["blue circle", "green bar", "red square"]  # sorted, as the folder scan orders them


def draw(name: str, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    image = (rng.random((size, size, 3)) * 40).astype(np.uint8)
    colour = {"red square": (200, 0, 0), "blue circle": (0, 0, 200), "green bar": (0, 200, 0)}
    lo, hi = int(rng.integers(3, 8)), int(rng.integers(20, 25))
    if name == "red square":
        image[lo:hi, lo:hi] = colour[name]
    elif name == "blue circle":
        yy, xx = np.mgrid[:size, :size]
        image[(yy - 14) ** 2 + (xx - 14) ** 2 < (hi - lo) ** 2 // 4] = colour[name]
    else:
        image[:, lo : lo + 5] = colour[name]
    return image


def make_toy_shapes(root: Path, *, train_per_class: int = 20, test_per_class: int = 10) -> Path:
    """Write root/{train,test}/<class>/<i>.png (deterministic)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for name in CLASSES:
            folder = Path(root) / split / name.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(draw(name, rng)).save(folder / f"{i:03d}.png")
    return Path(root)
