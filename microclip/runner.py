"""The stages the DAG runs, as plain functions (the CLI and the tests call these).

prototypes  backbone text tower -> cached TextPrototypes (content-addressed)
adapt       one (method, dataset, backbone, seed): fit with resume -> adapted state + epoch log
evaluate    adapted state -> test-split score -> metrics.json
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

import microclip
from microclip.data import get_dataset
from microclip.data.base import Manifest, atomic_write_text, read_manifest
from microclip.data.images import ManifestImages
from microclip.data.views import Views, ViewSpec
from microclip.evaluate.score import score
from microclip.methods import METHODS, AdaptationMethod, MethodContext, TrainData
from microclip.methods.base import TrainSettings, settings_with
from microclip.model.adapter import VisualAdapter
from microclip.model.backbones import create_clip
from microclip.text.descriptions import load_descriptions
from microclip.text.prototypes import TextPrototypes, build_prototypes, prototype_key
from microclip.train.checkpoint import atomic_torch_save
from microclip.train.loop import fit

log = logging.getLogger(__name__)
TEST_CACHE_BYTES = 512 * 2**20  # keep decoded test views in memory up to this size
PACKAGES = ("torch", "torchvision", "open_clip_torch", "timm", "numpy", "pillow")


# -- environment ------------------------------------------------------------------------
def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{requested}' requested but CUDA is not available")
    return torch.device(requested)


def configure_torch(*, threads: int, device: torch.device, tf32: bool = False) -> None:
    torch.set_num_threads(max(1, threads))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def canonical_hash(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- prototypes -------------------------------------------------------------------------
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
    if cache_file.is_file():
        log.info("prototype cache hit: %s", cache_file)
        protos = TextPrototypes.load(cache_file)
    else:
        dev = pick_device(device)
        clip, tokenizer = create_clip(model, pretrained, device=dev)
        protos = build_prototypes(
            clip, tokenizer, classes=classes, templates=templates, descriptions=descriptions
        )
        protos.meta.update({"key": key, "model": model, "pretrained": pretrained,
                            "descriptions": str(descriptions_path), "dataset": dataset})
        protos.save(cache_file)
    pointer = {"file": str(cache_file.resolve()), "key": key, **protos.meta}
    atomic_write_text(Path(out_pointer), json.dumps(pointer, indent=1) + "\n")
    return cache_file


# -- adaptation -------------------------------------------------------------------------
@dataclasses.dataclass
class RunSpec:
    """Everything that identifies one adaptation run."""

    method: str  # registered method
    dataset: str
    model: str
    pretrained: str | None
    seed: int
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # method hyperparameters
    train: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainSettings overrides
    precision: str = "fp32"
    device: str = "auto"
    threads: int = 1
    workers: int = 0
    eval_each_epoch: bool = True
    test_crop: str = "center"
    tf32: bool = False


def resolve(spec: RunSpec) -> tuple[Any, TrainSettings]:
    """Method config and train settings: release defaults < per-dataset data < overrides."""
    entry = METHODS.get(spec.method)
    options = {**entry.dataset_options(spec.dataset), **spec.options}
    settings = settings_with(entry.default_train(spec.dataset), spec.train)
    return entry.build_config(options), settings


def config_fingerprint(
    spec: RunSpec, config: Any, settings: TrainSettings, prototypes_key: str | None = None
) -> str:
    """Hash of everything that determines a run's result except the seed.

    ``prototypes_key`` is the content hash of the text prototypes, which covers the backbone
    weights file, the descriptions, the templates and the class names.
    """
    return canonical_hash(
        {
            "prototypes": prototypes_key,
            "method": spec.method,
            "dataset": spec.dataset,
            "model": spec.model,
            "pretrained": spec.pretrained,
            "config": dataclasses.asdict(config),
            "train": dataclasses.asdict(settings),
            "precision": spec.precision,
            "test_crop": spec.test_crop,
        }
    )


class _Session:
    """A loaded backbone + prototypes + method for one run."""

    def __init__(self, spec: RunSpec, manifest_dir: Path, prototypes_path: Path) -> None:
        self.spec = spec
        self.device = pick_device(spec.device)
        configure_torch(threads=spec.threads, device=self.device, tf32=spec.tf32)
        self.manifest: Manifest = read_manifest(Path(manifest_dir))
        self.prototypes = TextPrototypes.load(Path(prototypes_path))
        if self.prototypes.classes != self.manifest.classes:
            raise ValueError(
                f"{prototypes_path}: class names differ from {manifest_dir}/classes.json; "
                "rebuild the prototypes for this dataset"
            )
        self.config, self.settings = resolve(spec)
        torch.manual_seed(spec.seed)  # a randomly initialised backbone is the same every time
        clip, tokenizer = create_clip(spec.model, spec.pretrained, device=self.device)
        clip.requires_grad_(False)
        adapter = VisualAdapter(clip.visual)
        templates = list(self.prototypes.meta.get("templates", []))
        context = MethodContext(
            clip=clip, tokenizer=tokenizer, adapter=adapter,
            prototypes=self.prototypes.to(self.device), dataset=spec.dataset,
            device=self.device, seed=spec.seed, templates=templates,
        )
        entry = METHODS.get(spec.method)
        torch.manual_seed(spec.seed)  # methods with random init (e.g. LaFTer's head) agree
        self.method: AdaptationMethod = entry.cls(context, self.config).to(self.device)
        image_size = clip.visual.image_size
        image_size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
        pre = getattr(clip.visual, "preprocess_cfg", {}) or {}
        self.view_spec = ViewSpec(
            image_size=int(image_size),
            mean=tuple(pre.get("mean", ViewSpec.mean)),
            std=tuple(pre.get("std", ViewSpec.std)),
            test_crop=spec.test_crop,
        )
        self._test_batches: list[dict] | None = None
        self.fingerprint = config_fingerprint(
            spec, self.config, self.settings, self.prototypes.meta.get("key")
        )

    def loader(self, samples, views, *, shuffle: bool, epoch: int, batch_size: int,
               drop_last: bool = False) -> DataLoader:
        generator = torch.Generator().manual_seed(self.spec.seed * 7_919 + epoch)
        return DataLoader(
            ManifestImages(samples, Views(self.view_spec, views)),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last and len(samples) >= batch_size,
            num_workers=self.spec.workers,
            generator=generator,
            worker_init_fn=_seed_worker,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def train_data(self) -> TrainData:
        def make(views, *, shuffle, epoch, drop_last):
            return self.loader(self.manifest.train, views, shuffle=shuffle, epoch=epoch,
                               batch_size=self.settings.batch_size, drop_last=drop_last)

        return TrainData(make, len(self.manifest.train))

    def test_score(self, method: AdaptationMethod):
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
        return score(method, batches, num_classes=self.manifest.num_classes,
                     device=self.device, precision=self.spec.precision)


def _seed_worker(worker_id: int) -> None:
    import random

    import numpy as np

    seed = torch.initial_seed() % (2**32)
    random.seed(seed)
    np.random.seed(seed)


def adapt(
    spec: RunSpec,
    *,
    manifest_dir: Path,
    prototypes_path: Path,
    out_state: Path,
    log_path: Path,
    checkpoint_path: Path,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Fit one run (resuming from ``checkpoint_path``) and save the state to report."""
    session = _Session(spec, manifest_dir, prototypes_path)
    settings = session.settings
    if settings.report == "best" and not spec.eval_each_epoch:
        raise ValueError("train.report = 'best' needs eval_each_epoch = true")
    evaluate = (lambda m: session.test_score(m).top1) if spec.eval_each_epoch else None
    result = fit(
        session.method,
        session.train_data(),
        settings,
        seed=spec.seed,
        device=session.device,
        checkpoint_path=Path(checkpoint_path),
        log_path=Path(log_path),
        evaluate=evaluate,
        precision=spec.precision,
        fingerprint=session.fingerprint,
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
        "fingerprint": session.fingerprint,
        "method_config": dataclasses.asdict(session.config),
        "train_settings": dataclasses.asdict(settings),
        "trainable_params": session.method.num_trainable(),
        "n_train": len(session.manifest.train),
    }
    atomic_torch_save(payload, Path(out_state))
    if not result.history:  # zero-shot: no epoch log, but the rule still declares one
        atomic_write_text(Path(log_path), "")
    return payload


