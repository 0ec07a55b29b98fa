"""The reduced demo DAG submitted to a real SLURM cluster through profiles/slurm.

Opt-in (it submits jobs to whatever cluster `sinfo` answers for): `make test-slurm` brings up a
one-node cluster with accounting (.ci/slurm-up.sh) and runs this with MICROCLIP_TEST_SLURM=1.
Account and partitions come from the profile's environment variables, as for a user:
MICROCLIP_SLURM_ACCOUNT, MICROCLIP_GPU_PARTITION, MICROCLIP_CPU_PARTITION. Besides the outputs
of the local end-to-end test, `sacct` must show every job with the account, partition, memory
and time limit that the rules' resources (computed from the config) asked for.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from demo_outputs import check_reduced_demo_outputs

from microclip.config import load_config

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIGS = ["config/demo.yaml", "tests/configs/demo_ci.yaml", "tests/configs/demo_slurm.yaml"]
GPU_RULES = {"adapt_method", "adapt_seeds", "build_prototypes", "explain_saliency",
             "diagnose_mechanisms"}
TRAINING_RULE = "adapt_method"
DAG_TIMEOUT_S = 1200  # the run takes ~10 min on 2 shared cores; a hang must not eat CI

pytestmark = [pytest.mark.slurm, pytest.mark.workflow, pytest.mark.slow]


def _run(*cmd: str, timeout: int = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _slurm_or_skip() -> None:
    if os.environ.get("MICROCLIP_TEST_SLURM") != "1":
        pytest.skip("opt-in: it submits jobs to this machine's SLURM; run `make test-slurm` "
                    "(or set MICROCLIP_TEST_SLURM=1 with a cluster up)")
    if shutil.which("sinfo") is None:
        pytest.skip("no SLURM here (no `sinfo`): `sudo .ci/slurm-up.sh` brings up a one-node one")
    info = _run("sinfo", "-h", "-o", "%P %a")
    if info.returncode != 0:
        pytest.skip(f"SLURM is not up (`sinfo` failed: {info.stderr.strip()}); "
                    "`sudo .ci/slurm-up.sh` starts it")
    acct = _run("sacct", "-n", "-X", "-S", "now-1minutes", "-o", "JobID")
    if acct.returncode != 0:
        pytest.skip(f"no job accounting (`sacct` failed: {acct.stderr.strip()}); the profile's "
                    "status command is sacct (README: clusters without accounting)")


def _default_partition() -> str:
    names = _run("sinfo", "-h", "-o", "%P").stdout.split()
    return next((n.rstrip("*") for n in names if n.endswith("*")), "")


def _default_account() -> str:
    user = _run("id", "-un").stdout.strip()
    out = _run("sacctmgr", "-n", "-P", "show", "user", user, "format=defaultaccount").stdout
    return out.strip()


def slurm_time(minutes: int) -> str:
    """sacct's Timelimit for a -t of `minutes`: [D-]HH:MM:SS."""
    days, rest = divmod(minutes, 24 * 60)
    clock = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{clock}" if days else clock


def expected_request(config: dict, rule: str) -> tuple[int, int]:
    """(mem_mb, minutes) a rule's resources ask for: the config's runtime block, nothing else."""
    runtime = config["runtime"]
    if rule == TRAINING_RULE:
        return runtime["mem_mb"], runtime["minutes"]
    mem_mb = max(runtime["min_mem_mb"], round(runtime["mem_mb"] * runtime["mem_scale"][rule]))
    return mem_mb, runtime["rule_minutes"][rule]


