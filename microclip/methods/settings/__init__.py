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
from functools import cache
from importlib import resources
from typing import Any

from microclip.errors import ConfigError
from microclip.train.settings import TrainSettings

__all__ = ["release_row", "settings_file", "split_release_row"]


def settings_file(name: str) -> str:
    return f"microclip/methods/settings/{name}.json"


@cache
def _table(name: str) -> dict[str, dict[str, Any]]:
    ref = resources.files("microclip.methods.settings").joinpath(f"{name}.json")
    if not ref.is_file():
        raise ConfigError(f"{settings_file(name)} is not in the package")
    table = json.loads(ref.read_text(encoding="utf-8"))
    if "_default" not in table:
        raise ConfigError(f"{settings_file(name)}: needs a '_default' entry")
    return table


def release_row(name: str, dataset: str) -> dict[str, Any]:
    """The merged row (``_default`` < dataset), provenance keys included."""
    table = _table(name)
    row = {**table["_default"], **table.get(dataset, {})}
    row["_configured"] = dataset in table  # False: the release's documented defaults
    return row


def split_release_row(
    name: str, dataset: str, config_cls: type
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(TrainSettings keys, config keys) of the merged row; other keys are an error."""
    train_names = {f.name for f in dataclasses.fields(TrainSettings)}
    option_names = {f.name for f in dataclasses.fields(config_cls)}
    row = release_row(name, dataset)
    unknown = sorted(
        k for k in row if not k.startswith("_") and k not in train_names | option_names
    )
    if unknown:
        raise ConfigError(
            f"{settings_file(name)}: entry '{dataset}' has unknown key(s) {unknown}; "
            f"allowed: TrainSettings fields ({', '.join(sorted(train_names))}), "
            f"{config_cls.__name__} fields ({', '.join(sorted(option_names))}), "
            "or provenance keys starting with '_'"
        )
    train = {k: v for k, v in row.items() if k in train_names}
    options = {k: v for k, v in row.items() if k in option_names}
    return train, options
