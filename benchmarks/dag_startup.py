"""The share of a DAG's wall time that its jobs spend starting up rather than working.

Every job of the DAG is a fresh ``python -m microclip <command>`` process: the interpreter,
the imports its command needs (torch and open_clip for the model jobs, pandas and
matplotlib for the report jobs) and, for the model jobs, building the backbone and loading
its checkpoint come before any work. This script times those fixed costs once per kind of
job, each in a fresh process (best of ``--repeats``), multiplies them by the job counts of a
finished ``snakemake`` log ("Job stats") and divides by the core-seconds of that run:

    python -m benchmarks.dag_startup LOG --wall SECONDS --cores 2

Run it with the checkout whose DAG wrote LOG first on ``PYTHONPATH`` (the package's imports
are what it measures).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

# What a job of each rule imports before it works, and whether it builds the backbone.
MODEL = ("microclip.cli", "torch", "open_clip", "microclip.runner")
DATA = ("microclip.cli", "microclip.data.prepare")
REPORT = ("microclip.cli", "pandas", "matplotlib.pyplot", "microclip.report.tables")
RULE_COST = {
    "pretrain_demo_clip": (MODEL, False),
    "build_prototypes": (MODEL, True),
    "adapt_method": (MODEL, True),
    "adapt_seeds": (MODEL, True),  # a method's seeds in one process: one start-up per job
    "evaluate_method": (MODEL, True),  # the first version scored each run in its own job
    "explain_saliency": (MODEL, True),
    "diagnose_mechanisms": (MODEL, True),
    "prepare_dataset": (DATA, False),
    "cache_images": (DATA, False),
    "write_grid": (("microclip.cli", "microclip.grid"), False),
    "collect_results": (REPORT, False),
    "make_tables": (REPORT, False),
    "make_plots": (REPORT, False),
    "plot_saliency": (REPORT, False),
    "make_diagnostics_table": (REPORT, False),
}
BUILD = (
    "from microclip.model.backbones import DEMO_MODEL, create_clip; "
    "create_clip(DEMO_MODEL, None)"
)


def job_stats(log: str) -> dict[str, int]:
    """Rule -> job count from the first 'Job stats' table of a snakemake log."""
    counts: dict[str, int] = {}
    inside = False
    for line in log.splitlines():
        if line.startswith("Job stats:"):
            inside = True
            continue
        match = re.match(r"^([A-Za-z_]\w*)\s+(\d+)\s*$", line.strip())
        if inside and match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
        elif inside and counts and not line.strip():
            break
    return counts


def process_seconds(modules: tuple[str, ...], build: bool, repeats: int) -> float:
    """Wall time of a fresh interpreter that imports ``modules`` (and builds the backbone)."""
    code = "; ".join(f"import {m}" for m in modules) + (f"; {BUILD}" if build else "")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="the output of a finished snakemake run")
    parser.add_argument("--wall", type=float, required=True, help="that run's wall time, s")
    parser.add_argument("--cores", type=int, required=True, help="its --cores")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    counts = job_stats(args.log.read_text(errors="replace"))
    unknown = sorted(set(counts) - set(RULE_COST) - {"all"})
    if unknown:
        raise SystemExit(f"{args.log}: rules without a start-up model here: {unknown}")
    cache: dict[tuple, float] = {}
    rows = {}
    for rule, n in sorted(counts.items()):
        if rule == "all":
            continue
        key = RULE_COST[rule]
        if key not in cache:
            cache[key] = process_seconds(*key, repeats=args.repeats)
        rows[rule] = {"jobs": n, "startup_s_per_job": round(cache[key], 3),
                      "startup_s": round(n * cache[key], 1)}
    total = sum(r["startup_s"] for r in rows.values())
    share = total / (args.wall * args.cores)
    print(json.dumps({"jobs": sum(r["jobs"] for r in rows.values()), "rules": rows,
                      "startup_s": round(total, 1), "wall_s": args.wall, "cores": args.cores,
                      "startup_share_of_core_seconds": round(share, 4)}, indent=1))


if __name__ == "__main__":
    main()
