"""The views of :mod:`microclip.data.views`, rendered in batches on the training device.

Why: the PIL path decodes *and* transforms every image in a DataLoader worker, and one core
delivers ~40 training images/s (the 8 crops alone cost 12 ms). Here (``runtime.views: device``)
a worker only decodes the image and draws each view's *parameters* -- crop boxes, flips,
RandAugment ops and magnitudes, LaFTer's jitter -- with the same random calls, in the same
order, as the PIL path; :func:`render_views` then crops, resizes and augments the whole batch
at once on the device (CUDA, or the CPU with the same code).

Three steps, three places::

    worker   DeviceManifestImages[i]    -> {"image": uint8 (3, H, W), "params": {...}, ...}
    worker   collate_device_batch(items) -> one flat uint8 buffer + stacked parameters
    trainer  render_views(batch, names, spec, device) -> {"weak": (B, 3, S, S), ...}

Pixels follow PIL's arithmetic so both paths agree to a grey level or so: resizes are
torch's antialiased bicubic/bilinear (a port of PIL's resampling), colour ops reproduce
PIL's integer/float rounding, and RandAugment's geometric ops sample where PIL samples and
fill where PIL fills (PIL's bicubic there is the a=-1 cubic, torch's grid_sample the a=-0.75
one: the only approximation, a few grey levels on sharp edges). ``weak`` and ``test`` resize
the whole image and crop it, as the PIL path does (cropping the short side's square first
would move the crop by up to half an output pixel and change the scale slightly).
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from microclip.data.views import (
    LAFTER_BLUR_RADIUS,
    LAFTER_GRAY_PROB,
    LAFTER_JITTER,
    LAFTER_JITTER_PROB,
    LAFTER_SCALE,
    STRONG_RATIO,
    VIEW_NAMES,
    ViewSpec,
    crop_boxes,
    strong_fill_colour,
)

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in original pixels, PIL's crop()
Params = dict[str, torch.Tensor]

# timm's RandAugment "rand-m9-mstd0.5-inc1" (views.STRONG_AUTO_AUGMENT): 2 layers, each one of
# _RAND_INCREASING_TRANSFORMS chosen uniformly, applied with p 0.5 at magnitude N(9, 0.5)
# clipped to [0, 10]; the translations are relative (45 % of the side at magnitude 10).
RAND_OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)
GEOMETRIC_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"})
RA_LAYERS = 2
RA_PROB = 0.5
RA_MAGNITUDE = 9.0
RA_MAGNITUDE_STD = 0.5
RA_MAGNITUDE_MAX = 10.0
RA_TRANSLATE_PCT = 0.45


# --------------------------------------------------------------------------------------------
# parameter sampling (DataLoader workers; CPU, no pixels)
# --------------------------------------------------------------------------------------------


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) after torchvision's ``Resize(size)``: short side -> size, long side truncated."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def _random_crop_offset(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of a size x size crop, drawn as torchvision's ``RandomCrop`` draws it."""
    if height == size and width == size:
        return 0, 0
    top = int(torch.randint(0, height - size + 1, size=(1,)).item())
    left = int(torch.randint(0, width - size + 1, size=(1,)).item())
    return top, left


def weak_offset(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of the weak view's crop in the short-side-resized image (RandomCrop's draw)."""
    return _random_crop_offset(*resized_shape(height, width, size), size)


def offset_of_test_view(height: int, width: int, size: int, crop: str) -> tuple[int, int]:
    """(top, left) of the test view's crop in the resized image: CenterCrop's, or random."""
    if crop == "random":
        return weak_offset(height, width, size)
    if crop != "center":
        raise ValueError(f"test_crop must be 'center' or 'random', got {crop!r}")
    new_h, new_w = resized_shape(height, width, size)
    return int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))


def _central_box(height: int, width: int, ratio: tuple[float, float]) -> Box:
    """RandomResizedCrop's fallback after 10 failed draws: the central crop within ratio."""
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return (left, top, left + w, top + h)


def timm_resized_crop_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float] = STRONG_RATIO
) -> Box:
    """timm's ``RandomResizedCropAndInterpolation.get_params`` (Python's ``random``)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = random.uniform(*scale) * area
        aspect = math.exp(random.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if w <= width and h <= height:
            top = random.randint(0, height - h)
            left = random.randint(0, width - w)
            return (left, top, left + w, top + h)
    return _central_box(height, width, ratio)


def torchvision_resized_crop_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float] = STRONG_RATIO
) -> Box:
    """torchvision's ``RandomResizedCrop.get_params`` (torch's global generator)."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - w + 1, size=(1,)).item())
            return (left, top, left + w, top + h)
    return _central_box(height, width, ratio)


