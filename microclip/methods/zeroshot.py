"""Zero-shot CLIP baselines (spec/baselines.md §5): nothing trains.

zs_templates     CLIP's template ensemble: normalise each prompt embedding, average, renormalise.
zs_descriptions  CuPL: mean of the normalised description embeddings per class, renormalised.
"""

from __future__ import annotations

import torch
from torch import Tensor

from microclip.methods.base import AdaptationMethod, MethodContext
from microclip.methods.configs.zeroshot import ZeroShotConfig


class _ZeroShot(AdaptationMethod):
    trains = False
    views = ()

    def __init__(self, context: MethodContext, config: ZeroShotConfig, head: Tensor) -> None:
        super().__init__(context)
        self.adapter = context.adapter
        self.adapter.requires_grad_(False)
        self.config = config
        self.register_buffer("head", head.clone())  # (K, d), rows unit-norm

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        z = self.adapter(images).z_cls  # (B, d)
        return self.config.logit_scale * z @ self.head.to(z.dtype).T


class ZeroShotTemplates(_ZeroShot):
    def __init__(self, context: MethodContext, config: ZeroShotConfig) -> None:
        super().__init__(context, config, context.prototypes.head_templates)


class ZeroShotDescriptions(_ZeroShot):
    def __init__(self, context: MethodContext, config: ZeroShotConfig) -> None:
        super().__init__(context, config, context.prototypes.head_descriptions)
