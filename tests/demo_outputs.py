"""What a finished reduced-demo run (config/demo.yaml + tests/configs/demo_ci.yaml) must hold:
the checks of the local end-to-end test, shared with the SLURM one (tests/test_slurm.py)."""

from __future__ import annotations

import json
from pathlib import Path

from microclip.results import read_epochs


def check_reduced_demo_outputs(run: Path) -> None:
    """Metrics of every method on the demo target and on the custom dataset, the merged result
    files, tables, plots and the saliency figure, under results/<run>/."""
    metrics = {
        m: json.loads(
            (run / m / "fashion_shift" / "demo-clip" / "seed0" / "metrics.json").read_text()
        )
        for m in ("zs_templates", "zs_descriptions", "microclip")
    }
    # Every method scored the whole target test split that prepare_dataset recorded (10,000
    # images in the first demo world, 2,000 in the scenes of WORLD_VERSION 2).
    split = json.loads((run / "data" / "fashion_shift" / "dataset.json").read_text())
    assert split["n_test"] >= 1000, split
    for name, record in metrics.items():
        assert record["method"] == name and record["n_test"] == split["n_test"], (name, split)
        assert 10.0 < record["top1"] < 100.0, (name, record["top1"])
    # The custom dataset added in config alone (`microclip demo-folder data/footwear`: 4
    # classes x 50 test images) went through the same stages and scores well above chance.
    for name in ("zs_descriptions", "microclip"):
        custom = json.loads(
            (run / name / "footwear" / "demo-clip" / "seed0" / "metrics.json").read_text()
        )
        assert custom["n_test"] == 200 and custom["num_classes"] == 4, custom
        assert custom["top1"] > 40.0, (name, custom["top1"])  # chance: 25 %
    (epoch,) = read_epochs(run / "microclip" / "fashion_shift" / "demo-clip" / "seed0" / "epochs.jsonl")
    assert epoch["pseudo_label_acc"] is not None and epoch["test_top1"] is not None
    assert (run / "runs.csv").is_file() and (run / "epochs.csv").is_file()
    assert any((run / "tables" / "main").glob("*.md"))
    assert any((run / "plots" / "overview").glob("*.png"))
    assert (run / "plots" / "saliency" / "demo-clip" / "fashion_shift.png").is_file()
    # the mechanism diagnostics ran on both datasets; the demo's scenes know their objects
    for dataset in ("fashion_shift", "footwear"):
        diag = json.loads((run / "diagnostics" / dataset / "demo-clip.json").read_text())
        assert 0.0 <= diag["ncut"]["affinity_density"]["median"] <= 1.0, diag["ncut"]
        assert diag["n_images"] > 0 and diag["zero_shot"]["cls"] > 10.0, diag
    assert json.loads((run / "diagnostics" / "fashion_shift" / "demo-clip.json").read_text())[
        "object_iou"] is not None
    assert (run / "tables" / "diagnostics.md").is_file()
