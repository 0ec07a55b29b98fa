"""Declaration of lafter: hyperparameters and release training settings.

The implementation is ``microclip.methods.lafter``; see its docstring for the method.
"""

from __future__ import annotations

from dataclasses import dataclass

from microclip.methods.declaration import declare_method
from microclip.train.settings import TrainSettings


@dataclass
class LaFTerConfig:
    # Stage 1: text-only classifier
    text_steps: int = 500  # full-batch steps (per-dataset table in settings/lafter.json)
    text_lr: float = 5e-4  # AdamW lr of stage 1 (the release's single --lr)
    text_weight_decay: float = 0.01  # AdamW weight decay of stage 1
    text_noise_std: float = 0.1  # Gaussian noise added to the normalised text embeddings
    label_smoothing: float = 0.1  # both stages
    # Stage 2: visual prompts
    num_prompts: int = 50  # VPT-shallow tokens inserted after ln_pre
    prompt_init_patch: int | None = None  # None: the model's patch size; 16: release value
    normalize_student: bool = False  # False: release quirk (unnormalised A(v_prompt(x)))


RELEASE_TRAIN = TrainSettings(
    optimizer="adamw",
    lr=5e-4,
    schedule="constant",  # MultiStepLR without milestones
    weight_decay=0.01,
    batch_size=50,
    epochs=50,
    drop_last=True,  # Dassl's RandomSampler drops the last partial batch
)


declare_method(
    "lafter",
    config=LaFTerConfig,
    summary="visual LayerNorms + 50 prompt tokens + text-trained linear head",
    implementation="microclip.methods.lafter:LaFTer",
    train=RELEASE_TRAIN,
    settings="lafter",
)
