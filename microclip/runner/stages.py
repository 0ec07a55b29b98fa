"""The stages the DAG runs, as plain functions (the CLI and the tests call these).

prototypes  backbone text tower -> cached TextPrototypes (content-addressed, verified)
adapt       one run: fit with resume -> adapted state + epoch log, and (the DAG's way) the
            test-split score -> metrics.json (one RunRecord) in the same process
evaluate    re-score a saved adapted state -> metrics.json
explain     adapted state -> the method's saliency maps on the first test images (.npz)
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

import microclip
from microclip.data import get_dataset
from microclip.errors import RunError
from microclip.evaluate import mechanisms as mech
from microclip.evaluate.score import top1_accuracy
from microclip.io import atomic_torch_save, atomic_write_json, atomic_write_with
from microclip.model.backbones import create_clip
from microclip.results import RunRecord, write_epochs
from microclip.runner.context import Placement, RunContext, pick_device
from microclip.runner.provenance import git_commit, package_versions
from microclip.spec import RunSpec
from microclip.text.descriptions import load_descriptions
from microclip.text.prototypes import TextPrototypes, build_prototypes, prototype_key
from microclip.train.checkpoint import seed_everything
from microclip.train.loop import fit

log = logging.getLogger(__name__)


# -- prototypes -------------------------------------------------------------------------------
def make_prototypes(
    *,
    dataset: str,
    model: str,
    pretrained: str | None,
    descriptions_path: Path,
    out_pointer: Path,
    cache_dir: Path,
    classes: list[str] | None = None,
    templates: list[str] | None = None,
    device: str = "auto",
) -> Path:
    """Write ``out_pointer`` (JSON naming the cache file); encode only on a cache miss."""
    spec = get_dataset(dataset) if classes is None or templates is None else None
    classes = classes if classes is not None else spec.classes()
    templates = templates if templates is not None else spec.templates()
    descriptions = load_descriptions(Path(descriptions_path), classes)
    key = prototype_key(
        model=model, pretrained=pretrained, classes=classes, templates=templates,
        descriptions=descriptions,
    )
    cache_file = Path(cache_dir) / f"{dataset}-{model}-{key}.pt"
    protos = TextPrototypes.load_verified(cache_file)
    if protos is not None:
        log.info("prototype cache hit: %s", cache_file)
    else:
        clip, tokenizer = create_clip(model, pretrained, device=pick_device(device))
        protos = build_prototypes(
            clip, tokenizer, classes=classes, templates=templates, descriptions=descriptions
        )
        protos.meta.update({"key": key, "model": model, "pretrained": pretrained,
                            "descriptions": str(descriptions_path), "dataset": dataset})
        protos.save(cache_file)
    out_pointer = Path(out_pointer)
    # relative to the pointer's folder, so a moved project keeps working
    relative = os.path.relpath(cache_file.resolve(), out_pointer.resolve().parent)
    atomic_write_json(out_pointer, {"file": relative, "key": key, **protos.meta})
    return cache_file


# -- adaptation and scoring ---------------------------------------------------------------------
def adapt(
    spec: RunSpec,
    *,
    manifest_dir: Path,
    prototypes_path: Path,
    out_state: Path,
    log_path: Path,
    checkpoint_path: Path,
    out_metrics: Path | None = None,
    placement: Placement | None = None,
    image_cache: Path | None = None,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Fit one run (resuming from ``checkpoint_path``) and save the state to report; with
    ``out_metrics``, score it in the same process and write its RunRecord there."""
    start = time.perf_counter()
    ctx = RunContext(spec, manifest_dir=manifest_dir, prototypes_path=prototypes_path,
                     placement=placement, image_cache=image_cache)
    settings = ctx.settings
    evaluate_fn = (lambda m: ctx.test_score(m).top1) if spec.eval_each_epoch else None
    result = fit(
        ctx.method,
        ctx.train_data(),
        settings,
        seed=spec.seed,
        device=ctx.device,
        checkpoint_path=Path(checkpoint_path),
        log_path=Path(log_path),
        evaluate=evaluate_fn,
        precision=ctx.precision,
        fingerprint=ctx.fingerprint,
        stop_after_epoch=stop_after_epoch,
    )
    if stop_after_epoch is not None and len(result.history) < settings.epochs:
        return {"stopped_after_epoch": len(result.history)}
    use_best = settings.report == "best" and result.best_state is not None
    payload = {
        "state": result.best_state if use_best else result.final_state,
        "report": "best" if use_best else "last",
        "reported_epoch": result.best_epoch if use_best else settings.epochs,
        "history": result.history,
        "adapt_wall_s": result.wall_s,
        "fingerprint": ctx.fingerprint,
        "trainable_params": ctx.method.num_trainable(),
        "n_train": len(ctx.manifest.train),
    }
    atomic_torch_save(payload, Path(out_state))
    if not result.history:  # zero-shot: no epoch log, but the rule still declares one
        write_epochs(Path(log_path), [])
    if out_metrics is not None:
        record = run_record(ctx, payload, started=start, other_s=result.resumed_s)
        record.write(out_metrics)
        log.info("%s %s %s seed %s: top-1 %.2f", record.method, record.dataset,
                 record.backbone, record.seed, record.top1)
    return payload


