"""``microclip methods``: every registered method, what trains, and how many values."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from microclip.methods import METHODS
from microclip.methods.base import MethodContext
from microclip.model.adapter import VisualAdapter
from microclip.model.backbones import BACKBONES, create_clip
from microclip.text.prototypes import TextPrototypes


def random_prototypes(num_classes: int, dim: int, *, seed: int = 0) -> TextPrototypes:
    """Stand-in text features of the right shapes (counting parameters needs no text)."""
    g = torch.Generator().manual_seed(seed)
    desc = F.normalize(torch.randn(num_classes, 4, dim, generator=g), dim=-1)
    templates = torch.randn(num_classes, 2, dim, generator=g)
    head = F.normalize(desc.mean(1), dim=-1)
    return TextPrototypes(
        classes=[f"class {k}" for k in range(num_classes)],
        desc_emb=desc,
        desc_mask=torch.ones(num_classes, 4, dtype=torch.bool),
        template_emb=templates,
        head_templates=F.normalize(templates.mean(1), dim=-1),
        head_descriptions=head,
        t_k=F.normalize(templates.mean(1), dim=-1),
        w_llm=head,
        meta={"templates": ["a photo of a {}.", "a {}."]},
    )


def build_with_stand_in_text(
    method: str,
    clip,
    tokenizer,
    *,
    num_classes: int,
    options: dict | None = None,
    device: str | torch.device = "cpu",
):
    """``method`` on ``clip`` with random text features of the right shapes.

    For parameter counts, throughput and shape tests: nothing here needs real text.
    """
    device = torch.device(device)
    clip.requires_grad_(False)
    adapter = VisualAdapter(clip.visual)
    context = MethodContext(
        clip=clip,
        tokenizer=tokenizer,
        adapter=adapter,
        prototypes=random_prototypes(num_classes, adapter.embed_dim).to(device),
        dataset="synthetic",
        device=device,
        seed=0,
        templates=["a photo of a {}."],
    )
    declaration = METHODS.get(method)
    config = declaration.build_config(declaration.resolve_options("synthetic", options or {}))
    return declaration.load()(context, config).to(device)


def count_trainable(method: str, *, model: str, num_classes: int, clip=None) -> int:
    """Trainable values of ``method`` on a randomly initialised ``model`` (no download)."""
    clip, tokenizer = clip if clip is not None else create_clip(model, None)
    return build_with_stand_in_text(
        method, clip, tokenizer, num_classes=num_classes
    ).num_trainable()


def methods_table(*, backbone: str = "ViT-B-32", num_classes: int = 102) -> str:
    model = BACKBONES.get(backbone).model if backbone in BACKBONES else backbone
    rows = [("method", "what trains", f"trainable ({model}, K={num_classes})")]
    for name in METHODS.names():
        rows.append(
            (
                name,
                METHODS.get(name).summary,
                f"{count_trainable(name, model=model, num_classes=num_classes):,}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
