"""The name registry shared by datasets, methods and backbones."""

from __future__ import annotations

import pytest

from microclip.errors import ConfigError
from microclip.registry import Registry, UnknownNameError


def test_registry_returns_what_was_registered_and_lists_names_sorted():
    reg: Registry[int] = Registry("widget")
    reg.add("beta", 2)

    @reg.register("alpha")
    def alpha():
        return 1

    assert reg.get("beta") == 2 and reg.get("alpha") is alpha
    assert reg.names() == ["alpha", "beta"] and list(reg) == ["alpha", "beta"]
    assert "alpha" in reg and "gamma" not in reg


def test_registry_unknown_name_lists_registered_and_is_a_config_error():
    reg: Registry[int] = Registry("widget")
    reg.add("alpha", 1)
    reg.add("beta", 2)
    with pytest.raises(UnknownNameError) as info:
        reg.get("gama")
    assert str(info.value) == "'gama' is not a registered widget; registered: alpha, beta"
    assert isinstance(info.value, ConfigError) and isinstance(info.value, KeyError)


def test_registry_duplicate_name_raises():
    reg: Registry[int] = Registry("widget")
    reg.add("alpha", 1)
    with pytest.raises(KeyError, match="widget 'alpha' is already registered"):
        reg.add("alpha", 2)


def test_every_class_name_file_is_one_registered_dataset_with_templates():
    from importlib import resources

    from microclip.data import DATASETS

    files = resources.files("microclip.data")
    keys = sorted(p.name.removesuffix(".json") for p in files.joinpath("classnames").iterdir()
                  if p.name.endswith(".json"))
    assert keys == sorted(DATASETS.names())  # one module per file, registered under its key
    for key in keys:
        assert files.joinpath("templates", f"{key}.json").is_file(), key
        assert len(DATASETS.get(key).classes()) == DATASETS.get(key).num_classes, key
