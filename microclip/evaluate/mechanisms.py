"""Label-free diagnostics of microCLIP's mechanisms on a backbone, as pure tensor functions.

Before spending GPU hours a researcher wants to know whether a backbone gives microCLIP
anything to work with: does NCut's affinity graph carry structure (or is every pair above
tau, so the Fiedler vector is arbitrary)? does the foreground move with the image (or sit
on one fixed patch)? does it cover the object? is the multi-view prior as good as the
single view? ``microclip.runner.stages.diagnose`` runs these on the initial backbone over
the unlabelled train split; labels are read only to score pseudo-labels, as in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from microclip.ops.ncut import affinity_density

__all__ = [
    "affinity_density",
    "box_patch_mask",
    "distribution",
    "mask_iou",
    "most_common_mask_share",
    "random_masks_like",
    "view_box",
]


def most_common_mask_share(masks: Tensor) -> float:
    """Share of images whose mask equals the most common mask (fixed-position collapse)."""
    if len(masks) == 0:
        return math.nan
    _, counts = torch.unique(masks.to(torch.uint8), dim=0, return_counts=True)
    return float(counts.max()) / len(masks)


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of boolean masks: (B, N), (B, N) -> (B,); 0 where both are empty."""
    inter = (a & b).sum(-1).double()
    union = (a | b).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))


def random_masks_like(masks: Tensor, generator: torch.Generator) -> Tensor:
    """Masks with the same number of tokens per image, at uniformly random positions."""
    b, n = masks.shape
    order = torch.rand(b, n, generator=generator).argsort(dim=-1)  # (B, N) random ranks
    counts = masks.sum(-1, keepdim=True)  # (B, 1)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(n).expand(b, n))
    return ranks < counts  # (B, N)


def view_box(box: Sequence[float], image_hw: tuple[int, int], size: int) -> tuple[float, ...]:
    """An object box (x0, y0, x1, y1) in image pixels -> in the test view's pixels.

    The test view resizes the short side to ``size`` and centre-crops ``size`` x ``size``.
    """
    h, w = image_hw
    scale = size / min(h, w)
    left = (w * scale - size) / 2
    top = (h * scale - size) / 2
    x0, y0, x1, y1 = box
    return (x0 * scale - left, y0 * scale - top, x1 * scale - left, y1 * scale - top)


def box_patch_mask(
    boxes: Tensor, grid: tuple[int, int], size: int, *, min_cover: float = 0.5
) -> Tensor:
    """Patches covered at least ``min_cover`` by the box: (B, 4) view-pixel boxes -> (B, N)."""
    gh, gw = grid
    ph, pw = size / gh, size / gw
    y0 = torch.arange(gh, dtype=torch.float64) * ph  # (gh,)
    x0 = torch.arange(gw, dtype=torch.float64) * pw  # (gw,)
    b = boxes.double()
    overlap_y = (torch.minimum(y0[None] + ph, b[:, 3:4]) - torch.maximum(y0[None], b[:, 1:2]))
    overlap_x = (torch.minimum(x0[None] + pw, b[:, 2:3]) - torch.maximum(x0[None], b[:, 0:1]))
    cover = overlap_y.clamp_min(0)[:, :, None] * overlap_x.clamp_min(0)[:, None, :] / (ph * pw)
    return (cover >= min_cover).flatten(1)  # (B, gh * gw)


def distribution(values: Tensor | Sequence[float]) -> dict[str, float]:
    """mean, p10, median, p90 of a 1-D sample (NaN when empty)."""
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    if x.numel() == 0:
        return dict.fromkeys(("mean", "p10", "median", "p90"), math.nan)
    q = torch.quantile(x, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {"mean": float(x.mean()), "p10": float(q[0]), "median": float(q[1]), "p90": float(q[2])}

