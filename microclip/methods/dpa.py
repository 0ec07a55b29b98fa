"""DPA: Dual Prototypes Alignment for unsupervised CLIP adaptation (WACV 2025).

Paper: Ali, Silva, Arora, Khan, "DPA: Dual Prototypes Alignment for Unsupervised Adaptation
of Vision-Language Models", WACV 2025. Official release: github.com/Externalhappy/DPA
(a fork of MUST). Spec: spec/baselines.md §1; per-dataset settings: settings/dpa.json.

Steps of one iteration (§1.8):
 1. No grad: weak features f_w -> text probabilities p_txt -> class prior over the last 32
    batch means (FIFO, kept across epochs) -> prior-renormalised p~_txt; image-prototype
    probabilities p_img; mix p = a p_img + (1 - a) p~_txt; y = argmax p; weights
    w_b = p_txt[y]/max p_txt * p_img[y]/max p_img.
 2. Grad: strong logits -> weighted CE + reg * fairness (batch form) + align * L_align,
    where L_align makes every image prototype classify as its own text prototype.
 3. The memory rows of the batch get (f_w, y); image prototypes are recomputed at epoch end.

What trains: the visual LayerNorms and the text prototypes W (template-ensemble init,
row-normalised at every use). AdamW, wd 0.1 except parameters named "bias", cosine to 2e-6.

Deviations: none in the math. The release's frozen, zero-initialised PHM adapter inside
attention contributes exactly zero and is left out (§1.1, as the spec says). The memory
bank and image prototypes live in ``extra_state`` (their size N is known only when the data
is), so they are checkpointed for resume but not needed to score (prediction is text-only).
"""

from __future__ import annotations

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
from microclip.methods.configs.dpa import DPAConfig
from microclip.model.adapter import VisualAdapter
from microclip.ops.losses import batch_fairness_loss, weighted_cross_entropy
from microclip.ops.propagation import class_centroids
from microclip.train.settings import TrainSettings

__all__ = [
    "DPA",
    "DPAConfig",
    "alignment_loss",
    "dpa_pseudo_labels",
    "prior_renormalise",
    "push_prior",
    "sample_weights",
]


# -- pure helpers (tested in tests/test_baselines.py) ----------------------------------------
def prior_renormalise(probs: Tensor, prior: Tensor) -> Tensor:
    """Distribution alignment p~ = (p / pi) / sum_c (p / pi), §1.3 step 2.

    Args:
        probs: (B, C) text probabilities p_txt.
        prior: (C,) class prior pi (mean of the last batch means, the current one included).

    Returns:
        (B, C) rows summing to 1; there is no multiplication by a target prior.
    """
    scaled = probs / prior.unsqueeze(0)  # (B, C)
    return scaled / scaled.sum(dim=1, keepdim=True)


def push_prior(fifo: list[Tensor], batch_mean: Tensor, size: int) -> tuple[list[Tensor], Tensor]:
    """Append a batch mean to the FIFO, keep the last ``size``, return (FIFO, prior pi (C,))."""
    fifo = [*fifo, batch_mean][-size:]
    return fifo, torch.stack(fifo).mean(dim=0)


def sample_weights(p_txt: Tensor, p_img: Tensor, labels: Tensor, eps: float = 1e-7) -> Tensor:
    """w_b = p_txt[b, y_b] / (max_c p_txt[b] + eps) * p_img[b, y_b] / (max_c p_img[b] + eps).

    ``p_txt`` is the *un-aligned* text distribution (§1.3 step 5). (B, C), (B, C), (B,) -> (B,).
    """
    pick = labels.unsqueeze(1)  # (B, 1)
    w_txt = p_txt.gather(1, pick).squeeze(1) / (p_txt.max(dim=1).values + eps)  # (B,)
    w_img = p_img.gather(1, pick).squeeze(1) / (p_img.max(dim=1).values + eps)  # (B,)
    return w_txt * w_img


def dpa_pseudo_labels(
    p_txt: Tensor, p_img: Tensor, prior: Tensor, *, a: float
) -> tuple[Tensor, Tensor]:
    """Hard labels y = argmax(a p_img + (1 - a) p~_txt) and their weights, §1.3 steps 2-5.

    Args:
        p_txt: (B, C) softmax(s f_w Z^T); p_img: (B, C) softmax(s f_w P^T); prior: (C,).

    Returns:
        labels (B,) int64, weights (B,) in (0, 1].
    """
    mixed = a * p_img + (1.0 - a) * prior_renormalise(p_txt, prior)  # (B, C)
    labels = mixed.argmax(dim=1)
    return labels, sample_weights(p_txt, p_img, labels)


def alignment_loss(image_protos: Tensor, text_protos: Tensor, *, w: float) -> Tensor:
    """L_align = (1/C) sum_c CE(w P_c Z^T, c), §1.4: P (C, d) constants, Z (C, d) normalised."""
    logits = w * image_protos.detach() @ text_protos.T  # (C, C)
    target = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, target)


# -- the method --------------------------------------------------------------------------------


