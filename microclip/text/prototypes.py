"""Cached text prototypes: everything the methods need from the text tower, computed once.

One file per (dataset, backbone, description set), named by a hash of its inputs (model,
weights, description file, templates, class names). The adaptation and evaluation rules
read only this file; they never run the text tower (ReCLIP-T, which trains text
LayerNorms, is the documented exception).

Contents (method.md §5, baselines.md §0 and §5):
  desc_emb (K, M, d)      every description sentence, L2-normalised, zero-padded
  desc_mask (K, M)        True where a sentence exists
  template_emb (K, T, d)  every template filled with the class name, raw (unnormalised)
  head_templates (K, d)   template ensemble (normalise, mean, renormalise): zero-shot CLIP
  head_descriptions (K, d) norm(mean_j e_kj): CuPL zero-shot and W* initialisation
  t_k (K, d)              the handcrafted class embedding of method.md §5
  w_llm (K, d)            the frozen description-weighted head W_LLM
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from microclip.ops.fusion import ensemble_head, llm_head, template_class_embedding
from microclip.text.descriptions import count_overlong

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass
class TextPrototypes:
    classes: list[str]
    desc_emb: Tensor
    desc_mask: Tensor
    template_emb: Tensor
    head_templates: Tensor
    head_descriptions: Tensor
    t_k: Tensor
    w_llm: Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> TextPrototypes:
        moved = {
            k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()
        }
        return TextPrototypes(**moved)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        torch.save({"format": FORMAT_VERSION, **asdict(self)}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> TextPrototypes:
        path = Path(path)
        if path.suffix == ".json":  # the DAG's pointer file -> the content-addressed cache
            path = Path(json.loads(path.read_text())["file"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: text prototype file not found (rule prototypes)")
        data = torch.load(path, map_location="cpu", weights_only=False)
        if data.pop("format", None) != FORMAT_VERSION:
            raise ValueError(f"{path}: prototype file format is not {FORMAT_VERSION}; rebuild it")
        return cls(**data)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def prototype_key(
    *,
    model: str,
    pretrained: str | None,
    classes: list[str],
    templates: list[str],
    descriptions: dict[str, list[str]],
) -> str:
    """Content hash of every input that changes the prototypes."""
    weights = pretrained or "random-init"
    if pretrained and Path(pretrained).is_file():
        weights = "sha256:" + sha256_file(Path(pretrained))
    payload = json.dumps(
        {
            "format": FORMAT_VERSION,
            "model": model,
            "weights": weights,
            "classes": classes,
            "templates": templates,
            "descriptions": descriptions,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@torch.no_grad()
def encode_texts(
    clip: torch.nn.Module, tokenizer, texts: list[str], *, batch_size: int = 256, desc: str = ""
) -> Tensor:
    """(n, d) raw text embeddings; the tokenizer truncates to the model's context."""
    device = next(clip.parameters()).device
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc=desc, leave=False, disable=None):
        tokens = tokenizer(texts[start : start + batch_size]).to(device)
        chunks.append(clip.encode_text(tokens).float().cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0)


def build_prototypes(
    clip: torch.nn.Module,
    tokenizer,
    *,
    classes: list[str],
    templates: list[str],
    descriptions: dict[str, list[str]],
    batch_size: int = 256,
) -> TextPrototypes:
    """Encode templates and descriptions once and derive every head (see module docstring)."""
    names = [c.replace("_", " ") for c in classes]
    k, t = len(classes), len(templates)
    prompts = [template.format(name) for name in names for template in templates]
    template_emb = encode_texts(clip, tokenizer, prompts, batch_size=batch_size, desc="templates")
    template_emb = template_emb.reshape(k, t, -1)  # (K, T, d)

    sentences = [descriptions[c] for c in classes]
    flat = [s for group in sentences for s in group]
    encoded = encode_texts(clip, tokenizer, flat, batch_size=batch_size, desc="descriptions")
    encoded = F.normalize(encoded, dim=-1)
    width = max(len(group) for group in sentences)
    desc_emb = torch.zeros(k, width, template_emb.shape[-1])
    desc_mask = torch.zeros(k, width, dtype=torch.bool)
    offset = 0
    for i, group in enumerate(sentences):
        desc_emb[i, : len(group)] = encoded[offset : offset + len(group)]
        desc_mask[i, : len(group)] = True
        offset += len(group)

    context = getattr(tokenizer, "context_length", 77)
    t_k = template_class_embedding(template_emb)
    masked_mean = (desc_emb * desc_mask[..., None]).sum(1) / desc_mask.sum(1, keepdim=True)
    return TextPrototypes(
        classes=list(classes),
        desc_emb=desc_emb,
        desc_mask=desc_mask,
        template_emb=template_emb,
        head_templates=ensemble_head(template_emb),
        head_descriptions=F.normalize(masked_mean, dim=-1),
        t_k=t_k,
        w_llm=llm_head(desc_emb, desc_mask, t_k),
        meta={
            "templates": list(templates),
            "n_descriptions": len(flat),
            "n_truncated_descriptions": count_overlong(flat, context),
            "n_templates": t,
            "n_truncated_templates": count_overlong(prompts, context),
        },
    )
