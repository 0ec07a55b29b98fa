"""Adaptation loop: AdamW/SGD over the method's groups, per-iteration schedule, resume.

Every epoch is seeded from (seed, epoch) — shuffling, augmentations and the method's own
sampling — so a run killed at any point and restarted from its last epoch checkpoint
ends bit-identical on the CPU to one never killed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from microclip.data.base import atomic_write_text
from microclip.methods.base import AdaptationMethod, TrainData, TrainSettings
from microclip.ops.schedule import cosine_lr
from microclip.train.checkpoint import (
    atomic_torch_save,
    epoch_seed,
    rng_states,
    seed_everything,
    set_rng_states,
)

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    final_state: dict[str, Any]
    best_state: dict[str, Any] | None
    best_epoch: int | None
    wall_s: float
    resumed_from: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def build_optimizer(method: AdaptationMethod, settings: TrainSettings) -> torch.optim.Optimizer:
    groups = [g for g in method.param_groups(settings) if g["params"]]
    for group in groups:
        group.setdefault("lr_scale", 1.0)
        group["lr"] = settings.lr * group["lr_scale"]
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=settings.lr, betas=settings.betas, eps=settings.eps)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum)
    raise ValueError(f"optimizer '{settings.optimizer}' is not one of: adamw, sgd")


def learning_rate(settings: TrainSettings, step: int, total_steps: int) -> float:
    if settings.schedule == "constant":
        return settings.lr
    return cosine_lr(step, total_steps, settings.lr, settings.min_lr)


def _autocast(device: torch.device, precision: str):
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v)
        for k, v in batch.items()
    }


def fit(
    method: AdaptationMethod,
    data: TrainData,
    settings: TrainSettings,
    *,
    seed: int,
    device: torch.device,
    checkpoint_path: Path,
    log_path: Path,
    evaluate: Callable[[AdaptationMethod], float] | None = None,
    precision: str = "fp32",
    fingerprint: str = "",
    stop_after_epoch: int | None = None,
) -> FitResult:
    """Train ``method`` for ``settings.epochs`` epochs, resuming from ``checkpoint_path``."""
    start = time.perf_counter()
    checkpoint_path, log_path = Path(checkpoint_path), Path(log_path)
    history: list[dict[str, Any]] = []
    best_state, best_epoch, best_score = None, None, float("-inf")
    first_epoch = 0

    if not method.trains or settings.epochs == 0:
        seed_everything(seed)
        method.on_train_start(data)
        state = method.checkpoint_state()
        return FitResult([], state, None, None, time.perf_counter() - start)

    optimizer = build_optimizer(method, settings)
    probe = data.loader(method.views, shuffle=True, epoch=0, drop_last=settings.drop_last)
    steps_per_epoch = len(probe)
    total_steps = steps_per_epoch * settings.epochs

    saved = None
    if checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if saved.get("fingerprint") != fingerprint:
            # A checkpoint of another configuration is never resumed; it is kept aside.
            stale = checkpoint_path.with_name(
                f"{checkpoint_path.stem}.stale-{saved.get('fingerprint')}{checkpoint_path.suffix}"
            )
            checkpoint_path.replace(stale)
            log.warning(
                "%s belongs to configuration %s, not %s: moved to %s; starting over",
                checkpoint_path,
                saved.get("fingerprint"),
                fingerprint,
                stale,
            )
            saved = None
    if saved is not None:
        method.load_checkpoint_state(saved["method"])
        optimizer.load_state_dict(saved["optimizer"])
        history = saved["history"]
        best_state, best_epoch = saved.get("best_state"), saved.get("best_epoch")
        best_score = saved.get("best_score", float("-inf"))
        first_epoch = saved["epoch"] + 1
        set_rng_states(saved["rng"])
        log.info("resumed from %s at epoch %d", checkpoint_path, first_epoch)
    else:
        seed_everything(seed)
        method.on_train_start(data)
        log_path.unlink(missing_ok=True)
    for epoch in range(first_epoch, settings.epochs):
        seed_everything(epoch_seed(seed, epoch))
        method.train()
        method.on_epoch_start(epoch, data)
        loader = data.loader(method.views, shuffle=True, epoch=epoch, drop_last=settings.drop_last)
        t0, seen, loss_sum, pl_correct, pl_count = time.perf_counter(), 0, 0.0, 0, 0
        lr = settings.lr
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", leave=False, disable=None)
        for i, batch in enumerate(bar):
            step = epoch * steps_per_epoch + i
            lr = learning_rate(settings, step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            batch = _to_device(batch, device)
            with _autocast(device, precision):
                out = method.training_step(batch, step=step, epoch=epoch)
            optimizer.zero_grad(set_to_none=True)
            if out.loss.requires_grad:
                out.loss.backward()
                optimizer.step()
            method.after_optimizer_step(step)
            size = int(batch["label"].shape[0])
            seen += size
            loss_sum += float(out.loss.detach()) * size
            if out.pseudo_labels is not None:  # analysis only: labels never enter training
                pl_correct += int((out.pseudo_labels.cpu() == batch["label"].cpu()).sum())
                pl_count += size
        method.on_epoch_end(epoch, data)
        seconds = time.perf_counter() - t0
        method.eval()
        test_top1 = evaluate(method) if evaluate is not None else None
        record = {
            "epoch": epoch + 1,
            "test_top1": test_top1,
            "pseudo_label_acc": 100.0 * pl_correct / pl_count if pl_count else None,
            "loss": loss_sum / max(seen, 1),
            "lr": lr,
            "images_per_s": seen / seconds if seconds > 0 else None,
            "seconds": seconds,
        }
        history.append(record)
        log.info("epoch %s", json.dumps(record))
        state = method.checkpoint_state()
        if settings.report == "best" and test_top1 is not None and test_top1 > best_score:
            best_state, best_epoch, best_score = state, epoch + 1, test_top1
        atomic_torch_save(
            {
                "fingerprint": fingerprint,
                "epoch": epoch,
                "method": state,
                "optimizer": optimizer.state_dict(),
                "history": history,
                "best_state": best_state,
                "best_epoch": best_epoch,
                "best_score": best_score,
                "rng": rng_states(),
                "settings": asdict(settings),
            },
            checkpoint_path,
        )
        # The log is rewritten from the checkpointed history, so a resume never duplicates.
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in history))
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    # Also when a resume finds the run already complete (the DAG may have removed the log).
    atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in history))
    return FitResult(
        history=history,
        final_state=method.checkpoint_state(),
        best_state=best_state,
        best_epoch=best_epoch,
        wall_s=time.perf_counter() - start,
        resumed_from=first_epoch,
    )
