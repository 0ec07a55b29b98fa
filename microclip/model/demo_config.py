"""Settings of the demo CLIP's contrastive pretraining (config ``demo.pretrain``), torch-free.

Chosen from source-domain figures and the label-free mechanism diagnostics only (README,
"The offline demo world"); the pretraining never sees a target image.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoPretrainConfig:
    epochs: float = 4.0  # passes over the 30,000 source scenes
    batch_size: int = 64
    lr: float = 2e-3  # AdamW peak, linear warm-up then cosine
    warmup_steps: int = 50  # without warm-up this small CLIP stays at chance
    weight_decay: float = 0.1
    crop_prob: float = 0.3  # share of each batch seen as a random resized crop (every scale)
    crop_area: tuple[float, float] = (0.2, 1.0)  # area range of those crops
    dense_loss_weight: float = 0.5  # value-path patch tokens: object -> caption, else background
    object_cover: float = 0.5  # a patch is object when the object covers this much of it
    background_cover: float = 0.05  # ... and background when at most this much
