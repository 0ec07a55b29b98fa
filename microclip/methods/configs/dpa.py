"""Declaration of dpa: hyperparameters and release training settings.

The implementation is ``microclip.methods.dpa``; see its docstring for the method.
"""

from __future__ import annotations

from dataclasses import dataclass

from microclip.methods.declaration import declare_method
from microclip.train.settings import TrainSettings


@dataclass
class DPAConfig:
    a: float = 0.5  # mixing weight of the image-prototype probabilities (1 - a: text)
    w: float = 100.0  # inverse temperature of the prototype-alignment logits w P Z^T
    reg: float = 1.0  # weight of the fairness regulariser (MUST's batch form)
    align: float = 1.0  # weight of the prototype-alignment loss
    prior_batches: int = 32  # FIFO length of batch-mean text probabilities (the class prior)
    logit_scale: float = 100.0  # s, CLIP's trained temperature, fixed


RELEASE_TRAIN = TrainSettings(
    optimizer="adamw",
    lr=1e-4,
    min_lr=2e-6,  # the release doubles its --min_lr default of 1e-6
    schedule="cosine",
    weight_decay=0.1,
    batch_size=64,
    epochs=15,
    drop_last=False,
)


declare_method(
    "dpa",
    config=DPAConfig,
    summary="visual LayerNorms + text prototypes W",
    implementation="microclip.methods.dpa:DPA",
    train=RELEASE_TRAIN,
    settings="dpa",
)
