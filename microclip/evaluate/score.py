"""Top-1 and mean per-class recall of a method's predictions on the test split."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from microclip.methods.base import AdaptationMethod
from microclip.train.precision import autocast


@dataclass
class Score:
    top1: float  # percent
    mean_per_class_recall: float  # percent; NaN-free: classes absent from the test set skipped
    n: int
    predictions: Tensor  # (n,)
    targets: Tensor  # (n,)


def top1_accuracy(predictions: Tensor, targets: Tensor) -> float:
    return 100.0 * float((predictions == targets).float().mean()) if len(targets) else float("nan")


def mean_per_class_recall(predictions: Tensor, targets: Tensor, num_classes: int) -> float:
    """Mean over classes present in ``targets`` of the per-class recall (MUST's pets metric)."""
    counts = torch.bincount(targets, minlength=num_classes).float()
    hits = torch.bincount(targets[predictions == targets], minlength=num_classes).float()
    present = counts > 0
    return 100.0 * float((hits[present] / counts[present]).mean()) if present.any() else float("nan")


@torch.no_grad()
def score(
    method: AdaptationMethod,
    batches: Iterable[dict],
    *,
    num_classes: int,
    device: torch.device,
    precision: str = "fp32",
) -> Score:
    """Run ``method.predict`` over test-view batches ({"test": images, "label": labels})."""
    was_training = method.training
    method.eval()
    preds, targets = [], []
    for batch in batches:
        with autocast(device, precision):
            logits = method.predict(batch["test"].to(device, non_blocking=True))
        preds.append(logits.argmax(-1).cpu())
        targets.append(batch["label"].cpu())
    method.train(was_training)
    p, t = torch.cat(preds), torch.cat(targets)
    return Score(
        top1=top1_accuracy(p, t),
        mean_per_class_recall=mean_per_class_recall(p, t, num_classes),
        n=len(t),
        predictions=p,
        targets=t,
    )
