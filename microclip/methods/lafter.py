"""LaFTer: label-free tuning of zero-shot classifiers with language and unlabelled images.

Paper: Mirza et al., "LaFTer: Label-Free Tuning of Zero-shot Classifier using Language and
Unlabeled Image Collections", NeurIPS 2023. Official release: github.com/jmiemirza/LaFTer.
Spec: spec/baselines.md §3; per-dataset stage-1 steps: settings/lafter.json.

Stage 1 (``on_train_start``): a bias-free linear classifier A: R^d -> R^K learns from text
alone. Every description embedding and every (normalised) template embedding is one
sample; each full-batch step adds fresh N(0, 0.1^2) noise and uses label-smoothed CE
(AdamW lr 5e-4, wd 0.01, no schedule). A frozen copy A_pl becomes the pseudo-labeller.

Stage 2 (the loop): 50 visual prompt tokens inserted after ln_pre (no positional
embedding); pseudo-label y = argmax A_pl(norm(v(x_weak))) from the adapting encoder
*without* prompts, where LaFTer's weak view is the test transform (view "test"); student
o = A(v_prompt(x_strong)) on the SimSiam-style view ("lafter_strong"); label-smoothed CE.
Prompts, A and the visual LayerNorms train; AdamW lr 5e-4, wd 0.01 (0 for biases),
constant lr, 50 epochs, batch 50. Prediction is A(v_prompt(x)).

Quirks and suite choices (documented deviations):
- The student feature v_prompt(x) is NOT L2-normalised (release quirk, replicated by
  default; ``normalize_student: true`` normalises it, in training and prediction alike).
- Prompt init U(-v, v), v = sqrt(6 / (3 p^2 + D)) with the model's actual patch size p and
  width D (the release hard-codes p = 16 and D = 768 for every ViT-B: v = 0.0625, where B/32
  would give 0.0395). ``prompt_init_patch: 16`` reproduces the release's value for ViT-B.
- Stage-1 texts are the suite's description set and the dataset's template list (the
  prototype file), not LaFTer's own ``descriptions/generic`` files and template subsets,
  so every method sees the same text.
"""

from __future__ import annotations

import math
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
from microclip.methods.configs.lafter import LaFTerConfig
from microclip.model.adapter import VisualAdapter
from microclip.ops.losses import label_smoothed_ce
from microclip.text.prototypes import TextPrototypes
from microclip.train.settings import TrainSettings

__all__ = [
    "LaFTer",
    "LaFTerConfig",
    "prompt_init_bound",
    "text_training_set",
    "train_text_classifier",
]


# -- pure helpers (tested in tests/test_baselines.py) ----------------------------------------
def prompt_init_bound(width: int, patch_size: int) -> float:
    """v = sqrt(6 / (3 p^2 + D)): Xavier-uniform over a (3 p^2) x D patch embedding."""
    return math.sqrt(6.0 / (3 * patch_size * patch_size + width))


def text_training_set(prototypes: TextPrototypes) -> tuple[Tensor, Tensor]:
    """Every description and every template embedding, normalised, with its class (§3.1).

    Returns:
        texts (S, d) L2-normalised, labels (S,) int64.
    """
    k, m, _ = prototypes.desc_emb.shape
    desc_labels = torch.arange(k, device=prototypes.desc_emb.device).unsqueeze(1).expand(k, m)
    mask = prototypes.desc_mask.bool()
    desc = F.normalize(prototypes.desc_emb[mask].float(), dim=-1)  # (S_d, d)
    templ = F.normalize(prototypes.template_emb.float(), dim=-1)  # (K, T, d)
    templ_labels = torch.arange(k, device=templ.device).repeat_interleave(templ.shape[1])
    texts = torch.cat([desc, templ.flatten(0, 1)])  # (S, d)
    labels = torch.cat([desc_labels[mask], templ_labels.to(desc_labels.device)])
    return texts, labels