def evaluate(
    spec: RunSpec,
    *,
    manifest_dir: Path,
    prototypes_path: Path,
    adapted_state: Path,
    out_metrics: Path,
    labels: dict[str, Any],
) -> dict[str, Any]:
    """Score the adapted state on the test split and write one flat metrics.json."""
    start = time.perf_counter()
    session = _Session(spec, manifest_dir, prototypes_path)
    saved = torch.load(Path(adapted_state), map_location="cpu", weights_only=False)
    if saved["fingerprint"] != session.fingerprint:
        raise ValueError(
            f"{adapted_state}: adapted with another configuration "
            f"({saved['fingerprint']} != {session.fingerprint}); rerun the adapt rule"
        )
    session.method.load_checkpoint_state(saved["state"])
    result = session.test_score(session.method)
    metrics = {
        **labels,
        "dataset": spec.dataset,
        "base_method": spec.method,
        "model": spec.model,
        "pretrained": spec.pretrained,
        "seed": spec.seed,
        "split": "test",
        "top1": result.top1,
        "mean_per_class_recall": result.mean_per_class_recall,
        "report": saved["report"],
        "reported_epoch": saved["reported_epoch"],
        "n_train": saved["n_train"],
        "n_test": result.n,
        "num_classes": session.manifest.num_classes,
        "epochs": saved["history"],
        "trainable_params": saved["trainable_params"],
        "adapt_wall_s": saved["adapt_wall_s"],
        "wall_s": saved["adapt_wall_s"] + (time.perf_counter() - start),
        "config_hash": session.fingerprint,
        "version": microclip.__version__,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "device": str(session.device),
        "precision": spec.precision,
        "method_config": saved["method_config"],
        "train_settings": saved["train_settings"],
    }
    atomic_write_text(Path(out_metrics), json.dumps(metrics, indent=1, default=str) + "\n")
    return metrics


