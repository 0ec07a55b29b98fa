"""The demo world's own small CLIP, pretrained contrastively on the SOURCE domain.

No pretrained CLIP can be downloaded offline, so the demo trains one from open_clip's own
classes (architecture ``microclip-demo-vit``: 28 px input, 7 px patches = a 4 x 4 grid,
width 128, 4 layers; a 2-layer text transformer on the standard 49,408-token vocabulary)
on clean Fashion-MNIST images paired with captions built from class names, templates,
synonyms and the demo's descriptions. The checkpoint is then loaded back through
``open_clip.create_model(..., pretrained=<path>)`` like any real one. The target domain
(shifted images) is never seen here.

Value-path alignment (auxiliary term). microCLIP's [FG] token pools the last block's
value-path patch tokens and projects them with the CLIP projection; that relies on a
property large CLIPs acquire from web-scale training (MaskCLIP: value-path tokens through
ln_post and proj are text-aligned), which this 350-step CLIP does not: with the plain loss
a single patch token names the image's class zero-shot 28-52 % of the time on clean source
test images (CLS: 84 %) and [FG] reaches 40 %. So the pretraining adds the same contrastive
loss on the MEAN of the value-path patch tokens (weight 1 by default): in a ViT the
last block's [CLS] output is largely an attention-weighted sum of those value-path
contributions, and aligning only their mean states that, leaving individual patches free
to differ (per-patch zero-shot then 60-79 %, [FG] 68 %, [CLS] unchanged). Aligning every
patch instead (``patch_loss="each"``) makes all patches near copies of [CLS].
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

from microclip.data.fashion_shift import SOURCE_END, load_split
from microclip.data.views import CLIP_MEAN, CLIP_STD
from microclip.io import atomic_torch_save
from microclip.model.adapter import VisualAdapter
from microclip.model.backbones import DEMO_MODEL, create_clip
from microclip.model.demo_config import DemoPretrainConfig
from microclip.train.checkpoint import seed_everything

log = logging.getLogger(__name__)


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
    """uint8 (n, H, W) grayscale -> normalised float (n, 3, H, W)."""
    x = torch.as_tensor(images).float().div(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def zero_shot_accuracy(clip, tokenizer, images: torch.Tensor, labels: torch.Tensor,
                       classes: list[str], templates: list[str], batch: int = 1000) -> float:
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
    scale: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Batched RandomResizedCrop (bilinear, back to the input size) applied with prob ``p``."""
    n = images.shape[0]
    u = torch.rand(n, 4, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    w = (area * log_r.exp()).sqrt().clamp(max=1.0)  # crop width / image width
    h = (area / log_r.exp()).sqrt().clamp(max=1.0)
    cx = (1 - w) * (2 * u[:, 2] - 1)  # crop centre in [-1, 1] coordinates, inside the image
    cy = (1 - h) * (2 * u[:, 3] - 1)
    keep = torch.rand(n, generator=generator) >= p
    w, h = torch.where(keep, 1.0, w), torch.where(keep, 1.0, h)
    cx, cy = torch.where(keep, 0.0, cx), torch.where(keep, 0.0, cy)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", align_corners=False)


def _symmetric_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CLIP's image->text + text->image loss on (..., B, B) logits with soft targets."""
    b = logits.shape[-1]
    flat = targets.expand(*logits.shape).reshape(-1, b)
    return 0.5 * (
        F.cross_entropy(logits.reshape(-1, b), flat)
        + F.cross_entropy(logits.transpose(-1, -2).reshape(-1, b), flat)
    )


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
    """Contrastive pretraining on the source domain; returns figures for the README.

    ``patch_loss_weight`` (default 1.0, the same weight as the [CLS] term; 0 = plain CLIP
    loss) adds the same contrastive loss on the last block's value-path patch tokens
    (``VisualAdapter(...).patches`` through the CLIP projection): ``patch_loss="mean"``
    aligns their mean with the captions, ``"each"`` aligns every patch token (ablation:
    the patches then become near copies of [CLS]). See the module docstring for why.
    ``crop_prob`` > 0 trains on RandomResizedCrop views (area 1/4-1) of that share of each
    batch (off by default: crops helped microCLIP's multi-view prior on source images but
    cost the [CLS] zero-shot about 10 points on the shifted target domain).
    """
    epochs, batch_size, lr = settings.epochs, settings.batch_size, settings.lr
    warmup_steps, weight_decay = settings.warmup_steps, settings.weight_decay
    patch_loss_weight, patch_loss = settings.patch_loss_weight, settings.patch_loss
    crop_prob = settings.crop_prob
    if patch_loss not in {"mean", "each"}:
        raise ValueError(f"patch_loss = {patch_loss!r}; expected 'mean' or 'each'")
    start = time.perf_counter()
    seed_everything(seed)
    clip, tokenizer = create_clip(DEMO_MODEL, None)
    clip.train()
    adapter = VisualAdapter(clip.visual)
    train_x, train_y = load_split(Path(data_root), train=True)
    images = to_model_input(train_x[:SOURCE_END])  # (n, 3, 28, 28)
    labels = torch.as_tensor(train_y[:SOURCE_END])
    captions, owners = caption_pool(classes, templates, synonyms, descriptions)
    tokens = tokenizer(captions)  # (C, context)
    by_class = [np.flatnonzero(np.asarray(owners) == k) for k in range(len(classes))]

    steps = max(1, math.ceil(epochs * len(labels) / batch_size))
    optimizer = torch.optim.AdamW(clip.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    order = torch.randperm(len(labels), generator=generator)
    cursor = 0
    for step in tqdm(range(steps), desc="pretrain demo CLIP", disable=None):
        # Linear warm-up then cosine: without warm-up this small CLIP stays at chance.
        scale = (step + 1) / warmup_steps if step < warmup_steps else 0.5 * (
            1 + math.cos(math.pi * (step - warmup_steps) / max(1, steps - warmup_steps))
        )
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(labels), generator=generator), 0
        idx = order[cursor : cursor + batch_size]
        cursor += batch_size
        batch_labels = labels[idx]
        caption_idx = [int(rng.choice(by_class[int(y)])) for y in batch_labels]
        batch_images = images[idx]
        if crop_prob > 0:
            batch_images = random_resized_crops(batch_images, generator, p=crop_prob)
        feats = adapter(batch_images, with_patches=patch_loss_weight > 0)
        z_txt = F.normalize(clip.encode_text(tokens[caption_idx]), dim=-1)
        logit_scale = clip.logit_scale.exp()
        # Captions of the same class are all positives (a batch holds many per class).
        same = (batch_labels[:, None] == batch_labels[None, :]).float()
        targets = same / same.sum(1, keepdim=True)  # symmetric rows = columns
        loss = _symmetric_ce(logit_scale * feats.z_cls @ z_txt.T, targets)  # (B, B) logits
        if patch_loss_weight > 0:
            patches = adapter.project(feats.patches)  # (B, N, d) value path, ln_post, proj
            if patch_loss == "mean":
                z_patch = F.normalize(patches.mean(1), dim=-1)[None]  # (1, B, d)
            else:
                z_patch = F.normalize(patches, dim=-1).transpose(0, 1)  # (N, B, d)
            patch_logits = logit_scale * z_patch @ z_txt.T  # (1 or N, B, B)
            loss = loss + patch_loss_weight * _symmetric_ce(patch_logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            clip.logit_scale.clamp_(0, math.log(100))
    clip.eval()
    atomic_torch_save(clip.state_dict(), Path(out_path))

    test_x, test_y = load_split(Path(data_root), train=False)
    source_zs = zero_shot_accuracy(
        clip, tokenizer, to_model_input(test_x), torch.as_tensor(test_y), classes, templates
    )
    stats = {
        "source_test_zero_shot_top1": source_zs,
        "steps": steps,
        "final_loss": float(loss.detach()),
        "source_images": int(len(labels)),
        "captions": len(captions),
        "patch_loss_weight": patch_loss_weight,
        "patch_loss": patch_loss,
        "crop_prob": crop_prob,
        "wall_s": time.perf_counter() - start,
    }
    log.info("demo CLIP pretrained: %s", stats)
    return stats