def _load_adapted(ctx: RunContext, adapted_state: Path) -> dict[str, Any]:
    try:
        saved = torch.load(Path(adapted_state), map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise RunError(f"{adapted_state}: adapted state not found; run rule adapt_method") from None
    if saved.get("fingerprint") != ctx.fingerprint:
        raise RunError(
            f"{adapted_state}: adapted with another configuration "
            f"({saved.get('fingerprint')} != {ctx.fingerprint}); rerun rule adapt_method"
        )
    ctx.method.load_checkpoint_state(saved["state"])
    return saved


def run_record(
    ctx: RunContext, saved: dict[str, Any], *, started: float, other_s: float
) -> RunRecord:
    """Score the loaded method on the test split and describe the run.

    ``wall_s`` = ``other_s`` (time the run spent in other processes: earlier sessions of a
    resumed run, or the adaptation of a state scored again) + this process's time since
    ``started`` (``time.perf_counter()`` when the stage began: loading, fit, scoring).
    """
    spec = ctx.spec
    score_start = time.perf_counter()
    result = ctx.test_score()
    now = time.perf_counter()
    wall_s = other_s + (now - started)
    return RunRecord(
        run=spec.run,
        method=spec.method,
        base_method=spec.base_method,
        dataset=spec.dataset,
        backbone=spec.backbone,
        model=spec.model,
        pretrained=spec.pretrained,
        description_set=spec.description_set,
        seed=spec.seed,
        split="test",
        top1=result.top1,
        mean_per_class_recall=result.mean_per_class_recall,
        report=saved["report"],
        reported_epoch=saved["reported_epoch"],
        n_train=saved["n_train"],
        n_test=result.n,
        num_classes=ctx.manifest.num_classes,
        wall_s=wall_s,
        adapt_wall_s=saved["adapt_wall_s"],
        score_s=now - score_start,
        trainable_params=saved["trainable_params"],
        config_hash=ctx.fingerprint,
        version=microclip.__version__,
        git_commit=git_commit(),
        device=str(ctx.device),
        precision=ctx.precision,
        method_config=dict(spec.options),
        train_settings=dict(spec.train),
        packages=package_versions(),
    )


def evaluate(
    spec: RunSpec,
    *,
    manifest_dir: Path,
    prototypes_path: Path,
    adapted_state: Path,
    out_metrics: Path,
    placement: Placement | None = None,
    image_cache: Path | None = None,
) -> RunRecord:
    """Score the adapted state on the test split and write one flat metrics.json."""
    start = time.perf_counter()
    ctx = RunContext(spec, manifest_dir=manifest_dir, prototypes_path=prototypes_path,
                     placement=placement, image_cache=image_cache)
    saved = _load_adapted(ctx, adapted_state)
    record = run_record(ctx, saved, started=start, other_s=saved["adapt_wall_s"])
    record.write(out_metrics)
    return record


# -- saliency --------------------------------------------------------------------------------
def explain(
    spec: RunSpec,
    *,
    manifest_dir: Path,
    prototypes_path: Path,
    adapted_state: Path,
    out_npz: Path,
    max_images: int,
    placement: Placement | None = None,
    image_cache: Path | None = None,
) -> Path:
    """The method's saliency maps (``AdaptationMethod.explain``) on the first test images.

    Writes ``images`` (n, H, W, 3) uint8, one (n, gh, gw) array per map, and ``maps``, a
    JSON list of {key, title, kind} in drawing order, to ``out_npz``.
    """
    import numpy as np

    ctx = RunContext(spec, manifest_dir=manifest_dir, prototypes_path=prototypes_path,
                     placement=placement, image_cache=image_cache)
    if not spec.declaration.explains:
        raise RunError(f"method '{spec.method}' ({spec.base_method}) draws no saliency maps")
    _load_adapted(ctx, adapted_state)
    loader = ctx.loader(ctx.manifest.test[:max_images], ("test",), shuffle=False, epoch=0,
                        batch_size=max_images)
    images = next(iter(loader))["test"].to(ctx.device)
    ctx.method.eval()
    maps = ctx.method.explain(images)
    grid = ctx.method.adapter.grid_size
    mean = torch.tensor(ctx.view_spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(ctx.view_spec.std).view(1, 3, 1, 1)
    pixels = ((images.cpu() * std + mean).clamp(0, 1) * 255).round().byte()
    arrays = {"images": pixels.permute(0, 2, 3, 1).numpy()}
    index = []
    for item in maps:
        arrays[item.key] = item.values.float().cpu().reshape(len(images), *grid).numpy()
        index.append({"key": item.key, "title": item.title, "kind": item.kind})
    arrays["maps"] = np.array(json.dumps(index))
    atomic_write_with(out_npz, lambda handle: np.savez_compressed(handle, **arrays), binary=True)
    return Path(out_npz)


# -- mechanism diagnostics -------------------------------------------------------------------
def diagnose(
    spec: RunSpec,
    *,
    manifest_dir: Path,
    prototypes_path: Path,
    out_json: Path,
    max_images: int,
    placement: Placement | None = None,
    image_cache: Path | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """microCLIP's mechanisms on the initial backbone, over (up to ``max_images`` of) the
    unlabelled train split; labels only score the pseudo-labels. Writes ``out_json``.

    NCut (affinity density, foreground size, fixed-position collapse, eigengap, agreement of
    the two sign rules), zero-shot of [CLS], [FG] and their fusion, pseudo-label accuracy at
    initialisation for gamma 0 / 0.5 / 1 from one view and from the crops, and where the
    manifest has object boxes the IoU of the NCut foreground with the object's patches
    beside a random mask of the same size.
    """
    start = time.perf_counter()
    ctx = RunContext(spec, manifest_dir=manifest_dir, prototypes_path=prototypes_path,
                     placement=placement, image_cache=image_cache)
    method = ctx.method
    if not hasattr(method, "mechanisms"):
        raise RunError(f"method '{spec.method}' ({spec.base_method}) has no mechanism diagnostics")
    samples = ctx.manifest.train
    if len(samples) > max_images:  # a seeded, spread-out subset
        keep = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0))[:max_images]
        samples = [samples[i] for i in sorted(keep.tolist())]
    method.eval()
    seed_everything(spec.seed)  # the weak crops and the 8 crops are random: fix them
    loader = ctx.loader(samples, ("test", "weak", "crops"), shuffle=False, epoch=0,
                        batch_size=batch_size)
    parts: dict[str, list[torch.Tensor]] = {}
    labels: list[torch.Tensor] = []
    for batch in loader:
        views = {k: batch[k].to(ctx.device) for k in ("test", "weak", "crops")}
        for key, value in method.mechanisms(views).items():
            parts.setdefault(key, []).append(value.detach().cpu())
        labels.append(batch["label"])
    got = {k: torch.cat(v) for k, v in parts.items()}
    y = torch.cat(labels)
    n_tokens = got["mask"].shape[1]
    pseudo = {
        view: {f"{g:g}": top1_accuracy(got[f"pseudo_{view}_{g:g}"], y) for g in (0.0, 0.5, 1.0)}
        for view in ("single", "multi")
    }
    report: dict[str, Any] = {
        "dataset": spec.dataset,
        "backbone": spec.backbone,
        "model": spec.model,
        "method": spec.method,
        "n_images": len(y),
        "settings": {k: spec.options[k] for k in ("tau", "eps", "fiedler_threshold", "ncut_sign",
                                                   "beta", "num_crops")},
        "ncut": {
            "affinity_density": mech.distribution(got["density"]),
            "foreground_share": mech.distribution(got["mask"].double().mean(-1)),
            "fixed_position_collapse": mech.most_common_mask_share(got["mask"]),
            "eigengap": mech.distribution(got["eigengap"]),
            "sign_rules_agree": float((got["mask"] == got["mask_other_sign"]).all(-1).double().mean()),
            "sign_rules_iou": float(mech.mask_iou(got["mask"], got["mask_other_sign"]).mean()),
            "tokens": n_tokens,
        },
        "zero_shot": {
            name: top1_accuracy(got[f"{name}_logits"].argmax(-1), y) for name in ("cls", "fg", "fused")
        },
        "pseudo_labels": pseudo,
        # gamma = 1 is the fixed prior alone: from the crops, or from the weak view's [CLS]
        "crop_prior": pseudo["multi"]["1"],
        "weak_cls_prior": pseudo["single"]["1"],
        "object_iou": _object_iou(samples, got["mask"], ctx),
        "wall_s": time.perf_counter() - start,
    }
    atomic_write_json(out_json, report)
    return report


def _object_iou(samples, masks: torch.Tensor, ctx: RunContext) -> dict[str, float] | None:
    """IoU of the NCut foreground with the object's patches, and of a random mask of the
    same size (None when the manifest has no boxes)."""
    from PIL import Image

    if not samples or any(s.box is None for s in samples):
        return None
    size = ctx.view_spec.image_size
    boxes = []
    for sample in samples:
        with Image.open(sample.path) as image:
            w, h = image.size
        boxes.append(mech.view_box(sample.box, (h, w), size))
    grid = ctx.method.adapter.grid_size
    objects = mech.box_patch_mask(torch.tensor(boxes), grid, size)  # (n, N)
    random = mech.random_masks_like(masks, torch.Generator().manual_seed(0))
    return {
        "ncut": float(mech.mask_iou(masks, objects).mean()),
        "random_same_size": float(mech.mask_iou(random, objects).mean()),
        "object_share": float(objects.double().mean()),
    }
