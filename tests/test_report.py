"""microclip.report: collect, tables, statistics, plots, published numbers, profiles, report rules.

The hand-made result set (``TOP1``) is small enough to check by hand: 3 methods x 2 datasets x
3 seeds on ViT-B-32, plus two gamma variants of the "dka" ablation table (flowers, seeds 0 and
1; the table lists microclip itself, gamma 0.5, between them). Every fixture is written through
the result contract: ``RunRecord(...).write()``, ``write_epochs`` and ``write_grid``.

    flowers: zs 70 70 70 | dpa 75 75 75 | microclip 76 77 78
    dtd:     zs 44 44 44 | dpa 49 50 48 | microclip 50 52 54

grid.json lists the main methods with microclip first, so the tables must move the focus
method last themselves. Tests marked ``workflow`` run snakemake; the DAG ones skip until the
lead's Snakefile exists.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from microclip.errors import RunError
from microclip.report import collect_runs, load_published, make_plots, make_tables, plot_saliency
from microclip.report import plots as pl
from microclip.report import stats as st
from microclip.report.collect import load_runs, summary_table
from microclip.report.grid import ReportGrid, TableGrid
from microclip.report.published import published_lookup
from microclip.report.render import to_html, to_latex
from microclip.report.tables import Table, ablation_table, main_table
from microclip.results import (
    EPOCH_KEYS,
    ID_KEYS,
    DatasetInfo,
    RunRecord,
    write_epochs,
    write_grid,
)

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
EPOCHS = 3
DKA = {
    "title": "Dynamic Knowledge Aggregation (gamma sweep)",
    "methods": ["microclip_gamma0.0", "microclip", "microclip_gamma1.0"],
    "datasets": ["flowers"],
    "backbones": ["ViT-B-32"],
    "seeds": [0, 1],
}
GRID = {  # microclip.grid.report_grid's shape; the focus method is deliberately not last
    "run": "t",
    "focus_method": "microclip",
    "main": {
        "methods": ["microclip", "zs_templates", "dpa"],
        "datasets": ["dtd", "flowers"],
        "backbones": ["ViT-B-32"],
        "seeds": [0, 1, 2],
    },
    "ablations": {"dka": DKA},
    "gamma_ablation": "dka",
    "base_methods": {
        "microclip": "microclip",
        "zs_templates": "zs_templates",
        "dpa": "dpa",
        "microclip_gamma0.0": "microclip",
        "microclip_gamma1.0": "microclip",
    },
}
DATASET_INFO = [
    DatasetInfo("flowers", "Oxford Flowers-102", "Flowers", 102, 100, 50),
    DatasetInfo("dtd", "Describable Textures", "DTD", 47, 100, 50),
]
ORDER = ["zs_templates", "dpa", "microclip"]  # grid order with the focus method moved last


def make_record(method, dataset, seed, top1, *, base=None, gamma=0.5, run="t") -> RunRecord:
    trained = not method.startswith("zs_")
    return RunRecord(
        run=run,
        method=method,
        base_method=base or method,
        dataset=dataset,
        backbone="ViT-B-32",
        model="ViT-B-32-quickgelu",
        pretrained="openai",
        description_set="cupl",
        seed=seed,
        split="test",
        top1=top1,
        mean_per_class_recall=top1 - 1.0,
        report="last",
        n_train=100,
        n_test=50,
        num_classes=10,
        wall_s=12.5,
        score_s=2.5,
        adapt_wall_s=10.0 if trained else None,
        trainable_params=1000 if trained else 0,
        config_hash=f"hash-{method}-0123456789abcdef0123456789abcdef",
        version="0.1.0",
        git_commit="deadbeef",
        device="cpu",
        precision="fp32",
        reported_epoch=EPOCHS if trained else 0,
        method_config={"gamma": gamma, "lr": 1e-4, "crop_scale": (0.5, 1.0)},
        train_settings={"epochs": EPOCHS, "report": "last"},
        packages={"torch": "2.14.1", "numpy": "2.4"},  # "2.4" must stay text
    )


def epoch_rows(record: RunRecord) -> list[dict]:
    if record.method.startswith("zs_"):
        return []
    top1 = record.top1 if record.top1 is not None else 0.0
    return [
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


def write_run(root: Path, record: RunRecord, *, epochs: list[dict] | None = None) -> Path:
    """results/{run}/{method}/{dataset}/{backbone}/seed{seed}/metrics.json + epochs.jsonl."""
    folder = (
        root / "results" / record.run / record.method / record.dataset / record.backbone
    ) / f"seed{record.seed}"
    record.write(folder / "metrics.json")
    write_epochs(folder / "epochs.jsonl", epoch_rows(record) if epochs is None else epochs)
    return folder / "metrics.json"


def write_fixture(root: Path) -> list[Path]:
    paths = []
    for (method, dataset), values in TOP1.items():
        for seed, v in enumerate(values):
            paths.append(write_run(root, make_record(method, dataset, seed, v)))
    for gamma, values in GAMMA.items():
        for seed, v in enumerate(values):
            rec = make_record(
                f"microclip_gamma{gamma}", "flowers", seed, v, base="microclip", gamma=gamma
            )
            paths.append(write_run(root, rec))
    return paths


def write_grid_json(path: Path, grid: dict = GRID, datasets=DATASET_INFO) -> Path:
    write_grid(path, grid, datasets)
    return path


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    paths = write_fixture(root)
    out = root / "results" / "t"
    grid_json = write_grid_json(out / "grid.json")
    runs, epochs = collect_runs(
        paths, out / "runs.csv", out / "epochs.csv", grid=grid_json, echo=False
    )
    return {
        "root": root,
        "paths": paths,
        "out": out,
        "grid_json": grid_json,
        "grid": ReportGrid.read(grid_json),
        "runs": runs,
        "epochs": epochs,
    }


@pytest.fixture(scope="module")
def tables(collected):
    out = collected["out"] / "tables"
    files = make_tables(
        collected["out"] / "runs.csv",
        collected["grid_json"],
        REPO / "reference" / "published.csv",
        out,
    )
    return {"dir": out, "files": files}


def _grid(**changes) -> ReportGrid:
    """The fixture's grid with some fields replaced (``main`` as a dict of TableGrid fields)."""
    base = ReportGrid.from_dict(
        {**GRID, "datasets": {d.key: dataclasses.asdict(d) for d in DATASET_INFO}}
    )
    if "main" in changes:
        changes["main"] = dataclasses.replace(base.main, **changes["main"])
    return dataclasses.replace(base, **changes)


