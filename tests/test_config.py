"""check_config: schema defaults, strict keys, names, and the file each message names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from microclip.config import Sources, check_config, load_config, schema
from microclip.errors import ConfigError
from microclip.train.settings import TrainSettings

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def minimal() -> dict:
    return {
        "run": "mini",
        "data_root": "data",
        "datasets": ["dtd"],
        "backbones": {"B32": {"model": "ViT-B-32-quickgelu", "pretrained": "openai"}},
        "main_backbone": "B32",
        "methods": ["zs_templates", "microclip"],
        "seeds": [0],
        "description_set": "microclip",
        "runtime": {},
    }


def test_defaults_come_from_the_schema_once():
    config = check_config(minimal())
    assert config["runtime"] == {
        "device": "auto", "gpu": True, "precision": "fp32", "tf32": False, "threads": 8,
        "workers": 6, "eval_each_epoch": True, "test_crop": "center", "batch_seeds": False,
        "views": "cpu", "mem_mb": 32000, "minutes": 720, "min_mem_mb": 2000, "mem_scale": config["runtime"]["mem_scale"],
        "rule_minutes": config["runtime"]["rule_minutes"],
    }
    # every non-training rule has a memory fraction and a wall time by default
    assert config["runtime"]["mem_scale"]["build_prototypes"] == 0.5
    assert set(config["runtime"]["mem_scale"]) == set(config["runtime"]["rule_minutes"])
    assert config["saliency"]["max_images"] == 8 and config["report"]["gamma_ablation"] == "dka"
    assert config["descriptions"]["llm"]["mode"] == "replay"
    assert config["scaling"] == {"backbones": [], "methods": []} and config["train"] == {}


def test_schema_train_keys_are_exactly_the_train_settings_fields():
    train = schema()["$defs"]["train"]
    assert train["additionalProperties"] is False
    assert set(train["properties"]) == {f.name for f in dataclasses.fields(TrainSettings)}


def test_unknown_train_key_stops_with_the_key_and_the_allowed_ones(tmp_path):
    path = write(tmp_path / "bad.yaml", {**minimal(), "train": {"learning_rate": 1e-3}})
    with pytest.raises(ConfigError) as info:
        load_config([path])
    message = str(info.value)
    assert message.startswith(f"{path}: train: unknown key(s) 'learning_rate'; allowed: ")
    assert "lr" in message and "batch_size" in message


def test_a_method_option_typo_names_method_key_and_allowed_options(tmp_path):
    config = {**minimal(), "method_settings": {"microclip": {"options": {"gama": 0.3}}}}
    with pytest.raises(ConfigError, match=r"method_settings\.microclip\.options: unknown key\(s\) gama; allowed: .*gamma"):
        load_config([write(tmp_path / "c.yaml", config)])


def test_an_option_of_the_wrong_type_names_the_expected_type(tmp_path):
    config = {**minimal(), "variants": {"v": {"method": "microclip", "options": {"gamma": "high"}}}}
    with pytest.raises(ConfigError, match=r"variants\.v\.options\.gamma = 'high': expected a number"):
        load_config([write(tmp_path / "c.yaml", config)])


def test_messages_name_the_file_that_set_the_key(tmp_path):
    base = write(tmp_path / "base.yaml", minimal())
    over = write(tmp_path / "override.yaml", {"methods": ["microclip", "dpaa"]})
    with pytest.raises(ConfigError) as info:
        load_config([base, over])
    assert str(info.value) == (
        f"{over}: methods[1] = 'dpaa' is not a registered method or variant; registered: "
        "cls_selftrain, dpa, lafter, microclip, multiview_cls_selftrain, must, must_ln, reclip, "
        "zs_descriptions, zs_templates"
    )


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    good = write(tmp_path / "good.yaml", minimal())
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: x\nmethods: [a, b\nseeds: [0]\n")
    with pytest.raises(ConfigError, match=rf"^{bad}:3:\d+: YAML syntax error"):
        Sources.read([good, bad])


def test_later_files_override_earlier_ones_key_by_key(tmp_path):
    base = write(tmp_path / "base.yaml", {**minimal(), "runtime": {"threads": 2, "workers": 1}})
    over = write(tmp_path / "over.yaml", {"runtime": {"threads": 4}})
    config = load_config([base, over])
    assert config["runtime"]["threads"] == 4 and config["runtime"]["workers"] == 1


def test_the_shipped_configs_pass():
    for files in (["config.yaml"], ["config/demo.yaml"], ["config/demo.yaml", "tests/configs/demo_ci.yaml"]):
        load_config([REPO / f for f in files])
