"""SOAP: Saliency-Oriented Attention Pooling, the fine-grained [FG] token (spec/method.md §3).

One attention head whose query is the NCut saliency query q and whose keys/values are the
patch tokens plus one "null" token (an attention sink):

    T = [P ; null]                                   # (B, N+1, D)
    a = softmax_j((W_Q q) . (W_K T_j) / sqrt(D))     # (B, N+1)
    r = sum_j a_j W_V T_j                            # (B, D)

W_Q, W_K, W_V are bias-free D x D maps initialised to the identity. The null token is a fixed
zero vector by default (it takes attention mass but adds nothing to r) or, as an ablation,
a learnable vector initialised to zero. Projection to the joint space (z_fg = norm(r W_proj))
is the caller's job: W_proj belongs to the frozen CLIP.

The ablation poolings of §3 ("mean of all patches", "mean of NCut patches", "random patch
query") are the pure helpers at the bottom.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["SOAP", "SOAPOutput", "masked_patch_mean", "patch_mean", "random_patch"]


class SOAPOutput(NamedTuple):
    pooled: Tensor  # (B, D) r, before the CLIP projection
    attention: Tensor  # (B, N+1) a; the last column is the null token


def _identity_linear(dim: int) -> nn.Linear:
    layer = nn.Linear(dim, dim, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(dim))
    return layer


class SOAP(nn.Module):
    """Single-head attention pooling of patch tokens around a saliency query (§3).

    Args:
        dim: token width D (768 for ViT-B, 1024 for ViT-L).
        learnable_null: ablation switch; the null token becomes a zero-initialised parameter
            instead of a fixed zero buffer.
    """

    def __init__(self, dim: int, *, learnable_null: bool = False) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"SOAP: dim = {dim}; the token width must be a positive integer")
        self.dim = dim
        self.learnable_null = learnable_null
        self.w_q = _identity_linear(dim)
        self.w_k = _identity_linear(dim)
        self.w_v = _identity_linear(dim)
        if learnable_null:
            self.null = nn.Parameter(torch.zeros(dim))  # (D,)
        else:
            # Not persistent: a fixed zero carries no information worth checkpointing.
            self.register_buffer("null", torch.zeros(dim), persistent=False)  # (D,)

    def forward(self, query: Tensor, patches: Tensor) -> SOAPOutput:
        """query (B, D), patches (B, N, D) -> SOAPOutput(pooled (B, D), attention (B, N+1))."""
        if patches.dim() != 3 or query.dim() != 2 or patches.shape[-1] != self.dim:
            raise ValueError(
                f"SOAP(dim={self.dim}): expected query (B, {self.dim}) and patches "
                f"(B, N, {self.dim}); got {tuple(query.shape)} and {tuple(patches.shape)}"
            )
        b = patches.shape[0]
        null = self.null.to(patches.dtype).expand(b, 1, self.dim)  # (B, 1, D)
        tokens = torch.cat([patches, null], dim=1)  # (B, N+1, D)
        q = self.w_q(query)  # (B, D)
        k = self.w_k(tokens)  # (B, N+1, D)
        v = self.w_v(tokens)  # (B, N+1, D)
        logits = torch.einsum("bd,bnd->bn", q, k) / math.sqrt(self.dim)  # (B, N+1)
        # Softmax in float32 so bf16/fp16 activations do not lose the peak.
        attention = logits.float().softmax(dim=-1).to(v.dtype)  # (B, N+1)
        pooled = torch.einsum("bn,bnd->bd", attention, v)  # (B, D)
        return SOAPOutput(pooled=pooled, attention=attention)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, learnable_null={self.learnable_null}"


def patch_mean(patches: Tensor) -> Tensor:
    """Ablation "[FG] = mean of all patches": (B, N, D) -> (B, D)."""
    return patches.mean(dim=1)


def masked_patch_mean(patches: Tensor, mask: Tensor) -> Tensor:
    """sum_i m_i P_i / max(1, sum_i m_i): (B, N, D), (B, N) bool -> (B, D).

    The NCut saliency query (§2 step 6) and the ablation "[FG] = mean of NCut patches".
    An empty mask gives the zero vector (the max(1, .) guard).
    """
    weights = mask.to(patches.dtype)  # (B, N)
    total = torch.einsum("bn,bnd->bd", weights, patches)  # (B, D)
    count = weights.sum(dim=1, keepdim=True).clamp_min(1.0)  # (B, 1)
    return total / count


def random_patch(patches: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Ablation query "a random patch": one uniformly drawn token per image, (B, N, D) -> (B, D)."""
    b, n, _ = patches.shape
    device = generator.device if generator is not None else patches.device
    index = torch.randint(n, (b,), generator=generator, device=device).to(patches.device)  # (B,)
    return patches[torch.arange(b, device=patches.device), index]