def _flip() -> bool:
    """``RandomHorizontalFlip(0.5)``'s draw."""
    return bool(torch.rand(1) < 0.5)


def _negate(value: float) -> float:
    """timm's ``_randomly_negate``."""
    return -value if random.random() > 0.5 else value


def rand_op_argument(name: str, magnitude: float) -> float:
    """The argument timm's level function gives op ``name`` at ``magnitude`` (sign drawn)."""
    level = magnitude / 10.0
    if name in ("AutoContrast", "Equalize", "Invert"):
        return 0.0
    if name == "Rotate":
        return _negate(level * 30.0)  # degrees
    if name == "PosterizeIncreasing":
        return float(4 - int(level * 4))  # bits kept
    if name == "SolarizeIncreasing":
        return float(256 - min(256, int(level * 256)))  # threshold
    if name == "SolarizeAdd":
        return float(min(128, int(level * 110)))  # added below 128
    if name in ("ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
                "SharpnessIncreasing"):
        return max(0.1, 1.0 + _negate(level * 0.9))  # blend factor
    if name in ("ShearX", "ShearY"):
        return _negate(level * 0.3)
    if name in ("TranslateXRel", "TranslateYRel"):
        return _negate(level * RA_TRANSLATE_PCT)  # fraction of the side
    raise ValueError(f"unknown RandAugment op {name!r}")


def sample_rand_augment() -> Params:
    """One image's RandAugment draws, in timm's order: ops from numpy, the rest from random."""
    ops = np.random.choice(len(RAND_OPS), RA_LAYERS)  # timm: np.random.choice(ops, 2)
    applied, magnitudes, args = [], [], []
    for op in ops.tolist():
        if RA_PROB < 1.0 and random.random() > RA_PROB:
            applied.append(False)
            magnitudes.append(0.0)
            args.append(0.0)
            continue
        magnitude = max(0.0, min(random.gauss(RA_MAGNITUDE, RA_MAGNITUDE_STD), RA_MAGNITUDE_MAX))
        applied.append(True)
        magnitudes.append(magnitude)
        args.append(rand_op_argument(RAND_OPS[op], magnitude))
    return {
        "op": torch.as_tensor(ops, dtype=torch.int64),  # (L,)
        "applied": torch.tensor(applied),  # (L,)
        "magnitude": torch.tensor(magnitudes, dtype=torch.float64),  # (L,)
        "arg": torch.tensor(args, dtype=torch.float64),  # (L,)
    }


def sample_color_jitter() -> Params:
    """``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)``'s draws (torch's generator)."""
    if torch.rand(1) > LAFTER_JITTER_PROB:  # RandomApply skips when p < rand
        return {"jitter": torch.tensor(False), "order": torch.arange(4),
                "factors": torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64)}
    order = torch.randperm(4)
    b, c, s, h = LAFTER_JITTER
    factors = [float(torch.empty(1).uniform_(1 - v, 1 + v)) for v in (b, c, s)]
    factors.append(float(torch.empty(1).uniform_(-h, h)))
    return {"jitter": torch.tensor(True), "order": order,  # (4,) brightness/contrast/sat/hue ids
            "factors": torch.tensor(factors, dtype=torch.float64)}  # (4,)


def _box_tensor(box: Box | Sequence[Box]) -> torch.Tensor:
    return torch.tensor(box, dtype=torch.int64)  # (4,) or (V, 4)


def sample_view_params(
    height: int, width: int, spec: ViewSpec, names: Sequence[str]
) -> dict[str, Params]:
    """Every random choice of the named views for one (height, width) image.

    Views are drawn in ``names`` order with the PIL path's calls, so for one seed both paths
    see the same crops, flips and ops. weak/test: (top, left) in the image resized to short
    side S; crops/strong/lafter_strong: (left, top, right, bottom) boxes in original pixels.
    """
    size = spec.image_size
    params: dict[str, Params] = {}
    for name in names:
        if name == "weak":
            params[name] = {"offset": torch.tensor(weak_offset(height, width, size))}  # (2,)
        elif name == "test":
            offset = offset_of_test_view(height, width, size, spec.test_crop)
            params[name] = {"offset": torch.tensor(offset)}  # (2,) top, left
        elif name == "crops":
            boxes = crop_boxes(width, height, spec.num_crops, spec.crop_scale)
            params[name] = {"box": _box_tensor(boxes).view(spec.num_crops, 4)}
        elif name == "strong":
            box = timm_resized_crop_box(height, width, spec.strong_scale)
            params[name] = {"box": _box_tensor(box), "flip": torch.tensor(_flip()),
                            **sample_rand_augment()}
        elif name == "lafter_strong":
            box = torchvision_resized_crop_box(height, width, LAFTER_SCALE)
            flip = torch.tensor(_flip())
            jitter = sample_color_jitter()
            gray = torch.tensor(bool(torch.rand(1) < LAFTER_GRAY_PROB))
            blur = torch.tensor(random.uniform(*LAFTER_BLUR_RADIUS), dtype=torch.float64)
            params[name] = {"box": _box_tensor(box), "flip": flip, **jitter, "gray": gray,
                            "blur": blur}
        else:
            raise ValueError(f"unknown view {name!r}; known: {', '.join(VIEW_NAMES)}")
    return params


