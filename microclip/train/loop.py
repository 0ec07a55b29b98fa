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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from microclip.io import atomic_torch_save
from microclip.methods.base import AdaptationMethod, TrainData
from microclip.ops.schedule import cosine_lr
from microclip.results import write_epochs
from microclip.train.checkpoint import (
    epoch_seed,
    rng_states,
    seed_everything,
    set_rng_states,
)
from microclip.train.precision import autocast
from microclip.train.settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    final_state: dict[str, Any]
    best_state: dict[str, Any] | None
    best_epoch: int | None
    wall_s: float  # adaptation time of every session of this run, resumed ones included
    resumed_s: float = 0.0  # the part of wall_s spent by earlier (killed) sessions


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

    saved = load_resumable(checkpoint_path, fingerprint)
    earlier_sessions_s = 0.0
    if saved is not None:
        method.load_checkpoint_state(saved["method"])
        optimizer.load_state_dict(saved["optimizer"])
        history = saved["history"]
        best_state, best_epoch = saved.get("best_state"), saved.get("best_epoch")
        best_score = saved.get("best_score", float("-inf"))
        first_epoch = saved["epoch"] + 1
        earlier_sessions_s = float(saved.get("wall_s", 0.0))
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
            with autocast(device, precision):
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
                "wall_s": earlier_sessions_s + time.perf_counter() - start,
            },
            checkpoint_path,
        )
        # The log is rewritten from the checkpointed history, so a resume never duplicates.
        write_epochs(log_path, history)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    # Also when a resume finds the run already complete (the DAG may have removed the log).
    write_epochs(log_path, history)
    return FitResult(
        history=history,
        final_state=method.checkpoint_state(),
        best_state=best_state,
        best_epoch=best_epoch,
        wall_s=earlier_sessions_s + time.perf_counter() - start,
        resumed_s=earlier_sessions_s,
    )


def load_resumable(checkpoint_path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None to start clean.

    A checkpoint that cannot be read (truncated by a full disk or a kill during a copy) or
    that belongs to another configuration is never resumed: it is moved aside beside the
    original, with a warning that names both files, so nothing is lost and no rerun fails.
    """
    if not checkpoint_path.is_file():
        return None
    try:
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        reason = None if isinstance(saved, dict) and "epoch" in saved else "not a checkpoint"
    except Exception as err:  # torch raises RuntimeError, EOFError, pickle errors...
        saved, reason = None, f"unreadable ({type(err).__name__}: {str(err)[:120]})"
    if reason is None and saved.get("fingerprint") != fingerprint:
        reason = f"of configuration {saved.get('fingerprint')}, not {fingerprint}"
    if reason is None:
        return saved
    tag = "stale-" + str(saved.get("fingerprint")) if saved and "fingerprint" in saved else "broken"
    aside = checkpoint_path.with_name(f"{checkpoint_path.stem}.{tag}{checkpoint_path.suffix}")
    checkpoint_path.replace(aside)
    log.warning("%s is %s: moved to %s; starting this run over", checkpoint_path, reason, aside)
    return None
