"""TokenFusion logits and the text-side class heads (spec/method.md §4-§5, baselines.md §0).

Inputs named z_* and e_* are L2-normalised embeddings in CLIP's joint space (d = 512 for
ViT-B). Heads are (K, d) with one row per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ensemble_head",
    "llm_head",
    "pseudo_label_feature",
    "template_class_embedding",
    "token_fusion_logits",
]


def token_fusion_logits(
    z_cls: Tensor, z_fg: Tensor, head: Tensor, *, beta: float = 0.5, scale: float = 100.0
) -> Tensor:
    """Classification logits l = s (beta z_cls W^T + (1 - beta) z_fg W^T), §4.

    Args:
        z_cls: (B, d) normalised [CLS] embedding (coarse).
        z_fg: (B, d) normalised [FG] embedding from SOAP (fine).
        head: (K, d) learnable W*; its rows are L2-normalised here, at every use.
        beta: weight of the [CLS] term.
        scale: fixed logit scale s.

    Returns:
        (B, K) logits.
    """
    w = F.normalize(head, dim=-1)  # (K, d)
    return scale * (beta * (z_cls @ w.T) + (1.0 - beta) * (z_fg @ w.T))  # (B, K)


def pseudo_label_feature(z_cls: Tensor, z_fg: Tensor) -> Tensor:
    """Weak-view feature for pseudo-labelling f_w = norm(0.5 z_cls + 0.5 z_fg), §4: (B, d)."""
    return F.normalize(0.5 * z_cls + 0.5 * z_fg, dim=-1)


def llm_head(desc_emb: Tensor, desc_mask: Tensor, t: Tensor) -> Tensor:
    """Frozen LLM head W_LLM, §5: descriptions weighted by their agreement with t_k.

        w_kj = e_kj . t_k ;  W_LLM[k] = norm(sum_j w_kj e_kj / sum_j w_kj)

    Args:
        desc_emb: (K, M, d) description embeddings e_kj, padded to M = max_k M_k; rows are
            L2-normalised here (padding rows may be anything, they get weight 0).
        desc_mask: (K, M) bool, True for a real description, False for padding.
        t: (K, d) handcrafted class embeddings (``template_class_embedding``).

    Returns:
        (K, d) rows L2-normalised.
    """
    _check_descriptions("llm_head", desc_emb, desc_mask)
    e = F.normalize(desc_emb, dim=-1)  # (K, M, d)
    t = F.normalize(t, dim=-1)  # (K, d)
    weights = torch.einsum("kmd,kd->km", e, t) * desc_mask.to(e.dtype)  # (K, M)
    # The division keeps the sign of sum_j w_kj, as in the formula; norm() removes the rest.
    mixed = torch.einsum("km,kmd->kd", weights, e) / weights.sum(dim=1, keepdim=True)  # (K, d)
    return F.normalize(mixed, dim=-1)


def template_class_embedding(template_emb: Tensor) -> Tensor:
    """Handcrafted class embedding t_k from raw template embeddings, §5.

    For each class, the T x d stack of raw (unnormalised) text embeddings is divided by its
    Frobenius norm (one scalar per class), averaged over templates and L2-normalised. Note that
    a positive scalar cannot change a direction, so this equals norm(mean_t raw_t): unlike
    ``ensemble_head`` each template weighs by its raw norm.

    Args:
        template_emb: (K, T, d) raw text-encoder outputs, one per (class, template).

    Returns:
        (K, d) rows L2-normalised.
    """
    if template_emb.dim() != 3:
        raise ValueError(
            f"template_class_embedding: expected (K, T, d); got {tuple(template_emb.shape)}"
        )
    frob = template_emb.flatten(1).norm(dim=1).clamp_min(1e-12)  # (K,)
    stack = template_emb / frob[:, None, None]  # (K, T, d)
    return F.normalize(stack.mean(dim=1), dim=-1)  # (K, d)


def ensemble_head(prompt_emb: Tensor, mask: Tensor | None = None) -> Tensor:
    """Template/description ensemble, baselines.md §0: norm(mean_t norm(E(t))).

    Also W*'s initialisation from descriptions (method.md §5): norm(mean_j e_kj).

    Args:
        prompt_emb: (K, T, d) prompt embeddings, normalised or not.
        mask: optional (K, T) bool, False marks padding.

    Returns:
        (K, d) rows L2-normalised.
    """
    if mask is None:
        mask = torch.ones(prompt_emb.shape[:2], dtype=torch.bool, device=prompt_emb.device)
    _check_descriptions("ensemble_head", prompt_emb, mask)
    e = F.normalize(prompt_emb, dim=-1) * mask.unsqueeze(-1).to(prompt_emb.dtype)  # (K, T, d)
    mean = e.sum(dim=1) / mask.sum(dim=1, keepdim=True).to(e.dtype)  # (K, d)
    return F.normalize(mean, dim=-1)


def _check_descriptions(where: str, emb: Tensor, mask: Tensor) -> None:
    if emb.dim() != 3 or mask.shape != emb.shape[:2]:
        raise ValueError(
            f"{where}: expected embeddings (K, M, d) and mask (K, M); "
            f"got {tuple(emb.shape)} and {tuple(mask.shape)}"
        )
    empty = (~mask.bool().any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"{where}: classes {empty[:10]} have no prompt/description (mask all False); "
            "every class needs at least one sentence"
        )
