"""microclip.report: collect, tables, statistics, plots, published numbers, profiles, report rules.

The hand-made result set (``TOP1``) is small enough to check by hand: 3 methods x 2 datasets x
3 seeds on ViT-B-32, plus two gamma variants (ablation "dka", flowers, seeds 0 and 1). As the DAG
labels them, every microclip run also names "dka" in its ``ablation`` column, because the dka
table lists microclip (gamma 0.5) beside the variants.

    flowers: zs 70 70 70 | dpa 75 75 75 | microclip 76 77 78
    dtd:     zs 44 44 44 | dpa 49 50 48 | microclip 50 52 54

Tests marked ``workflow`` run snakemake; the DAG ones skip until the lead's Snakefile exists.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from microclip.report import collect_runs, load_published, make_plots, make_tables, plot_saliency
from microclip.report import stats as st
from microclip.report.collect import RUN_KEYS, main_grid, read_runs
from microclip.report.published import DATASET_KEYS, published_lookup
from microclip.report.tables import ablation_table, main_table, to_latex

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

TOP1 = {  # (method, dataset) -> top1 for seeds 0, 1, 2
    ("zs_templates", "flowers"): [70.0, 70.0, 70.0],
    ("zs_templates", "dtd"): [44.0, 44.0, 44.0],
    ("dpa", "flowers"): [75.0, 75.0, 75.0],
    ("dpa", "dtd"): [49.0, 50.0, 48.0],
    ("microclip", "flowers"): [76.0, 77.0, 78.0],
    ("microclip", "dtd"): [50.0, 52.0, 54.0],
}
GAMMA = {0.0: [60.0, 62.0], 1.0: [70.0, 71.0]}  # flowers, seeds 0, 1; gamma 0.5 = microclip
DKA_SPEC = {  # the config's ablation table, as the workflow passes it
    "methods": ["microclip_gamma0.0", "microclip", "microclip_gamma1.0"],
    "datasets": ["flowers"],
    "backbones": ["ViT-B-32"],
    "seeds": [0, 1],
}
EPOCHS = 3


def _record(method, dataset, seed, top1, *, ablation="", base=None, gamma=0.5):
    trained = not method.startswith("zs_")
    epochs = [
        {
            "epoch": e,
            "test_top1": top1 - (EPOCHS - e),
            "pseudo_label_acc": top1 - 2 - (EPOCHS - e),
            "loss": 1.0 / e,
            "lr": 1e-4,
            "images_per_s": 50.0,
            "seconds": 10.0,
        }
        for e in range(1, EPOCHS + 1)
    ]
    return {
        "run": "t",
        "method": method,
        "base_method": base or method,
        "ablation": ablation,
        "dataset": dataset,
        "backbone": "ViT-B-32",
        "model": "ViT-B-32-quickgelu",
        "pretrained": "openai",
        "description_set": "cupl",
        "seed": seed,
        "split": "test",
        "top1": top1,
        "mean_per_class_recall": top1 - 1.0,
        "report": "last",
        "n_train": 100,
        "n_test": 50,
        "num_classes": 10,
        "epochs": epochs if trained else [],
        "wall_s": 12.5,
        "adapt_wall_s": 10.0 if trained else None,
        "trainable_params": 1000 if trained else 0,
        "config_hash": "abc",
        "version": "0.1.0",
        "git_commit": "deadbeef",
        "packages": {"torch": "2.14.1", "numpy": "2.4.6"},
        "method_config": {"gamma": gamma, "lr": 1e-4, "views": {"n": 8}},
        "train_settings": {"epochs": EPOCHS, "report": "last"},  # keys beyond the contract
        "reported_epoch": EPOCHS if trained else 0,
    }


def _write(root: Path, record: dict) -> Path:
    path = (
        root
        / "results"
        / record["run"]
        / record["method"]
        / record["dataset"]
        / record["backbone"]
        / f"seed{record['seed']}"
        / "metrics.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def write_fixture(root: Path) -> list[Path]:
    paths = []
    for (method, dataset), values in TOP1.items():
        for seed, v in enumerate(values):
            ablation = "dka" if method == "microclip" else ""
            paths.append(_write(root, _record(method, dataset, seed, v, ablation=ablation)))
    for gamma, values in GAMMA.items():
        for seed, v in enumerate(values):
            rec = _record(
                f"microclip_gamma{gamma}",
                "flowers",
                seed,
                v,
                ablation="dka",
                base="microclip",
                gamma=gamma,
            )
            paths.append(_write(root, rec))
    return paths


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    paths = write_fixture(root)
    out = root / "results" / "t"
    runs, epochs = collect_runs(paths, out / "runs.csv", out / "epochs.csv", echo=False)
    return {"root": root, "paths": paths, "out": out, "runs": runs, "epochs": epochs}


@pytest.fixture(scope="module")
def tables(collected):
    out = collected["out"] / "tables"
    files = make_tables(
        collected["out"] / "runs.csv",
        REPO / "reference" / "published.csv",
        out,
        methods=["zs_templates", "dpa", "microclip"],
        datasets=["dtd", "flowers"],
        backbones=["ViT-B-32"],
        seeds=[0, 1, 2],
        ablations={"dka": DKA_SPEC},
    )
    return {"dir": out, "files": files}


# -- collect ------------------------------------------------------------------------------------


def test_collect_runs_csv_follows_the_contract(collected):
    runs = pd.read_csv(collected["out"] / "runs.csv")
    assert list(runs.columns[: len(RUN_KEYS)]) == list(RUN_KEYS)
    assert len(runs) == 18 + 4
    assert not {"epochs", "packages", "method_config"} & set(runs.columns)
    assert runs["method_config.gamma"].notna().all()  # flattened for the gamma sweep
    assert (runs["train_settings.epochs"] == EPOCHS).all()
    assert set(runs["packages.torch"]) == {"2.14.1"}
    leftovers = [p.name for p in collected["out"].iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_collect_epochs_csv_has_one_row_per_epoch(collected):
    epochs = pd.read_csv(collected["out"] / "epochs.csv")
    trained_runs = 6 + 6 + 4  # dpa, microclip, gamma variants; zero-shot runs have no epochs
    assert len(epochs) == trained_runs * EPOCHS
    row = epochs[(epochs.method == "microclip") & (epochs.dataset == "dtd") & (epochs.seed == 2)]
    assert row.sort_values("epoch")["test_top1"].tolist() == [52.0, 53.0, 54.0]


def test_collect_missing_value_stays_nan(tmp_path):
    rec = _record("dpa", "dtd", 0, 50.0)
    rec["top1"] = None
    del rec["mean_per_class_recall"]  # contract breach: tolerated, kept as NaN
    path = _write(tmp_path, rec)
    runs, _ = collect_runs([path], tmp_path / "r.csv", tmp_path / "e.csv", echo=False)
    back = read_runs(tmp_path / "r.csv")
    assert math.isnan(back.loc[0, "top1"]) and math.isnan(back.loc[0, "mean_per_class_recall"])
    assert back.loc[0, "ablation"] == ""


def test_collect_names_a_missing_file_and_rejects_duplicates(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        collect_runs([tmp_path / "nope.json"], tmp_path / "r.csv", tmp_path / "e.csv", echo=False)
    a = _write(tmp_path / "a", _record("dpa", "dtd", 0, 50.0))
    b = _write(tmp_path / "b", _record("dpa", "dtd", 0, 51.0))
    with pytest.raises(ValueError, match="identifying keys"):
        collect_runs([a, b], tmp_path / "r.csv", tmp_path / "e.csv", echo=False)
    assert not (tmp_path / "r.csv").exists()


def test_collect_prints_one_screen_summary(collected, capsys, tmp_path):
    collect_runs(collected["paths"], tmp_path / "r.csv", tmp_path / "e.csv")
    text = capsys.readouterr().out
    lines = text.strip().splitlines()
    assert len(lines) < 25 and max(len(line) for line in lines) <= 120
    assert "microclip" in text and "64.5" in text  # mean over datasets of 77 and 52
    assert "4 ablation-only runs; ablation tables: dka" in text


# -- tables: hand-computed numbers ----------------------------------------------------------------


def _cell(tidy, method, dataset, row="measured"):
    hit = tidy[(tidy["row"] == row) & (tidy["method"] == method) & (tidy["dataset"] == dataset)]
    assert len(hit) == 1, (method, dataset, row)
    return hit.iloc[0]


def test_main_table_means_and_stds_match_hand_computation(tables):
    tidy = pd.read_csv(tables["dir"] / "main" / "ViT-B-32.csv")
    expect = {  # (method, dataset): (mean, sample std)
        ("microclip", "flowers"): (77.0, 1.0),
        ("microclip", "dtd"): (52.0, 2.0),
        ("dpa", "flowers"): (75.0, 0.0),
        ("dpa", "dtd"): (49.0, 1.0),
        ("zs_templates", "dtd"): (44.0, 0.0),
        # mean column: mean of per-dataset means; std over seeds of the per-seed average
        # microclip per seed: 63, 64.5, 66 -> std 1.5; dpa: 62, 62.5, 61.5 -> std 0.5
        ("microclip", "mean"): (64.5, 1.5),
        ("dpa", "mean"): (62.0, 0.5),
        ("zs_templates", "mean"): (57.0, 0.0),
    }
    for (method, dataset), (mean, std) in expect.items():
        cell = _cell(tidy, method, dataset)
        assert cell["mean"] == pytest.approx(mean) and cell["std"] == pytest.approx(std)
        assert cell["n"] == 3
    assert bool(_cell(tidy, "microclip", "dtd")["best"]) and not bool(
        _cell(tidy, "dpa", "dtd")["best"]
    )


def test_main_table_delta_is_over_the_strongest_baseline(tables):
    tidy = pd.read_csv(tables["dir"] / "main" / "ViT-B-32.csv")
    for dataset, delta in (("flowers", 2.0), ("dtd", 3.0), ("mean", 2.5)):
        cell = _cell(tidy, "microclip", dataset, row="delta")
        assert cell["mean"] == pytest.approx(delta)
        assert cell["strongest_baseline"] == "dpa"


def test_main_table_prints_published_beside_measured(tables):
    md = (tables["dir"] / "main" / "ViT-B-32.md").read_text()
    lines = md.splitlines()
    dpa = next(i for i, line in enumerate(lines) if line.startswith("| dpa |"))
    assert "75.56" in lines[dpa + 1] and "published" in lines[dpa + 1]  # DPA Table 1, flowers
    assert "**77.00 ± 1.00**" in md  # best in bold
    assert "upl (published only)" in md
    tidy = pd.read_csv(tables["dir"] / "main" / "ViT-B-32.csv")
    pub = _cell(tidy, "dpa", "flowers", row="published")
    assert pub["mean"] == pytest.approx(75.56) and pub["source"] == "dpa_wacv2025_table1"
    # the published Avg is over DPA's 13 datasets, not these 2: not shown
    assert tidy[(tidy["row"] == "published") & (tidy["dataset"] == "mean")].empty


def test_paired_ttest_matches_closed_form():
    # flowers, microclip - dpa = [1, 2, 3]: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3.
    # Student t with 2 dof: two-sided p = 1 - t / sqrt(2 + t^2).
    test = st.paired_ttest(np.array([1.0, 2.0, 3.0]))
    t = 2 * math.sqrt(3)
    assert test.statistic == pytest.approx(t) and test.n == 3 and test.mean_diff == 2.0
    assert test.pvalue == pytest.approx(1 - t / math.sqrt(2 + t * t))
    # dtd: [1, 2, 6]: mean 3, sd sqrt 7, t = 3 sqrt 3 / sqrt 7
    t2 = 3 * math.sqrt(3) / math.sqrt(7)
    test2 = st.paired_ttest(np.array([1.0, 2.0, 6.0]))
    assert test2.statistic == pytest.approx(t2)
    assert test2.pvalue == pytest.approx(1 - t2 / math.sqrt(2 + t2 * t2))


def test_paired_tests_in_stats_csv_match_hand_computation(tables):
    per = pd.read_csv(tables["dir"] / "main" / "ViT-B-32_stats.csv")
    row = per[(per.baseline == "dpa") & (per.dataset == "flowers")].iloc[0]
    t = 2 * math.sqrt(3)
    assert row["t"] == pytest.approx(t) and row["p"] == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert row["n_pairs"] == 3 and row["mean_diff"] == pytest.approx(2.0)
    md = (tables["dir"] / "main" / "ViT-B-32.md").read_text()
    assert "flowers vs dpa: Δ=+2.00, t=3.46, p=0.074, n=3" in md


def test_stats_are_nan_below_two_pairs_or_without_spread():
    assert math.isnan(st.paired_ttest(np.array([1.0])).pvalue)
    assert math.isnan(st.paired_ttest(np.array([])).statistic)
    assert math.isnan(st.paired_ttest(np.array([2.0, 2.0, 2.0])).pvalue)
    assert math.isnan(st.wilcoxon_datasets(np.array([1.5])).pvalue)
    ci = st.bootstrap_mean_delta([np.array([1.0]), np.array([2.0, 3.0])])
    assert ci.estimate == pytest.approx((1.0 + 2.5) / 2) and math.isnan(ci.low)


def test_wilcoxon_across_datasets_matches_exact_distribution(tables):
    # n datasets all in favour of the focus method: W = 0, exact two-sided p = 2 / 2^n
    for n in (2, 3, 5):
        res = st.wilcoxon_datasets(np.arange(1.0, n + 1))
        assert res.statistic == 0.0 and res.pvalue == pytest.approx(2 / 2**n)
    # mixed signs, n = 3: d = [3, -1, 2] -> ranks 3, 1, 2 -> W- = 1; P(W- <= 1) = 2/8 -> p 0.5
    res = st.wilcoxon_datasets(np.array([3.0, -1.0, 2.0]))
    assert res.statistic == 1.0 and res.pvalue == pytest.approx(0.5)
    over = pd.read_csv(tables["dir"] / "main" / "ViT-B-32_stats_overall.csv")
    dpa = over[over.baseline == "dpa"].iloc[0]  # per-dataset deltas 2 and 3
    assert dpa["wilcoxon_w"] == 0.0 and dpa["wilcoxon_p"] == pytest.approx(0.5)
    assert dpa["mean_delta"] == pytest.approx(2.5)


def test_bootstrap_ci_is_fixed_seed_and_brackets_the_estimate():
    groups = [np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 6.0])]
    a = st.bootstrap_mean_delta(groups, n_boot=2000)
    b = st.bootstrap_mean_delta(groups, n_boot=2000)
    assert (a.low, a.high) == (b.low, b.high) and a.seed == st.BOOTSTRAP_SEED
    assert a.estimate == pytest.approx(2.5)
    assert (1.0 + 1.0) / 2 <= a.low <= a.estimate <= a.high <= (3.0 + 6.0) / 2
    # no seed-to-seed variation -> a zero-width interval at the point estimate
    flat = st.bootstrap_mean_delta([np.array([1.0, 1.0, 1.0]), np.array([3.0, 3.0])])
    assert flat.low == pytest.approx(2.0) and flat.high == pytest.approx(2.0)


def test_one_seed_cells_show_the_mean_only_and_missing_datasets_make_the_mean_nan(collected):
    runs = read_runs(collected["out"] / "runs.csv")
    runs = runs[~((runs.method == "dpa") & (runs.dataset == "dtd"))]  # dpa lacks dtd
    runs = runs[~((runs.method == "zs_templates") & (runs.seed > 0))]  # zs: one seed
    table, _, _ = main_table(runs, None, backbone="ViT-B-32", n_boot=200)
    tidy = table.tidy
    assert math.isnan(_cell(tidy, "dpa", "mean")["mean"])
    assert math.isnan(_cell(tidy, "zs_templates", "flowers")["std"])
    zs_row = next(r for r in table.rows if r[0] == "zs_templates")
    assert zs_row[2] == "70.00"  # flowers column, no "±"
    # dtd's strongest baseline is now zero-shot: 52 - 44 = 8
    assert _cell(tidy, "microclip", "dtd", row="delta")["mean"] == pytest.approx(8.0)


def test_ablation_table_from_the_config_grid(collected):
    runs = read_runs(collected["out"] / "runs.csv")
    table = ablation_table(runs, ablation="dka", spec=DKA_SPEC)
    assert [r[0] for r in table.rows] == ["microclip", "microclip_gamma0.0", "microclip_gamma1.0"]
    assert table.header == ["Variant", "Flowers", "Mean"]
    tidy = table.tidy.set_index(["row", "dataset"])
    assert tidy.loc[("microclip", "flowers"), "mean"] == pytest.approx(76.5)  # seeds 0, 1 only
    g0 = tidy.loc[("microclip_gamma0.0", "flowers")]
    assert g0["mean"] == pytest.approx(61.0) and g0["std"] == pytest.approx(math.sqrt(2))
    assert table.bold[0][1] and not table.bold[1][1]


def test_ablation_table_from_the_ablation_column_and_a_main_grid_reference(collected):
    runs = read_runs(collected["out"] / "runs.csv")
    by_column = ablation_table(runs, ablation="dka")  # every run naming "dka"
    assert [r[0] for r in by_column.rows] == [
        "microclip",
        "microclip_gamma0.0",
        "microclip_gamma1.0",
    ]
    assert by_column.tidy.set_index(["row", "dataset"]).loc[("microclip", "flowers"), "n"] == 3
    spec = {"methods": ["microclip_gamma0.0", "microclip_gamma1.0"]}
    table = ablation_table(runs, ablation="dka", spec=spec)
    assert table.rows[-1][0] == "microclip (main grid)" and table.rows[-1][1] == "77.00 ± 1.00"


def test_main_grid_keeps_main_methods_that_an_ablation_also_uses(collected):
    runs = read_runs(collected["out"] / "runs.csv")
    inferred = main_grid(runs)
    assert set(inferred["method"]) == {"zs_templates", "dpa", "microclip"}
    assert len(inferred) == 18
    listed = main_grid(runs, methods=["dpa", "microclip"], seeds=[0, 1])
    assert len(listed) == 2 * 2 * 2


def test_tables_are_written_as_csv_markdown_latex(tables):
    names = {p.relative_to(tables["dir"]).as_posix() for p in tables["files"]}
    for stem in ("main/ViT-B-32", "datasets/ViT-B-32/flowers", "ablations/dka"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex", f"{stem}.html"} <= names
    tex = (tables["dir"] / "main" / "ViT-B-32.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\textbf{77.00 $\\pm$ 1.00}" in tex
    assert "zs\\_templates" in tex and "p $<$ 0.25" in tex


def test_latex_escapes_specials():
    from microclip.report.tables import Table

    t = Table("x", "50% & $", ["a_b", "c"], [["x_y", "1 ± 2"]], [[False, True]])
    tex = to_latex(t, label="tab:x")
    assert "50\\% \\& \\$" in tex and "a\\_b" in tex and "\\textbf{1 $\\pm$ 2}" in tex


# -- plots ----------------------------------------------------------------------------------------


def test_every_plot_renders_from_the_hand_made_results(collected):
    out = collected["out"] / "plots"
    files = make_plots(
        collected["out"] / "runs.csv",
        collected["out"] / "epochs.csv",
        out,
        gamma_spec=DKA_SPEC,
    )
    rel = {p.relative_to(out).as_posix() for p in files}
    for stem in (
        "overview/ViT-B-32",
        "delta/ViT-B-32",
        "gamma/ViT-B-32",
        "accuracy/ViT-B-32/flowers",
        "accuracy/ViT-B-32/dtd",
        "epochs/ViT-B-32/flowers",
        "epochs/ViT-B-32/dtd",
    ):
        assert {f"{stem}.png", f"{stem}.pdf"} <= rel
    for path in files:
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if path.suffix == ".png" else head.startswith(b"%PDF")


def test_plots_render_placeholders_for_configured_but_missing_runs(collected, tmp_path):
    files = make_plots(
        collected["out"] / "runs.csv",
        collected["out"] / "epochs.csv",
        tmp_path,
        datasets=["eurosat"],
        backbones=["ViT-B-16"],
    )
    assert (tmp_path / "accuracy" / "ViT-B-16" / "eurosat.png").is_file()
    assert len(files) == (3 + 2) * 2  # (overview, delta, gamma + accuracy, epochs) x png/pdf


def test_saliency_figure_renders_from_plain_arrays(tmp_path):
    rng = np.random.default_rng(0)
    npz = tmp_path / "saliency.npz"
    np.savez(
        npz,
        images=(rng.random((3, 56, 56, 3)) * 255).astype(np.uint8),
        ncut_mask=rng.random((3, 7, 7)) > 0.5,
        soap_attention=rng.random((3, 7, 7)),
        cls_attention=rng.random((3, 7, 7)),
    )
    png, pdf = plot_saliency(npz, tmp_path / "s.png", tmp_path / "s.pdf")
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    np.savez(tmp_path / "bad.npz", images=np.zeros((1, 8, 8, 3)))
    with pytest.raises(KeyError, match="ncut_mask"):
        plot_saliency(tmp_path / "bad.npz", tmp_path / "b.png", tmp_path / "b.pdf")


# -- published numbers ----------------------------------------------------------------------------


def test_published_numbers_load_with_suite_keys():
    pub = load_published()
    assert set(pub["read_from"]) == {"text", "image"}
    assert set(pub["dataset"]) <= set(DATASET_KEYS) | {"mean", "mean11"}
    dpa = pub[(pub.source == "dpa_wacv2025_table1") & (pub.method == "dpa")]
    assert dpa.set_index("dataset").loc["flowers", "value"] == pytest.approx(75.56)
    assert {"zs_templates", "zs_descriptions", "lafter", "dpa", "must", "upl", "pouf"} <= set(
        pub["method"]
    )
    must = pub[(pub.method == "must") & (pub.backbone == "ViT-L-14")]
    assert must.set_index("dataset").loc["gtsrb", "value"] == pytest.approx(68.7)


def test_published_averages_equal_the_printed_avg():
    pub = load_published()
    t1 = pub[pub.source == "dpa_wacv2025_table1"]
    for method, rows in t1.groupby("method"):
        values = rows[rows.dataset != "mean"]["value"]
        assert len(values) == 13, method
        avg = rows[rows.dataset == "mean"]["value"].item()
        assert values.mean() == pytest.approx(avg, abs=0.006), method


def test_published_lookup_prefers_the_shared_protocol_table():
    pub = load_published()
    look = published_lookup(pub, "ViT-B-32-quickgelu").set_index(["method", "dataset"])
    assert look.loc[("zs_templates", "dtd"), "source"] == "dpa_wacv2025_table1"  # not MPVR
    assert look.loc[("zs_templates", "resisc45"), "source"] == "clip_benchmark"


# -- profiles ---------------------------------------------------------------------------------------


def _parse_cli(argv, cwd):
    from snakemake.cli import parse_args

    old = Path.cwd()
    os.chdir(cwd)
    try:
        return parse_args(argv)[1]
    finally:
        os.chdir(old)


def test_profiles_parse():
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert default["resources"]["gpu"] == 1 and default["cores"] >= 2
    assert slurm["executor"] == "slurm"
    assert {"slurm_account", "slurm_partition", "runtime", "mem_mb"} <= set(
        slurm["default-resources"]
    )


def test_snakemake_loads_the_default_profile_beside_a_top_level_snakefile(tmp_path):
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    (tmp_path / "Snakefile").write_text("rule all:\n    output: 'x'\n    shell: 'touch x'\n")
    args = _parse_cli(["-n"], tmp_path)  # from the workflow folder, no flags
    assert args.cores == 8 and "gpu" in args.resources
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # from another folder, with -s: found beside the Snakefile
    args = _parse_cli(["-n", "-s", str(tmp_path / "Snakefile")], elsewhere)
    assert "gpu" in args.resources
    args = _parse_cli(["-n", "--workflow-profile", "profiles/slurm"], tmp_path)
    assert args.executor == "slurm" and not args.resources  # replaces the default profile


def test_slurm_profile_takes_partition_and_account_from_the_environment(tmp_path, monkeypatch):
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    (tmp_path / "Snakefile").write_text("rule all:\n    output: 'x'\n    shell: 'touch x'\n")
    monkeypatch.setenv("MICROCLIP_SLURM_ACCOUNT", "proj42")
    monkeypatch.setenv("MICROCLIP_CPU_PARTITION", "cpuq")
    args = _parse_cli(["-n", "--workflow-profile", "profiles/slurm"], tmp_path)
    res = args.default_resources  # unevaluated CLI expressions; raw is the profile's value
    assert res["slurm_account"].raw == "proj42" and res["slurm_partition"].raw == "cpuq"


@pytest.mark.workflow
def test_default_profile_caps_gpu_jobs_at_one(tmp_path):
    """Three GPU jobs with --cores 8: with the profile they never overlap; without, they do."""
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            """\
            rule all:
                input: expand("out/{i}.txt", i=range(3))

            rule gpu_job:
                output: "out/{i}.txt"
                resources: gpu=1
                shell: "date +%s.%N > {output}; sleep 1; date +%s.%N >> {output}"
            """
        )
    )

    def spans(extra):
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        cmd = [str(SNAKEMAKE), "--cores", "8", "-q", *extra]
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
        return sorted(
            tuple(map(float, p.read_text().split())) for p in (tmp_path / "out").glob("*.txt")
        )

    capped = spans([])
    assert all(a[1] <= b[0] for a, b in zip(capped, capped[1:], strict=False))
    free = spans(["--workflow-profile", "none"])
    assert any(a[1] > b[0] for a, b in zip(free, free[1:], strict=False))


# -- the workflow (needs the lead's Snakefile) ----------------------------------------------------

needs_dag = pytest.mark.skipif(
    not (REPO / "Snakefile").is_file()
    or not (REPO / "workflow" / "rules" / "report.smk").is_file(),
    reason="the lead's Snakefile / workflow/rules/report.smk are not in the tree yet",
)


def _snakemake(*args, env=None, timeout=300):
    return subprocess.run(
        [str(SNAKEMAKE), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_report_commands_run_through_the_cli(collected, tmp_path):
    from microclip.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            [
                "collect",
                *map(str, collected["paths"]),
                "--runs",
                str(out / "runs.csv"),
                "--epochs",
                str(out / "epochs.csv"),
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "tables",
                "--runs",
                str(out / "runs.csv"),
                "--out",
                str(out / "tables"),
                "--ablations",
                json.dumps({"dka": DKA_SPEC}),
                "--seeds",
                "0",
                "1",
                "2",
            ]
        )
        == 0
    )
    assert (out / "tables" / "ablations" / "dka.tex").is_file()
    assert (
        main(
            [
                "plots",
                "--runs",
                str(out / "runs.csv"),
                "--epochs",
                str(out / "epochs.csv"),
                "--out",
                str(out / "plots"),
                "--gamma-spec",
                json.dumps(DKA_SPEC),
            ]
        )
        == 0
    )
    assert (out / "plots" / "gamma" / "ViT-B-32.pdf").is_file()


@pytest.mark.workflow
@needs_dag
def test_slurm_profile_plans_the_paper_grid_with_the_report():
    """`snakemake -n --profile profiles/slurm` on config.yaml (the paper grid), no cluster."""
    res = _snakemake(
        "-n",
        "--profile",
        "profiles/slurm",
        "--quiet",
        "rules",
        env={"MICROCLIP_GPU_PARTITION": "gpu", "MICROCLIP_SLURM_ACCOUNT": "acct"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    planned = res.stdout + res.stderr
    for rule in ("adapt_method", "collect_results", "make_tables", "make_plots"):
        assert rule in planned


@pytest.mark.workflow
@pytest.mark.slow
@needs_dag
def test_report_builds_from_the_demo_run(tmp_path):
    """Opt-in (MICROCLIP_RUN_DEMO=1, after `make demo`): the demo run's report.html builds."""
    if os.environ.get("MICROCLIP_RUN_DEMO") != "1":
        pytest.skip("set MICROCLIP_RUN_DEMO=1 after `make demo` to build the demo run's report")
    report = tmp_path / "report.html"
    res = _snakemake("--configfile", "config/demo.yaml", "--report", str(report), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert report.stat().st_size > 10_000
