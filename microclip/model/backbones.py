"""Backbones: an open_clip architecture name plus a ``pretrained`` tag (or a checkpoint path).

Names and tags stay separate, as in open_clip. OpenAI weights need QuickGELU, so the
registered OpenAI backbones use the ``-quickgelu`` architectures (method.md §12).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from microclip.registry import Registry

log = logging.getLogger(__name__)

DEMO_MODEL = "microclip-demo-vit"


@dataclass(frozen=True)
class BackboneSpec:
    model: str  # open_clip architecture name, e.g. "ViT-B-32-quickgelu"
    pretrained: str | None  # open_clip tag ("openai"), a checkpoint path, or None (random)


BACKBONES: Registry[BackboneSpec] = Registry("backbone")
BACKBONES.add("ViT-B-32", BackboneSpec("ViT-B-32-quickgelu", "openai"))
BACKBONES.add("ViT-B-16", BackboneSpec("ViT-B-16-quickgelu", "openai"))
BACKBONES.add("ViT-L-14", BackboneSpec("ViT-L-14-quickgelu", "openai"))
# The demo CLIP's weights are produced inside the DAG (rule pretrain_demo_clip).
BACKBONES.add("demo-clip", BackboneSpec(DEMO_MODEL, None))


def register_package_model_configs() -> None:
    """Make the package's own architecture JSONs (the demo CLIP) known to open_clip."""
    import open_clip

    if DEMO_MODEL in open_clip.list_models():
        return
    folder = resources.files("microclip.model").joinpath("configs")
    open_clip.add_model_config(Path(str(folder)))


def known_models() -> list[str]:
    import open_clip

    register_package_model_configs()
    return open_clip.list_models()


def create_clip(model: str, pretrained: str | None, *, device: str | torch.device = "cpu"):
    """Build an open_clip model and its tokenizer exactly as a real checkpoint is loaded."""
    import open_clip

    register_package_model_configs()
    if model not in open_clip.list_models():
        raise KeyError(
            f"'{model}' is not an open_clip architecture; see open_clip.list_models() "
            f"(e.g. ViT-B-32-quickgelu, or {DEMO_MODEL})"
        )
    is_path = pretrained and Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}
    if is_path and not Path(pretrained).is_file():
        raise FileNotFoundError(f"{pretrained}: checkpoint for backbone '{model}' not found")
    clip = open_clip.create_model(model, pretrained=pretrained or None, device=device)
    clip.eval()
    tokenizer = open_clip.get_tokenizer(model)
    return clip, tokenizer
