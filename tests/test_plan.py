"""microclip plan: the grid's training images and GPU hours before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from microclip.config import load_config
from microclip.plan import DatasetCost, grid_cost, plan_line, plan_table

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper():
    return load_config([REPO / "config.yaml"])


def test_training_images_are_split_size_times_epochs_summed_over_training_runs(paper):
    costs = {c.dataset: c for c in grid_cost(paper)}
    dtd = costs["dtd"]
    assert dtd.n_train == 3_760 and dtd.runs == 56
    # zero-shot runs (2 methods x 3 seeds on ViT-B/32 and on ViT-B/16) train on nothing
    assert dtd.training_runs == dtd.runs - 12
    # microclip alone: 3 seeds x 15 epochs of dtd's 3,760 unlabelled images
    microclip = 3 * 15 * 3_760
    assert dtd.training_images > microclip
    assert costs["sun397"] == DatasetCost("sun397", 76_128, True, 39, 27, costs["sun397"].training_images)


def test_paper13_holds_about_5_2_million_training_images_per_method_and_seed(paper):
    sizes = {c.dataset: c.n_train for c in grid_cost(paper)}
    per_method_seed = 15 * sum(sizes.values())
    assert 5.1e6 < per_method_seed < 5.3e6  # the speed issue's figure


def test_hours_follow_the_throughput_given(paper):
    table = plan_table(paper, images_per_s=1_500)
    total = [line for line in table.splitlines() if line.startswith("total")][0]
    images = sum(c.training_images for c in grid_cost(paper))
    assert total.split()[-1] == f"{images / 1_500 / 3600:.1f}"
    assert "1,500 training images/s (--images-per-s)" in table


def test_the_snakemake_line_names_runs_images_and_hours(paper):
    line = plan_line(paper)
    assert line.startswith("microclip plan: 592 runs, ") and "GPU hours at" in line
