"""The microclip command: fast to start, one clear line per user fault, stages end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from microclip.cli import main
from microclip.spec import RunSpec

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "microclip", *args], cwd=REPO, capture_output=True, text=True
    )


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {modules!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_help_imports_no_torch_and_no_report_libraries():
    code = "from microclip.cli import build_parser\nbuild_parser()"
    assert loaded_after(code, ("torch", "pandas", "scipy", "matplotlib", "open_clip")) == []
    start = time.perf_counter()
    assert run_cli("--help").returncode == 0
    assert time.perf_counter() - start < 2.0  # interpreter start included; ~0.1 s of our own


def test_a_training_job_imports_no_report_library():
    """adapt jobs load torch and open_clip, never pandas, scipy or matplotlib (start-up)."""
    code = ("import microclip.cli, microclip.runner.stages\n"
            "from microclip.methods import METHODS\n"
            "for name in METHODS.names():\n"
            "    METHODS.get(name).load()")
    assert loaded_after(code, ("pandas", "scipy", "matplotlib")) == []


def test_check_config_says_ok_with_the_grid_size():
    out = run_cli("check-config", "config.yaml")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "config.yaml: OK (592 runs, run name 'paper')"


def test_check_config_merges_files_and_a_fault_is_one_line_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"seeds": "0", "train": {"learning_rate": 1e-3}}))
    out = run_cli("check-config", "config.yaml", str(bad))
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert any(f"{bad}: seeds = '0'" in line for line in lines), out.stderr
    assert any("train: unknown key(s) 'learning_rate'" in line for line in lines), out.stderr
    assert "Traceback" not in out.stderr


def test_spec_prints_the_resolved_specification():
    out = run_cli("spec", "config.yaml", "--method", "microclip_gamma1", "--dataset", "dtd",
                  "--backbone", "ViT-B-32")
    assert out.returncode == 0, out.stderr
    spec = json.loads(out.stdout)
    assert spec["method"] == "microclip_gamma1" and spec["base_method"] == "microclip"
    assert spec["options"]["gamma"] == 1.0 and spec["train"]["epochs"] == 15


def test_adapt_then_evaluate_through_the_cli(tiny_world, tmp_path):
    spec = RunSpec.build(
        method="zs_templates", dataset="tiny", model="microclip-demo-vit",
        pretrained=str(tiny_world["weights"]),
    )
    common = ["--spec", spec.to_json(), "--manifest", str(tiny_world["manifest"]),
              "--prototypes", str(tiny_world["prototypes"]), "--device", "cpu"]
    assert main(["adapt", *common, "--out", str(tmp_path / "a.pt"), "--epoch-log",
                 str(tmp_path / "e.jsonl"), "--checkpoint", str(tmp_path / "c.pt")]) == 0
    assert main(["evaluate", *common, "--adapted", str(tmp_path / "a.pt"),
                 "--out", str(tmp_path / "metrics.json")]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == "zs_templates" and metrics["n_test"] == 12
    assert (tmp_path / "e.jsonl").read_text() == ""


def test_a_spec_for_another_configuration_is_refused_naming_the_rule(tiny_world, tmp_path, caplog):
    spec = RunSpec.build(method="zs_templates", dataset="tiny", model="microclip-demo-vit",
                         pretrained=str(tiny_world["weights"]))
    common = ["--manifest", str(tiny_world["manifest"]), "--prototypes",
              str(tiny_world["prototypes"]), "--device", "cpu"]
    main(["adapt", "--spec", spec.to_json(), *common, "--out", str(tmp_path / "a.pt"),
          "--epoch-log", str(tmp_path / "e.jsonl"), "--checkpoint", str(tmp_path / "c.pt")])
    other = spec.replace(options={**spec.options, "logit_scale": 50.0})
    code = main(["evaluate", "--spec", other.to_json(), *common, "--adapted",
                 str(tmp_path / "a.pt"), "--out", str(tmp_path / "m.json")])
    assert code == 2 and "rerun rule adapt_method" in caplog.text
    assert not (tmp_path / "m.json").exists()


def _run_paths(folder: Path) -> list[str]:
    return ["--out", str(folder / "adapted.pt"), "--epoch-log", str(folder / "epochs.jsonl"),
            "--metrics", str(folder / "metrics.json"), "--checkpoint", str(folder / "ckpt.pt")]


def test_several_runs_in_one_process_equal_each_run_alone(tiny_world, tmp_path):
    """rule adapt_seeds: the seeds of a method share a process, never its state. Seed 1 adapted
    after seed 0 in one `microclip adapt` gives the record, epoch log and adapted state of
    seed 1 adapted alone in a fresh interpreter (timings aside)."""
    import torch

    specs = [
        RunSpec.build(method="microclip", dataset="tiny", model="microclip-demo-vit",
                      pretrained=str(tiny_world["weights"]), seed=seed,
                      train_layers=({"epochs": 2, "batch_size": 8, "lr": 1e-3},))
        for seed in (0, 1)
    ]
    common = ["--manifest", str(tiny_world["manifest"]), "--prototypes",
              str(tiny_world["prototypes"]), "--device", "cpu"]
    together, alone = tmp_path / "together", tmp_path / "alone"
    assert main(["adapt", *common,
                 "--spec", specs[0].to_json(), *_run_paths(together / "seed0"),
                 "--spec", specs[1].to_json(), *_run_paths(together / "seed1")]) == 0
    out = run_cli("adapt", *common, "--spec", specs[1].to_json(), *_run_paths(alone / "seed1"))
    assert out.returncode == 0, out.stderr

    timings = {"wall_s", "adapt_wall_s", "score_s"}
    records = [json.loads((d / "seed1" / "metrics.json").read_text()) for d in (together, alone)]
    assert records[0]["seed"] == 1 and records[0]["top1"] == records[1]["top1"]
    assert {k: v for k, v in records[0].items() if k not in timings} == {
        k: v for k, v in records[1].items() if k not in timings}
    seed0 = json.loads((together / "seed0" / "metrics.json").read_text())
    assert seed0["seed"] == 0 and (together / "seed0" / "adapted.pt").is_file()

    def losses(folder: Path) -> list[float]:
        lines = (folder / "seed1" / "epochs.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines]

    assert len(losses(together)) == 2 and losses(together) == losses(alone)
    states = [torch.load(d / "seed1" / "adapted.pt", weights_only=False)["state"]
              for d in (together, alone)]
    flat = [dict(_tensors(s)) for s in states]
    assert flat[0].keys() == flat[1].keys() and flat[0]
    assert all(torch.equal(flat[0][k], flat[1][k]) for k in flat[0])


def _tensors(tree, prefix: str = ""):
    """(dotted key, tensor) of every tensor in a nested state."""
    import torch

    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _tensors(value, f"{prefix}.{i}")


def test_adapt_refuses_runs_without_their_own_paths(tiny_world, tmp_path, caplog):
    spec = RunSpec.build(method="zs_templates", dataset="tiny", model="microclip-demo-vit",
                         pretrained=str(tiny_world["weights"])).to_json()
    code = main(["adapt", "--manifest", str(tiny_world["manifest"]), "--prototypes",
                 str(tiny_world["prototypes"]), "--device", "cpu", "--spec", spec, "--spec", spec,
                 *_run_paths(tmp_path / "only_one")])
    assert code == 2
    assert "2 --spec but 1 --out, 1 --epoch-log, 1 --checkpoint, 1 --metrics" in caplog.text
    assert not (tmp_path / "only_one").exists()


def test_a_failed_run_of_a_group_loses_no_finished_run(tiny_world, tmp_path, caplog):
    """Snakemake deletes the declared outputs of a failed adapt_seeds job, but each run's
    epoch checkpoint stays: the rerun resumes a finished run at its last epoch (no training)
    and writes the same record."""
    spec = RunSpec.build(method="cls_selftrain", dataset="tiny", model="microclip-demo-vit",
                         pretrained=str(tiny_world["weights"]), seed=0,
                         train_layers=({"epochs": 2, "batch_size": 8, "lr": 1e-3},))
    missing_weights = spec.replace(pretrained=str(tmp_path / "missing.pt"), seed=1)
    common = ["--manifest", str(tiny_world["manifest"]), "--prototypes",
              str(tiny_world["prototypes"]), "--device", "cpu"]
    first, second = tmp_path / "seed0", tmp_path / "seed1"
    assert main(["adapt", *common, "--spec", spec.to_json(), *_run_paths(first),
                 "--spec", missing_weights.to_json(), *_run_paths(second)]) == 2
    record = json.loads((first / "metrics.json").read_text())
    for name in ("adapted.pt", "epochs.jsonl", "metrics.json"):  # what Snakemake removes
        (first / name).unlink()
    assert (first / "ckpt.pt").is_file() and not second.joinpath("metrics.json").exists()
    caplog.clear()
    assert main(["adapt", *common, "--spec", spec.to_json(), *_run_paths(first)]) == 0
    assert "resumed from" in caplog.text
    assert "epoch {" not in caplog.text  # no epoch trained again: only the score
    again = json.loads((first / "metrics.json").read_text())
    assert again["top1"] == record["top1"] and again["reported_epoch"] == 2
    assert len((first / "epochs.jsonl").read_text().splitlines()) == 2
