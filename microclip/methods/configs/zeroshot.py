"""Declaration of zs_templates, zs_descriptions: hyperparameters and release training settings.

The implementation is ``microclip.methods.zeroshot``; see its docstring for the method.
"""

from __future__ import annotations

from dataclasses import dataclass

from microclip.methods.declaration import declare_method


@dataclass
class ZeroShotConfig:
    logit_scale: float = 100.0  # CLIP's trained temperature; does not change the argmax


declare_method(
    "zs_templates",
    config=ZeroShotConfig,
    summary="nothing (template ensemble)",
    implementation="microclip.methods.zeroshot:ZeroShotTemplates",
    trains=False,
)

declare_method(
    "zs_descriptions",
    config=ZeroShotConfig,
    summary="nothing (CuPL descriptions)",
    implementation="microclip.methods.zeroshot:ZeroShotDescriptions",
    trains=False,
)