def train_text_classifier(
    head: nn.Linear,
    texts: Tensor,
    labels: Tensor,
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    noise_std: float,
    smoothing: float,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Stage 1 in place: full-batch AdamW steps on CE(head(t + noise), y) with smoothing.

    Noise is fresh per element per step and the noisy embedding is not renormalised.
    Returns the loss of every step.
    """
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    with torch.enable_grad():
        for _ in range(steps):
            noise = torch.randn(
                texts.shape, generator=generator, device=texts.device, dtype=texts.dtype
            )
            loss = label_smoothed_ce(head(texts + noise_std * noise), labels, smoothing=smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    return losses


# -- the method --------------------------------------------------------------------------------


class LaFTer(AdaptationMethod):
    views = ("test", "lafter_strong")  # LaFTer's weak view is the deterministic test view

    def __init__(self, context: MethodContext, config: LaFTerConfig) -> None:
        super().__init__(context)
        self.config = config
        self.prototypes = context.prototypes
        self.adapter: VisualAdapter = context.adapter
        self.adapter.freeze_all_but_layernorms()
        d, k = self.adapter.embed_dim, context.num_classes
        self.head = nn.Linear(d, k, bias=False)  # A, PyTorch's default Kaiming-uniform init
        self.register_buffer("pl_head", torch.zeros(k, d))  # A_pl (K, d), set after stage 1
        patch = config.prompt_init_patch or self.adapter.patch_size
        bound = prompt_init_bound(self.adapter.width, patch)
        prompts = torch.empty(config.num_prompts, self.adapter.width).uniform_(-bound, bound)
        self.prompts = nn.Parameter(prompts)  # (P, D)
        self.text_losses: list[float] = []

    def _student_logits(self, images: Tensor) -> Tensor:
        feats = self.adapter(images, prompts=self.prompts)
        v = self.adapter.project(feats.cls_token)  # (B, d), unnormalised (release quirk)
        if self.config.normalize_student:
            v = F.normalize(v, dim=-1)
        return self.head(v.float())  # (B, K)

    def param_groups(self, settings: TrainSettings) -> list[dict[str, Any]]:
        named = list(self.trainable_parameters())
        return [
            {
                "params": [p for n, p in named if "bias" not in n],
                "weight_decay": settings.weight_decay,
                "lr_scale": 1.0,
            },
            {"params": [p for n, p in named if "bias" in n], "weight_decay": 0.0, "lr_scale": 1.0},
        ]

    def on_train_start(self, data: TrainData) -> None:
        """Stage 1: the text-only classifier, then its frozen copy A_pl."""
        c = self.config
        device = self.head.weight.device
        texts, labels = text_training_set(self.prototypes)
        self.text_losses = train_text_classifier(
            self.head,
            texts.to(device),
            labels.to(device),
            steps=c.text_steps,
            lr=c.text_lr,
            weight_decay=c.text_weight_decay,
            noise_std=c.text_noise_std,
            smoothing=c.label_smoothing,
        )
        with torch.no_grad():
            self.pl_head.copy_(self.head.weight)  # A_pl: frozen; A continues in stage 2

    def training_step(self, batch: dict[str, Tensor], *, step: int, epoch: int) -> StepOutput:
        with torch.no_grad():
            z = self.adapter(batch["test"]).z_cls.float()  # (B, d) normalised, no prompts
            labels = (z @ self.pl_head.T).argmax(dim=1)
        logits = self._student_logits(batch["lafter_strong"])
        loss = label_smoothed_ce(logits.float(), labels, smoothing=self.config.label_smoothing)
        return StepOutput(loss=loss, pseudo_labels=labels, logs={"ce": float(loss.detach())})

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        return self._student_logits(images)

    def extra_state(self) -> dict[str, Any]:
        return {"text_losses": list(self.text_losses)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.text_losses = list(state.get("text_losses", []))
