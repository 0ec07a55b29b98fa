"""What the suite knows about a method before importing torch: its declaration.

A declaration names the method's hyperparameter dataclass, the training settings of its
release, its per-dataset settings file (if any) and where its implementation lives. The run
specification (``microclip.spec``) resolves every layer of settings from declarations alone,
so the Snakefile, ``check-config`` and ``plan`` never load torch; the implementation class is
imported only by the process that trains.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from microclip.errors import ConfigError
from microclip.fields import coerce, field_defaults, override_problems
from microclip.methods.settings import split_release_row
from microclip.registry import Registry
from microclip.train.settings import TrainSettings


@dataclass(frozen=True)
class MethodDeclaration:
    name: str
    config: type  # the hyperparameter dataclass, one commented field per setting
    summary: str  # what trains, in a few words
    implementation: str  # "package.module:Class", imported on demand
    train: TrainSettings = TrainSettings()  # the release's training settings
    settings: str | None = None  # microclip/methods/settings/<settings>.json rows, if any
    explains: bool = False  # the implementation draws saliency maps (``explain``)
    trains: bool = True  # False: nothing adapts (zero-shot), no training cost

    def release_layers(self, dataset: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(train, options) of the per-dataset settings file for ``dataset`` ({} without one)."""
        if self.settings is None:
            return {}, {}
        return split_release_row(self.settings, dataset, self.config)

    def resolve_options(self, dataset: str, *layers: Mapping[str, Any]) -> dict[str, Any]:
        """Every config field: dataclass default < settings file < each layer in order."""
        _, from_file = self.release_layers(dataset)
        merged = {**field_defaults(self.config), **from_file}
        for layer in layers:
            merged.update(layer)
        return coerce(self.config, merged)

    def resolve_train(self, dataset: str, *layers: Mapping[str, Any]) -> dict[str, Any]:
        """Every TrainSettings field: release values < settings file < each layer in order."""
        from_file, _ = self.release_layers(dataset)
        merged = {**dataclasses.asdict(self.train), **from_file}
        for layer in layers:
            merged.update(layer)
        return coerce(TrainSettings, merged)

    def option_problems(self, options: Mapping[str, Any], *, where: str) -> list[str]:
        return override_problems(self.config, options, where=where)

    def build_config(self, options: Mapping[str, Any]) -> Any:
        """The config dataclass from resolved options; unknown or ill-typed keys are an error."""
        problems = self.option_problems(options, where=f"method '{self.name}' options")
        if problems:
            raise ConfigError("; ".join(problems))
        return self.config(**coerce(self.config, options))

    def load(self) -> type:
        """The implementation class (imports torch and the method's module)."""
        module, _, attr = self.implementation.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        cls.name = self.name
        return cls


def train_problems(overrides: Mapping[str, Any], *, where: str) -> list[str]:
    return override_problems(TrainSettings, overrides, where=where)


METHODS: Registry[MethodDeclaration] = Registry("method")


def declare_method(
    name: str,
    *,
    config: type,
    summary: str,
    implementation: str,
    train: TrainSettings | None = None,
    settings: str | None = None,
    explains: bool = False,
    trains: bool = True,
) -> MethodDeclaration:
    declaration = MethodDeclaration(
        name=name,
        config=config,
        summary=summary,
        implementation=implementation,
        train=train or TrainSettings(),
        settings=settings,
        explains=explains,
        trains=trains,
    )
    METHODS.add(name, declaration)
    return declaration
