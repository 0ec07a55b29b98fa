"""The demo world's own small CLIP, pretrained contrastively on the SOURCE domain.

No pretrained CLIP can be downloaded offline, so the demo trains one from open_clip's own
classes (architecture ``microclip-demo-vit``: 48 px input, 8 px patches = a 6 x 6 grid,
width 128, 4 layers; a 2-layer text transformer on the standard 49,408-token vocabulary)
on source-domain scenes (``microclip.data.fashion_shift``) paired with captions built from
class names, templates, synonyms and the demo's descriptions. The checkpoint is then loaded
back through ``open_clip.create_model(..., pretrained=<path>)`` like any real one. The target
domain is never seen here.

Two properties of web-scale CLIPs that microCLIP relies on, and a 350-step CLIP on small
scenes lacks, are given to it through its training data and loss (chosen from source-domain
figures and the label-free diagnostics; README, "The offline demo world"):

- every scale: real CLIP data shows objects at every scale, so zoomed crops are in
  distribution. Here ``crop_prob`` of each batch is a random resized crop (area
  ``crop_area``), which covers the 0.5-0.9 crops of the multi-view prior.
- text-aligned value-path tokens that separate object from background (the MaskCLIP
  observation that dense CLIP features name what each patch shows). Here the last block's
  value-path patch tokens, through ln_post and the projection, are trained contrastively too
  (``dense_loss_weight``): a patch the object covers (``object_cover``) against its image's
  caption, a background patch (``background_cover``) against a background caption; patches
  in between are left free. The object masks come from the source scenes' composition.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from microclip.data.fashion_shift import source_scenes, source_test_scenes
from microclip.data.views import CLIP_MEAN, CLIP_STD
from microclip.io import atomic_torch_save
from microclip.model.adapter import VisualAdapter
from microclip.model.backbones import DEMO_MODEL, create_clip
from microclip.model.demo_config import DemoPretrainConfig
from microclip.train.checkpoint import seed_everything

log = logging.getLogger(__name__)

BACKGROUND_CAPTIONS = (
    "the background.",
    "an empty background.",
    "a plain blurry background.",
    "a patch of background with no object.",
)


def caption_pool(
    classes: list[str],
    templates: list[str],
    synonyms: dict[str, list[str]],
    descriptions: dict[str, list[str]],
) -> tuple[list[str], list[int]]:
    """Every caption with its class: templates x synonyms, plus the descriptions."""
    captions, owners = [], []
    for label, name in enumerate(classes):
        for word in synonyms.get(name, [name]):
            for template in templates:
                captions.append(template.format(word))
                owners.append(label)
        for sentence in descriptions.get(name, []):
            captions.append(sentence)
            owners.append(label)
    return captions, owners


def to_model_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (n, H, W, 3) RGB -> normalised float (n, 3, H, W)."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def zero_shot_accuracy(clip, tokenizer, images: torch.Tensor, labels: torch.Tensor,
                       classes: list[str], templates: list[str], batch: int = 500) -> float:
    """Template-ensemble zero-shot top-1 (%) on already-normalised images."""
    prompts = tokenizer([t.format(c) for c in classes for t in templates])
    text = F.normalize(clip.encode_text(prompts).float(), dim=-1)
    head = F.normalize(text.view(len(classes), len(templates), -1).mean(1), dim=-1)
    hits = 0
    for i in range(0, len(labels), batch):
        z = F.normalize(clip.encode_image(images[i : i + batch]).float(), dim=-1)
        hits += int(((z @ head.T).argmax(-1) == labels[i : i + batch]).sum())
    return 100.0 * hits / len(labels)


def random_resized_crops(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    p: float,
    area: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Batched RandomResizedCrop (bilinear, back to the input size) applied with prob ``p``
    to (n, C, H, W); every channel (an opacity channel too) moves with the same crop."""
    n = images.shape[0]
    u = torch.rand(n, 4, generator=generator)
    scale = area[0] + (area[1] - area[0]) * u[:, 0]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    w = (scale * log_r.exp()).sqrt().clamp(max=1.0)  # crop width / image width
    h = (scale / log_r.exp()).sqrt().clamp(max=1.0)
    cx = (1 - w) * (2 * u[:, 2] - 1)  # crop centre in [-1, 1] coordinates, inside the image
    cy = (1 - h) * (2 * u[:, 3] - 1)
    keep = torch.rand(n, generator=generator) >= p
    w, h = torch.where(keep, 1.0, w), torch.where(keep, 1.0, h)
    cx, cy = torch.where(keep, 0.0, cx), torch.where(keep, 0.0, cy)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", align_corners=False)


def patch_cover(alpha: torch.Tensor, patch: int) -> torch.Tensor:
    """Share of each patch the object covers: (n, H, W) opacity in [0, 1] -> (n, N)."""
    covered = (alpha > 0.15).float().unsqueeze(1)  # (n, 1, H, W), the object's pixels
    return F.avg_pool2d(covered, patch).flatten(1)  # (n, N)


def _symmetric_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CLIP's image->text + text->image loss on (B, B) logits with soft targets."""
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T))


