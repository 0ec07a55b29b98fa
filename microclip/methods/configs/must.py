"""Declaration of must, must_ln: hyperparameters and release training settings.

The implementation is ``microclip.methods.must``; see its docstring for the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from microclip.methods.declaration import declare_method
from microclip.train.settings import TrainSettings


@dataclass
class MUSTConfig:
    # Pseudo-labels and the EMA teacher (§2.2-§2.3)
    conf_threshold: float = 0.7  # tau: a pseudo-label counts where max q > tau (strict)
    ema_init: float = 0.99  # d_init, the decay at step 0
    ema_final: float = 0.9998  # --model_ema_decay, reached after warm_it steps
    warm_it: int = 100  # length of the linear decay ramp, in optimiser steps
    ema_reference_batch: int | None = None  # e.g. 1024: d_final^(B/1024), warm_it x 1024/B
    # Masked image modelling (§2.4)
    mim: bool = True  # False: "MUST w/o MIM" (no masking, no L_mim, no L_align; §2.9.2 b)
    mask_ratio: float = 0.1  # fraction of mask blocks replaced by the mask token
    mask_patch_size: int | None = None  # block side in px; None: 32 where legal, else patch
    # Loss weights (§2.5)
    w_fair: float = 1.0  # fairness regulariser
    w_mim: float = 1.0  # L1 reconstruction of the masked pixels (1.0 in the release)
    w_align: float = 0.2  # global-local alignment of masked tokens with the [CLS] embedding
    # Optimisation (§2.6)
    layer_decay: float = 0.65  # lr scale 0.65^(L+1-layer_id)
    mask_token_quirk: bool = True  # the mask token gets layer id 0, as its release name implies
    lr_reference_batch: int = 256  # lr = train.lr x batch / 256 (linear scaling)
    logit_scale: float = 100.0  # fixed s
    predict_with: Literal["student", "teacher"] = "student"


RELEASE_TRAIN = TrainSettings(
    optimizer="adamw",
    lr=1e-5,  # cfg lr per 256 images; scaled by batch/256 in param_groups
    min_lr=1e-6,  # likewise scaled
    schedule="cosine",
    weight_decay=0.05,
    batch_size=64,
    epochs=60,
    drop_last=True,  # DistributedSampler + drop_last=True
)


declare_method(
    "must",
    config=MUSTConfig,
    summary="whole visual encoder + head W + MIM decoder, mask token, ln_patch (EMA teacher)",
    implementation="microclip.methods.must:MUST",
    train=RELEASE_TRAIN,
    settings="must",
)

declare_method(
    "must_ln",
    config=MUSTConfig,
    summary="visual LayerNorms + head W + MIM decoder, mask token, ln_patch (EMA teacher)",
    implementation="microclip.methods.must:MUSTLN",
    train=RELEASE_TRAIN,
    settings="must",
)
