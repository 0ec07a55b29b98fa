"""microCLIP: coarse-fine token fusion for unsupervised CLIP adaptation.

Paper: Silva, Ali, Arora, Khan, "microCLIP: Unsupervised CLIP Adaptation via Coarse-Fine
Token Fusion for Fine-Grained Image Classification", arXiv:2510.02270 (ACL 2026 Findings).
Official release: github.com/sathiiii/microCLIP (MIT, built on MUST). Spec: spec/method.md.

Steps (numbered as in the spec):
 1. [CLS] z_cls and the last block's value-path patch tokens P from one forward pass.
 2. NCut saliency over P -> foreground mask and query q.
 3. SOAP: attention pooling of [P; null] around q -> [FG] token z_fg.
 4. TokenFusion logits s (beta z_cls + (1 - beta) z_fg) W*^T.
 5. Two heads from cached text features: learnable W* and frozen W_LLM.
 6. Multi-view prior g over 8 crops.
 7. DKA pseudo-labels: gamma g W_LLM^T + (1 - gamma) f_w W*^T.
 8. CE on the strong view + MUST's fairness term (running mean reset every epoch).
 9. Only visual LayerNorms, W* and SOAP's W_Q/W_K/W_V train.

Every ablation switch of spec §11 is a field of ``MicroCLIPConfig``; the CLS-only
self-training baselines are the same class with other defaults.

Suite choice (documented deviation): the NCut sign rule defaults to ``orient_vector``
(orient the Fiedler vector so its largest-|f| entry is positive, then threshold). The
release's rule (``invert_mask``: threshold, then invert if the mask misses that entry)
gives a different foreground for the two signs ``eigh`` may return, so its result depends
on the LAPACK/cuSOLVER build; it stays available as ``ncut_sign: invert_mask``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from microclip.methods.base import AdaptationMethod, MethodContext, SaliencyMap, StepOutput
from microclip.methods.configs.microclip import (
    MicroCLIPConfig,
)
from microclip.model.adapter import VisualAdapter, VisualFeatures
from microclip.ops.fusion import pseudo_label_feature, token_fusion_logits
from microclip.ops.losses import fairness_loss
from microclip.ops.ncut import affinity_density, ncut_foreground
from microclip.ops.prior import dka_pseudo_labels, multiview_prior
from microclip.ops.soap import SOAP, masked_patch_mean, patch_mean, random_patch


class MicroCLIP(AdaptationMethod):
    def __init__(self, context: MethodContext, config: MicroCLIPConfig) -> None:
        super().__init__(context)
        self.config = config
        self.adapter: VisualAdapter = context.adapter
        self.adapter.freeze_all_but_layernorms()
        protos = context.prototypes
        init = protos.head_descriptions if config.head_init == "descriptions" else protos.t_k
        if config.train_head:
            self.head = nn.Parameter(init.detach().clone().float())  # W* (K, d)
        else:
            self.register_buffer("head", init.detach().clone().float())
        self.register_buffer("w_llm", protos.w_llm.detach().clone().float())  # (K, d)
        self.soap = (
            SOAP(self.adapter.width, learnable_null=config.learnable_null)
            if config.use_fg and config.fg_pooling == "soap"
            else None
        )
        self.prior_adapter: VisualAdapter | None = None
        if config.multiview and config.prior_encoder == "frozen":
            self.prior_adapter = copy.deepcopy(self.adapter).requires_grad_(False)
        self.views = ("weak", "strong", "crops") if config.multiview else ("weak", "strong")
        self._fair_running: Tensor | None = None
        self._generator = torch.Generator().manual_seed(context.seed)

    # -- the [FG] token (§2-§3) ------------------------------------------------------------
    def _features(self, images: Tensor) -> VisualFeatures:
        c = self.config
        return self.adapter(
            images,
            with_patches=c.use_fg,
            with_keys=c.use_fg and c.ncut_input == "key_cosine",
        )

    def _fg_embedding(self, feats: VisualFeatures) -> tuple[Tensor, dict[str, Tensor]]:
        """z_fg (B, d) and what explains it (NCut mask, SOAP attention)."""
        c = self.config
        patches = feats.patches  # (B, N, D)
        assert patches is not None
        explain: dict[str, Tensor] = {}
        needs_ncut = c.fg_pooling == "ncut_mean" or (c.fg_pooling == "soap" and c.query == "ncut")
        if needs_ncut:
            cut = ncut_foreground(
                feats.keys if c.ncut_input == "key_cosine" else patches,
                tau=c.tau,
                eps=c.eps,
                threshold=c.fiedler_threshold,
                affinity="cosine" if c.ncut_input == "key_cosine" else "dot",
                sign=c.ncut_sign,
            )
            explain["ncut_mask"] = cut.mask
            query = masked_patch_mean(patches, cut.mask)  # (B, D)
        if c.fg_pooling == "patch_mean":
            pooled = patch_mean(patches)
        elif c.fg_pooling == "ncut_mean":
            pooled = query
        else:
            if c.query == "cls":
                query = feats.cls_token
            elif c.query == "mean_patch":
                query = patch_mean(patches)
            elif c.query == "random_patch":
                query = random_patch(patches, generator=self._generator)
            out = self.soap(query, patches)
            pooled = out.pooled  # (B, D)
            explain["soap_attention"] = out.attention
        return F.normalize(self.adapter.project(pooled), dim=-1), explain

    def _logits(self, feats: VisualFeatures) -> tuple[Tensor, Tensor]:
        """Classification logits (B, K) and the pseudo-label feature f (B, d)."""
        c = self.config
        if not c.use_fg:
            head = F.normalize(self.head, dim=-1)
            return c.logit_scale * feats.z_cls @ head.to(feats.z_cls.dtype).T, feats.z_cls
        z_fg, _ = self._fg_embedding(feats)
        logits = token_fusion_logits(
            feats.z_cls, z_fg, self.head.to(z_fg.dtype), beta=c.beta, scale=c.logit_scale
        )
        return logits, pseudo_label_feature(feats.z_cls, z_fg)

    # -- training (§6-§8) ------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, data) -> None:
        self._fair_running = None  # §8: reset to the plain batch mean every epoch

    def _weak_and_crops(self, weak: Tensor, crops: Tensor | None) -> tuple[VisualFeatures, Tensor | None]:
        """Weak-view features and the crops' [CLS] (B, V, d) from ONE forward of B (1 + V)
        images when the prior uses the adapting encoder (the patch tokens only for the weak
        rows); the frozen-prior ablation runs its own encoder on the crops."""
        c = self.config
        if crops is None:
            return self._features(weak), None
        b, v = crops.shape[:2]
        if self.prior_adapter is not None:
            z = self.prior_adapter(crops.flatten(0, 1)).z_cls.view(b, v, -1)
            return self._features(weak), z
        both = torch.cat([weak, crops.flatten(0, 1)])  # (B (1 + V), 3, H, W)
        feats = self.adapter(
            both, with_patches=c.use_fg, with_keys=c.use_fg and c.ncut_input == "key_cosine",
            patch_rows=b,
        )
        weak_feats = VisualFeatures(
            z_cls=feats.z_cls[:b], cls_token=feats.cls_token[:b], patches=feats.patches,
            keys=feats.keys,
        )
        return weak_feats, feats.z_cls[b:].view(b, v, -1)

    @torch.no_grad()
    def _prior_and_feature(self, batch: dict[str, Tensor], multiview: bool) -> tuple[Tensor, Tensor, Tensor]:
        """The fixed prior g (B, d), the weak view's [CLS] (B, d) and its fused feature f_w."""
        weak, z_crops = self._weak_and_crops(batch["weak"], batch["crops"] if multiview else None)
        _, f_w = self._logits(weak)  # (B, d)
        prior = multiview_prior(z_crops, weak.z_cls) if multiview else weak.z_cls  # (B, d)
        return prior, weak.z_cls, f_w

    def _dka(self, prior: Tensor, f_w: Tensor, gamma: float) -> Tensor:
        c = self.config
        fixed_head = self.w_llm if c.prior_head == "llm" else F.normalize(self.head, dim=-1)
        return dka_pseudo_labels(prior, f_w, fixed_head, self.head, gamma=gamma)[0]

    @torch.no_grad()
    def pseudo_labels(self, batch: dict[str, Tensor]) -> Tensor:
        """DKA pseudo-labels (§6-§7): gamma (prior x fixed head) + (1 - gamma) (f_w x W*)."""
        prior, _, f_w = self._prior_and_feature(batch, self.config.multiview)
        return self._dka(prior, f_w, self.config.gamma)

    def training_step(self, batch: dict[str, Tensor], *, step: int, epoch: int) -> StepOutput:
        c = self.config
        targets = batch["label"] if c.supervised else self.pseudo_labels(batch)
        logits, _ = self._logits(self._features(batch["strong"]))  # (B, K)
        ce = F.cross_entropy(logits.float(), targets)
        loss = c.ce_weight * ce
        logs = {"ce": float(ce.detach())}
        if c.fairness_weight and not c.supervised:
            mean_probs = logits.float().softmax(-1).mean(0)  # (K,)
            fair, self._fair_running = fairness_loss(mean_probs, self._fair_running)
            loss = loss + c.fairness_weight * fair
            logs["fairness"] = float(fair.detach())
        return StepOutput(loss=loss, pseudo_labels=targets.detach(), logs=logs)

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        logits, _ = self._logits(self._features(images))
        return logits

    @torch.no_grad()
    def explain(self, images: Tensor) -> list[SaliencyMap]:
        """NCut foreground, SOAP attention and [CLS] attention over the patches (B, N) each."""
        out = []
        if self.config.use_fg:
            _, parts = self._fg_embedding(self._features(images))
            if "ncut_mask" in parts:
                out.append(SaliencyMap("ncut_mask", "NCut foreground", "mask", parts["ncut_mask"]))
            if "soap_attention" in parts:  # the last column is the null token
                attention = parts["soap_attention"][:, :-1]
                out.append(SaliencyMap("soap_attention", "SOAP attention [FG]", "attention", attention))
        cls_attention = self.adapter.cls_attention(images)
        out.append(SaliencyMap("cls_attention", "[CLS] attention", "attention", cls_attention))
        return out

    @torch.no_grad()
    def mechanisms(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-image quantities of the mechanism diagnostics (microclip.evaluate.mechanisms):
        NCut on the test view under both sign rules, zero-shot logits of [CLS], [FG] and
        their fusion, and pseudo-labels for gamma 0 / 0.5 / 1, single- and multi-view."""
        c = self.config
        feats = self.adapter(batch["test"], with_patches=True)
        patches = feats.patches  # (B, N, D)
        other = "invert_mask" if c.ncut_sign == "orient_vector" else "orient_vector"
        cuts = {
            sign: ncut_foreground(patches, tau=c.tau, eps=c.eps, threshold=c.fiedler_threshold,
                                  affinity="dot", sign=sign)
            for sign in (c.ncut_sign, other)
        }
        cut = cuts[c.ncut_sign]
        z_fg, _ = self._fg_embedding(feats)  # (B, d): [FG] as this configuration pools it
        head = F.normalize(self.head, dim=-1)
        out = {
            "density": affinity_density(patches, c.tau),
            "mask": cut.mask,
            "mask_other_sign": cuts[other].mask,
            "eigengap": cut.eigenvalues[:, 2] - cut.eigenvalues[:, 1],
            "cls_logits": feats.z_cls @ head.T,
            "fg_logits": z_fg @ head.T,
            "fused_logits": token_fusion_logits(feats.z_cls, z_fg, self.head, beta=c.beta,
                                                scale=c.logit_scale),
        }
        g, z_weak, f_w = self._prior_and_feature(batch, multiview=True)
        for view, prior in (("single", z_weak), ("multi", g)):
            for gamma in (0.0, 0.5, 1.0):
                out[f"pseudo_{view}_{gamma:g}"] = self._dka(prior, f_w, gamma)
        return out

    def view_options(self) -> dict[str, Any]:
        return {"num_crops": self.config.num_crops}

    def extra_state(self) -> dict[str, Any]:
        return {"fair_running": self._fair_running, "generator": self._generator.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self._fair_running = state.get("fair_running")
        if "generator" in state:
            self._generator.set_state(state["generator"])


class CLSSelfTrain(MicroCLIP):
    pass


class MultiviewCLSSelfTrain(MicroCLIP):
    pass
