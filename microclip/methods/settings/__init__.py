"""Per-dataset release settings of the baselines, kept as data (``<method>.json``).

Each file maps a dataset key (or ``_default``, for datasets the release did not configure)
to a flat object. A key is either a ``TrainSettings`` field (optimiser, lr, epochs, batch),
a field of the method's config dataclass, or starts with ``_`` (provenance: ``_source``,
values the release carries but never reads). Anything else is an error, so a typo in a
JSON file fails loudly instead of silently falling back to a default.

A dataset's row is laid over ``_default``; its ``_source`` says which release file (or which
documented default) each value comes from.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from microclip.methods.base import TrainSettings

__all__ = ["release_row", "release_settings", "settings_file"]


def settings_file(method: str) -> str:
    return f"microclip/methods/settings/{method}.json"


@cache
def _table(method: str) -> dict[str, dict[str, Any]]:
    ref = resources.files("microclip.methods.settings").joinpath(f"{method}.json")
    if not ref.is_file():
        raise FileNotFoundError(f"{settings_file(method)} is not in the package")
    table = json.loads(ref.read_text(encoding="utf-8"))
    if "_default" not in table:
        raise KeyError(f"{settings_file(method)}: needs a '_default' entry")
    return table


def release_row(method: str, dataset: str) -> dict[str, Any]:
    """The merged row (``_default`` < dataset), provenance keys included."""
    table = _table(method)
    row = {**table["_default"], **table.get(dataset, {})}
    row["_configured"] = dataset in table  # False: the release's documented defaults
    return row


def release_settings(
    method: str, config_cls: type, base: TrainSettings
) -> tuple[Callable[[str], TrainSettings], Callable[[str], dict[str, Any]]]:
    """``(default_train, dataset_options)`` callables for ``register_method``.

    ``default_train(dataset)`` is ``base`` with the row's TrainSettings keys applied;
    ``dataset_options(dataset)`` is the row's config keys.
    """
    train_names = {f.name for f in dataclasses.fields(TrainSettings)}
    option_names = {f.name for f in dataclasses.fields(config_cls)}

    def split(dataset: str) -> tuple[dict[str, Any], dict[str, Any]]:
        row = release_row(method, dataset)
        unknown = sorted(
            k for k in row if not k.startswith("_") and k not in train_names | option_names
        )
        if unknown:
            raise KeyError(
                f"{settings_file(method)}: entry '{dataset}' has unknown key(s) {unknown}; "
                f"allowed: TrainSettings fields ({', '.join(sorted(train_names))}), "
                f"{config_cls.__name__} fields ({', '.join(sorted(option_names))}), "
                "or provenance keys starting with '_'"
            )
        train = {k: v for k, v in row.items() if k in train_names}
        options = {k: v for k, v in row.items() if k in option_names}
        return train, options

    def default_train(dataset: str) -> TrainSettings:
        train, _ = split(dataset)
        if "betas" in train:
            train["betas"] = tuple(train["betas"])
        return dataclasses.replace(base, **train)

    def dataset_options(dataset: str) -> dict[str, Any]:
        return split(dataset)[1]

    return default_train, dataset_options