def dense_loss(
    tokens: torch.Tensor, text: torch.Tensor, background: torch.Tensor, cover: torch.Tensor,
    same_class: torch.Tensor, scale: torch.Tensor, settings: DemoPretrainConfig,
) -> torch.Tensor:
    """Patch tokens against the batch's captions plus the background captions.

    tokens (B, N, d) and text (B, d), background (M, d) normalised; cover (B, N) object share;
    same_class (B, B). An object patch's targets are the captions of its class; a background
    patch's the background captions; patches in between do not count.
    """
    b, n, _ = tokens.shape
    m = background.shape[0]
    logits = scale * tokens @ torch.cat([text, background]).T  # (B, N, B + M)
    obj = cover >= settings.object_cover  # (B, N)
    bg = cover <= settings.background_cover  # (B, N)
    targets = torch.zeros(b, n, b + m)
    targets[..., :b] = (same_class / same_class.sum(1, keepdim=True))[:, None, :]
    targets = torch.where(bg[..., None], torch.cat(
        [torch.zeros(b, n, b), torch.full((b, n, m), 1.0 / m)], -1), targets)
    counted = obj | bg  # (B, N)
    if not counted.any():
        return tokens.sum() * 0.0
    return F.cross_entropy(logits[counted], targets[counted])


def pretrain_demo_clip(
    *,
    data_root: Path,
    out_path: Path,
    classes: list[str],
    templates: list[str],
    synonyms: dict[str, list[str]],
    descriptions: dict[str, list[str]],
    settings: DemoPretrainConfig,
    seed: int = 0,
) -> dict[str, float]:
    """Contrastive pretraining on the source scenes; returns figures for the README."""
    start = time.perf_counter()
    seed_everything(seed)
    clip, tokenizer = create_clip(DEMO_MODEL, None)
    clip.train()
    adapter = VisualAdapter(clip.visual)
    scenes, labels_np, alpha_np = source_scenes(Path(data_root))
    images = to_model_input(scenes)  # (n, 3, S, S)
    alpha = torch.as_tensor(alpha_np).float().div(255.0).unsqueeze(1)  # (n, 1, S, S)
    labels = torch.as_tensor(labels_np)
    captions, owners = caption_pool(classes, templates, synonyms, descriptions)
    tokens = tokenizer(captions)  # (C, context)
    background_tokens = tokenizer(list(BACKGROUND_CAPTIONS))
    by_class = [np.flatnonzero(np.asarray(owners) == k) for k in range(len(classes))]

    steps = max(1, math.ceil(settings.epochs * len(labels) / settings.batch_size))
    # fused: one kernel for all parameters (the 49,408-row token embedding dominates them)
    optimizer = torch.optim.AdamW(clip.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay, fused=True)
    generator = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    order = torch.randperm(len(labels), generator=generator)
    cursor, patch = 0, adapter.patch_size
    for step in tqdm(range(steps), desc="pretrain demo CLIP", disable=None):
        # Linear warm-up then cosine: without warm-up this small CLIP stays at chance.
        warm = settings.warmup_steps
        factor = (step + 1) / warm if step < warm else 0.5 * (
            1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))
        )
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * factor
        if cursor + settings.batch_size > len(order):
            order, cursor = torch.randperm(len(labels), generator=generator), 0
        idx = order[cursor : cursor + settings.batch_size]
        cursor += settings.batch_size
        batch_labels = labels[idx]
        caption_idx = [int(rng.choice(by_class[int(y)])) for y in batch_labels]
        both = torch.cat([images[idx], alpha[idx]], dim=1)  # crop image and mask together
        if settings.crop_prob > 0:
            both = random_resized_crops(both, generator, p=settings.crop_prob,
                                        area=settings.crop_area)
        batch_images, batch_alpha = both[:, :3], both[:, 3]
        feats = adapter(batch_images, with_patches=settings.dense_loss_weight > 0)
        z_txt = F.normalize(clip.encode_text(tokens[caption_idx]), dim=-1)
        logit_scale = clip.logit_scale.exp()
        # Captions of the same class are all positives (a batch holds many per class).
        same = (batch_labels[:, None] == batch_labels[None, :]).float()
        targets = same / same.sum(1, keepdim=True)  # symmetric rows = columns
        loss = _symmetric_ce(logit_scale * feats.z_cls @ z_txt.T, targets)
        if settings.dense_loss_weight > 0:
            z_bg = F.normalize(clip.encode_text(background_tokens), dim=-1)
            z_patch = F.normalize(adapter.project(feats.patches), dim=-1)  # (B, N, d)
            cover = patch_cover(batch_alpha, patch)
            loss = loss + settings.dense_loss_weight * dense_loss(
                z_patch, z_txt, z_bg, cover, same, logit_scale, settings
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            clip.logit_scale.clamp_(0, math.log(100))
    clip.eval()
    atomic_torch_save(clip.state_dict(), Path(out_path))

    test_scenes, test_labels = source_test_scenes(Path(data_root))
    source_zs = zero_shot_accuracy(
        clip, tokenizer, to_model_input(test_scenes), torch.as_tensor(test_labels), classes,
        templates,
    )
    stats = {
        "source_test_zero_shot_top1": source_zs,
        "steps": steps,
        "final_loss": float(loss.detach()),
        "source_images": int(len(labels)),
        "captions": len(captions),
        "settings": settings.__dict__,
        "wall_s": time.perf_counter() - start,
    }
    log.info("demo CLIP pretrained: %s", stats)
    return stats
