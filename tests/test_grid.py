"""microclip.grid: the runs a config asks for and where their files go."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from microclip import grid
from microclip.config import load_config

REPO = Path(__file__).resolve().parents[1]


def paper():
    return load_config([REPO / "config.yaml"])


def test_paper_grid_counts_main_scaling_and_ablation_runs_once():
    runs = grid.grid_runs(paper())
    assert len(runs) == len(set(runs)) == 592
    by_backbone = Counter(r.backbone for r in runs)
    # main 9 x 13 x 3 + ablations on B/32; scaling 4 x 13 x 3 on B/16 (+1 backbone-ablation run
    # per dataset already covered: microclip on B/16 seed 0); ViT-L/14 backbone ablation 5
    assert by_backbone["ViT-B-16"] == 156 and by_backbone["ViT-L-14"] == 5
    assert by_backbone["ViT-B-32"] == 592 - 156 - 5


def test_variant_runs_keep_their_name_and_point_at_their_method():
    config = paper()
    assert grid.base_method(config, "microclip_gamma1") == "microclip"
    assert grid.base_method(config, "dpa") == "dpa"
    assert grid.description_set_of(config, "microclip_lafter_descriptions") == "lafter"
    assert grid.description_set_of(config, "microclip") == "microclip"


def test_ablation_tables_carry_title_and_default_backbone():
    tables = grid.ablation_tables(paper())
    assert tables["dka"]["backbones"] == ["ViT-B-32"] and tables["dka"]["seeds"] == [0]
    assert tables["backbone"]["backbones"] == ["ViT-B-32", "ViT-B-16", "ViT-L-14"]
    assert tables["soap"]["title"].startswith("SOAP variants")


def test_report_grid_lists_main_methods_in_config_order_with_scaling_ones():
    report = grid.report_grid(paper())
    main = report["main"]
    assert main["methods"][:2] == ["zs_templates", "zs_descriptions"]
    assert main["backbones"] == ["ViT-B-32", "ViT-B-16"] and len(main["datasets"]) == 13
    assert report["focus_method"] == "microclip" and report["gamma_ablation"] == "dka"
    assert report["base_methods"]["microclip_supervised"] == "microclip"


def test_paths_follow_the_results_layout():
    config = paper()
    run = grid.Run("microclip", "dtd", "ViT-B-32", 2)
    assert grid.run_dir(config, run) == "results/paper/microclip/dtd/ViT-B-32/seed2"
    assert grid.prototypes_pointer(config, "dtd", "ViT-B-32", "cupl") == (
        "results/paper/prototypes/ViT-B-32/cupl/dtd.json"
    )
    assert grid.pretrained_of(config, "ViT-B-32") == "openai"
    assert [r.dataset for r in grid.saliency_runs(config)] == ["flowers", "pets", "fgvc"]


def demo():
    return load_config([REPO / "config" / "demo.yaml"])


def test_batch_seeds_groups_the_runs_of_every_method_that_runs_all_seeds():
    config = demo()
    groups = grid.seed_groups(config)
    main_methods = config["methods"]
    assert list(groups) == [f"{m}/fashion_shift/demo-clip" for m in main_methods]
    assert all([r.seed for r in runs] == [0, 1, 2] for runs in groups.values())
    grouped = {r for runs in groups.values() for r in runs}
    alone = set(grid.grid_runs(config)) - grouped
    # the ablation variants run seed 0 only: a job each (rule adapt_method)
    assert {r.method for r in alone} == {"microclip_gamma0", "microclip_gamma1",
                                         "microclip_ncut_invert_mask"}
    assert {r.seed for r in alone} == {0}
    assert grid.job_minutes(config, "adapt_seeds") == 3 * grid.job_minutes(config, "adapt_method")
    assert grid.job_mem_mb(config, "adapt_seeds") == grid.job_mem_mb(config, "adapt_method")


def test_one_run_per_job_without_batch_seeds_or_with_one_seed():
    assert grid.seed_groups(paper()) == {}
    one_seed = {**demo(), "seeds": [0]}
    assert grid.seed_groups(one_seed) == {}
