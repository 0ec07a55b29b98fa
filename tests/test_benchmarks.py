"""The benchmark scripts run (tiny sizes, CPU) and report what they claim to measure."""

from __future__ import annotations

import pytest

from benchmarks.dag_startup import RULE_COST, job_stats
from benchmarks.throughput import measure_end_to_end


@pytest.mark.parametrize("views", ["cpu", "device"])
def test_end_to_end_mode_times_every_stage_of_both_view_paths(tmp_path, views):
    result = measure_end_to_end(
        model="microclip-demo-vit", method="microclip", batch=4, batches=1, views=views,
        step=True, images=tmp_path / "jpegs", precision="fp32", device="cpu", threads=1,
        workers=0, cache=views == "device",
    )
    rates = result["images_per_s"]
    assert set(rates) == {"loader", "render", "step", "input_pipeline", "end_to_end"}
    assert all(rates[k] > 0 for k in ("loader", "step", "end_to_end"))
    assert rates["end_to_end"] <= min(rates["loader"], rates["step"])
    assert len(list((tmp_path / "jpegs").glob("*.jpg"))) == 8  # 1 warm-up + 1 timed batch


def test_startup_benchmark_reads_snakemake_job_stats():
    log = "Building DAG of jobs...\nJob stats:\njob              count\n" \
          "---------------  -------\nadapt_method          30\nall                    1\n" \
          "make_tables            1\ntotal                 32\n\nSelect jobs to execute...\n"
    assert job_stats(log) == {"adapt_method": 30, "all": 1, "make_tables": 1}
    assert {"adapt_method", "make_tables", "pretrain_demo_clip"} <= set(RULE_COST)