# --------------------------------------------------------------------------------------------
# collate (DataLoader workers)
# --------------------------------------------------------------------------------------------


def collate_device_batch(items: Sequence[Mapping]) -> dict:
    """Items of :class:`~microclip.data.images.DeviceManifestImages` -> one batch.

    Images differ in size, so they are packed (not padded) into one flat uint8 buffer, each
    in (H, W, 3) order, with their sizes: one pinned copy to the device, views cut for free.
    Parameters are stacked per view and field: ``params[view][field]`` is (B, ...).
    """
    sizes = torch.tensor([list(item["image"].shape[-2:]) for item in items], dtype=torch.int64)
    pixels = torch.cat([item["image"].permute(1, 2, 0).reshape(-1) for item in items])
    views = items[0]["params"].keys()
    params = {
        view: {field: torch.stack([item["params"][view][field] for item in items])
               for field in items[0]["params"][view]}
        for view in views
    }
    return {
        "pixels": pixels,  # (sum of H * W * 3,) uint8
        "sizes": sizes,  # (B, 2) rows: (H, W)
        "params": params,
        "label": torch.tensor([int(item["label"]) for item in items], dtype=torch.int64),
        "index": torch.tensor([int(item["index"]) for item in items], dtype=torch.int64),
    }


# --------------------------------------------------------------------------------------------
# rendering (training process, on the device)
# --------------------------------------------------------------------------------------------


def unpack_images(batch: Mapping, device: torch.device) -> list[torch.Tensor]:
    """The batch's images as (3, H, W) views of one buffer on ``device``.

    uint8 on the CPU (torch's fast uint8 resampler); float32 elsewhere, since CUDA's
    antialiased resize takes floating point only.
    """
    pixels = batch["pixels"].to(device, non_blocking=True)
    if device.type != "cpu":
        pixels = pixels.float()
    images, offset = [], 0
    for h, w in batch["sizes"].tolist():
        images.append(pixels[offset:offset + h * w * 3].view(h, w, 3).permute(2, 0, 1))
        offset += h * w * 3
    return images


def resize_boxes(
    images: Sequence[torch.Tensor], owners: Sequence[int], boxes: torch.Tensor, size: int,
    mode: str = "bicubic",
) -> torch.Tensor:
    """Box k of image ``owners[k]`` resized to size x size, antialiased as PIL resizes.

    The one loop over boxes: crops differ in size, which no batched call takes. Returns float32
    grey levels 0..255, rounded as PIL rounds its uint8 output, (N, 3, S, S) contiguous.
    """
    out = torch.empty((len(boxes), 3, size, size), device=images[0].device)
    for k, (owner, (left, top, right, bottom)) in enumerate(
        zip(owners, boxes.tolist(), strict=True)
    ):
        crop = images[owner][None, :, top:bottom, left:right]  # (1, 3, h, w)
        if crop.dtype == torch.uint8:  # the uint8 kernel runs fastest on a channels-last copy
            crop = crop.contiguous(memory_format=torch.channels_last)
            # one pass converts to float and to (3, S, S) layout straight into the batch
            out[k].copy_(F.interpolate(crop, size=(size, size), mode=mode, antialias=True)[0])
        else:
            resized = F.interpolate(crop, size=(size, size), mode=mode, antialias=True)[0]
            out[k].copy_(resized.round_().clamp_(0, 255))
    return out


