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
import io
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from microclip.errors import TextError
from microclip.io import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file
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
        """Write the cache file and its sha256 beside it (``<file>.sha256``), both atomically."""
        path = Path(path)
        data = io.BytesIO()
        torch.save({"format": FORMAT_VERSION, **asdict(self)}, data)
        atomic_write_bytes(path, data.getvalue())
        atomic_write_text(_digest_path(path), sha256_bytes(data.getvalue()) + "\n")

    @classmethod
    def load(cls, path: Path) -> TextPrototypes:
        """Load a cache file, or the one a pointer (.json, rule build_prototypes) names."""
        path = resolve_pointer(Path(path))
        protos = cls.load_verified(path)
        if protos is None:
            raise TextError(
                f"{path}: text prototype cache missing or corrupt (its sha256 does not match "
                f"{_digest_path(path).name}); rerun rule build_prototypes (snakemake --forcerun "
                "build_prototypes), which rebuilds it"
            )
        return protos

    @classmethod
    def load_verified(cls, path: Path) -> TextPrototypes | None:
        """The cache file if it exists and matches its stored sha256, else None (a miss)."""
        path, digest = Path(path), _digest_path(Path(path))
        if not path.is_file() or not digest.is_file():
            return None
        payload = path.read_bytes()
        if sha256_bytes(payload) != digest.read_text(encoding="utf-8").strip():
            log.warning("%s does not match its sha256; treating it as a cache miss", path)
            return None
        data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
        if data.pop("format", None) != FORMAT_VERSION:
            log.warning("%s has an old prototype format; treating it as a cache miss", path)
            return None
        return cls(**data)


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def resolve_pointer(path: Path) -> Path:
    """A pointer file names its cache file relative to itself (old pointers: absolute)."""
    if path.suffix != ".json":
        return path
    try:
        target = Path(json.loads(path.read_text(encoding="utf-8"))["file"])
    except FileNotFoundError:
        raise TextError(f"{path}: prototype pointer not found; run rule build_prototypes") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise TextError(f"{path}: not a prototype pointer; rerun rule build_prototypes") from None
    return target if target.is_absolute() else path.parent / target


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
