"""Per-iteration learning-rate and EMA-decay schedules (method.md §9, baselines.md §0, §2.2).

Plain Python floats: the training loop sets every parameter group's lr from these.
"""

from __future__ import annotations

import math

__all__ = ["constant_lr", "cosine_lr", "ema_decay"]


def cosine_lr(
    step: int, total_steps: int, base_lr: float, min_lr: float, *, end_inclusive: bool = True
) -> float:
    """Cosine decay from ``base_lr`` at step 0 to ``min_lr``, no warm-up.

        lr_i = min + 0.5 (base - min)(1 + cos(pi i / T'))   for i = 0 .. T-1

    With ``end_inclusive=True`` (suite default) T' = T - 1, so the last step i = T - 1 runs at
    exactly ``min_lr`` (the spec's "cosine to 2e-6"). With ``end_inclusive=False`` T' = T, the
    release's ``cosine_scheduler`` table: the last step stays one step above ``min_lr``. For
    T = 1 the single step runs at ``base_lr`` in both forms.

    Args:
        step: iteration index i, 0 <= i < total_steps (global, across epochs).
        total_steps: T = epochs x iterations per epoch.
    """
    if total_steps < 1:
        raise ValueError(f"cosine_lr: total_steps = {total_steps}; it must be >= 1")
    if not 0 <= step < total_steps:
        raise ValueError(f"cosine_lr: step = {step} is outside [0, {total_steps})")
    span = total_steps - 1 if end_inclusive else total_steps
    if span == 0:
        return float(base_lr)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * step / span))


def constant_lr(step: int, total_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """``base_lr`` at every step (LaFTer, ReCLIP); same signature as ``cosine_lr``."""
    if not 0 <= step < total_steps:
        raise ValueError(f"constant_lr: step = {step} is outside [0, {total_steps})")
    return float(base_lr)


def ema_decay(it: int, d_init: float, d_final: float, warm_it: int) -> float:
    """MUST's EMA-teacher decay ramp, baselines.md §2.2.

        d(it) = d_init + (d_final - d_init) min(1, it / warm_it)

    ``warm_it <= 0`` means no ramp (``d_final`` from the start).
    """
    if warm_it <= 0:
        return float(d_final)
    return d_init + (d_final - d_init) * min(1.0, it / warm_it)
