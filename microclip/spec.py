"""One run specification, built once from the configuration (torch-free).

A ``RunSpec`` holds everything that determines the result of one (method, dataset, backbone,
seed) run: which registered method a configured name (method or variant) runs, the backbone's
open_clip name and weights, the description set, every hyperparameter of the method and
every training setting, resolved once in this order (later wins)::

    dataclass defaults < release training settings < settings/<method>.json row for the
    dataset < config ``train`` < config ``method_settings.<method>`` < the variant

The Snakefile builds it in ``params:`` and the job reads it back (``--spec JSON``); nothing
downstream merges settings again. How a job is placed (device, threads, data-loading
workers) does not change its result and is not part of the spec.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from microclip import grid
from microclip.fields import coerce
from microclip.io import canonical_hash
from microclip.methods import METHODS
from microclip.methods.declaration import MethodDeclaration
from microclip.train.settings import TrainSettings


@dataclass(frozen=True)
class RunSpec:
    """What one run computes; ``fingerprint`` hashes the parts that change its numbers."""

    run: str  # config `run`: outputs under results/{run}/
    method: str  # the configured name: a registered method or a variant of one
    base_method: str  # the registered method it runs
    dataset: str
    backbone: str  # config key of the backbone
    model: str  # open_clip architecture
    pretrained: str | None  # open_clip tag, checkpoint path, or None (random init)
    seed: int
    description_set: str
    options: dict[str, Any]  # every field of the method's config dataclass
    train: dict[str, Any]  # every TrainSettings field
    precision: str  # "fp32" or "bf16" (autocast on CUDA)
    tf32: bool
    test_crop: str  # "center" or "random"
    eval_each_epoch: bool  # score the test split after every epoch (per-epoch curves)
    views: str  # "cpu" (PIL + timm in the loader) or "device" (rendered batched on the device)
    image_cache: int | None  # short side of the decoded-image cache the run reads, or None

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, method: str, dataset: str, backbone: str, seed: int
    ) -> RunSpec:
        """The spec of one grid run; ``config`` has been through ``microclip.config.check_config``."""
        variant = (config.get("variants") or {}).get(method, {})
        base = variant.get("method", method)
        settings = (config.get("method_settings") or {}).get(base, {})
        backbone_entry = config["backbones"][backbone]
        runtime = config["runtime"]
        return cls.build(
            run=config["run"],
            method=method,
            base_method=base,
            dataset=dataset,
            backbone=backbone,
            model=backbone_entry["model"],
            pretrained=grid.pretrained_of(config, backbone),
            seed=int(seed),
            description_set=grid.description_set_of(config, method),
            option_layers=(settings.get("options", {}), variant.get("options", {})),
            train_layers=(config.get("train") or {}, settings.get("train", {}),
                          variant.get("train", {})),
            precision=runtime["precision"],
            tf32=runtime["tf32"],
            test_crop=runtime["test_crop"],
            eval_each_epoch=runtime["eval_each_epoch"],
            views=runtime["views"],
            image_cache=config["prepare"]["cache_short_side"] if config["prepare"]["image_cache"] else None,
        )

    @classmethod
    def build(
        cls,
        *,
        method: str,
        dataset: str,
        model: str,
        pretrained: str | None,
        seed: int = 0,
        base_method: str | None = None,
        run: str = "adhoc",
        backbone: str | None = None,
        description_set: str = "",
        option_layers: tuple[Mapping[str, Any], ...] = (),
        train_layers: tuple[Mapping[str, Any], ...] = (),
        precision: str = "fp32",
        tf32: bool = False,
        test_crop: str = "center",
        eval_each_epoch: bool = True,
        views: str = "cpu",
        image_cache: int | None = None,
    ) -> RunSpec:
        """Resolve a spec from explicit layers (tests, benchmarks and ``from_config``)."""
        base = base_method or method
        declaration = METHODS.get(base)
        return cls(
            run=run,
            method=method,
            base_method=base,
            dataset=dataset,
            backbone=backbone or model,
            model=model,
            pretrained=pretrained,
            seed=int(seed),
            description_set=description_set,
            options=declaration.resolve_options(dataset, *option_layers),
            train=declaration.resolve_train(dataset, *train_layers),
            precision=precision,
            tf32=tf32,
            test_crop=test_crop,
            eval_each_epoch=eval_each_epoch,
            views=views,
            image_cache=image_cache,
        )

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)

    # -- reading ----------------------------------------------------------------------------
    @property
    def declaration(self) -> MethodDeclaration:
        return METHODS.get(self.base_method)

    def method_config(self) -> Any:
        """The method's config dataclass (raises ConfigError on an impossible setting)."""
        return self.declaration.build_config(self.options)

    def train_settings(self) -> TrainSettings:
        return TrainSettings(**self.train)

    def fingerprint(self, prototypes_key: str | None, *, precision: str | None = None) -> str:
        """Hash of everything that determines the result except the seed.

        ``prototypes_key`` is the content hash of the text prototypes (backbone weights,
        descriptions, templates, class names); ``precision`` is the one that really runs.
        """
        return canonical_hash(
            {
                "prototypes": prototypes_key,
                "method": self.base_method,
                "dataset": self.dataset,
                "model": self.model,
                "pretrained": self.pretrained,
                "config": self.options,
                "train": self.train,
                "precision": precision or self.precision,
                "test_crop": self.test_crop,
                # the device path draws the same augmentations but renders them with torch,
                # so its numbers differ slightly; the cpu path keeps its old hash
                **({"views": self.views} if self.views != "cpu" else {}),
                **({"image_cache": self.image_cache} if self.image_cache else {}),
            }
        )

    # -- JSON -------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) != names:
            raise ValueError(
                f"run spec keys {sorted(set(data) ^ names)} differ from a RunSpec's; "
                "rebuild it with the Snakefile or RunSpec.from_config"
            )
        spec = cls(**data)
        # JSON has lists where the dataclasses declare tuples (e.g. betas)
        return spec.replace(
            options=coerce(spec.declaration.config, spec.options),
            train=coerce(TrainSettings, spec.train),
        )