# -- grid.json --------------------------------------------------------------------------------------


def test_report_grid_reads_what_write_grid_writes(collected):
    grid = collected["grid"]
    assert grid.run == "t" and grid.focus_method == "microclip" and grid.gamma_ablation == "dka"
    assert grid.main.methods == ("microclip", "zs_templates", "dpa")
    assert grid.main.seeds == (0, 1, 2)
    assert grid.ablations["dka"].methods == tuple(DKA["methods"])
    assert grid.label("flowers") == "Flowers" and grid.title("flowers") == "Oxford Flowers-102"
    assert grid.label("nokey") == "nokey" and grid.label("mean") == "Mean"
    assert grid.ablation_title("dka") == DKA["title"]
    assert grid.method_order() == ORDER
    assert grid.method_order(["dpa", "extra", "microclip"]) == ["dpa", "extra", "microclip"]


def test_grid_selects_main_runs_even_when_an_ablation_also_uses_them(collected):
    runs, grid = load_runs(collected["out"] / "runs.csv"), collected["grid"]
    main = grid.main_runs(runs)
    assert set(main["method"]) == set(ORDER) and len(main) == 18
    dka = grid.ablation_runs(runs, "dka")
    assert len(dka) == 2 + 2 + 2  # two seeds each of gamma 0, microclip, gamma 1 on flowers
    assert set(dka["seed"]) == {0, 1}
    fewer = TableGrid(("dpa", "microclip"), ("dtd", "flowers"), ("ViT-B-32",), (0, 1))
    assert len(fewer.select(runs)) == 2 * 2 * 2


def test_grid_json_without_a_key_names_the_file(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"run": "t", "main": GRID["main"]}))
    with pytest.raises(RunError, match="focus_method"):
        ReportGrid.read(path)


# -- collect ------------------------------------------------------------------------------------


