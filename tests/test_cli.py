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