def normalize(x: torch.Tensor, spec: ViewSpec) -> torch.Tensor:
    """Grey levels 0..255 -> ``ToTensor`` + ``Normalize(spec.mean, spec.std)``, in place."""
    mean = torch.tensor(spec.mean, device=x.device).view(3, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(3, 1, 1)
    return x.div_(255.0).sub_(mean).div_(std)


def hflip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror, in place, the samples whose ``flip`` (N,) bool is set. x (N, 3, S, S)."""
    _apply_rows(x, flip.nonzero().flatten(), lambda sub: sub.flip(-1))
    return x


# -- PIL's pixel arithmetic on grey levels (float32 holding integers 0..255) ------------------


def _div(x: torch.Tensor, value: float) -> torch.Tensor:
    """x / value correctly rounded, as C divides (CUDA turns ``x / 6.0`` into x * (1 / 6))."""
    return x / torch.full((), value, dtype=x.dtype, device=x.device)


def luma(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``convert("L")``: (19595 R + 38470 G + 7471 B + 2^15) >> 16. (N, 1, S, S)."""
    total = x[:, 0:1] * 19595 + x[:, 1:2] * 38470 + x[:, 2:3] * 7471 + 32768  # exact < 2^24
    return torch.floor(total / 65536)


def blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``Image.blend(degenerate, x, factor)``: float32 lerp, clipped, truncated as PIL casts."""
    return (degenerate + factor * (x - degenerate)).clamp_(0, 255).floor_()  # = trunc, >= 0


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """``ImageFilter.SMOOTH`` (3x3, centre 5, /13, rounded); PIL keeps the 1-pixel border."""
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]  # (N, 3, S-2, S) exact sums
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]  # (N, 3, S-2, S-2) 3x3 sums
    out = x.clone()
    out[..., 1:-1, 1:-1] = box.add_(x[..., 1:-1, 1:-1], alpha=4).div_(13).add_(0.5).floor_()
    return out


def autocontrast(x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """``ImageOps.autocontrast``: per channel, int(v * 255 / (hi - lo) - lo * scale)."""
    lo = x.amin(dim=(-2, -1), keepdim=True).double()
    hi = x.amax(dim=(-2, -1), keepdim=True).double()
    scale = torch.full_like(lo, 255.0) / (hi - lo).clamp(min=1)  # as Python divides
    out = (x.double() * scale - lo * scale).floor_().clamp_(0, 255).float()
    return torch.where(hi > lo, out, x)


def equalize(x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """``ImageOps.equalize`` (torchvision's batched uint8 kernel follows PIL's LUT exactly)."""
    return TF.equalize(x.to(torch.uint8)).float()


def invert(x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    return 255.0 - x


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the top ``bits`` bits (0 bits -> black), as ``ImageOps.posterize``."""
    step = torch.pow(2.0, 8.0 - bits)
    return torch.floor(x / step) * step


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return torch.where(x < threshold, x, 255.0 - x)


def solarize_add(x: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """timm's ``solarize_add``: below 128, add and saturate."""
    return torch.where(x < 128, (x + add).clamp_(max=255), x)


def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Color``: blend with the grey image."""
    return blend(luma(x), x, factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Contrast``: blend with the rounded mean grey level."""
    grey = luma(x).double()
    mean = _div(grey.sum(dim=(-3, -2, -1), keepdim=True), float(grey[0].numel()))  # exact sum
    return blend(torch.floor(mean + 0.5).float(), x, factor)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Brightness``: blend with black."""
    return blend(torch.zeros_like(x), x, factor)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Sharpness``: blend with the SMOOTH-filtered image."""
    return blend(_smooth(x), x, factor)


COLOUR_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "AutoContrast": autocontrast,
    "Equalize": equalize,
    "Invert": invert,
    "PosterizeIncreasing": posterize,
    "SolarizeIncreasing": solarize,
    "SolarizeAdd": solarize_add,
    "ColorIncreasing": color,
    "ContrastIncreasing": contrast,
    "BrightnessIncreasing": brightness,
    "SharpnessIncreasing": sharpness,
}


def pil_affine_matrix(name: str, arg: float, size: int) -> tuple[float, ...]:
    """PIL's 6 affine coefficients (output pixel centre -> input point) of a timm op."""
    if name == "ShearX":
        return (1.0, arg, 0.0, 0.0, 1.0, 0.0)
    if name == "ShearY":
        return (1.0, 0.0, 0.0, arg, 1.0, 0.0)
    if name == "TranslateXRel":
        return (1.0, 0.0, arg * size, 0.0, 1.0, 0.0)
    if name == "TranslateYRel":
        return (1.0, 0.0, 0.0, 0.0, 1.0, arg * size)
    if name == "Rotate":  # Image.rotate(arg) about the centre, as PIL builds it
        angle = -math.radians(arg % 360.0)
        cos, sin = round(math.cos(angle), 15), round(math.sin(angle), 15)
        centre = size / 2.0
        return (cos, sin, cos * -centre + sin * -centre + centre,
                -sin, cos, -sin * -centre + cos * -centre + centre)
    raise ValueError(f"{name!r} is not a geometric op")


def affine(x: torch.Tensor, matrices: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """``Image.transform(AFFINE, BICUBIC, fillcolor=fill)`` for each sample of the batch.

    x (N, 3, S, S) grey levels, matrices (N, 6) PIL coefficients, fill (3,). PIL samples at
    matrix @ (x + .5, y + .5), fills when that point leaves the image, clamps the taps at the
    border (padding "border") and truncates; only its cubic differs (a=-1; torch: a=-0.75).
    """
    n, _, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=torch.float32).add_(0.5).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=torch.float32).add_(0.5).view(1, 1, w)
    m = matrices.to(device=x.device, dtype=torch.float32).view(n, 6, 1, 1)
    u = m[:, 0] * xs + m[:, 1] * ys + m[:, 2]  # (N, S, S) input x of each output pixel
    v = m[:, 3] * xs + m[:, 4] * ys + m[:, 5]
    grid = torch.stack((u * (2.0 / w) - 1.0, v * (2.0 / h) - 1.0), dim=-1)  # (N, S, S, 2)
    out = F.grid_sample(x, grid, mode="bicubic", padding_mode="border", align_corners=False)
    outside = ((u < 0) | (u >= w) | (v < 0) | (v >= h)).unsqueeze(1)  # (N, 1, S, S)
    out = torch.where(outside, fill.to(x.device, torch.float32).view(1, 3, 1, 1), out)
    return out.clamp_(0, 255).floor_()


