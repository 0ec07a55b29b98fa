"""Declaration of reclip: hyperparameters and release training settings.

The implementation is ``microclip.methods.reclip``; see its docstring for the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from microclip.errors import ConfigError
from microclip.methods.declaration import declare_method
from microclip.train.settings import TrainSettings

TRANSDUCTIVE_HELP = (
    "reclip: transductive = true (the release's protocol: adapt on the test images) cannot be "
    "run inside the harness, which never gives a method the test split. To run it, prepare a "
    "manifest whose train.csv lists the test images (copy test.csv over train.csv, e.g. a "
    "'custom' dataset with train: test.csv), adapt ReCLIP with transductive = false on it, and "
    "score on the same test.csv."
)


@dataclass
class ReCLIPConfig:
    k: int = 20  # neighbours per node of the kNN graph
    alpha: float = 0.99  # diffusion strength of label propagation
    cg_iters: int = 20  # conjugate-gradient iterations (truncated solve)
    cg_tol: float = 1e-6  # CG relative tolerance
    cut_dim: int = 768  # keep singular directions 2..cut_dim (release comment: 250 if K > 500)
    text_lr_scale: float = 1.0  # lr of the text LayerNorms / lr of the visual ones (lrt/lrv)
    visual_loss_quirk: bool = True  # V loss carries the release's extra 1/B factor
    predict_with: Literal["combined", "visual", "text"] = "combined"
    logit_scale: float = 100.0  # fixed s
    transductive: bool = False  # the release's protocol; not runnable here (see the error)

    def __post_init__(self) -> None:
        if self.transductive:
            raise ConfigError(TRANSDUCTIVE_HELP)


RELEASE_TRAIN = TrainSettings(
    optimizer="sgd",
    lr=1e-3,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="constant",
    batch_size=64,
    epochs=2,
    drop_last=False,
)


declare_method(
    "reclip",
    config=ReCLIPConfig,
    summary="visual LayerNorms (ReCLIP-V) + text LayerNorms (ReCLIP-T), two CLIP copies",
    implementation="microclip.methods.reclip:ReCLIP",
    train=RELEASE_TRAIN,
    settings="reclip",
)