class DPA(AdaptationMethod):
    views = ("weak", "strong")

    def __init__(self, context: MethodContext, config: DPAConfig) -> None:
        super().__init__(context)
        self.config = config
        self.adapter: VisualAdapter = context.adapter
        self.adapter.freeze_all_but_layernorms()
        self.head = nn.Parameter(
            context.prototypes.head_templates.detach().clone().float()
        )  # W (K, d)
        self.num_classes = context.num_classes
        # Memory bank and image prototypes (§1.2): sized in on_train_start.
        self.mem_feat: Tensor | None = None  # (N, d) normalised weak features
        self.mem_label: Tensor | None = None  # (N,) int64, -1 = never written
        self.image_protos: Tensor | None = None  # (K, d) P, fixed within an epoch
        self.prior_fifo: list[Tensor] = []  # up to prior_batches (K,) batch means

    # -- pieces ----------------------------------------------------------------------------
    def text_protos(self) -> Tensor:
        return F.normalize(self.head, dim=-1)  # Z (K, d)

    def _logits(self, z: Tensor, protos: Tensor) -> Tensor:
        return self.config.logit_scale * z.float() @ protos.float().T  # (B, K)

    def _refresh_prototypes(self) -> None:
        assert self.mem_feat is not None and self.mem_label is not None, "memory not built"
        seen = self.mem_label >= 0
        fallback = self.text_protos().detach()
        self.image_protos = class_centroids(
            self.mem_feat[seen], self.mem_label[seen], self.num_classes, fallback=fallback
        )

    def param_groups(self, settings: TrainSettings) -> list[dict[str, Any]]:
        """Two AdamW groups (§1.5): names containing 'bias' without decay, the rest with it."""
        named = list(self.trainable_parameters())
        no_decay = [p for n, p in named if "bias" in n]
        decay = [p for n, p in named if "bias" not in n]
        return [
            {"params": decay, "weight_decay": settings.weight_decay, "lr_scale": 1.0},
            {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
        ]

    # -- hooks -----------------------------------------------------------------------------
    @torch.no_grad()
    def on_train_start(self, data: TrainData) -> None:
        """One pass over the weak views: zero-shot labels and features fill the memory (§1.2)."""
        device = self.head.device
        n = data.num_samples
        self.mem_feat = torch.zeros(n, self.head.shape[1], device=device)
        self.mem_label = torch.full((n,), -1, dtype=torch.long, device=device)
        protos = self.text_protos()
        for batch in data.loader(("weak",), shuffle=True, epoch=0):
            index = batch["index"].to(device)
            z = self.adapter(batch["weak"].to(device)).z_cls.float()  # (B, d)
            self.mem_feat[index] = z
            self.mem_label[index] = self._logits(z, protos).argmax(dim=1)
        self._refresh_prototypes()

    def training_step(self, batch: dict[str, Tensor], *, step: int, epoch: int) -> StepOutput:
        c = self.config
        assert self.image_protos is not None, "on_train_start must run before training"
        protos = self.text_protos()  # (K, d) with grad
        # 1. Pseudo-labels from the weak view (no grad).
        with torch.no_grad():
            f_w = self.adapter(batch["weak"]).z_cls.float()  # (B, d)
            p_txt = self._logits(f_w, protos.detach()).softmax(dim=1)  # (B, K)
            self.prior_fifo, prior = push_prior(self.prior_fifo, p_txt.mean(0), c.prior_batches)
            p_img = self._logits(f_w, F.normalize(self.image_protos, dim=-1)).softmax(dim=1)
            labels, weights = dpa_pseudo_labels(p_txt, p_img, prior, a=c.a)
        # 2. Losses on the strong view.
        logits = self._logits(self.adapter(batch["strong"]).z_cls, protos)  # (B, K)
        st = weighted_cross_entropy(logits, labels, weights)
        fair = batch_fairness_loss(logits)
        align = alignment_loss(F.normalize(self.image_protos, dim=-1), protos, w=c.w)
        loss = st + c.reg * fair + c.align * align
        # 3. Memory rows of this batch <- (f_w, y) (§1.2 refresh).
        index = batch["index"].to(f_w.device)
        self.mem_feat[index] = f_w
        self.mem_label[index] = labels
        logs = {
            "st": float(st.detach()),
            "fairness": float(fair.detach()),
            "align": float(align.detach()),
            "mean_weight": float(weights.mean()),
        }
        return StepOutput(loss=loss, pseudo_labels=labels, logs=logs)

    def on_epoch_end(self, epoch: int, data: TrainData) -> None:
        self._refresh_prototypes()

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Text prototypes only (§1.6)."""
        return self._logits(self.adapter(images).z_cls, self.text_protos())

    # -- state -------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        def cpu(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.detach().cpu()

        return {
            "mem_feat": cpu(self.mem_feat),
            "mem_label": cpu(self.mem_label),
            "image_protos": cpu(self.image_protos),
            "prior_fifo": [t.detach().cpu() for t in self.prior_fifo],
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        device = self.head.device

        def dev(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        self.mem_feat = dev(state.get("mem_feat"))
        self.mem_label = dev(state.get("mem_label"))
        self.image_protos = dev(state.get("image_protos"))
        self.prior_fifo = [t.to(device) for t in state.get("prior_fifo", [])]