def _apply_rows(
    x: torch.Tensor, rows: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    """x[rows] = fn(x[rows]) in place; ``rows`` lives on the CPU, so no device sync."""
    if rows.numel() == 0:
        return
    index = rows.to(x.device, non_blocking=True)
    x[index] = fn(x[index])


def rand_augment(x: torch.Tensor, params: Params, fill: tuple[int, int, int]) -> torch.Tensor:
    """timm's RandAugment layers on the batch, each sample with its own op and argument.

    Per layer: one call per colour op on the samples that drew it, and one affine resampling
    for all samples that drew a geometric op. x (B, 3, S, S) grey levels, modified in place.
    """
    size = x.shape[-1]
    fill_t = torch.tensor(fill, dtype=torch.float32)
    for layer in range(params["op"].shape[1]):
        chosen = torch.where(params["applied"][:, layer], params["op"][:, layer], -1)  # (B,)
        args = params["arg"][:, layer]  # (B,) float64
        for k, name in enumerate(RAND_OPS):
            if name in GEOMETRIC_OPS:
                continue
            rows = (chosen == k).nonzero().flatten()
            factor = args[rows].to(x.device, torch.float32).view(-1, 1, 1, 1)
            _apply_rows(x, rows, lambda sub, f=factor, op=COLOUR_OPS[name]: op(sub, f))
        geometric = [k for k, name in enumerate(RAND_OPS) if name in GEOMETRIC_OPS]
        rows = torch.isin(chosen, torch.tensor(geometric)).nonzero().flatten()
        matrices = torch.tensor(
            [pil_affine_matrix(RAND_OPS[int(chosen[r])], float(args[r]), size)
             for r in rows.tolist()], dtype=torch.float64).view(-1, 6)  # (n, 6)
        _apply_rows(x, rows, lambda sub, m=matrices: affine(sub, m, fill_t))
    return x


# -- LaFTer's strong view (torchvision's PIL ColorJitter, grayscale, PIL's Gaussian blur) ----


@functools.lru_cache(maxsize=8)
def _hsv_tables(device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PIL's HSV arithmetic that depends on two bytes only, tabulated once on the CPU.

    (256 * 256,) saturation byte of (max - min, max); (3, 256 * 256) float64 factors
    1 - fs, 1 - fs f, 1 - fs (1 - f) of p, q, t for (hue byte, saturation byte), with PIL's
    float/double mix; (3, 256) which of (v, p, q, t) each channel takes for a hue byte.
    """
    a = torch.arange(256, dtype=torch.float64).view(256, 1).expand(256, 256)
    b = torch.arange(256, dtype=torch.float64).view(1, 256).expand(256, 256)
    sat = (a.float() / b.float().clamp(min=1)).double()  # cr / maxc in float32
    sat_byte = torch.floor(sat * 255.0).clamp(0, 255).float()
    sector = a * 6.0 / 255.0  # a: hue byte, b: saturation byte
    i = torch.floor(sector)
    f = (sector - i).float()
    fs = (b / 255.0).float()
    factors = torch.stack((1.0 - fs.double(), 1.0 - (fs * f).double(),
                           1.0 - fs.double() * (1.0 - f.double())))
    pick = _HSV_SECTORS[i[:, 0].long() % 6]
    return (sat_byte.flatten().to(device), factors.reshape(3, -1).to(device),
            pick.T.contiguous().to(device))


def rgb_to_hsv_pil(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``convert("HSV")`` with its float32/double mix and truncations. (N, 3, S, S)."""
    maxc, minc = x.amax(dim=1), x.amin(dim=1)  # (N, S, S)
    cr = maxc - minc
    sat_byte, _, _ = _hsv_tables(str(x.device))
    us = sat_byte.take((cr * 256 + maxc).long())
    d = (maxc.unsqueeze(1) - x) / cr.clamp(min=1).unsqueeze(1)  # rc, gc, bc in float32
    rc, gc, bc = d.double().unbind(1)
    # exact in double, then stored as float, as PIL's bc - gc, 2.0 + rc - bc, 4.0 + gc - rc
    r, g = x[:, 0], x[:, 1]
    hue = torch.where(r == maxc, bc - gc, torch.where(g == maxc, rc - bc + 2.0, gc - rc + 4.0))
    hue = hue.float()
    hue = torch.fmod(_div(hue.double(), 6.0) + 1.0, 1.0).float()
    uh = torch.floor(hue.double() * 255.0).clamp(0, 255).float()
    grey = cr == 0
    return torch.stack((uh.masked_fill(grey, 0.0), us, maxc), dim=1)


# which of (v, p, q, t) each channel takes in each of PIL's 6 hue sectors
_HSV_SECTORS = torch.tensor([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def hsv_to_rgb_pil(hsv: torch.Tensor) -> torch.Tensor:
    """PIL's HSV -> RGB conversion (C ``round``, i.e. half away from zero). (N, 3, S, S)."""
    h, s, v = hsv.unbind(1)  # (N, S, S) bytes as floats
    _, factors, pick = _hsv_tables(str(hsv.device))
    key = (h * 256 + s).long()
    vd = v.double()
    candidates = torch.stack([v] + [torch.floor(vd * row.take(key) + 0.5).float()
                                    for row in factors])  # (4, N, S, S): v, p, q, t
    hue = h.long()
    which = torch.stack([row.take(hue) for row in pick])  # (3, N, S, S)
    rgb = candidates.gather(0, which).transpose(0, 1)
    return torch.where((s == 0).unsqueeze(1), v.unsqueeze(1), rgb)  # (N, 3, S, S)


def adjust_hue(x: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """torchvision's PIL ``adjust_hue``: HSV round trip, hue byte shifted by int(h * 255)."""
    shift = torch.tensor([int(h * 255) % 256 for h in hue.flatten().tolist()], device=x.device)
    hsv = rgb_to_hsv_pil(x)
    hsv[:, 0] = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 256)
    return hsv_to_rgb_pil(hsv)


JITTER_OPS: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (
    brightness, contrast, color, adjust_hue)  # ColorJitter's fn ids 0..3


def color_jitter(x: torch.Tensor, params: Params) -> torch.Tensor:
    """ColorJitter with each sample's order and factors: 4 steps x 4 ops on the subsets."""
    jitter, order, factors = params["jitter"], params["order"], params["factors"]
    for step in range(4):
        for fn_id, op in enumerate(JITTER_OPS):
            rows = (jitter & (order[:, step] == fn_id)).nonzero().flatten()
            if op is adjust_hue:
                hue = factors[rows, 3]
                _apply_rows(x, rows, lambda sub, hue=hue: adjust_hue(sub, hue))
            else:
                f = factors[rows, fn_id].to(x.device, torch.float32).view(-1, 1, 1, 1)
                _apply_rows(x, rows, lambda sub, f=f, op=op: op(sub, f))
    return x


def _box_blur_weights(radius: float, passes: int = 3) -> tuple[int, int, int]:
    """PIL's extended box of a blur radius: (integer radius, inner weight, edge weight).

    Weights are in 2^24ths; float32 arithmetic as in PIL's C (``ImagingGaussianBlur``,
    ``ImagingHorizontalBoxBlur``).
    """
    f32 = np.float32
    r = f32(radius)
    sigma2 = f32(r * r / f32(passes))
    length = f32(math.sqrt(12.0 * float(sigma2) + 1.0))
    lower = f32(math.floor((float(length) - 1.0) / 2.0))
    a = f32(f32(2 * lower + 1) * f32(lower * (lower + 1) - f32(3) * sigma2))
    a = f32(a / f32(6 * (sigma2 - (lower + 1) * (lower + 1))))
    box = f32(lower + a)
    whole = int(box)
    ww = int(f32(1 << 24) / f32(box * 2 + 1))
    fw = ((1 << 24) - (whole * 2 + 1) * ww) // 2
    return whole, ww, fw


def _tap_weights(weights: Sequence[tuple[int, int, int]], reach: int) -> torch.Tensor:
    """Per sample, the weight of taps 0..reach (either side), split in 12-bit halves.

    (N, 2, reach + 1): [:, 0] high halves, [:, 1] low halves; split so every product and sum
    of a pass stays below 2^24, exact in float32.
    """
    rows = []
    for whole, ww, fw in weights:
        taps = [ww if k <= whole else fw if k == whole + 1 else 0 for k in range(reach + 1)]
        rows.append([[t >> 12 for t in taps], [t & 4095 for t in taps]])
    return torch.tensor(rows, dtype=torch.float32)


def _box_blur_pass(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """One horizontal pass of PIL's box blur: (sum of taps * weights + 2^23) >> 24, per sample.

    x (N, C, H, W) grey levels, taps (N, 2, reach + 1) on x's device. With weight = h 2^12 + l:
    out = floor((hi + floor((lo + 2^23) / 2^12)) / 2^12), hi/lo the two weighted sums.
    """
    reach = taps.shape[-1] - 1
    width = x.shape[-1]
    padded = F.pad(x, (reach, reach, 0, 0), mode="replicate")
    hi = x * taps[:, 0, 0].view(-1, 1, 1, 1)
    lo = x * taps[:, 1, 0].view(-1, 1, 1, 1)
    for k in range(1, reach + 1):
        pair = padded[..., reach - k:reach - k + width] + padded[..., reach + k:reach + k + width]
        hi.addcmul_(pair, taps[:, 0, k].view(-1, 1, 1, 1))
        lo.addcmul_(pair, taps[:, 1, k].view(-1, 1, 1, 1))
    lo.add_(1 << 23).div_(4096).floor_()
    return hi.add_(lo).div_(4096).floor_()


def gaussian_blur_pil(x: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """``ImageFilter.GaussianBlur(radius)``: 3 extended-box passes along x, then 3 along y.

    x (N, 3, S, S) grey levels, radius (N,) per sample; every pass rounds to uint8 like PIL.
    """
    weights = [_box_blur_weights(r) for r in radius.tolist()]
    reach = max(whole for whole, _, _ in weights) + 1
    taps = _tap_weights(weights, reach).to(x.device)
    for _ in range(3):
        x = _box_blur_pass(x, taps)
    x = x.transpose(-1, -2).contiguous()  # the vertical passes read contiguous rows
    for _ in range(3):
        x = _box_blur_pass(x, taps)
    return x.transpose(-1, -2).contiguous()


# -- the views --------------------------------------------------------------------------------


def resize_short_side(images: Sequence[torch.Tensor], size: int) -> list[torch.Tensor]:
    """Each image with its short side resized to ``size`` (``Resize(size)``, bicubic)."""
    out = []
    for image in images:
        h, w = resized_shape(image.shape[1], image.shape[2], size)
        if (h, w) != tuple(image.shape[1:]):
            image = F.interpolate(image[None], size=(h, w), mode="bicubic", antialias=True)[0]
        out.append(image)  # (3, h, w)
    return out


def _render_resized_crop(frames: dict, params: Params, spec: ViewSpec) -> torch.Tensor:
    """weak/test: crop S x S at each (top, left) of the short-side-resized images."""
    if "short" not in frames:  # weak and test share the resize
        frames["short"] = resize_short_side(frames["images"], spec.image_size)
    size = spec.image_size
    x = torch.stack([image[:, top:top + size, left:left + size]
                     for image, (top, left) in zip(frames["short"], params["offset"].tolist(),
                                                   strict=True)])  # (B, 3, S, S)
    x = x.float() if x.dtype == torch.uint8 else x.round_().clamp_(0, 255)
    return normalize(x, spec)


def _render_crops(frames: dict, params: Params, spec: ViewSpec) -> torch.Tensor:
    images = frames["images"]
    boxes = params["box"]  # (B, V, 4)
    b, v, _ = boxes.shape
    owners = torch.arange(b).repeat_interleave(v).tolist()
    x = resize_boxes(images, owners, boxes.reshape(b * v, 4), spec.image_size)
    return normalize(x, spec).view(b, v, 3, spec.image_size, spec.image_size)


def _render_strong(frames: dict, params: Params, spec: ViewSpec) -> torch.Tensor:
    images = frames["images"]
    x = resize_boxes(images, range(len(images)), params["box"], spec.image_size)
    x = hflip(x, params["flip"])
    x = rand_augment(x, params, strong_fill_colour(spec))
    return normalize(x, spec)  # (B, 3, S, S)


def _render_lafter_strong(frames: dict, params: Params, spec: ViewSpec) -> torch.Tensor:
    images = frames["images"]
    x = resize_boxes(images, range(len(images)), params["box"], spec.image_size, "bilinear")
    x = hflip(x, params["flip"])
    x = color_jitter(x, params)
    rows = params["gray"].nonzero().flatten()
    _apply_rows(x, rows, lambda sub: luma(sub).expand(-1, 3, -1, -1))
    x = gaussian_blur_pil(x, params["blur"])
    return normalize(x, spec)  # (B, 3, S, S)


RENDERERS = {
    "weak": _render_resized_crop,
    "test": _render_resized_crop,
    "crops": _render_crops,
    "strong": _render_strong,
    "lafter_strong": _render_lafter_strong,
}


CPU_CHUNK = 8  # images rendered together on the CPU: temporaries stay small enough for malloc
# to reuse (a 64-image float batch is 38 MB per tensor: every temporary would page-fault anew)


def _slice(params: Params, start: int, stop: int) -> Params:
    return {field: value[start:stop] for field, value in params.items()}


@torch.no_grad()
def render_views(
    batch: Mapping, names: Sequence[str], spec: ViewSpec, device: torch.device | str,
    *, chunk: int | None = None,
) -> dict[str, torch.Tensor]:
    """What the training loop consumes, from a :func:`collate_device_batch` batch.

    Pass the batch as collated (CPU tensors, pinned or not): images travel in one copy, the
    parameters stay on the CPU where the per-box loop reads them. Returns "weak", "strong",
    "test", "lafter_strong" (B, 3, S, S) and "crops" (B, V, 3, S, S) float32 normalised
    with spec.mean/std on ``device``, and "label"/"index" (B,) there too. ``chunk`` images
    are rendered at a time (default: all on CUDA, :data:`CPU_CHUNK` on the CPU).
    """
    device = torch.device(device)
    unknown = sorted(set(names) - set(RENDERERS))
    if unknown:
        raise ValueError(f"unknown view(s) {unknown}; known: {', '.join(VIEW_NAMES)}")
    images = unpack_images(batch, device)
    count = len(images)
    step = chunk or (CPU_CHUNK if device.type == "cpu" else max(1, count))
    out: dict[str, torch.Tensor] = {}
    frames: dict[tuple[int, int], dict] = {}  # per chunk: its images, and what views share
    for name in names:
        per_image = spec.num_crops if name == "crops" else 1
        view_step = max(1, step // per_image)  # crops: chunk by rendered crops, not images
        for start in range(0, count, view_step):
            stop = min(start + view_step, count)
            chunk_frames = frames.setdefault((start, stop), {"images": images[start:stop]})
            params = _slice(batch["params"][name], start, stop)
            part = RENDERERS[name](chunk_frames, params, spec)
            if view_step >= count:
                out[name] = part
                break
            if name not in out:
                out[name] = torch.empty((count, *part.shape[1:]), device=device)
            out[name][start:stop] = part
    out["label"] = batch["label"].to(device, non_blocking=True)
    out["index"] = batch["index"].to(device, non_blocking=True)
    return out


# --------------------------------------------------------------------------------------------
# timing (for benchmarks/throughput.py; not a test)
# --------------------------------------------------------------------------------------------


def time_views(
    images: Sequence, spec: ViewSpec, names: Sequence[str], device: torch.device | str = "cpu",
    repeats: int = 3,
) -> dict[str, dict[str, float]]:
    """Milliseconds per image of each view on both paths, decoding excluded.

    ``images`` are RGB PIL images. "cpu" times the PIL path (``Views``, one view at a time,
    image by image, then stacked as the DataLoader's default collate does); "device" times parameter sampling ("sample", worker side), packing
    ("collate", worker side) and each view's :func:`render_views` over all the images as one
    batch (CUDA synchronised around it). Each figure is the best of ``repeats`` runs, after a
    warm-up. The caller sets ``torch.set_num_threads`` (1 for a per-core figure).
    """
    from microclip.data.views import Views

    device = torch.device(device)

    def clock(fn: Callable[[], object]) -> float:
        fn()  # warm-up: CUDA context and kernels, malloc's pools
        best = math.inf
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
        return best * 1e3 / len(images)

    cpu = {}
    for name in names:
        view = Views(spec, [name])
        cpu[name] = clock(lambda v=view, n=name: torch.stack([v(image)[n] for image in images]))
    tensors = [torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images]

    def sample() -> list[dict]:
        return [{"image": t, "params": sample_view_params(t.shape[1], t.shape[2], spec, names),
                 "label": 0, "index": i} for i, t in enumerate(tensors)]

    items = sample()
    batch = collate_device_batch(items)
    dev = {"sample": clock(sample), "collate": clock(lambda: collate_device_batch(items))}
    for name in names:
        dev[name] = clock(lambda n=name: render_views(batch, [n], spec, device))
    return {"cpu": cpu, "device": dev}
