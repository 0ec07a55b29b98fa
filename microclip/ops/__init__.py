"""Pure tensor operations of microCLIP and the baselines (spec/method.md, baselines.md).

No I/O and no state beyond ``nn.Module`` parameters; every function is batched and comments
its tensor shapes.
"""

from microclip.ops.fusion import (
    ensemble_head,
    llm_head,
    pseudo_label_feature,
    template_class_embedding,
    token_fusion_logits,
)
from microclip.ops.losses import (
    batch_fairness_loss,
    fairness_loss,
    label_smoothed_ce,
    masked_cross_entropy,
    weighted_cross_entropy,
)
from microclip.ops.ncut import NCutResult, ncut_foreground
from microclip.ops.prior import dka_pseudo_labels, multiview_prior, multiview_weights
from microclip.ops.propagation import (
    LabelPropagationResult,
    class_centroids,
    knn_affinity,
    label_propagation,
    top_singular_removal_projection,
)
from microclip.ops.schedule import constant_lr, cosine_lr, ema_decay
from microclip.ops.soap import SOAP, SOAPOutput, masked_patch_mean, patch_mean, random_patch

__all__ = [
    "SOAP",
    "LabelPropagationResult",
    "NCutResult",
    "SOAPOutput",
    "batch_fairness_loss",
    "class_centroids",
    "constant_lr",
    "cosine_lr",
    "dka_pseudo_labels",
    "ema_decay",
    "ensemble_head",
    "fairness_loss",
    "knn_affinity",
    "label_propagation",
    "label_smoothed_ce",
    "llm_head",
    "masked_cross_entropy",
    "masked_patch_mean",
    "multiview_prior",
    "multiview_weights",
    "ncut_foreground",
    "patch_mean",
    "pseudo_label_feature",
    "random_patch",
    "template_class_embedding",
    "token_fusion_logits",
    "top_singular_removal_projection",
    "weighted_cross_entropy",
]
