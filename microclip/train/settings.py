"""Optimisation settings of a run (spec/method.md §9), torch-free so a run spec can carry them.

Each method declares its release's values (``microclip.methods.configs``); per-dataset rows
of ``microclip/methods/settings/<method>.json`` and the config's ``train`` keys override them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TrainSettings:
    """What the generic loop needs; a method states its release's defaults."""

    epochs: int = 15
    batch_size: int = 64
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-4  # peak learning rate
    min_lr: float = 2e-6  # end of the per-iteration cosine
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9  # SGD only
    drop_last: bool = False
    report: Literal["last", "best"] = "last"  # "best" selects on test labels: reference only
