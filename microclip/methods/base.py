"""The contract between a method and the generic training loop.

A method is an ``nn.Module`` that owns its trainable state and answers a handful of hooks;
the loop (``microclip.train.loop``) builds the optimiser from ``param_groups()``, sets the
per-iteration learning rate, calls ``training_step`` on batches of the views the method
asks for, checkpoints ``checkpoint_state()`` every epoch, and scores with ``predict``.
Nothing in the loop knows a method's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from microclip.model.adapter import VisualAdapter
from microclip.text.prototypes import TextPrototypes
from microclip.train.settings import TrainSettings


@dataclass
class MethodContext:
    """What every method builder receives; the same object for every method."""

    clip: nn.Module  # the full open_clip model (text tower needed only by ReCLIP-T)
    tokenizer: Callable[..., Tensor]
    adapter: VisualAdapter
    prototypes: TextPrototypes
    dataset: str
    device: torch.device
    seed: int
    templates: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.prototypes.classes)


@dataclass
class SaliencyMap:
    """One map a method draws over its input (``AdaptationMethod.explain``)."""

    key: str  # array name in the .npz, e.g. "ncut_mask"
    title: str  # column title of the figure
    kind: Literal["mask", "attention"]  # a 0/1 mask or weights (normalised for display)
    values: Tensor  # (B, N) over the patch grid


@dataclass
class StepOutput:
    loss: Tensor
    pseudo_labels: Tensor | None = None  # (B,) for pseudo-label accuracy (analysis only)
    logs: dict[str, float] = field(default_factory=dict)


class TrainData:
    """Unlabelled adaptation images; hands out loaders for the views a hook needs.

    Labels travel in the batch (``batch["label"]``) only so the loop can log pseudo-label
    accuracy; a method must never read them (the supervised upper bound is the exception
    and says so).
    """

    def __init__(self, make_loader: Callable[..., Any], num_samples: int) -> None:
        self._make_loader = make_loader
        self.num_samples = num_samples

    def loader(self, views: tuple[str, ...], *, shuffle: bool, epoch: int = 0, drop_last=False):
        return self._make_loader(views, shuffle=shuffle, epoch=epoch, drop_last=drop_last)


class AdaptationMethod(nn.Module):
    """Base class: zero-shot behaviour by default (nothing trains)."""

    name: ClassVar[str] = ""
    trains: ClassVar[bool] = True
    views: ClassVar[tuple[str, ...]] = ("weak", "strong")
    uses_labels: ClassVar[bool] = False  # True only for the supervised upper bound

    def __init__(self, context: MethodContext) -> None:
        super().__init__()
        self.context_device = context.device

    # -- what trains ------------------------------------------------------------------
    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if p.requires_grad)

    def num_trainable(self) -> int:
        return sum(p.numel() for _, p in self.trainable_parameters())

    def param_groups(self, settings: TrainSettings) -> list[dict[str, Any]]:
        """AdamW groups; a group may carry ``lr_scale`` (layer decay) and its own decay."""
        params = [p for _, p in self.trainable_parameters()]
        return [{"params": params, "weight_decay": settings.weight_decay, "lr_scale": 1.0}]

    # -- hooks ------------------------------------------------------------------------
    def on_train_start(self, data: TrainData) -> None:
        """Once before the first epoch (never again after a resume)."""

    def on_epoch_start(self, epoch: int, data: TrainData) -> None:
        """Before every epoch, including the first one after a resume."""

    def training_step(self, batch: dict[str, Tensor], *, step: int, epoch: int) -> StepOutput:
        raise NotImplementedError(f"method '{self.name}' does not train")

    def after_optimizer_step(self, step: int) -> None:
        """E.g. an EMA teacher update."""

    def on_epoch_end(self, epoch: int, data: TrainData) -> None:
        """E.g. refresh a memory bank or run label propagation."""

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) test-view images -> (B, K) logits."""
        raise NotImplementedError

    def view_options(self) -> dict[str, Any]:
        """Settings of the views this method asks for (e.g. ``num_crops``); see ViewSpec."""
        return {}

    @torch.no_grad()
    def explain(self, images: Tensor) -> list[SaliencyMap]:
        """Saliency maps over the patch grid for figures; methods that draw none return []."""
        return []

    # -- state ------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """Trainable tensors, buffers and extra state: what resume and evaluation need."""
        trainable = {n for n, _ in self.trainable_parameters()}
        tensors = {
            k: v.detach().clone()
            for k, v in self.state_dict().items()
            if k in trainable or k in dict(self.named_buffers())
        }
        return {"tensors": tensors, "extra": self.extra_state()}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        missing = set(state["tensors"]) - set(self.state_dict())
        if missing:
            raise KeyError(f"checkpoint has tensors this method lacks: {sorted(missing)[:5]}")
        self.load_state_dict(state["tensors"], strict=False)
        self.load_extra_state(state.get("extra", {}))

    def extra_state(self) -> dict[str, Any]:
        """Non-tensor or non-parameter state to checkpoint (fairness running mean, FIFO...)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass
