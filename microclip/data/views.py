"""The image views of spec/method.md §6, §9 and spec/baselines.md §0.

weak    resize short side (bicubic) + random crop               (pseudo-labels)
strong  RandomResizedCrop(scale 0.3-1) + flip + RandAugment m9   (timm's transform factory)
crops   8 square crops of side U(0.5, 0.9) * min(H, W) of the ORIGINAL image, each weak
test    resize short side + centre crop (option: random crop, the release's behaviour)
lafter_strong  LaFTer's SimSiam-style view (baselines §3.2)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VIEW_NAMES = ("weak", "strong", "crops", "test", "lafter_strong")


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
    """timm's training transform with the releases' arguments (baselines §0)."""
    from timm.data import create_transform

    return create_transform(
        input_size=spec.image_size,
        is_training=True,
        scale=spec.strong_scale,
        hflip=0.5,
        color_jitter=0.0,
        auto_augment="rand-m9-mstd0.5-inc1",
        interpolation="bicubic",
        mean=spec.mean,
        std=spec.std,
        re_prob=0.0,
    )


class _RandomGaussianBlur:
    """PIL Gaussian blur with radius U(0.1, 2.0), always applied (LaFTer's strong view)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


def lafter_strong_transform(spec: ViewSpec) -> T.Compose:
    return T.Compose(
        [
            T.RandomResizedCrop(spec.image_size, scale=(0.2, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            _RandomGaussianBlur(),
            _normalize(spec),
        ]
    )


class MultiCrop:
    """``num_crops`` random square crops of the original image, each through the weak view."""

    def __init__(self, spec: ViewSpec) -> None:
        self.spec = spec
        self.weak = weak_transform(spec)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        width, height = image.size
        short = min(width, height)
        crops = []
        for _ in range(self.spec.num_crops):
            side = max(1, int(round(random.uniform(*self.spec.crop_scale) * short)))
            left = random.randint(0, width - side)
            top = random.randint(0, height - side)
            crops.append(self.weak(image.crop((left, top, left + side, top + side))))
        return torch.stack(crops)  # (V, 3, S, S)


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
