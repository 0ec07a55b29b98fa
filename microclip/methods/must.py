"""MUST: Masked Unsupervised Self-Training for label-free image classification (ICLR 2023).

Paper: Li, Savarese, Hoi, "Masked Unsupervised Self-training for Label-free Image
Classification", ICLR 2023. Official release: github.com/salesforce/MUST.
Spec: spec/baselines.md §2; per-dataset settings: settings/must.json (ViT-B/16 rows).

One iteration (§2.2-§2.6):
 1. EMA teacher on the weak view, unmasked: q = softmax(100 v^(x_w) W_T), y = argmax q,
    confident where max q > tau (strict).
 2. Student on the masked strong view: ceil(ratio x blocks) random blocks per image become
    the mask token before the positional embedding. From the final tokens:
    g = v^(x_s) (logits 100 g W, W not renormalised), x^ = PixelShuffle(conv1x1(ln_patch(h)))
    and local embeddings e_j = norm(ln_patch(h_j) proj).
 3. L = CE over the confident samples (0 when none) + w_fair fairness (batch form; the
    running form for K >= 512) + L1 on the masked pixels of the normalised strong image
    + w_align mean over masked tokens of ||e_j - g||^2 (g not detached).
 4. AdamW, wd 0.05 on >= 2-dim parameters, layer-wise lr decay 0.65, cosine lr; after every
    optimiser step the teacher moves by the ramped EMA decay.

``must``: full fine-tuning as released (whole visual encoder + W + mask token + ln_patch +
decoder). ``must_ln``: the spec's LayerNorm-only variant (§2.9, marked [SUGG]): visual
LayerNorms + W + the MIM modules; the EMA then tracks only what trains.

Suite choices (documented deviations):
- Batch 64 on one GPU (one GPU of the release's 16 x 64; 1024 does not fit one GPU for B/16
  full fine-tuning). The linear scaling lr = cfg.lr x batch/256 (and min lr 1e-6 x
  batch/256) is applied through every group's ``lr_scale``, so ``train.lr`` is the release's
  per-256 value and a batch_size override rescales it. The EMA decay and its ramp are per
  step as written (``ema_reference_batch: 1024`` rescales them to keep the horizon in
  samples, spec §2.9.4).
- Mask blocks: 32 px (the release's B/16 block) where 32 is a multiple of the model patch
  and divides the image, else one model patch (ViT-B/32 -> 32, the 7 px demo patches -> 7).
  An explicit ``mask_patch_size`` that breaks either rule is an error.
- The teacher holds the visual encoder and W only: the MIM modules are never used by the
  teacher, so their EMA (the release averages the whole state dict) cannot change a result.
- The mask token has shape (1, 1, D) so it gets weight decay, as in the release; its name
  in the release contains "embedding", so it gets the smallest layer scale, 0.65^(L+1)
  ([QUIRK] replicated; ``mask_token_quirk: false`` puts it with the head).
- Scoring uses the student (``predict_with: teacher`` scores the EMA teacher instead).
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from microclip.methods.base import (
    AdaptationMethod,
    MethodContext,
    StepOutput,
    TrainData,
)
from microclip.methods.configs.must import MUSTConfig
from microclip.model.adapter import VisualAdapter
from microclip.ops.losses import batch_fairness_loss, fairness_loss, masked_cross_entropy
from microclip.ops.schedule import ema_decay
from microclip.train.settings import TrainSettings

__all__ = [
    "MUST",
    "MUSTConfig",
    "MUSTLN",
    "block_mask",
    "confident",
    "layer_id",
    "layer_decay_groups",
    "mim_l1_loss",
    "resolve_mask_patch_size",
]

_RUNNING_FAIRNESS_CLASSES = 512  # K >= 512: MUST's running-average fairness form (ImageNet)


# -- pure helpers (tested in tests/test_baselines.py) ----------------------------------------
def confident(probs: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Hard labels and the strict confidence mask max q > tau, §2.3: (B, K) -> (B,), (B,)."""
    conf, labels = probs.max(dim=1)
    return labels, conf > threshold