def check_slurm_jobs(output: str, since: str, config: dict, account: str, gpu_partition: str,
                     cpu_partition: str) -> str:
    """Every job of the Snakemake run (its output: `output`) as sacct saw it: the rule's
    account, partition, memory and time limit, COMPLETED at the first try, its SLURM log kept.
    Returns sacct's lines."""
    # Which SLURM job ran which rule: the plugin's submission lines name the kept log file,
    # logs/slurm/rule_<rule>/<wildcards>/<jobid>.log.
    (run_id,) = set(re.findall(r"SLURM run ID: (\S+)", output))
    submitted = {
        jobid: (rule, Path(log_path))
        for jobid, log_path, rule in re.findall(
            r"submitted with SLURM jobid (\d+) \(log: ((?:\S*/)?rule_(\w+)/\S*\.log)\)", output
        )
    }
    rules = {rule for rule, _ in submitted.values()}
    assert {"prepare_dataset", "pretrain_demo_clip", "build_prototypes", TRAINING_RULE,
            "explain_saliency", "collect_results", "make_tables", "make_plots"} <= rules, rules
    for jobid, (rule, log_path) in submitted.items():  # slurm-keep-successful-logs
        assert log_path.is_file() and REPO / "logs" / "slurm" in log_path.parents, (rule, jobid)

    fields = "JobIDRaw,JobName,Account,Partition,ReqMem,Timelimit,State,ReqTRES"
    acct = _run("sacct", "-P", "-n", "-X", "-S", since, "--name", run_id, "-o", fields)
    assert acct.returncode == 0, acct.stderr
    rows = [line.split("|") for line in acct.stdout.splitlines() if line.strip()]
    assert {row[0] for row in rows} == set(submitted), "sacct and the submissions disagree"
    for jobid, name, acc, partition, req_mem, limit, state, tres in rows:
        rule = submitted[jobid][0]
        mem_mb, minutes = expected_request(config, rule)
        where = f"job {jobid} ({rule})"
        assert name == run_id and state == "COMPLETED", (where, name, state)
        assert acc == account, (where, acc, account)
        assert partition == (gpu_partition if rule in GPU_RULES else cpu_partition), (where, partition)
        assert re.fullmatch(rf"{mem_mb}Mn?", req_mem), (where, req_mem, mem_mb)
        assert limit == slurm_time(minutes), (where, limit, minutes)
        assert "gres/gpu" not in tres, (where, tres)  # runtime.gpu: false -> no --gpus
    return acct.stdout


def test_slurm_time_format():
    assert slurm_time(30) == "00:30:00" and slurm_time(360) == "06:00:00"
    assert slurm_time(24 * 60 + 90) == "1-01:30:00"


def _submit(args: list[str], log: Path) -> tuple[int, str, float]:
    """Run snakemake to the end; on timeout interrupt it (it scancels its jobs), then kill."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "snakemake"), *args], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            rc = proc.wait(timeout=DAG_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            rc = -1
    return rc, log.read_text(), time.monotonic() - start


def test_demo_dag_runs_on_slurm_with_the_profiles_requests(tmp_path, monkeypatch):
    _slurm_or_skip()
    monkeypatch.chdir(REPO)  # the config's paths are relative to the repository
    from microclip.data.fashion_shift import write_folder_dataset

    account = os.environ.get("MICROCLIP_SLURM_ACCOUNT") or _default_account()
    gpu_partition = os.environ.get("MICROCLIP_GPU_PARTITION") or _default_partition()
    cpu_partition = os.environ.get("MICROCLIP_CPU_PARTITION") or _default_partition()
    config = load_config([REPO / c for c in CONFIGS])
    run = REPO / "results" / config["run"]
    assert config["run"] == "demo_slurm" and not config["runtime"]["gpu"]
    shutil.rmtree(run, ignore_errors=True)
    write_folder_dataset(REPO / "data", REPO / "data" / "footwear")

    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    dag = ["--workflow-profile", "profiles/slurm", "--configfile", *CONFIGS,
           "--replace-workflow-config"]
    rc, output, wall = _submit(dag, tmp_path / "snakemake.log")
    print(f"SLURM DAG: {wall:.0f} s")
    assert rc == 0, f"snakemake rc {rc} after {wall:.0f} s:\n{output[-6000:]}"
    print(check_slurm_jobs(output, since, config, account, gpu_partition, cpu_partition))
    check_reduced_demo_outputs(run)

    # The Snakemake report builds from the finished run (locally, as a user would).
    report = run / "report.html"
    result = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--configfile", *CONFIGS,
         "--replace-workflow-config", "--report", str(report),
         "--report-stylesheet", "workflow/report/stylesheet.css"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert report.stat().st_size > 100_000
