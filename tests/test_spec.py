"""RunSpec: every layer of settings resolved once, in one order, torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from microclip.config import check_config
from microclip.methods import METHODS
from microclip.spec import RunSpec
from microclip.train.settings import TrainSettings

REPO = Path(__file__).resolve().parents[1]


def paper_config(**changes) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in changes.items():
        config[key] = {**config[key], **value} if key == "variants" else value
    return check_config(config)


def test_precedence_is_defaults_release_file_train_method_settings_variant():
    config = paper_config(
        train={"epochs": 7, "lr": 0.5},
        method_settings={"dpa": {"train": {"lr": 0.25}, "options": {"reg": 2.0}}},
        variants={"dpa_strong": {"method": "dpa", "options": {"reg": 3.0}, "train": {"batch_size": 8}}},
        methods=["dpa", "dpa_strong"],
    )
    base = RunSpec.from_config(config, method="dpa", dataset="eurosat", backbone="ViT-B-32", seed=1)
    # dataclass default (prior_batches 32) < settings file (eurosat: w 1.0, align 0.01)
    assert base.options["prior_batches"] == 32 and base.options["w"] == 1.0
    assert base.options["align"] == 0.01 and base.options["reg"] == 2.0  # method_settings
    # release train (weight decay 0.1) < file (eurosat 10 epochs) < config train < method_settings
    assert base.train["weight_decay"] == 0.1
    assert base.train["epochs"] == 7 and base.train["lr"] == 0.25
    variant = RunSpec.from_config(
        config, method="dpa_strong", dataset="eurosat", backbone="ViT-B-32", seed=1
    )
    assert (variant.method, variant.base_method) == ("dpa_strong", "dpa")
    assert variant.options["reg"] == 3.0 and variant.train["batch_size"] == 8
    assert variant.train["lr"] == 0.25


def test_spec_carries_backbone_weights_description_set_and_every_field():
    config = paper_config()
    spec = RunSpec.from_config(
        config, method="microclip_lafter_descriptions", dataset="dtd", backbone="ViT-B-32", seed=2
    )
    assert (spec.model, spec.pretrained) == ("ViT-B-32-quickgelu", "openai")
    assert spec.description_set == "lafter" and spec.run == "paper" and spec.seed == 2
    assert set(spec.options) == set(METHODS.get("microclip").resolve_options("dtd"))
    assert set(spec.train) == set(TrainSettings.__dataclass_fields__)


def test_demo_backbone_points_at_the_checkpoint_the_dag_trains():
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    check_config(config)
    spec = RunSpec.from_config(
        config, method="microclip", dataset="fashion_shift", backbone="demo-clip", seed=0
    )
    assert spec.pretrained == "results/demo/backbones/demo-clip.pt"


def test_json_round_trip_gives_the_same_spec_and_fingerprint():
    spec = RunSpec.from_config(
        paper_config(), method="must_ln", dataset="pets", backbone="ViT-B-32", seed=0
    )
    back = RunSpec.from_json(spec.to_json())
    assert back == spec and back.train_settings().betas == (0.9, 0.999)
    assert back.fingerprint("key") == spec.fingerprint("key")


def test_fingerprint_sees_settings_and_precision_but_not_the_seed():
    config = paper_config()
    spec = RunSpec.from_config(config, method="microclip", dataset="dtd", backbone="ViT-B-32", seed=0)
    assert spec.fingerprint("k") == spec.replace(seed=5).fingerprint("k")
    assert spec.fingerprint("k") != spec.replace(options={**spec.options, "gamma": 1.0}).fingerprint("k")
    assert spec.fingerprint("k") != spec.fingerprint("other text prototypes")
    assert spec.fingerprint("k", precision="fp32") != spec.fingerprint("k", precision="bf16")


def test_from_json_rejects_a_spec_with_missing_or_extra_keys():
    data = json.loads(
        RunSpec.from_config(paper_config(), method="dpa", dataset="dtd", backbone="ViT-B-32", seed=0).to_json()
    )
    data.pop("train")
    data["threads"] = 4
    with pytest.raises(ValueError, match="threads.*train|train.*threads"):
        RunSpec.from_json(json.dumps(data))


def test_spec_config_and_grid_need_no_torch():
    code = (
        "import sys, yaml\n"
        "from microclip.config import load_config\n"
        "from microclip.grid import grid_runs\n"
        "from microclip.spec import RunSpec\n"
        "c = load_config(['config.yaml'])\n"
        "specs = [RunSpec.from_config(c, method=r.method, dataset=r.dataset, backbone=r.backbone,"
        " seed=r.seed) for r in grid_runs(c)]\n"
        "print(len(specs), 'torch' in sys.modules, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["592", "False", "False"]


def test_every_declaration_points_at_its_implementation_and_says_whether_it_explains():
    from microclip.methods.base import AdaptationMethod

    for name in METHODS.names():
        declaration = METHODS.get(name)
        cls = declaration.load()
        assert issubclass(cls, AdaptationMethod) and cls.name == name
        draws = cls.explain is not AdaptationMethod.explain
        assert declaration.explains == draws, name
        assert declaration.trains == cls.trains, name