def layer_id(name: str, num_layers: int, *, mask_token_quirk: bool = True) -> int:
    """Layer id of a parameter name for layer-wise lr decay (§2.6).

    0: patch embedding, class/positional embeddings, ln_pre (and the mask token under the
    quirk); k + 1: transformer block k; L + 1: everything else (ln_post, proj, W, ln_patch,
    decoder).
    """
    if "mask_token" in name:
        return 0 if mask_token_quirk else num_layers + 1
    if any(key in name for key in ("class_embedding", "positional_embedding", "conv1", "ln_pre")):
        return 0
    match = re.search(r"resblocks\.(\d+)\.", name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 1


def layer_decay_groups(
    named: list[tuple[str, nn.Parameter]],
    *,
    num_layers: int,
    decay: float,
    weight_decay: float,
    lr_multiplier: float = 1.0,
    mask_token_quirk: bool = True,
) -> list[dict[str, Any]]:
    """AdamW groups per (layer id, decay or not): wd only on >= 2-dim tensors (§2.6).

    Each group carries ``lr_scale = lr_multiplier x decay^(L + 1 - layer_id)`` and the names
    of its parameters (``param_names``, for inspection; the optimiser ignores the key).
    """
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in named:
        lid = layer_id(name, num_layers, mask_token_quirk=mask_token_quirk)
        decayed = param.ndim >= 2
        group = groups.setdefault(
            (lid, decayed),
            {
                "params": [],
                "param_names": [],
                "weight_decay": weight_decay if decayed else 0.0,
                "lr_scale": lr_multiplier * decay ** (num_layers + 1 - lid),
                "layer_id": lid,
            },
        )
        group["params"].append(param)
        group["param_names"].append(name)
    return [groups[key] for key in sorted(groups)]


def resolve_mask_patch_size(requested: int | None, patch_size: int, image_size: int) -> int:
    """Mask block side in pixels: a multiple of the model patch that tiles the image (§2.4)."""
    if requested is None:
        legal = 32 % patch_size == 0 and image_size % 32 == 0
        return 32 if legal else patch_size
    if requested % patch_size or image_size % requested:
        raise ValueError(
            f"must: mask_patch_size = {requested} px is not allowed for a {image_size} px image "
            f"with {patch_size} px patches; it must be a multiple of {patch_size} that divides "
            f"{image_size} (or null for the default)"
        )
    return requested


def block_mask(
    batch: int, grid: tuple[int, int], scale: int, ratio: float, *, device: torch.device
) -> Tensor:
    """Per-sample random block masks expanded to the model patch grid (MaskGenerator, §2.4).

    Args:
        batch: B. grid: (gh, gw) model patches. scale: model patches per block side
            (mask_patch_size / patch_size). ratio: ceil(ratio x blocks) blocks are masked.

    Returns:
        (B, gh * gw) bool, True where the patch is replaced by the mask token.
    """
    bh, bw = grid[0] // scale, grid[1] // scale
    blocks = bh * bw
    count = math.ceil(ratio * blocks)
    order = torch.rand(batch, blocks).argsort(dim=1)  # uniform random subset per sample
    chosen = torch.zeros(batch, blocks, dtype=torch.bool)
    chosen.scatter_(1, order[:, :count], True)
    patches = chosen.view(batch, bh, bw).repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return patches.reshape(batch, -1).to(device)


def mim_l1_loss(recon: Tensor, target: Tensor, patch_mask: Tensor, patch_size: int) -> Tensor:
    """Mean L1 over masked pixel-channels, §2.5: sum |x^ - x| M / sum M / 3.

    Args:
        recon, target: (B, 3, H, W); patch_mask: (B, gh, gw) bool; patch_size: p.
    """
    pixels = patch_mask.float().repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)
    pixels = pixels.unsqueeze(1)  # (B, 1, H, W)
    l1 = ((recon.float() - target.float()).abs() * pixels).sum()
    return l1 / pixels.sum().clamp_min(1.0) / recon.shape[1]


# -- the method --------------------------------------------------------------------------------


