"""One forward pass of an open_clip ViT that yields what the UA methods need (method.md §1).

- z_cls: the ordinary CLIP image embedding, norm(ln_post(h_L[cls]) @ W_proj);
- patches P (B, N, D): the *value path* of the last block — the tokens entering the last
  block pass through ln_1 -> v_proj -> out_proj (no attention mixing), the residual, and
  the MLP, then ln_post — not projected;
- optional hooks used by baselines: patch tokens replaced by a mask token before the
  positional embedding (MUST), prompt tokens inserted after ln_pre (LaFTer), and the final
  token states (MUST's reconstruction head).
No width is hard-wired: D, d, N and the patch size are read from the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class VisualFeatures:
    z_cls: Tensor  # (B, d) L2-normalised image embedding
    cls_token: Tensor  # (B, D) ln_post(h_L[cls]), before the projection
    patches: Tensor | None = None  # (B, N, D) value-path tokens after ln_post
    keys: Tensor | None = None  # (B, N, D) last-block keys of the patch tokens
    final_tokens: Tensor | None = None  # (B, N, D) h_L patch tokens (no ln_post)


class VisualAdapter(nn.Module):
    """Wraps ``clip.visual`` (an open_clip VisionTransformer) without copying weights."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        for name in ("conv1", "class_embedding", "positional_embedding", "ln_pre", "ln_post"):
            if not hasattr(visual, name):
                raise TypeError(f"backbone visual tower has no '{name}': only open_clip ViTs work")
        if getattr(visual, "attn_pool", None) is not None:
            raise TypeError("ViTs with attentional pooling are not supported")
        last = visual.transformer.resblocks[-1]
        if not isinstance(getattr(last, "attn", None), nn.MultiheadAttention):
            raise TypeError("the last block must use nn.MultiheadAttention (open_clip CLIP ViTs)")
        self.visual = visual

    # -- shapes -----------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.visual.conv1.out_channels

    @property
    def embed_dim(self) -> int:
        return self.visual.proj.shape[1]

    @property
    def patch_size(self) -> int:
        return self.visual.conv1.kernel_size[0]

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.visual.grid_size)

    @property
    def num_patches(self) -> int:
        gh, gw = self.grid_size
        return gh * gw

    @property
    def num_layers(self) -> int:
        return len(self.visual.transformer.resblocks)

    def project(self, x: Tensor) -> Tensor:
        """(…, D) -> (…, d) with the frozen CLIP projection."""
        return x @ self.visual.proj

    # -- trainable sets -----------------------------------------------------------------
    def layernorms(self) -> list[nn.LayerNorm]:
        return [m for m in self.visual.modules() if isinstance(m, nn.LayerNorm)]

    def freeze_all_but_layernorms(self) -> int:
        """Only the visual LayerNorms train (ln_pre, ln_1/ln_2 of every block, ln_post)."""
        for p in self.visual.parameters():
            p.requires_grad_(False)
        n = 0
        for ln in self.layernorms():
            for p in ln.parameters():
                p.requires_grad_(True)
                n += p.numel()
        return n

    # -- forward ----------------------------------------------------------------------
    def embed(
        self,
        images: Tensor,
        *,
        patch_mask: Tensor | None = None,
        mask_token: Tensor | None = None,
        prompts: Tensor | None = None,
    ) -> Tensor:
        """Token sequence entering block 1: (B, 1 [+ P], + N, D)."""
        v = self.visual
        x = v.conv1(images.to(v.conv1.weight.dtype))  # (B, D, gh, gw)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        if patch_mask is not None:
            assert mask_token is not None, "patch_mask needs a mask_token"
            m = patch_mask.reshape(x.shape[0], -1, 1).to(x.dtype)  # (B, N, 1)
            x = x * (1 - m) + mask_token.to(x.dtype) * m
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.ln_pre(x)
        if prompts is not None:  # (P, D) or (B, P, D), no positional embedding (LaFTer)
            prompts = prompts.expand(x.shape[0], -1, -1) if prompts.dim() == 2 else prompts
            x = torch.cat([x[:, :1], prompts.to(x.dtype), x[:, 1:]], dim=1)
        return x

    def _run_blocks(self, x: Tensor, blocks) -> Tensor:
        batch_first = getattr(self.visual.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        for block in blocks:
            x = block(x)
        return x if batch_first else x.transpose(0, 1)

    def forward(
        self,
        images: Tensor,
        *,
        with_patches: bool = False,
        with_keys: bool = False,
        with_final_tokens: bool = False,
        patch_mask: Tensor | None = None,
        mask_token: Tensor | None = None,
        prompts: Tensor | None = None,
        patch_rows: int | None = None,
    ) -> VisualFeatures:
        """``patch_rows``: compute patches/keys for the first rows of the batch only (the
        weak view of a weak + crops forward)."""
        v = self.visual
        blocks = v.transformer.resblocks
        x = self.embed(images, patch_mask=patch_mask, mask_token=mask_token, prompts=prompts)
        h = self._run_blocks(x, blocks[:-1])  # (B, T, D) entering the last block
        h_last = self._run_blocks(h, blocks[-1:])  # (B, T, D)
        cls_token = v.ln_post(h_last[:, 0])  # (B, D)
        z_cls = F.normalize(self.project(cls_token), dim=-1)
        first_patch = 1 + (0 if prompts is None else prompts.shape[-2])
        out = VisualFeatures(z_cls=z_cls, cls_token=cls_token)
        rows = h if patch_rows is None else h[:patch_rows]
        if with_patches:
            out.patches = v.ln_post(self.value_path(rows, blocks[-1]))[:, first_patch:]
        if with_keys:
            out.keys = self.last_block_keys(rows, blocks[-1])[:, first_patch:]
        if with_final_tokens:
            out.final_tokens = h_last[:, first_patch:]
        return out

    @staticmethod
    def value_path(h: Tensor, block: nn.Module) -> Tensor:
        """u = u1 + mlp(ln_2(u1)), u1 = h + out_proj(v_proj(ln_1(h))): no token mixing."""
        attn: nn.MultiheadAttention = block.attn
        width = h.shape[-1]
        w_v = attn.in_proj_weight[2 * width :]
        b_v = attn.in_proj_bias[2 * width :] if attn.in_proj_bias is not None else None
        values = F.linear(block.ln_1(h), w_v, b_v)
        u1 = h + block.ls_1(attn.out_proj(values))
        return u1 + block.ls_2(block.mlp(block.ln_2(u1)))

    @staticmethod
    def last_block_keys(h: Tensor, block: nn.Module) -> Tensor:
        """ln_1(h) W_k^T without the key bias, as the release computes NCut's key input (the
        bias adds the same vector to every key, which shifts every cosine)."""
        attn: nn.MultiheadAttention = block.attn
        width = h.shape[-1]
        return F.linear(block.ln_1(h), attn.in_proj_weight[width : 2 * width])

    @torch.no_grad()
    def cls_attention(self, images: Tensor) -> Tensor:
        """(B, N) attention of [CLS] over the patches in the last block, mean over heads."""
        blocks = self.visual.transformer.resblocks
        h = self._run_blocks(self.embed(images), blocks[:-1])
        block = blocks[-1]
        attn: nn.MultiheadAttention = block.attn
        width, heads = h.shape[-1], attn.num_heads
        q, k, _ = F.linear(block.ln_1(h), attn.in_proj_weight, attn.in_proj_bias).split(width, -1)
        q = q[:, :1].reshape(h.shape[0], 1, heads, -1).transpose(1, 2)  # (B, H, 1, hd)
        k = k.reshape(h.shape[0], -1, heads, width // heads).transpose(1, 2)  # (B, H, T, hd)
        weights = torch.softmax(q @ k.transpose(-1, -2) / (width // heads) ** 0.5, dim=-1)
        return weights.mean(1)[:, 0, 1:]  # (B, N)
