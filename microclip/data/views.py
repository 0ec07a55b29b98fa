"""The image views of spec/method.md §6, §9 and spec/baselines.md §0.

weak    resize short side (bicubic) + random crop               (pseudo-labels)
strong  RandomResizedCrop(scale 0.3-1) + flip + RandAugment m9   (timm's transform factory);
        its geometric ops fill with ``strong_fill``: black, as the release (default), or the mean
crops   ``num_crops`` (8) square crops of side U(0.5, 0.9) * min(H, W) of the ORIGINAL image,
        each through the weak view
test    resize short side + centre crop (option: random crop, the release's behaviour)
lafter_strong  LaFTer's SimSiam-style view (baselines §3.2)

This is the PIL path (``runtime.views: cpu``); :mod:`microclip.data.device_views` renders the
same views in batches on the training device from parameters drawn with the same random calls.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VIEW_NAMES = ("weak", "strong", "crops", "test", "lafter_strong")

STRONG_AUTO_AUGMENT = "rand-m9-mstd0.5-inc1"  # timm's RandAugment config of the releases
STRONG_RATIO = (3 / 4, 4 / 3)  # timm's RandomResizedCrop default aspect ratios
LAFTER_SCALE = (0.2, 1.0)
LAFTER_JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
LAFTER_JITTER_PROB = 0.8
LAFTER_GRAY_PROB = 0.2
LAFTER_BLUR_RADIUS = (0.1, 2.0)


@dataclass(frozen=True)
class ViewSpec:
    """What the backbone expects: input size and normalisation."""

    image_size: int
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    num_crops: int = 8
    crop_scale: tuple[float, float] = (0.5, 0.9)
    strong_scale: tuple[float, float] = (0.3, 1.0)
    test_crop: str = "center"  # "center" (default) or "random" (release parity)
    # what the strong view's RandAugment rotations/shears/translations fill with: "zero" (the
    # release builds timm's transform with mean 0 / std 1, normalising afterwards) or "mean"
    strong_fill: Literal["zero", "mean"] = "zero"


def strong_fill_colour(spec: ViewSpec) -> tuple[int, int, int]:
    """The RGB fill of the strong view's geometric ops, as timm derives it from a mean."""
    if spec.strong_fill not in ("zero", "mean"):
        raise ValueError(f"strong_fill must be 'zero' or 'mean', got {spec.strong_fill!r}")
    mean = (0.0, 0.0, 0.0) if spec.strong_fill == "zero" else spec.mean
    return tuple(min(255, round(255 * m)) for m in mean)  # type: ignore[return-value]


def _normalize(spec: ViewSpec) -> T.Compose:
    return T.Compose([T.ToTensor(), T.Normalize(spec.mean, spec.std)])


def weak_transform(spec: ViewSpec) -> T.Compose:
    size = spec.image_size
    return T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomCrop(size),
            _normalize(spec),
        ]
    )


def test_transform(spec: ViewSpec) -> T.Compose:
    size = spec.image_size
    crop = T.CenterCrop(size) if spec.test_crop == "center" else T.RandomCrop(size)
    return T.Compose(
        [T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), crop, _normalize(spec)]
    )


def strong_transform(spec: ViewSpec) -> T.Compose:
    """timm's training transform with the releases' arguments (baselines §0).

    timm fills RandAugment's geometric ops with the mean it is given, so "zero" builds it with
    mean 0 / std 1 (as the release does) and normalises afterwards; "mean" lets timm normalise.
    """
    from timm.data import create_transform

    strong_fill_colour(spec)  # rejects an unknown strong_fill
    zero = spec.strong_fill == "zero"
    timm_transform = create_transform(
        input_size=spec.image_size,
        is_training=True,
        scale=spec.strong_scale,
        ratio=STRONG_RATIO,
        hflip=0.5,
        color_jitter=0.0,
        auto_augment=STRONG_AUTO_AUGMENT,
        interpolation="bicubic",
        mean=(0.0, 0.0, 0.0) if zero else spec.mean,
        std=(1.0, 1.0, 1.0) if zero else spec.std,
        re_prob=0.0,
    )
    if not zero:
        return timm_transform
    return T.Compose([timm_transform, T.Normalize(spec.mean, spec.std)])


class _RandomGaussianBlur:
    """PIL Gaussian blur with radius U(0.1, 2.0), always applied (LaFTer's strong view)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(*LAFTER_BLUR_RADIUS)))


def lafter_strong_transform(spec: ViewSpec) -> T.Compose:
    return T.Compose(
        [
            T.RandomResizedCrop(spec.image_size, scale=LAFTER_SCALE),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(*LAFTER_JITTER)], p=LAFTER_JITTER_PROB),
            T.RandomGrayscale(p=LAFTER_GRAY_PROB),
            _RandomGaussianBlur(),
            _normalize(spec),
        ]
    )


def crop_boxes(
    width: int, height: int, count: int, scale: tuple[float, float]
) -> list[tuple[int, int, int, int]]:
    """``count`` square (left, top, right, bottom) boxes of side U(scale) * short side.

    Drawn with Python's ``random`` (one uniform and two randints per box), shared by the
    PIL path and the device path so both see the same crops for the same seed.
    """
    short = min(width, height)
    boxes = []
    for _ in range(count):
        side = max(1, int(round(random.uniform(*scale) * short)))
        left = random.randint(0, width - side)
        top = random.randint(0, height - side)
        boxes.append((left, top, left + side, top + side))
    return boxes


class MultiCrop:
    """``num_crops`` random square crops of the original image, each through the weak view."""

    def __init__(self, spec: ViewSpec) -> None:
        self.spec = spec
        self.weak = weak_transform(spec)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        boxes = crop_boxes(*image.size, self.spec.num_crops, self.spec.crop_scale)
        return torch.stack([self.weak(image.crop(box)) for box in boxes])  # (V, 3, S, S)


class Views:
    """Callable image -> {view name: tensor} for the requested views only."""

    def __init__(self, spec: ViewSpec, names: Sequence[str]) -> None:
        unknown = sorted(set(names) - set(VIEW_NAMES))
        if unknown:
            raise ValueError(f"unknown view(s) {unknown}; known: {', '.join(VIEW_NAMES)}")
        builders = {
            "weak": weak_transform,
            "strong": strong_transform,
            "crops": MultiCrop,
            "test": test_transform,
            "lafter_strong": lafter_strong_transform,
        }
        self.transforms = {name: builders[name](spec) for name in names}

    def __call__(self, image: Image.Image) -> dict[str, torch.Tensor]:
        return {name: transform(image) for name, transform in self.transforms.items()}
