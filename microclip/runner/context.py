"""A run, loaded: manifest, text prototypes, backbone, method and data loaders.

``RunContext`` turns a ``RunSpec`` into live objects on a device. The stages
(``microclip.runner.stages``) use it to adapt, score and explain; nothing here knows a
method's internals.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from microclip.data.base import Manifest, read_manifest
from microclip.data.cache import ImageCache
from microclip.data.device_views import render_views
from microclip.data.images import view_dataset
from microclip.data.views import ViewSpec
from microclip.errors import RunError
from microclip.evaluate.score import Score, score
from microclip.methods.base import AdaptationMethod, MethodContext, TrainData
from microclip.model.adapter import VisualAdapter
from microclip.model.backbones import create_clip
from microclip.spec import RunSpec
from microclip.text.prototypes import TextPrototypes

log = logging.getLogger(__name__)
TEST_CACHE_BYTES = 512 * 2**20  # keep decoded test views in memory up to this size


@dataclass(frozen=True)
class Placement:
    """Where and with how many workers a run executes; never changes its result."""

    device: str = "auto"  # auto = CUDA when present, else CPU
    threads: int = 1  # torch intra-op threads
    workers: int = 0  # DataLoader worker processes


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(
            f"runtime.device = '{requested}' but CUDA is not available on this machine; "
            "use device: auto (CUDA when present, else CPU) or cpu"
        )
    if requested == "mps" and not torch.backends.mps.is_available():
        raise RunError("runtime.device = 'mps' but MPS is not available; use auto or cpu")
    return torch.device(requested)


def effective_precision(requested: str, device: torch.device) -> str:
    """bf16 autocast runs on CUDA only; elsewhere the run is fp32 and is recorded so."""
    if requested == "bf16" and device.type != "cuda":
        log.warning("precision bf16 needs CUDA; running and recording fp32 on %s", device)
        return "fp32"
    return requested


class RenderedBatches:
    """A DataLoader of uint8 images + view parameters whose batches come out rendered:
    crops, resizes, flips, RandAugment and normalisation run batched on ``device``."""

    def __init__(self, loader: DataLoader, names: tuple[str, ...], spec: ViewSpec,
                 device: torch.device) -> None:
        self.loader, self.names, self.spec, self.device = loader, names, spec, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield render_views(batch, self.names, self.spec, self.device)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % (2**32)
    random.seed(seed)
    np.random.seed(seed)


class RunContext:
    """The backbone, prototypes, method and loaders of one run, ready on its device."""

    def __init__(
        self,
        spec: RunSpec,
        *,
        manifest_dir: Path,
        prototypes_path: Path,
        placement: Placement | None = None,
        image_cache: Path | None = None,
    ) -> None:
        self.spec = spec
        self.placement = placement = placement or Placement()
        self.device = pick_device(placement.device)
        self.precision = effective_precision(spec.precision, self.device)
        torch.set_num_threads(max(1, placement.threads))
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = spec.tf32
            torch.backends.cudnn.allow_tf32 = spec.tf32
        self.manifest: Manifest = read_manifest(Path(manifest_dir))
        self.image_cache = self._open_cache(image_cache)
        self.prototypes = TextPrototypes.load(Path(prototypes_path))
        if self.prototypes.classes != self.manifest.classes:
            raise RunError(
                f"{prototypes_path}: class names differ from {manifest_dir}/classes.json; "
                "rerun rule build_prototypes for this dataset"
            )
        self.config = spec.method_config()
        self.settings = spec.train_settings()
        torch.manual_seed(spec.seed)  # a randomly initialised backbone is the same every time
        clip, tokenizer = create_clip(spec.model, spec.pretrained, device=self.device)
        clip.requires_grad_(False)
        context = MethodContext(
            clip=clip,
            tokenizer=tokenizer,
            adapter=VisualAdapter(clip.visual),
            prototypes=self.prototypes.to(self.device),
            dataset=spec.dataset,
            device=self.device,
            seed=spec.seed,
            templates=list(self.prototypes.meta.get("templates", [])),
        )
        torch.manual_seed(spec.seed)  # methods with random init (e.g. LaFTer's head) agree
        method_cls = spec.declaration.load()
        self.method: AdaptationMethod = method_cls(context, self.config).to(self.device)
        size = clip.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        pre = getattr(clip.visual, "preprocess_cfg", {}) or {}
        self.view_spec = ViewSpec(
            image_size=int(size),
            mean=tuple(pre.get("mean", ViewSpec.mean)),
            std=tuple(pre.get("std", ViewSpec.std)),
            test_crop=spec.test_crop,
            **self.method.view_options(),
        )
        self._test_batches: list[dict] | None = None
        self.fingerprint = spec.fingerprint(self.prototypes.meta.get("key"), precision=self.precision)

    # -- data ---------------------------------------------------------------------------------
    def _open_cache(self, folder: Path | None) -> ImageCache | None:
        if self.spec.image_cache is None:
            return None
        if folder is None:
            raise RunError(
                f"run {self.spec.method}/{self.spec.dataset}: the spec reads an image cache "
                f"(prepare.image_cache) but none was given; run rule cache_images"
            )
        cache = ImageCache.open(Path(folder))
        if cache.short_side != self.spec.image_cache:
            raise RunError(f"{folder}: image cache short side {cache.short_side}, the spec's "
                           f"{self.spec.image_cache}; rerun rule cache_images")
        return cache

    def loader(self, samples, views, *, shuffle: bool, epoch: int, batch_size: int,
               drop_last: bool = False):
        """Batches of the requested views; on the device path rendered on this run's device.

        Either way a batch is {view: (B, ...) float tensor, "label", "index"}."""
        generator = torch.Generator().manual_seed(self.spec.seed * 7_919 + epoch)
        dataset, collate = view_dataset(samples, self.view_spec, views, path=self.spec.views,
                                        image_cache=self.image_cache)
        batches = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last and len(samples) >= batch_size,
            num_workers=self.placement.workers,
            generator=generator,
            worker_init_fn=_seed_worker,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            collate_fn=collate,
        )
        if self.spec.views == "device":
            return RenderedBatches(batches, tuple(views), self.view_spec, self.device)
        return batches

    def train_data(self) -> TrainData:
        def make(views, *, shuffle, epoch, drop_last):
            return self.loader(self.manifest.train, views, shuffle=shuffle, epoch=epoch,
                               batch_size=self.settings.batch_size, drop_last=drop_last)

        return TrainData(make, len(self.manifest.train))

    def test_score(self, method: AdaptationMethod | None = None) -> Score:
        """Score the test split; small deterministic test sets are decoded only once."""
        batches = self._test_batches
        if batches is None:
            loader = self.loader(self.manifest.test, ("test",), shuffle=False, epoch=0,
                                 batch_size=max(256, self.settings.batch_size))
            size = self.view_spec.image_size
            nbytes = len(self.manifest.test) * 3 * size * size * 4
            if self.spec.test_crop == "center" and nbytes <= TEST_CACHE_BYTES:
                batches = self._test_batches = [
                    {"test": b["test"], "label": b["label"]} for b in loader
                ]
            else:
                batches = loader
        return score(method or self.method, batches, num_classes=self.manifest.num_classes,
                     device=self.device, precision=self.precision)
