"""The result contract: one flat RunRecord per run, epoch rows, dataset info, grid.json."""

from __future__ import annotations

import dataclasses
import json

import pytest

from microclip.errors import RunError
from microclip.results import (
    DatasetInfo,
    RunRecord,
    read_epochs,
    read_json_object,
    write_epochs,
    write_grid,
)


def record(**changes) -> RunRecord:
    values = dict(
        run="r", method="microclip_gamma1", base_method="microclip", dataset="dtd",
        backbone="B32", model="ViT-B-32-quickgelu", pretrained="openai", description_set="cupl",
        seed=0, split="test", top1=55.5, mean_per_class_recall=54.0, report="last",
        n_train=10, n_test=5, num_classes=3, wall_s=2.0, adapt_wall_s=1.5, score_s=0.3,
        trainable_params=7, config_hash="abc", version="0.1.0", git_commit=None, device="cpu",
        precision="fp32", reported_epoch=15,
        method_config={"gamma": 1.0}, train_settings={"betas": (0.9, 0.999)},
        packages={"torch": "2.14.1"},
    )
    values.update(changes)
    return RunRecord(**values)


def test_metrics_json_is_flat_and_reads_back_equal(tmp_path):
    rec = record()
    rec.write(tmp_path / "metrics.json")
    flat = json.loads((tmp_path / "metrics.json").read_text())
    assert flat["method_config.gamma"] == 1.0 and flat["packages.torch"] == "2.14.1"
    assert flat["git_commit"] is None  # a missing value is null, never left out
    assert not any(isinstance(v, dict) for v in flat.values())
    back = RunRecord.read(tmp_path / "metrics.json")
    assert back.method_config == {"gamma": 1.0} and back.train_settings == {"betas": [0.9, 0.999]}
    assert dataclasses.replace(back, train_settings=rec.train_settings) == rec


def test_a_record_missing_a_key_names_the_file_and_the_key(tmp_path):
    flat = record().to_flat()
    del flat["top1"]
    (tmp_path / "metrics.json").write_text(json.dumps(flat))
    with pytest.raises(RunError, match=r"metrics.json: lacks key\(s\) \['top1'\]"):
        RunRecord.read(tmp_path / "metrics.json")


def test_epoch_rows_round_trip_and_bad_lines_name_the_line(tmp_path):
    rows = [dict(epoch=1, test_top1=None, pseudo_label_acc=40.0, loss=1.2, lr=1e-4,
                 images_per_s=10.0, seconds=3.0)]
    write_epochs(tmp_path / "e.jsonl", rows)
    assert read_epochs(tmp_path / "e.jsonl") == rows
    (tmp_path / "bad.jsonl").write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(RunError, match=r"bad.jsonl:2: not a JSON line"):
        read_epochs(tmp_path / "bad.jsonl")


def test_grid_json_holds_the_grid_and_every_dataset_title(tmp_path):
    info = DatasetInfo("dtd", "Describable Textures", "DTD", 47, 2820, 1692)
    info.write(tmp_path / "dataset.json")
    assert DatasetInfo.read(tmp_path / "dataset.json") == info
    write_grid(tmp_path / "grid.json", {"run": "r", "main": {}}, [info])
    grid = read_json_object(tmp_path / "grid.json")
    assert grid["datasets"]["dtd"]["label"] == "DTD" and grid["run"] == "r"