class _MUSTBase(AdaptationMethod):
    """Shared by ``must`` (full fine-tuning) and ``must_ln`` (LayerNorm-only)."""

    views = ("weak", "strong")
    full_finetune: bool = True

    def __init__(self, context: MethodContext, config: MUSTConfig) -> None:
        super().__init__(context)
        self.config = config
        self.adapter: VisualAdapter = context.adapter
        a = self.adapter
        if self.full_finetune:
            a.visual.requires_grad_(True)
        else:
            a.freeze_all_but_layernorms()
        # Head W (K, d), template ensemble, never renormalised (§2.1).
        self.head = nn.Parameter(context.prototypes.head_templates.detach().clone().float())
        self.views = ("weak", "strong")
        if config.mim:
            image = a.visual.image_size
            image = image[0] if isinstance(image, (tuple, list)) else image
            self.mask_patch = resolve_mask_patch_size(config.mask_patch_size, a.patch_size, image)
            self.mask_token = nn.Parameter(torch.randn(1, 1, a.width) * 0.02)  # N(0, 0.02^2)
            self.ln_patch = nn.LayerNorm(a.width)
            p = a.patch_size
            self.decoder = nn.Sequential(nn.Conv2d(a.width, 3 * p * p, 1), nn.PixelShuffle(p))
        # EMA teacher: the visual encoder and W (what produces pseudo-labels).
        self.teacher = VisualAdapter(copy.deepcopy(a.visual)).requires_grad_(False)
        self.register_buffer("teacher_head", self.head.detach().clone())
        self._ema_names = [n for n, p in a.visual.named_parameters() if p.requires_grad]
        self._fair_running: Tensor | None = None
        self._batch_size: int | None = None

    # -- optimiser ---------------------------------------------------------------------------
    def param_groups(self, settings: TrainSettings) -> list[dict[str, Any]]:
        c = self.config
        self._batch_size = settings.batch_size
        return layer_decay_groups(
            list(self.trainable_parameters()),
            num_layers=self.adapter.num_layers,
            decay=c.layer_decay,
            weight_decay=settings.weight_decay,
            lr_multiplier=settings.batch_size / c.lr_reference_batch,
            mask_token_quirk=c.mask_token_quirk,
        )

    # -- EMA (§2.2) ---------------------------------------------------------------------------
    def _ema_schedule(self) -> tuple[float, int]:
        c = self.config
        if c.ema_reference_batch is None or self._batch_size is None:
            return c.ema_final, c.warm_it
        ratio = self._batch_size / c.ema_reference_batch
        return c.ema_final**ratio, round(c.warm_it / ratio)

    @torch.no_grad()
    def after_optimizer_step(self, step: int) -> None:
        final, warm = self._ema_schedule()
        d = ema_decay(step, self.config.ema_init, final, warm)
        student = dict(self.adapter.visual.named_parameters())
        teacher = dict(self.teacher.visual.named_parameters())
        for name in self._ema_names:
            teacher[name].mul_(d).add_(student[name].detach(), alpha=1.0 - d)
        self.teacher_head.mul_(d).add_(self.head.detach(), alpha=1.0 - d)

    # -- forward pieces -------------------------------------------------------------------------
    def _logits(self, z: Tensor, head: Tensor) -> Tensor:
        return self.config.logit_scale * z.float() @ head.float().T  # (B, K)

    def on_epoch_start(self, epoch: int, data: TrainData) -> None:
        self._fair_running = None  # the running fairness form restarts every epoch

    def training_step(self, batch: dict[str, Tensor], *, step: int, epoch: int) -> StepOutput:
        c = self.config
        a = self.adapter
        # 1. Teacher pseudo-labels on the weak view.
        with torch.no_grad():
            q = self._logits(self.teacher(batch["weak"]).z_cls, self.teacher_head).softmax(1)
            labels, mask = confident(q, c.conf_threshold)
        # 2. Student on the (masked) strong view.
        strong = batch["strong"]
        patch_mask = None
        if c.mim:
            scale = self.mask_patch // a.patch_size
            patch_mask = block_mask(
                strong.shape[0], a.grid_size, scale, c.mask_ratio, device=strong.device
            )  # (B, N)
        feats = a(
            strong,
            patch_mask=patch_mask,
            mask_token=self.mask_token if c.mim else None,
            with_final_tokens=c.mim,
        )
        logits = self._logits(feats.z_cls, self.head)  # (B, K)
        # 3. Losses.
        st = masked_cross_entropy(logits, labels, mask)
        if logits.shape[1] >= _RUNNING_FAIRNESS_CLASSES:
            fair, self._fair_running = fairness_loss(logits.softmax(1).mean(0), self._fair_running)
        else:
            fair = batch_fairness_loss(logits)
        loss = st + c.w_fair * fair
        logs = {
            "st": float(st.detach()),
            "fairness": float(fair.detach()),
            "confident": float(mask.float().mean()),
        }
        if c.mim:
            u = self.ln_patch(feats.final_tokens)  # (B, N, D)
            gh, gw = a.grid_size
            recon = self.decoder(u.transpose(1, 2).reshape(u.shape[0], -1, gh, gw))  # (B,3,H,W)
            mim = mim_l1_loss(recon, strong, patch_mask.view(-1, gh, gw), a.patch_size)
            local = F.normalize(a.project(u).float(), dim=-1)  # (B, N, d)
            dist = (local - feats.z_cls.float().unsqueeze(1)).pow(2).sum(-1)  # (B, N)
            m = patch_mask.float()
            align = (dist * m).sum() / m.sum().clamp_min(1.0)
            loss = loss + c.w_mim * mim + c.w_align * align
            logs.update(mim=float(mim.detach()), align=float(align.detach()))
        return StepOutput(loss=loss, pseudo_labels=labels, logs=logs)

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        if self.config.predict_with == "teacher":
            return self._logits(self.teacher(images).z_cls, self.teacher_head)
        return self._logits(self.adapter(images).z_cls, self.head)

    # -- state ----------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """Student trainables + buffers (teacher head) + the teacher's EMA-tracked tensors."""
        state = super().checkpoint_state()
        teacher = self.teacher.visual.state_dict()
        for name in self._ema_names:
            state["tensors"][f"teacher.visual.{name}"] = teacher[name].detach().clone()
        return state

    def extra_state(self) -> dict[str, Any]:
        return {"fair_running": self._fair_running}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self._fair_running = state.get("fair_running")


class MUST(_MUSTBase):
    full_finetune = True


class MUSTLN(_MUSTBase):
    full_finetune = False
