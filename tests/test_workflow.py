"""The DAG: paper dry run plans the full grid, lint is clean, bad config stops early,
and the reduced demo runs end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from demo_outputs import check_reduced_demo_outputs

from benchmarks.dag_startup import job_stats

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.workflow


def snakemake(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def paper_plan() -> dict[str, int]:
    result = snakemake("-n", "--cores", "8", "--quiet", "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    return job_stats(result.stdout + result.stderr)


def test_paper_dry_run_plans_every_run_of_the_grid(paper_plan):
    # main: 9 methods x 13 datasets x 3 seeds = 351; scaling (ViT-B/16): 4 x 13 x 3 = 156;
    # ablations on 5 datasets x seed 0 add 85 runs not already in those grids
    # (supervised 5, SOAP 30, DKA 25, head 10, descriptions 5, NCut sign 5, ViT-L/14 5) -> 592.
    assert paper_plan["adapt_method"] == 592
    assert "evaluate_method" not in paper_plan  # each adapt job scores its own run


def test_paper_dry_run_plans_data_descriptions_and_prototypes(paper_plan):
    assert paper_plan["prepare_dataset"] == 13
    # microclip set on 13 datasets + LaFTer's set on the 5 ablation datasets
    assert paper_plan["fetch_descriptions"] == 18
    # (B/32 + B/16) x 13 + L/14 x 5 (backbone ablation) + B/32 LaFTer set x 5
    assert paper_plan["build_prototypes"] == 36
    assert "pretrain_demo_clip" not in paper_plan
    assert paper_plan["explain_saliency"] == 3 and paper_plan["plot_saliency"] == 3
    # mechanism diagnostics: one job per dataset x backbone (B/32 and B/16 x 13, L/14 x 5)
    assert paper_plan["diagnose_mechanisms"] == 31 and paper_plan["make_diagnostics_table"] == 1


def test_paper_dry_run_plans_tables_plots_and_report(paper_plan):
    assert paper_plan["collect_results"] == 1 and paper_plan["write_grid"] == 1
    for rule in ("make_tables", "make_plots"):
        assert paper_plan.get(rule, 0) >= 1, rule


@pytest.mark.parametrize("config", [None, "config/demo.yaml", "tests/configs/demo_ci.yaml"])
def test_snakemake_lint_is_clean(config):
    args = ["--lint"]
    if config == "tests/configs/demo_ci.yaml":
        args += ["--configfile", "config/demo.yaml", config, "--replace-workflow-config"]
    elif config:
        args += ["--configfile", config, "--replace-workflow-config"]
    result = snakemake(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"methods": ["microclip", "dpaa"]}, "methods[1] = 'dpaa' is not a registered method"),
        ({"datasets": ["flowerz"]}, "datasets[0] = 'flowerz' is not a dataset"),
        ({"main_backbone": "ViT-X"}, "main_backbone = 'ViT-X' is not a configured backbone"),
        ({"description_set": "gpt9"}, "description set 'gpt9' is unknown"),
        ({"seeds": ["zero"]}, "seeds[0] = 'zero'"),
        ({"train": {"learning_rate": 1e-3}}, "train: unknown key(s) 'learning_rate'; allowed:"),
    ],
)
def test_bad_config_stops_before_any_job_naming_key_and_allowed(tmp_path, override, expected):
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(override)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--cores", "1", "--configfile", str(path), "--replace-workflow-config")
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert f"{path}:" in result.stdout + result.stderr  # the message names the file
    assert "Select jobs to execute" not in result.stdout + result.stderr  # before any job


@pytest.mark.slow
def test_demo_dag_runs_end_to_end_with_a_reduced_config():
    from microclip.data.fashion_shift import write_folder_dataset

    shutil.rmtree(REPO / "results" / "demo_ci", ignore_errors=True)
    write_folder_dataset(REPO / "data", REPO / "data" / "footwear")
    result = snakemake(
        "--cores",
        "2",
        "--configfile",
        "config/demo.yaml",
        "tests/configs/demo_ci.yaml",
        "--replace-workflow-config",
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    run = REPO / "results" / "demo_ci"
    check_reduced_demo_outputs(run)
    # The Snakemake report builds from the finished run.
    report = run / "report.html"
    result = snakemake(
        "--cores",
        "1",
        "--configfile",
        "config/demo.yaml",
        "tests/configs/demo_ci.yaml",
        "--replace-workflow-config",
        "--report",
        str(report),
        "--report-stylesheet",
        "workflow/report/stylesheet.css",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert report.stat().st_size > 100_000
