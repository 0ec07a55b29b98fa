"""Multi-view prior and Dynamic Knowledge Aggregation pseudo-labels (spec/method.md §6-§7).

All inputs are L2-normalised embeddings in CLIP's joint space (d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["dka_pseudo_labels", "multiview_prior", "multiview_weights"]


def multiview_weights(crop_emb: Tensor, z_cls: Tensor) -> Tensor:
    """pi = softmax_j(z_j . z_cls) over the V crops, §6: (B, V, d), (B, d) -> (B, V).

    No temperature: the dot products of unit vectors lie in [-1, 1], so pi stays close to
    uniform and tilts gently towards crops that agree with the full weak view.
    """
    rho = torch.einsum("bvd,bd->bv", crop_emb, z_cls)  # (B, V)
    return rho.softmax(dim=-1)


def multiview_prior(crop_emb: Tensor, z_cls: Tensor) -> Tensor:
    """Multi-view prior g = norm(sum_j pi_j z_j), §6.

    Args:
        crop_emb: (B, V, d) normalised [CLS] embeddings of V random crops of each image.
        z_cls: (B, d) normalised [CLS] embedding of the weak view.

    Returns:
        (B, d) g, L2-normalised.
    """
    if crop_emb.dim() != 3 or z_cls.shape != (crop_emb.shape[0], crop_emb.shape[2]):
        raise ValueError(
            "multiview_prior: expected crop_emb (B, V, d) and z_cls (B, d); "
            f"got {tuple(crop_emb.shape)} and {tuple(z_cls.shape)}"
        )
    pi = multiview_weights(crop_emb, z_cls)  # (B, V)
    return F.normalize(torch.einsum("bv,bvd->bd", pi, crop_emb), dim=-1)  # (B, d)


@torch.no_grad()
def dka_pseudo_labels(
    g: Tensor, f_w: Tensor, w_llm: Tensor, w_star: Tensor, *, gamma: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Dynamic Knowledge Aggregation, §7 (no gradient, by definition).

        l_fix = g W_LLM^T                 (stable CLIP/LLM prior)
        l_dyn = f_w norm(W*)^T            (evolving head)
        l_PL  = gamma l_fix + (1 - gamma) l_dyn ;  y_hat = argmax l_PL

    Args:
        g: (B, d) multi-view prior (or z_cls of the weak view for the single-view ablation).
        f_w: (B, d) weak-view fused feature (``pseudo_label_feature``).
        w_llm: (K, d) frozen LLM head (rows already normalised).
        w_star: (K, d) learnable head; rows normalised here.
        gamma: weight of the fixed term; 1 gives l_fix only, 0 gives l_dyn only.

    Returns:
        (labels (B,) int64, logits (B, K)); the logits are unscaled cosines (argmax only).
    """
    l_fix = g @ w_llm.T  # (B, K)
    l_dyn = f_w @ F.normalize(w_star, dim=-1).T  # (B, K)
    logits = gamma * l_fix + (1.0 - gamma) * l_dyn  # (B, K)
    return logits.argmax(dim=-1), logits