def explain(
    spec: RunSpec,
    *,
    manifest_dir: Path,
    prototypes_path: Path,
    adapted_state: Path,
    out_npz: Path,
    max_images: int = 8,
) -> Path:
    """Saliency arrays of an adapted microCLIP for the first test images (figures 1 and 4).

    Writes ``images`` (n, H, W, 3) uint8, ``ncut_mask``, ``soap_attention`` and
    ``cls_attention`` (n, gh, gw) to ``out_npz``.
    """
    import numpy as np

    session = _Session(spec, manifest_dir, prototypes_path)
    saved = torch.load(Path(adapted_state), map_location="cpu", weights_only=False)
    session.method.load_checkpoint_state(saved["state"])
    explain_fn = getattr(session.method, "explain", None)
    if explain_fn is None:
        raise ValueError(f"method '{spec.method}' has no saliency (explain) to draw")
    loader = session.loader(session.manifest.test[:max_images], ("test",), shuffle=False,
                            epoch=0, batch_size=max_images)
    images = next(iter(loader))["test"].to(session.device)
    session.method.eval()
    parts = explain_fn(images)
    grid = session.method.adapter.grid_size
    mean = torch.tensor(session.view_spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(session.view_spec.std).view(1, 3, 1, 1)
    pixels = ((images.cpu() * std + mean).clamp(0, 1) * 255).round().byte()
    arrays = {"images": pixels.permute(0, 2, 3, 1).numpy()}
    for key in ("ncut_mask", "soap_attention", "cls_attention"):
        value = parts.get(key)
        if value is None:  # e.g. an ablation without SOAP: an all-NaN map, drawn blank
            value = torch.full((len(images), grid[0] * grid[1]), float("nan"))
        arrays[key] = value.float().cpu().reshape(len(images), *grid).numpy()
    out_npz = Path(out_npz)
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_npz.with_name(f".{out_npz.stem}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out_npz)
    return out_npz
