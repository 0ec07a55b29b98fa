"""Settings of the demo CLIP's contrastive pretraining (config ``demo.pretrain``), torch-free.

Chosen from source-domain figures only (README, "The offline demo world"); the pretraining
never sees a target image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DemoPretrainConfig:
    epochs: float = 1.5  # passes over the 30,000 source images
    batch_size: int = 128
    lr: float = 2e-3  # AdamW peak, linear warm-up then cosine
    warmup_steps: int = 30  # without warm-up this small CLIP stays at chance
    weight_decay: float = 0.1
    patch_loss_weight: float = 1.0  # contrastive loss on value-path patch tokens; 0 = plain CLIP
    patch_loss: Literal["mean", "each"] = "mean"  # align the tokens' mean, or every token
    crop_prob: float = 0.0  # share of each batch seen as RandomResizedCrop views