def test_collect_runs_csv_is_one_flat_record_per_row(collected):
    runs = pd.read_csv(collected["out"] / "runs.csv")
    expected = list(make_record("dpa", "dtd", 0, 50.0).to_flat())
    assert list(runs.columns) == expected  # the record's own order, nothing added
    assert "ablation" not in runs.columns and len(runs) == 18 + 4
    assert runs["method_config.gamma"].notna().all()
    assert (runs["train_settings.epochs"] == EPOCHS).all()
    assert set(runs["method_config.crop_scale"]) == {"[0.5, 1.0]"}  # a list: one JSON cell
    back = load_runs(collected["out"] / "runs.csv")
    assert set(back["packages.numpy"]) == {"2.4"} and set(back["packages.torch"]) == {"2.14.1"}
    assert back[list(ID_KEYS)].equals(back[list(ID_KEYS)].sort_values(list(ID_KEYS)))
    leftovers = [p.name for p in collected["out"].iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_collect_epochs_csv_has_one_row_per_epoch(collected):
    epochs = pd.read_csv(collected["out"] / "epochs.csv")
    assert list(epochs.columns) == [*ID_KEYS, *EPOCH_KEYS]
    trained_runs = 6 + 6 + 4  # dpa, microclip, gamma variants; zero-shot runs have no epochs
    assert len(epochs) == trained_runs * EPOCHS
    row = epochs[(epochs.method == "microclip") & (epochs.dataset == "dtd") & (epochs.seed == 2)]
    assert row.sort_values("epoch")["test_top1"].tolist() == [52.0, 53.0, 54.0]
    assert row["pseudo_label_acc"].tolist() == [50.0, 51.0, 52.0]


def test_collect_null_stays_nan_and_a_missing_key_names_the_file(tmp_path):
    grid_json = write_grid_json(tmp_path / "grid.json")
    rec = make_record("dpa", "dtd", 0, 50.0)
    rec.top1 = None
    path = write_run(tmp_path, rec)
    collect_runs([path], tmp_path / "r.csv", tmp_path / "e.csv", grid=grid_json, echo=False)
    back = load_runs(tmp_path / "r.csv")
    assert math.isnan(back.loc[0, "top1"]) and back.loc[0, "mean_per_class_recall"] == 49.0
    flat = json.loads(path.read_text())
    del flat["mean_per_class_recall"]
    path.write_text(json.dumps(flat))
    with pytest.raises(RunError, match=r"mean_per_class_recall.*adapt_method"):
        collect_runs([path], tmp_path / "r2.csv", tmp_path / "e2.csv", grid=grid_json, echo=False)
    assert not (tmp_path / "r2.csv").exists() and not (tmp_path / "e2.csv").exists()


def test_collect_names_missing_files_and_rejects_duplicates(tmp_path):
    grid_json = write_grid_json(tmp_path / "grid.json")
    kw = {"grid": grid_json, "echo": False}
    with pytest.raises(FileNotFoundError, match="nope"):
        collect_runs([tmp_path / "nope.json"], tmp_path / "r.csv", tmp_path / "e.csv", **kw)
    lonely = write_run(tmp_path / "x", make_record("dpa", "dtd", 0, 50.0))
    lonely.with_name("epochs.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="epochs.jsonl"):
        collect_runs([lonely], tmp_path / "r.csv", tmp_path / "e.csv", **kw)
    a = write_run(tmp_path / "a", make_record("dpa", "dtd", 0, 50.0))
    b = write_run(tmp_path / "b", make_record("dpa", "dtd", 0, 51.0))
    with pytest.raises(RunError, match="identifying keys"):
        collect_runs([a, b], tmp_path / "r.csv", tmp_path / "e.csv", **kw)
    assert not (tmp_path / "r.csv").exists()


def test_collect_prints_one_screen_summary_of_the_main_grid(collected, capsys, tmp_path):
    collect_runs(
        collected["paths"],
        tmp_path / "r.csv",
        tmp_path / "e.csv",
        grid=collected["grid_json"],
        published_csv=REPO / "reference" / "published.csv",
    )
    text = capsys.readouterr().out
    lines = text.strip().splitlines()
    assert len(lines) < 25 and max(len(line) for line in lines) <= 120
    header = next(line for line in lines if "Flowers" in line)
    assert header.index("DTD") < header.index("Flowers") < header.index("Mean")  # grid order
    measured = [line for line in lines if line.split() and "(pub)" not in line]
    rows = [line.split()[0] for line in measured if line.split()[0] in ORDER]
    assert rows == ORDER
    mc = next(line for line in lines if line.startswith("microclip "))
    assert mc.split()[1:4] == ["52.0", "77.0", "64.5"]  # dtd, flowers, mean of 77 and 52
    pub = next(line for line in lines if line.startswith("dpa (pub)"))
    assert "55.7" in pub and "75.6" in pub  # DPA Table 1: dtd 55.69, flowers 75.56
    assert "+ 4 runs outside the main grid; ablation tables: dka" in text


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


def test_main_table_rows_follow_the_grid_with_the_focus_last(collected):
    runs = load_runs(collected["out"] / "runs.csv")
    table, _, _ = main_table(runs, collected["grid"], None, backbone="ViT-B-32", n_boot=200)
    assert [r[0] for r in table.rows[:3]] == ORDER
    assert table.header == ["Method", "DTD", "Flowers", "Mean"]
    assert table.rows[3][0] == "Δ microclip − strongest baseline"


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


def test_a_published_mean_shows_only_for_the_datasets_it_averages(collected):
    runs, pub = load_runs(collected["out"] / "runs.csv"), load_published()
    dpa13 = pub.loc[(pub.source == "dpa_wacv2025_table1") & (pub.dataset == "mean"), "mean_of"]
    thirteen = tuple(dpa13.iloc[0].split())
    table, _, _ = main_table(
        runs, _grid(main={"datasets": thirteen}), pub, backbone="ViT-B-32", n_boot=200
    )
    dpa_mean = _cell(table.tidy, "dpa", "mean", row="published")
    assert dpa_mean["mean"] == pytest.approx(72.29) and dpa_mean["source"] == "dpa_wacv2025_table1"
    assert _cell(table.tidy, "microclip", "mean", row="published")["mean"] == pytest.approx(75.19)
    eleven = tuple(d for d in thirteen if d not in ("imagenet", "sun397"))
    table, _, _ = main_table(
        runs, _grid(main={"datasets": eleven}), pub, backbone="ViT-B-32", n_boot=200
    )
    dpa_mean = _cell(table.tidy, "dpa", "mean", row="published")  # the ablation's mean11
    assert (
        dpa_mean["mean"] == pytest.approx(73.37) and dpa_mean["source"] == "dpa_wacv2025_ablation"
    )


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
    assert "Flowers vs dpa: Δ=+2.00, t=3.46, p=0.074, n=3" in md


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
    runs = load_runs(collected["out"] / "runs.csv")
    runs = runs[~((runs.method == "dpa") & (runs.dataset == "dtd"))]  # dpa lacks dtd
    runs = runs[~((runs.method == "zs_templates") & (runs.seed > 0))]  # zs: one seed
    table, _, _ = main_table(runs, collected["grid"], None, backbone="ViT-B-32", n_boot=200)
    tidy = table.tidy
    assert math.isnan(_cell(tidy, "dpa", "mean")["mean"])
    assert math.isnan(_cell(tidy, "zs_templates", "flowers")["std"])
    zs_row = next(r for r in table.rows if r[0] == "zs_templates")
    assert zs_row[2] == "70.00"  # flowers column, no "±"
    dpa_row = next(r for r in table.rows if r[0] == "dpa")
    assert dpa_row[1] == "–"  # the failed cell is a gap, the row stays
    # dtd's strongest baseline is now zero-shot: 52 - 44 = 8
    assert _cell(tidy, "microclip", "dtd", row="delta")["mean"] == pytest.approx(8.0)


def test_ablation_table_follows_the_grid_order(collected):
    runs = load_runs(collected["out"] / "runs.csv")
    table = ablation_table(runs, collected["grid"], "dka")
    assert [r[0] for r in table.rows] == DKA["methods"]
    assert table.header == ["Variant", "Flowers", "Mean"]
    assert DKA["title"] in table.caption
    tidy = table.tidy.set_index(["row", "dataset"])
    assert tidy.loc[("microclip", "flowers"), "mean"] == pytest.approx(76.5)  # seeds 0, 1 only
    assert tidy.loc[("microclip", "flowers"), "n"] == 2
    g0 = tidy.loc[("microclip_gamma0.0", "flowers")]
    assert g0["mean"] == pytest.approx(61.0) and g0["std"] == pytest.approx(math.sqrt(2))
    assert table.bold[1][1] and not table.bold[0][1] and not table.bold[2][1]


def test_ablation_table_without_the_focus_method_adds_its_main_grid_runs(collected):
    runs = load_runs(collected["out"] / "runs.csv")
    variants = TableGrid(
        ("microclip_gamma1.0", "microclip_gamma0.0"), ("flowers",), ("ViT-B-32",), (0, 1)
    )
    grid = _grid(ablations={"gamma_only": variants})
    table = ablation_table(runs, grid, "gamma_only")
    assert [r[0] for r in table.rows] == [
        "microclip_gamma1.0",
        "microclip_gamma0.0",
        "microclip (main grid)",
    ]
    assert table.rows[-1][1] == "77.00 ± 1.00"  # all three main-grid seeds
    assert table.caption.startswith("Ablation — gamma_only")  # no title: the table's name


def test_tables_are_written_as_csv_markdown_latex_html(tables):
    names = {p.relative_to(tables["dir"]).as_posix() for p in tables["files"]}
    for stem in ("main/ViT-B-32", "datasets/ViT-B-32/flowers", "ablations/dka"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex", f"{stem}.html"} <= names
    assert {"provenance.md", "provenance.html"} <= names
    tex = (tables["dir"] / "main" / "ViT-B-32.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\textbf{77.00 $\\pm$ 1.00}" in tex
    assert "zs\\_templates" in tex and "p $<$ 0.25" in tex
    dataset = pd.read_csv(tables["dir"] / "datasets" / "ViT-B-32" / "flowers.csv")
    assert dataset["method"].tolist() == ORDER
    dpa = dataset.set_index("method").loc["dpa"]
    assert dpa["delta_vs_row"] == pytest.approx(2.0) and dpa["published"] == pytest.approx(75.56)
    assert (
        "Oxford Flowers-102" in (tables["dir"] / "datasets" / "ViT-B-32" / "flowers.md").read_text()
    )


def test_latex_escapes_specials():
    t = Table("x", "50% & $", ["a_b", "c"], [["x_y", "1 ± 2"]], [[False, True]])
    tex = to_latex(t, label="tab:x")
    assert "50\\% \\& \\$" in tex and "a\\_b" in tex and "\\textbf{1 $\\pm$ 2}" in tex


def test_html_cells_never_wrap_and_wide_tables_scroll(tables):
    page = (tables["dir"] / "main" / "ViT-B-32.html").read_text()
    assert "white-space:nowrap" in page and "overflow-x:auto" in page
    assert "<div class='scroll'><table" in page
    assert "<td>45.13 ± 0.00</td>" in to_html(
        Table("x", "c", ["a", "b"], [["m", "45.13 ± 0.00"]], [[False, False]])
    )


def test_provenance_is_an_html_table(tables):
    page = (tables["dir"] / "provenance.html").read_text()
    assert "<table" in page and "<pre>" not in page
    assert "hash-microclip-0123456789abcdef0123456789abcdef" in page
    assert "overflow-wrap:anywhere" in page  # long values wrap inside their cell
    md = (tables["dir"] / "provenance.md").read_text()
    assert "| torch (training) | 2.14.1 |" in md and "| git_commit | deadbeef |" in md


# -- a method and a dataset no list knows ----------------------------------------------------------


@pytest.fixture(scope="module")
def newcomers(tmp_path_factory):
    """grid.json with a new method and a new dataset: only grid.json knows their names."""
    root = tmp_path_factory.mktemp("newcomers")
    values = {
        ("newmethod", "newdata"): 81.0,
        ("zs_templates", "newdata"): 60.0,
        ("microclip", "newdata"): 85.0,
        ("newmethod", "dtd"): 40.0,
        ("zs_templates", "dtd"): 44.0,
        ("microclip", "dtd"): 52.0,
    }
    paths = [
        write_run(root, make_record(m, d, seed, v + seed, run="n"))
        for (m, d), v in values.items()
        for seed in (0, 1)
    ]
    grid = {
        **GRID,
        "run": "n",
        "main": {
            "methods": ["newmethod", "microclip", "zs_templates"],
            "datasets": ["newdata", "dtd"],
            "backbones": ["ViT-B-32"],
            "seeds": [0, 1],
        },
        "ablations": {},
        "gamma_ablation": None,
    }
    infos = [DatasetInfo("newdata", "A New Dataset", "NewData", 5, 10, 10), DATASET_INFO[1]]
    out = root / "results" / "n"
    grid_json = write_grid_json(out / "grid.json", grid, infos)
    collect_runs(paths, out / "runs.csv", out / "epochs.csv", grid=grid_json, echo=False)
    return {
        "out": out,
        "grid_json": grid_json,
        "grid": ReportGrid.read(grid_json),
        "order": ["newmethod", "zs_templates", "microclip"],
    }


def test_new_method_and_dataset_appear_in_the_tables(newcomers):
    out = newcomers["out"]
    files = make_tables(out / "runs.csv", newcomers["grid_json"], None, out / "tables")
    assert out / "tables" / "datasets" / "ViT-B-32" / "newdata.md" in files
    md = (out / "tables" / "main" / "ViT-B-32.md").read_text()
    assert "| Method | NewData | DTD | Mean |" in md
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")]
    assert rows[1:4] == newcomers["order"]
    tidy = pd.read_csv(out / "tables" / "main" / "ViT-B-32.csv")
    assert _cell(tidy, "newmethod", "newdata")["mean"] == pytest.approx(81.5)
    delta = _cell(tidy, "microclip", "newdata", row="delta")
    assert delta["mean"] == pytest.approx(4.0) and delta["strongest_baseline"] == "newmethod"
    assert "A New Dataset" in (out / "tables" / "datasets" / "ViT-B-32" / "newdata.md").read_text()


def test_new_method_and_dataset_appear_in_the_plots(newcomers):
    out, grid = newcomers["out"], newcomers["grid"]
    runs = load_runs(out / "runs.csv")
    fig = pl.overview_figure(runs, grid, backbone="ViT-B-32")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["NewData", "DTD"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == newcomers["order"]
    fig = pl.accuracy_figure(runs, grid, dataset="newdata", backbone="ViT-B-32")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == newcomers["order"]
    assert fig.axes[0].get_title() == "NewData — ViT-B-32"
    files = make_plots(out / "runs.csv", out / "epochs.csv", newcomers["grid_json"], out / "plots")
    rel = {p.relative_to(out / "plots").as_posix() for p in files}
    assert {
        "accuracy/ViT-B-32/newdata.png",
        "epochs/ViT-B-32/newdata.pdf",
        "gamma/ViT-B-32.png",
    } <= rel


def test_report_modules_keep_no_method_or_dataset_names():
    from microclip.data import DATASETS

    sources = {p.name: p.read_text() for p in (REPO / "microclip" / "report").glob("*.py")}
    banned = ["caltech101", "zs_templates", "dka", "dpa_wacv2025"]
    banned += [f'"{key}"' for key in DATASETS] + [f"'{key}'" for key in DATASETS]
    found = {(name, word) for name, text in sources.items() for word in banned if word in text}
    assert not found
    for name in (
        "DATASET_LABELS",
        "ABLATION_TITLES",
        "SOURCE_MEAN_DATASETS",
        "METHOD_ORDER",
        "FOCUS_METHOD",
        "DATASET_KEYS",
        "SOURCE_PRIORITY",
    ):
        assert not any(name in text for text in sources.values()), name


def test_importing_the_report_commands_stays_light():
    code = (
        "import sys, microclip.report.commands\n"
        "print(sorted(m for m in ('pandas', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# -- plots ----------------------------------------------------------------------------------------


def test_every_plot_renders_from_the_hand_made_results(collected):
    out = collected["out"] / "plots"
    files = make_plots(
        collected["out"] / "runs.csv", collected["out"] / "epochs.csv", collected["grid_json"], out
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


def test_gamma_sweep_uses_the_grids_table_and_method_config(collected):
    runs = load_runs(collected["out"] / "runs.csv")
    sweep = pl.gamma_runs(runs, collected["grid"], backbone="ViT-B-32")
    means = sweep.groupby("gamma")["top1"].mean()
    assert means.to_dict() == pytest.approx({0.0: 61.0, 0.5: 76.5, 1.0: 70.5})
    fig = pl.gamma_figure(runs, collected["grid"], backbone="ViT-B-32")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["Flowers", "mean"]


def test_delta_is_over_the_strongest_baseline_per_dataset(collected):
    runs = load_runs(collected["out"] / "runs.csv")
    delta = pl.strongest_baseline_delta(runs, collected["grid"], backbone="ViT-B-32")
    assert delta["dataset"].tolist() == ["dtd", "flowers"]  # grid order
    assert delta["delta"].tolist() == pytest.approx([3.0, 2.0])
    assert delta["baseline"].tolist() == ["dpa", "dpa"]


def test_plots_render_placeholders_for_configured_but_missing_runs(collected, tmp_path):
    grid = _grid(main={"datasets": ("eurosat",), "backbones": ("ViT-B-16",)})
    files = make_plots(
        collected["out"] / "runs.csv", collected["out"] / "epochs.csv", grid, tmp_path
    )
    assert (tmp_path / "accuracy" / "ViT-B-16" / "eurosat.png").is_file()
    assert len(files) == (3 + 2) * 2  # (overview, delta, gamma + accuracy, epochs) x png/pdf


def _saliency_npz(path: Path, n: int, maps: list[dict], *, size: int = 56, grid: int = 7) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"images": (rng.random((n, size, size, 3)) * 255).astype(np.uint8)}
    for m in maps:
        values = rng.random((n, grid, grid))
        arrays[m["key"]] = values > 0.5 if m["kind"] == "mask" else values
    arrays["maps"] = np.array(json.dumps(maps))
    np.savez(path, **arrays)
    return path


MICROCLIP_MAPS = [
    {"key": "ncut_mask", "title": "NCut foreground", "kind": "mask"},
    {"key": "soap_attention", "title": "SOAP attention [FG]", "kind": "attention"},
    {"key": "cls_attention", "title": "[CLS] attention", "kind": "attention"},
]


def test_saliency_figure_is_wider_than_tall_and_draws_the_listed_maps(tmp_path):
    from PIL import Image

    npz = _saliency_npz(tmp_path / "s.npz", 10, MICROCLIP_MAPS)
    png, pdf = plot_saliency(npz, tmp_path / "s.png", tmp_path / "s.pdf", max_images=8, title="x")
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    width, height = Image.open(png).size
    assert width > height
    with np.load(npz) as data:
        images, maps = pl.saliency_arrays({k: data[k] for k in data.files}, "s.npz")
    fig = pl.saliency_figure(images, maps, max_images=8)
    assert len(fig.axes) == (1 + 3) * 8  # one row per map plus the images, 8 columns
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["image", "NCut foreground", "SOAP attention [FG]", "[CLS] attention"]
    one = _saliency_npz(
        tmp_path / "one.npz", 2, [{"key": "heat", "title": "Heat", "kind": "attention"}]
    )
    plot_saliency(one, tmp_path / "o.png", tmp_path / "o.pdf", max_images=8)
    assert (tmp_path / "o.png").is_file()


def test_saliency_rejects_an_index_that_does_not_match_the_arrays(tmp_path):
    bad = _saliency_npz(tmp_path / "bad.npz", 2, MICROCLIP_MAPS[:1])
    with np.load(bad) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["maps"] = np.array(json.dumps(MICROCLIP_MAPS))
    np.savez(bad, **arrays)
    with pytest.raises(RunError, match="soap_attention"):
        plot_saliency(bad, tmp_path / "b.png", tmp_path / "b.pdf", max_images=4)
    odd = _saliency_npz(tmp_path / "odd.npz", 2, [{"key": "k", "title": "K", "kind": "mask"}])
    with np.load(odd) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["maps"] = np.array(json.dumps([{"key": "k", "title": "K", "kind": "heatmap"}]))
    np.savez(odd, **arrays)
    with pytest.raises(RunError, match="heatmap"):
        plot_saliency(odd, tmp_path / "b.png", tmp_path / "b.pdf", max_images=4)
    assert not (tmp_path / "b.png").exists()


# -- published numbers ----------------------------------------------------------------------------


def test_published_numbers_use_registered_dataset_keys():
    from microclip.data import DATASETS

    pub = load_published()
    assert set(pub["read_from"]) == {"text", "image"}
    averages = pub[pub["mean_of"] != ""]
    assert set(pub.loc[pub["mean_of"] == "", "dataset"]) <= set(DATASETS)
    assert set(averages["dataset"]) == {"mean", "mean11"}
    covered = {key for text in averages["mean_of"] for key in text.split()}
    assert covered <= set(DATASETS)
    assert (pub.loc[pub["dataset"].isin(["mean", "mean11"]), "mean_of"] != "").all()
    dpa = pub[(pub.source == "dpa_wacv2025_table1") & (pub.method == "dpa")]
    assert dpa.set_index("dataset").loc["flowers", "value"] == pytest.approx(75.56)
    assert {"zs_templates", "zs_descriptions", "lafter", "dpa", "must", "upl", "pouf"} <= set(
        pub["method"]
    )
    must = pub[(pub.method == "must") & (pub.backbone == "ViT-L-14")]
    assert must.set_index("dataset").loc["gtsrb", "value"] == pytest.approx(68.7)


def test_published_priorities_are_one_per_source_in_the_agreed_order():
    pub = load_published()
    priority = pub.groupby("source")["priority"].unique().map(list).to_dict()
    assert priority == {
        "dpa_wacv2025_table1": [1],
        "microclip_abstract": [2],
        "must_iclr2023_readme": [3],
        "clip_benchmark": [4],
        "mpvr_main": [5],
        "lafter_neurips2023_main": [6],
        "dpa_wacv2025_ablation": [7],
        "microclip_devlog": [8],
    }


def test_published_averages_equal_the_printed_avg():
    pub = load_published()
    t1 = pub[pub.source == "dpa_wacv2025_table1"].set_index(["method", "dataset"])["value"]
    checked = 0
    for row in pub[pub["mean_of"] != ""].itertuples():
        keys = row.mean_of.split()
        if not all((row.method, k) in t1.index for k in keys):
            continue  # e.g. DPA's ablation variants, which Table 1 does not list
        assert np.mean([t1[(row.method, k)] for k in keys]) == pytest.approx(row.value, abs=0.006)
        checked += 1
    assert checked == 5 + 2  # Table 1's five Avg, the ablation's zero-shot and DPA mean11


def test_published_lookup_prefers_the_lowest_priority_number():
    pub = load_published()
    look = published_lookup(pub, "ViT-B-32-quickgelu").set_index(["method", "dataset"])
    assert look.loc[("zs_templates", "dtd"), "source"] == "dpa_wacv2025_table1"  # not MPVR
    assert look.loc[("zs_templates", "resisc45"), "source"] == "clip_benchmark"
    assert not look.index.isin([("dpa", "mean")]).any()  # averages are not per-dataset cells


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.drop(columns="mean_of"), "mean_of"),
        (lambda t: t.assign(priority=range(len(t))), "more than one priority"),
        (lambda t: t.assign(priority="first"), "priority must be a number"),
        (lambda t: t.assign(read_from="guess"), "read_from"),
        (lambda t: pd.concat([t, t.iloc[[0]]]), "duplicate row"),
    ],
)
def test_load_published_rejects_a_malformed_table(tmp_path, edit, message):
    table = pd.read_csv(REPO / "reference" / "published.csv", dtype=str)
    path = tmp_path / "published.csv"
    edit(table).to_csv(path, index=False)
    with pytest.raises(ValueError, match=message):
        load_published(path)


def test_summary_of_a_grid_without_runs_says_so(collected):
    runs = load_runs(collected["out"] / "runs.csv")
    empty = _grid(main={"backbones": ("ViT-L-14",)}, ablations={})
    text = summary_table(runs, empty)
    assert "+ 22 runs outside the main grid; ablation tables: -" in text


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
    # Memory and time come from the rules (the config's runtime block); the profile sets
    # only where jobs go, so it can never override the config's mem_mb / runtime.
    assert set(slurm["default-resources"]) == {"slurm_account", "slurm_partition"}
    gpu_group = {"adapt_method", "adapt_seeds", "build_prototypes", "explain_saliency",
                 "diagnose_mechanisms"}
    assert set(slurm["set-resources"]) == gpu_group
    assert all(set(r) == {"slurm_partition"} for r in slurm["set-resources"].values())
    # Explicit status command, kept logs under logs/, a first check sooner than 40 s.
    assert slurm["slurm-status-command"] == "sacct"
    assert slurm["slurm-keep-successful-logs"] is True
    assert slurm["slurm-logdir"].startswith("logs/")
    assert slurm["slurm-init-seconds-before-status-checks"] < 40


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
    monkeypatch.setenv("MICROCLIP_GPU_PARTITION", "gpuq")
    args = _parse_cli(["-n", "--workflow-profile", "profiles/slurm"], tmp_path)
    res = args.default_resources  # unevaluated CLI expressions; raw is the profile's value
    assert res["slurm_account"].raw == "proj42" and res["slurm_partition"].raw == "cpuq"
    assert {r["slurm_partition"].raw for r in args.set_resources.values()} == {"gpuq"}
    assert args.slurm_status_command == "sacct" and args.slurm_keep_successful_logs is True


def test_slurm_profile_without_an_account_never_leaves_it_to_the_plugins_guess(tmp_path, monkeypatch):
    """No MICROCLIP_SLURM_ACCOUNT: the profile asks sacctmgr for the user's default account
    (the plugin's own guess is broken in 2.8); with no sacctmgr answer the account stays empty."""
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    (tmp_path / "Snakefile").write_text("rule all:\n    output: 'x'\n    shell: 'touch x'\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sacctmgr"  # answers like `sacctmgr -n -P show user U format=defaultaccount`
    fake.write_text('#!/bin/sh\n[ "$4 $6" = "user format=defaultaccount" ] && echo labgroup\n')
    fake.chmod(0o755)
    monkeypatch.delenv("MICROCLIP_SLURM_ACCOUNT", raising=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    args = _parse_cli(["-n", "--workflow-profile", "profiles/slurm"], tmp_path)
    assert args.default_resources["slurm_account"].raw == "labgroup"
    fake.write_text("#!/bin/sh\necho 'sacctmgr: error: accounting storage is disabled' >&2\nexit 1\n")
    args = _parse_cli(["-n", "--workflow-profile", "profiles/slurm"], tmp_path)
    assert args.default_resources["slurm_account"].raw == ""



@pytest.mark.workflow
def test_every_rule_has_its_job_size_in_the_config_schema():
    """A rule added to the DAG gets its memory fraction and wall time in the schema's runtime
    block (the training rules use runtime.mem_mb / runtime.minutes; `all` is no job). The
    demo's DAG adds rule adapt_seeds (runtime.batch_seeds)."""
    from microclip.config import schema
    from microclip.grid import TRAINING_RULES

    rules = set()
    for args in ((), ("--configfile", "config/demo.yaml", "--replace-workflow-config")):
        res = _snakemake("--list-rules", *args)
        assert res.returncode == 0, res.stderr[-3000:]
        rules |= {line.strip() for line in res.stdout.splitlines()
                  if re.fullmatch(r"\s*\w+\s*", line)}
    assert set(TRAINING_RULES) <= rules
    runtime = schema()["properties"]["runtime"]["properties"]
    assert set(runtime["mem_scale"]["properties"]) == rules - {"all", *TRAINING_RULES}
    assert set(runtime["rule_minutes"]["properties"]) == rules - {"all", *TRAINING_RULES}

def _dry_run_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run prints."""
    jobs, rule = [], None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            pairs = line.strip()[len("resources:"):].split(", ")
            jobs.append((rule, dict(p.strip().split("=", 1) for p in pairs if "=" in p)))
            rule = None
    return jobs


@pytest.mark.workflow
@pytest.mark.parametrize(
    "configs", [["config.yaml"], ["config/demo.yaml", "tests/configs/demo_ci.yaml", "OVERRIDE"]]
)
def test_slurm_profile_passes_each_rules_memory_and_time_from_the_config(configs, tmp_path):
    """Every job's mem_mb and runtime are the config's (runtime block), the GPU rules (and only
    they) go to the GPU partition, gpu=1 only with runtime.gpu: true."""
    from test_slurm import GPU_RULES, expected_request

    from microclip.config import load_config

    override = tmp_path / "sizes.yaml"  # the config alone moves the requests
    override.write_text("runtime: {mem_mb: 12345, minutes: 99, min_mem_mb: 1500, "
                        "mem_scale: {make_plots: 0.5}, rule_minutes: {make_tables: 7}}\n")
    with_override = "OVERRIDE" in configs
    configs = [str(override) if c == "OVERRIDE" else c for c in configs]
    res = _snakemake("-n", "--forceall", "--workflow-profile", "profiles/slurm", "--configfile", *configs,
                     "--replace-workflow-config",
                     env={"MICROCLIP_GPU_PARTITION": "gpuq", "MICROCLIP_CPU_PARTITION": "cpuq",
                          "MICROCLIP_SLURM_ACCOUNT": "acct"})
    assert res.returncode == 0, res.stderr[-3000:]
    old = Path.cwd()
    os.chdir(REPO)
    try:
        config = load_config([REPO / c for c in configs])
    finally:
        os.chdir(old)
    jobs = [(rule, r) for rule, r in _dry_run_jobs(res.stdout + res.stderr) if rule != "all"]
    assert len(jobs) > 10
    for rule, resources in jobs:
        mem_mb, minutes = expected_request(config, rule)
        assert (int(resources["mem_mb"]), int(resources["runtime"])) == (mem_mb, minutes), rule
        assert resources["slurm_account"] == "acct"
        assert resources["slurm_partition"] == ("gpuq" if rule in GPU_RULES else "cpuq"), rule
        gpus = int(resources.get("gpu", 0))
        assert gpus == (1 if rule in GPU_RULES and config["runtime"]["gpu"] else 0), rule
    planned = {rule for rule, _ in jobs}
    assert {"adapt_method", "build_prototypes", "explain_saliency"} <= planned
    if with_override:
        sizes = dict(jobs)
        assert sizes["adapt_method"]["mem_mb"] == "12345" and sizes["adapt_method"]["runtime"] == "99"
        assert sizes["make_plots"]["mem_mb"] == str(round(12345 * 0.5))
        assert sizes["make_tables"]["runtime"] == "7"


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
    from microclip.cli import build_parser, main

    out, grid_json = tmp_path / "cli", str(collected["grid_json"])
    runs, epochs = str(out / "runs.csv"), str(out / "epochs.csv")
    collect = ["collect", *map(str, collected["paths"]), "--grid", grid_json]
    assert main([*collect, "--runs", runs, "--epochs", epochs, "--quiet"]) == 0
    assert len(pd.read_csv(runs)) == 22
    tables = ["tables", "--runs", runs, "--grid", grid_json, "--out", str(out / "tables")]
    assert main([*tables, "--published", str(REPO / "reference" / "published.csv")]) == 0
    assert (out / "tables" / "ablations" / "dka.tex").is_file()
    plots = ["plots", "--runs", runs, "--epochs", epochs, "--grid", grid_json]
    assert main([*plots, "--out", str(out / "plots")]) == 0
    assert (out / "plots" / "gamma" / "ViT-B-32.pdf").is_file()
    npz = _saliency_npz(tmp_path / "s.npz", 3, MICROCLIP_MAPS)
    saliency = ["saliency", str(npz), "--png", str(out / "s.png"), "--pdf", str(out / "s.pdf")]
    assert main([*saliency, "--title", "t", "--max-images", "2"]) == 0
    assert (out / "s.png").is_file()
    with pytest.raises(SystemExit):  # no default: the value lives in the config schema
        build_parser().parse_args(saliency)
    with pytest.raises(SystemExit):  # the grid comes from grid.json, not from flags
        build_parser().parse_args([*tables, "--methods", "dpa"])


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
    res = _snakemake("--configfile", "config/demo.yaml", "--report", str(report),
                     "--report-stylesheet", "workflow/report/stylesheet.css", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert report.stat().st_size > 10_000


def test_a_backbone_with_no_published_numbers_gets_no_published_cells():
    """The demo backbone has no published rows: no cells, and no crash on the empty table."""
    from microclip.report.published import published_cells

    published = load_published()
    assert published_cells(published, "demo-clip", ["fashion_shift"], mean_column="mean") == {}


def test_readme_section_is_replaced_between_its_markers_only(tmp_path):
    from microclip.report.readme import BEGIN, END, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    update_readme(readme, "new table")
    assert readme.read_text() == f"# title\nbefore\n{BEGIN}\nnew table\n{END}\nafter\n"
    (tmp_path / "bare.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="bare.md: lacks the markers"):
        update_readme(tmp_path / "bare.md", "x")


def test_readme_states_the_learning_rate_a_method_really_trains_with():
    import pandas as pd

    from microclip.report.readme import _lr_note

    plain = pd.Series({"train_settings.lr": 5e-4, "train_settings.batch_size": 32})
    assert _lr_note(plain) == "lr 0.0005"
    must = pd.Series({"train_settings.lr": 5e-4, "train_settings.batch_size": 32,
                      "method_config.lr_reference_batch": 256, "method_config.layer_decay": 0.65})
    assert _lr_note(must) == ("lr 0.0005 x 32/256 = 6.25e-05 for the head, "
                              "lower layers a further 0.65^k")
