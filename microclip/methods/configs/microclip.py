"""Declaration of microclip, cls_selftrain, multiview_cls_selftrain: hyperparameters and release training settings.

The implementation is ``microclip.methods.microclip``; see its docstring for the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from microclip.methods.declaration import declare_method


@dataclass
class MicroCLIPConfig:
    # §4 TokenFusion
    beta: float = 0.5  # weight of the [CLS] logits; 1 - beta goes to [FG]
    logit_scale: float = 100.0  # fixed s
    # §2 NCut
    tau: float = 0.2  # affinity threshold on raw dot products
    eps: float = 1e-6  # affinity below tau, and the sqrt-degree guard
    ncut_input: Literal["value_raw", "key_cosine"] = "value_raw"
    fiedler_threshold: Literal["std", "mean"] = "std"
    ncut_sign: Literal["orient_vector", "invert_mask"] = "orient_vector"
    # §3 SOAP and its ablations
    fg_pooling: Literal["soap", "patch_mean", "ncut_mean"] = "soap"
    query: Literal["ncut", "cls", "mean_patch", "random_patch"] = "ncut"
    learnable_null: bool = False  # learnable (zero-init) null token instead of a fixed zero
    use_fg: bool = True  # False: CLS-only self-training (no [FG] token at all)
    # §6 multi-view prior
    multiview: bool = True  # False: the fixed branch uses the weak view's [CLS] alone
    num_crops: int = 8
    prior_encoder: Literal["adapting", "frozen"] = "adapting"
    # §7 DKA
    gamma: float = 0.5  # weight of the fixed (prior x head) logits
    prior_head: Literal["llm", "w_star"] = "llm"  # head of the fixed term: W_LLM (DKA) or W*
    # §5 heads
    head_init: Literal["descriptions", "templates"] = "descriptions"
    train_head: bool = True  # False: W* stays at its initialisation
    # §8 loss
    ce_weight: float = 1.0
    fairness_weight: float = 1.0
    supervised: bool = False  # upper bound: CE on the TRUE labels (reads labels; no fairness)


@dataclass
class CLSSelfTrainConfig(MicroCLIPConfig):
    """Coarse baseline: pseudo-labels from weak-view [CLS] x W*, loss on [CLS] only."""

    use_fg: bool = False
    multiview: bool = False
    gamma: float = 0.0


@dataclass
class MultiviewCLSSelfTrainConfig(MicroCLIPConfig):
    """Multi-view prior pseudo-labels, [CLS]-only features and loss.

    Defaults follow the release's baseline of this name (``--wca_baseline``): pseudo-labels
    from the multi-view prior and the learnable head alone, g W*. ``gamma: 0.5`` with
    ``prior_head: llm`` gives the suite's earlier DKA form, 0.5 g W_LLM + 0.5 z_cls W*.
    """

    use_fg: bool = False
    multiview: bool = True
    gamma: float = 1.0
    prior_head: Literal["llm", "w_star"] = "w_star"


declare_method(
    "microclip",
    config=MicroCLIPConfig,
    summary="visual LayerNorms + W* + SOAP W_Q/W_K/W_V",
    implementation="microclip.methods.microclip:MicroCLIP",
    explains=True,
)

declare_method(
    "cls_selftrain",
    config=CLSSelfTrainConfig,
    summary="visual LayerNorms + W* ([CLS]-only self-training)",
    implementation="microclip.methods.microclip:CLSSelfTrain",
    explains=True,
)

declare_method(
    "multiview_cls_selftrain",
    config=MultiviewCLSSelfTrainConfig,
    summary="visual LayerNorms + W* (multi-view prior, [CLS]-only)",
    implementation="microclip.methods.microclip:MultiviewCLSSelfTrain",
    explains=True,
)
