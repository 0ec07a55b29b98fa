"""Losses shared by microCLIP and the baselines (spec/method.md §8, baselines.md §1.4, §2.5, §3).

Pure functions: state that outlives a step (microCLIP's running class marginal) is passed in
and handed back, and the caller owns it.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "batch_fairness_loss",
    "fairness_loss",
    "label_smoothed_ce",
    "masked_cross_entropy",
    "weighted_cross_entropy",
]


def fairness_loss(probs_mean: Tensor, previous: Tensor | None) -> tuple[Tensor, Tensor]:
    """MUST's anti-collapse term with a running class marginal, as microCLIP uses it (§8).

        p_bar_t = 0.5 (stopgrad(p_bar_{t-1}) + probs_mean)   (p_bar_t = probs_mean if no previous)
        L_fair  = -(1/K) sum_k log p_bar_t[k] / 0.5

    Pass ``previous=None`` at the first step of every epoch (the reset). For uniform
    predictions the loss is 2 log K at every step.

    Args:
        probs_mean: (K,) batch mean of softmax(l(x_strong)), with gradient.
        previous: (K,) the running marginal returned by the previous step, or None.

    Returns:
        (loss scalar, new running marginal (K,) detached, to pass as ``previous`` next step).
    """
    if probs_mean.dim() != 1:
        raise ValueError(f"fairness_loss: probs_mean must be (K,); got {tuple(probs_mean.shape)}")
    if previous is None:
        running = probs_mean  # (K,)
    else:
        if previous.shape != probs_mean.shape:
            raise ValueError(
                f"fairness_loss: previous {tuple(previous.shape)} does not match "
                f"probs_mean {tuple(probs_mean.shape)}; reset with previous=None"
            )
        running = 0.5 * (previous.detach() + probs_mean)  # (K,)
    loss = -running.log().mean() / 0.5
    return loss, running.detach()


def batch_fairness_loss(logits: Tensor) -> Tensor:
    """Plain batch fairness term -(1/K) sum_k log mean_b softmax(logits)_bk (DPA; MUST, K < 512).

    Args:
        logits: (B, K).

    Returns:
        scalar; log K for uniform predictions.
    """
    probs_mean = logits.float().softmax(dim=-1).mean(dim=0)  # (K,)
    return -probs_mean.log().mean()


def weighted_cross_entropy(logits: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """(1/B) sum_b w_b CE(logits_b, y_b): DPA's plain batch mean, not divided by sum w (§1.4).

    Args:
        logits: (B, K); targets: (B,) int64; weights: (B,) (treated as constants).
    """
    ce = F.cross_entropy(logits, targets, reduction="none")  # (B,)
    return (weights.detach().to(ce.dtype) * ce).mean()


def label_smoothed_ce(logits: Tensor, targets: Tensor, *, smoothing: float = 0.1) -> Tensor:
    """(1 - eps) NLL + eps mean_k(-log softmax_k), batch mean (LaFTer, baselines.md §3).

    Args:
        logits: (B, K); targets: (B,) int64; smoothing: eps, spread uniformly over all K.
    """
    log_probs = logits.log_softmax(dim=-1)  # (B, K)
    nll = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)  # (B,)
    uniform = -log_probs.mean(dim=-1)  # (B,)
    return ((1.0 - smoothing) * nll + smoothing * uniform).mean()


def masked_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Mean CE over the samples where ``mask`` is True; 0 (still in the graph) when none are.

    MUST's confident-sample loss (baselines.md §2.5, with the suggested 0 instead of NaN) and
    ReCLIP's agreement-masked text loss (§4.4). logits (B, K), targets (B,), mask (B,) bool.
    """
    ce = F.cross_entropy(logits, targets, reduction="none")  # (B,)
    m = mask.to(ce.dtype)  # (B,)
    return (ce * m).sum() / m.sum().clamp_min(1.0)
