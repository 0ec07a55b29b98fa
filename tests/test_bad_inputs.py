"""Bad inputs, table-driven: every fault stops early with the culprit named, or recovers.

Each row of ``CONFIG_FAULTS`` is a fault a user can put in a configuration; every one must
stop before any job runs (``microclip check-config``, the same check the Snakefile runs) with
the file, the key, the value or what is allowed in one message. Each row of ``JOB_FAULTS``
is a fault only a job can meet (files on disk, caches, devices); it must stop at the rule
named in the row with a message naming the culprit, never a traceback from deep inside.
The poisoned-cache cases (a truncated checkpoint or prototype cache, a moved project) must
recover on the rerun instead.

Base configuration: the reduced demo (config/demo.yaml + tests/configs/demo_ci.yaml), as
the probes that found these faults used.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from microclip.cli import main
from microclip.config import Sources

REPO = Path(__file__).resolve().parents[1]
BEFORE_ANY_JOB = "before any job"


def demo_config() -> dict:
    config, _ = Sources.read([REPO / "config" / "demo.yaml", REPO / "tests" / "configs" / "demo_ci.yaml"])
    return config


# -- configuration faults: each a function that breaks a copy of the base config ------------
@dataclass(frozen=True)
class Fault:
    name: str
    change: Callable[[dict, Path], object]  # mutates the config; may write files under tmp
    stage: str
    fragment: str  # must appear in the message


def put(path: str, value) -> Callable[[dict, Path], None]:
    """Set a dotted key (creating mappings on the way)."""

    def change(config: dict, tmp: Path) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return change


def drop(path: str) -> Callable[[dict, Path], None]:
    def change(config: dict, tmp: Path) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]

    return change


def custom(**entry) -> Callable[[dict, Path], None]:
    def change(config: dict, tmp: Path) -> None:
        base = dict(config["custom_datasets"]["footwear"])
        base.update(entry)
        config["custom_datasets"]["footwear"] = {k: v for k, v in base.items() if v is not None}

    return change


def with_variant(name: str, variant: dict) -> Callable[[dict, Path], None]:
    def change(config: dict, tmp: Path) -> None:
        config.setdefault("variants", {})[name] = variant
        config["methods"] = [*config["methods"], name]

    return change


def descriptions_file(content: bytes) -> Callable[[dict, Path], None]:
    def change(config: dict, tmp: Path) -> None:
        path = tmp / "descriptions.json"
        path.write_bytes(content)
        config["custom_datasets"]["footwear"]["descriptions"] = str(path)

    return change


CONFIG_FAULTS = [
    Fault("unknown top-level key", put("epoch", 5), BEFORE_ANY_JOB, "unknown key(s) 'epoch'"),
    Fault("unknown train key", put("train.learning_rate", 1e-3), BEFORE_ANY_JOB,
          "train: unknown key(s) 'learning_rate'; allowed:"),
    Fault("train value of the wrong type", put("train.epochs", "many"), BEFORE_ANY_JOB,
          "train.epochs = 'many'"),
    Fault("negative learning rate", put("train.lr", -1.0), BEFORE_ANY_JOB, "train.lr = -1.0"),
    Fault("train.report not last/best", put("train.report", "final"), BEFORE_ANY_JOB,
          "allowed: last, best"),
    Fault("variant option typo", with_variant("v", {"method": "microclip", "options": {"gama": 0.3}}),
          BEFORE_ANY_JOB, "variants.v.options: unknown key(s) gama; allowed:"),
    Fault("variant option of the wrong type",
          with_variant("v", {"method": "microclip", "options": {"gamma": "high"}}),
          BEFORE_ANY_JOB, "variants.v.options.gamma = 'high': expected a number"),
    Fault("variant of an unknown method", with_variant("v", {"method": "microclipp"}),
          BEFORE_ANY_JOB, "variants.v.method = 'microclipp' is not a registered method"),
    Fault("variant train typo", with_variant("v", {"method": "microclip", "train": {"epoch": 2}}),
          BEFORE_ANY_JOB, "variants.v.train: unknown key(s) 'epoch'"),
    Fault("variant named like a method", with_variant("dpa", {"method": "microclip"}),
          BEFORE_ANY_JOB, "variants.dpa uses the name of a registered method"),
    Fault("variant key typo", put("variants.v", {"method": "microclip", "option": {}}),
          BEFORE_ANY_JOB, "unknown key(s) 'option'"),
    Fault("method_settings of an unknown method", put("method_settings.microclipp", {}),
          BEFORE_ANY_JOB, "method_settings.microclipp is not a registered method"),
    Fault("method_settings option typo", put("method_settings.microclip", {"options": {"gama": 1.0}}),
          BEFORE_ANY_JOB, "method_settings.microclip.options: unknown key(s) gama"),
    Fault("method_settings train typo", put("method_settings.microclip", {"train": {"lr_min": 0.0}}),
          BEFORE_ANY_JOB, "unknown key(s) 'lr_min'"),
    Fault("an impossible method setting (ReCLIP transductive)",
          lambda c, t: (put("method_settings.reclip", {"options": {"transductive": True}})(c, t),
                        put("methods", ["reclip"])(c, t)),
          BEFORE_ANY_JOB, "train.csv lists the test images"),
    Fault("unknown method", put("methods", ["microclip", "dpaa"]), BEFORE_ANY_JOB,
          "methods[1] = 'dpaa' is not a registered method or variant; registered:"),
    Fault("methods: null", put("methods", None), BEFORE_ANY_JOB, "methods = None"),
    Fault("seeds as a string", put("seeds", "0"), BEFORE_ANY_JOB, "seeds = '0'"),
    Fault("negative seed", put("seeds", [-1]), BEFORE_ANY_JOB, "seeds[0] = -1"),
    Fault("unknown dataset", put("datasets", ["fashion_shift", "flowerz"]), BEFORE_ANY_JOB,
          "datasets[1] = 'flowerz' is not a dataset or dataset set"),
    Fault("dataset set with an unknown member", put("dataset_sets", {"mine": ["flowerz"]}),
          BEFORE_ANY_JOB, "dataset_sets.mine[0] = 'flowerz' is not a registered dataset"),
    Fault("custom dataset key typo", custom(rooot="x"), BEFORE_ANY_JOB,
          "custom_datasets.footwear: unknown key(s) 'rooot'"),
    Fault("custom dataset without root", custom(root=None), BEFORE_ANY_JOB,
          "custom_datasets.footwear: 'root' is a required property"),
    Fault("custom dataset of another type", custom(type="folder"), BEFORE_ANY_JOB,
          "custom_datasets.footwear.type = 'folder'"),
    Fault("custom template without a slot", custom(templates=["a photo."]), BEFORE_ANY_JOB,
          "custom_datasets.footwear.templates must be a non-empty list of strings with one '{}'"),
    Fault("custom CSV layout without classes", custom(csv="labels.csv"), BEFORE_ANY_JOB,
          "a CSV layout needs 'classes'"),
    Fault("custom dataset named like a registered one",
          lambda c, t: c["custom_datasets"].__setitem__("cub", c["custom_datasets"]["footwear"]),
          BEFORE_ANY_JOB, "custom_datasets.cub uses the name of a registered dataset"),
    Fault("custom descriptions file missing", custom(descriptions="tests/data/nope.json"),
          BEFORE_ANY_JOB, "custom_datasets.footwear.descriptions = 'tests/data/nope.json': file not found"),
    Fault("unknown open_clip architecture", put("backbones.demo-clip.model", "ViT-X-99"),
          BEFORE_ANY_JOB, "backbones.demo-clip.model = 'ViT-X-99' is not an open_clip architecture"),
    Fault("backbone key typo", put("backbones.demo-clip.pretrain", "x"), BEFORE_ANY_JOB,
          "unknown key(s) 'pretrain'"),
    Fault("main backbone not configured", put("main_backbone", "ViT-X"), BEFORE_ANY_JOB,
          "main_backbone = 'ViT-X' is not a configured backbone"),
    Fault("scaling backbone not configured", put("scaling", {"backbones": ["B16"], "methods": ["microclip"]}),
          BEFORE_ANY_JOB, "scaling.backbones[0] = 'B16' is not a configured backbone"),
    Fault("device typo", put("runtime.device", "cdua"), BEFORE_ANY_JOB,
          "runtime.device = 'cdua': allowed: auto, cpu, cuda, cuda:N, mps"),
    Fault("unknown precision", put("runtime.precision", "fp16"), BEFORE_ANY_JOB,
          "runtime.precision = 'fp16': allowed: fp32, bf16"),
    Fault("unknown runtime key", put("runtime.thread", 4), BEFORE_ANY_JOB, "unknown key(s) 'thread'"),
    Fault("zero threads", put("runtime.threads", 0), BEFORE_ANY_JOB, "runtime.threads = 0"),
    Fault("saliency from a method that draws none", put("saliency.method", "zs_templates"),
          BEFORE_ANY_JOB, "saliency.method = 'zs_templates' (zs_templates) draws no saliency maps"),
    Fault("saliency of a dataset outside the grid", put("saliency.datasets", ["cub"]),
          BEFORE_ANY_JOB, "no run of microclip on cub"),
    Fault("unknown description set", put("description_set", "gpt9"), BEFORE_ANY_JOB,
          "description set 'gpt9' is unknown for dataset 'fashion_shift'"),
    Fault("a folder that is not a description set", put("description_set", "questions"),
          BEFORE_ANY_JOB, "description set 'questions' is unknown"),
    Fault("published set without this dataset", put("description_set", "cupl"), BEFORE_ANY_JOB,
          "description set 'cupl' has no file for dataset 'fashion_shift'"),
    Fault("allow_unpinned names no set", put("descriptions.allow_unpinned", ["cuppl"]),
          BEFORE_ANY_JOB, "descriptions.allow_unpinned[0] = 'cuppl' is not a set"),
    Fault("generation setting typo", put("descriptions.generate", {"mine": {"modle": "gpt"}}),
          BEFORE_ANY_JOB, "descriptions.generate.mine: unknown generation setting"),
    Fault("unknown LLM mode", put("descriptions.llm.mode", "live"), BEFORE_ANY_JOB,
          "descriptions.llm.mode = 'live': allowed: replay, record"),
    Fault("ablation table with an unknown method",
          put("ablations", {"datasets": ["fashion_shift"], "seeds": [0], "tables": {"t": {"methods": ["x"]}}}),
          BEFORE_ANY_JOB, "ablations.tables.t.methods[0] = 'x' is not a registered method"),
    Fault("ablation table on an unknown backbone",
          put("ablations", {"datasets": ["fashion_shift"], "seeds": [0],
                            "tables": {"t": {"methods": ["microclip"], "backbones": ["B16"]}}}),
          BEFORE_ANY_JOB, "ablations.tables.t.backbones[0] = 'B16' is not a configured backbone"),
    Fault("ablation on an unknown dataset",
          put("ablations", {"datasets": ["flowerz"], "seeds": [0], "tables": {}}),
          BEFORE_ANY_JOB, "ablations.datasets[0] = 'flowerz' is not a registered dataset"),
    Fault("best-epoch report without per-epoch scores",
          lambda c, t: (put("train.report", "best")(c, t), put("runtime.eval_each_epoch", False)(c, t)),
          BEFORE_ANY_JOB, "train.report = 'best' (zs_templates) needs runtime.eval_each_epoch: true"),
    Fault("demo pretraining key typo", put("demo.pretrain", {"epoch": 1}), BEFORE_ANY_JOB,
          "demo.pretrain: unknown key(s) epoch"),
    Fault("run name with a slash", put("run", "a/b"), BEFORE_ANY_JOB, "run = 'a/b'"),
    Fault("report key typo", put("report.focus", "microclip"), BEFORE_ANY_JOB,
          "unknown key(s) 'focus'"),
    Fault("prepare key typo", put("prepare.image_cach", True), BEFORE_ANY_JOB,
          "unknown key(s) 'image_cach'"),
]


@pytest.mark.parametrize("fault", CONFIG_FAULTS, ids=[f.name for f in CONFIG_FAULTS])
def test_config_fault_stops_before_any_job_naming_file_and_culprit(fault, tmp_path, caplog):
    config = copy.deepcopy(demo_config())
    fault.change(config, tmp_path)
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with caplog.at_level(logging.ERROR, logger="microclip"):
        code = main(["check-config", str(path)])
    assert code == 2, f"{fault.name}: check-config accepted it"
    message = caplog.text
    assert fault.fragment in message, message
    assert str(path) in message, "the message names the file"
    assert "Traceback" not in message


def test_the_base_config_of_the_table_passes(tmp_path):
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump(demo_config(), sort_keys=False))
    assert main(["check-config", str(path)]) == 0


def test_every_row_is_a_distinct_fault_kind():
    assert len({f.name for f in CONFIG_FAULTS}) == len(CONFIG_FAULTS)
    assert len({f.fragment for f in CONFIG_FAULTS}) == len(CONFIG_FAULTS)


def test_a_yaml_syntax_error_in_the_second_file_names_it_with_the_line(tmp_path, caplog):
    bad = tmp_path / "override.yaml"
    bad.write_text("seeds: [0, 1\nmethods: [microclip]\n")
    with caplog.at_level(logging.ERROR, logger="microclip"):
        code = main(["check-config", "config/demo.yaml", str(bad)])
    assert code == 2 and f"{bad}:2:" in caplog.text and "YAML syntax error" in caplog.text


@pytest.mark.workflow
@pytest.mark.parametrize("name", ["unknown train key", "device typo", "saliency from a method that draws none"])
def test_the_snakefile_stops_on_the_same_faults_before_any_job(name, tmp_path):
    fault = next(f for f in CONFIG_FAULTS if f.name == name)
    config = copy.deepcopy(demo_config())
    fault.change(config, tmp_path)
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "1",
         "--configfile", str(path), "--replace-workflow-config"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0 and fault.fragment in out and str(path) in out
    assert "Select jobs to execute" not in out and "Job stats" not in out


# -- faults only a job meets: each probe runs what its rule runs and returns the message -------
@dataclass(frozen=True)
class JobFault:
    name: str
    probe: Callable[[Path, dict], None]  # must raise
    stage: str  # the rule that must stop
    fragment: str


def _prepare(spec, root: Path, out: Path) -> None:
    from microclip.data.prepare import prepare_dataset

    prepare_dataset(spec, root=root, out_dir=out, check_counts=False)


def _custom(tmp: Path, **entry):
    from microclip.data.custom import custom_dataset_from_config

    return custom_dataset_from_config("mine", {"type": "custom", "root": "mine", **entry}, data_root=tmp)


def _folder_dataset(tmp: Path, *, corrupt: bool = False) -> Path:
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            folder = tmp / "mine" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "a.png")
    if corrupt:
        (tmp / "mine" / "test" / "dog" / "a.png").write_bytes(b"\x89PNG\r\n broken")
    return tmp


def absent_dataset(tmp: Path, world: dict) -> None:
    from microclip.data import get_dataset

    _prepare(get_dataset("dtd"), tmp / "nothing", tmp / "out")


def corrupt_image(tmp: Path, world: dict) -> None:
    _prepare(_custom(_folder_dataset(tmp, corrupt=True)), tmp, tmp / "out")


def _csv_dataset(tmp: Path, label: str, classes) -> None:
    (tmp / "mine").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(tmp / "mine" / "x.png")
    (tmp / "mine" / "labels.csv").write_text(f"path,label,split\nx.png,{label},train\nx.png,0,test\n")
    _prepare(_custom(tmp, csv="labels.csv", classes=classes), tmp, tmp / "out")


def csv_label_out_of_range(tmp: Path, world: dict) -> None:
    _csv_dataset(tmp, "7", ["cat", "dog"])


def csv_label_not_a_class(tmp: Path, world: dict) -> None:
    (tmp / "classes.txt").write_text("cat\ndog\n")
    _csv_dataset(tmp, "cow", "../classes.txt")


def classes_file_missing(tmp: Path, world: dict) -> None:
    _custom(tmp, classes="gone.txt")


def _descriptions(tmp: Path, world: dict, content: bytes) -> None:
    from microclip.runner import make_prototypes

    path = tmp / "desc.json"
    path.write_bytes(content)
    make_prototypes(dataset="tiny", model="microclip-demo-vit", pretrained=str(world["weights"]),
                    descriptions_path=path, out_pointer=tmp / "p.json", cache_dir=tmp / "cache",
                    classes=["a", "b"], templates=["a {}."])


def non_utf8_descriptions(tmp: Path, world: dict) -> None:
    _descriptions(tmp, world, '{"a": ["caf\xe9"], "b": ["x"]}'.encode("latin-1"))


def descriptions_missing_a_class(tmp: Path, world: dict) -> None:
    _descriptions(tmp, world, json.dumps({"a": ["an a"]}).encode())


def descriptions_not_json(tmp: Path, world: dict) -> None:
    _descriptions(tmp, world, b"{a: [")


def _spec(world: dict, **changes):
    from microclip.spec import RunSpec

    return RunSpec.build(method="zs_templates", dataset="tiny", model="microclip-demo-vit",
                         pretrained=str(world["weights"]), **changes)


def _adapt(world: dict, out: Path, spec=None, **kwargs) -> None:
    from microclip.runner import adapt

    adapt(spec or _spec(world), manifest_dir=world["manifest"], prototypes_path=world["prototypes"],
          out_state=out / "adapted.pt", log_path=out / "epochs.jsonl",
          checkpoint_path=out / "checkpoint.pt", **kwargs)


def cuda_without_cuda(tmp: Path, world: dict) -> None:
    from microclip.runner import Placement

    _adapt(world, tmp, placement=Placement(device="cuda"))


def adapted_with_another_configuration(tmp: Path, world: dict) -> None:
    from microclip.runner import evaluate

    _adapt(world, tmp)
    spec = _spec(world, option_layers=({"logit_scale": 10.0},))
    evaluate(spec, manifest_dir=world["manifest"], prototypes_path=world["prototypes"],
             adapted_state=tmp / "adapted.pt", out_metrics=tmp / "metrics.json")


def output_folder_is_a_file(tmp: Path, world: dict) -> None:
    (tmp / "blocked").write_text("")
    _adapt(world, tmp / "blocked")


def manifest_missing(tmp: Path, world: dict) -> None:
    from microclip.runner import adapt

    adapt(_spec(world), manifest_dir=tmp / "no-manifest", prototypes_path=world["prototypes"],
          out_state=tmp / "a.pt", log_path=tmp / "e.jsonl", checkpoint_path=tmp / "c.pt")


def prototype_pointer_broken(tmp: Path, world: dict) -> None:
    from microclip.runner import adapt

    (tmp / "p.json").write_text("not json")
    adapt(_spec(world), manifest_dir=world["manifest"], prototypes_path=tmp / "p.json",
          out_state=tmp / "a.pt", log_path=tmp / "e.jsonl", checkpoint_path=tmp / "c.pt")


def metrics_corrupt(tmp: Path, world: dict) -> None:
    from microclip.report.collect import collect_runs

    run = tmp / "m" / "d" / "b" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"top1": 5')
    collect_runs([run / "metrics.json"], tmp / "runs.csv", tmp / "epochs.csv", grid=_grid(tmp))


def _grid(tmp: Path) -> Path:
    path = tmp / "grid.json"
    path.write_text(json.dumps({"run": "r", "focus_method": "m", "main": {
        "methods": ["m"], "datasets": ["d"], "backbones": ["b"], "seeds": [0]}}))
    return path


def grid_incomplete(tmp: Path, world: dict) -> None:
    from microclip.report.grid import ReportGrid

    (tmp / "grid.json").write_text(json.dumps({"run": "r"}))
    ReportGrid.read(tmp / "grid.json")


def epoch_log_bad_line(tmp: Path, world: dict) -> None:
    from microclip.results import read_epochs

    (tmp / "epochs.jsonl").write_text('{"epoch": 1}\n')
    read_epochs(tmp / "epochs.jsonl")


def saliency_arrays_missing(tmp: Path, world: dict) -> None:
    import numpy as np

    from microclip.report.plots import plot_saliency

    np.savez(tmp / "s.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    plot_saliency(tmp / "s.npz", tmp / "s.png", tmp / "s.pdf", max_images=2)


def unpinned_without_opt_in(tmp: Path, world: dict) -> None:
    from microclip.text.published import fetch_published

    (tmp / "sources.yaml").write_text(yaml.safe_dump({
        "repositories": {"r": {"base_url": "http://127.0.0.1:9", "commit": "c" * 40, "folder": "f"}},
        "sets": {"s": {"repository": "r", "datasets": {"dtd": {"file": "dtd.json", "sha256": None}}}},
    }))
    fetch_published(set_name="s", dataset="dtd", classes=["a"], out_path=tmp / "o.json",
                    sources_path=tmp / "sources.yaml")


def fashion_mnist_missing(tmp: Path, world: dict) -> None:
    import microclip.data.fashion_shift as fashion

    old = fashion.DEBIAN_DIR
    fashion.DEBIAN_DIR = tmp / "no-debian-package"
    try:
        fashion.ensure_raw_files(tmp / "root")
    finally:
        fashion.DEBIAN_DIR = old


JOB_FAULTS = [
    JobFault("dataset absent", absent_dataset, "prepare_dataset", "dtd: not found under"),
    JobFault("corrupt image", corrupt_image, "prepare_dataset", "images cannot be decoded"),
    JobFault("CSV label out of range", csv_label_out_of_range, "prepare_dataset",
             "labels.csv:2: label 7 is outside 0..1"),
    JobFault("CSV label that is no class", csv_label_not_a_class, "prepare_dataset",
             "labels.csv:2: class 'cow' is not one of the 2 classes of custom_datasets.mine.classes (../classes.txt)"),
    JobFault("classes file missing", classes_file_missing, "prepare_dataset",
             "custom_datasets.mine.classes:"),
    JobFault("descriptions not UTF-8", non_utf8_descriptions, "build_prototypes",
             "desc.json: not UTF-8 text (byte 0xe9"),
    JobFault("descriptions missing a class", descriptions_missing_a_class, "build_prototypes",
             "1 class(es) have no entry: 'b'"),
    JobFault("descriptions not JSON", descriptions_not_json, "build_prototypes",
             "desc.json: not valid JSON"),
    JobFault("CUDA requested, none present", cuda_without_cuda, "adapt_method",
             "runtime.device = 'cuda' but CUDA is not available"),
    JobFault("adapted state of another configuration", adapted_with_another_configuration,
             "microclip evaluate (re-scoring)", "adapted with another configuration"),
    JobFault("output folder blocked by a file", output_folder_is_a_file, "adapt_method",
             "blocked/adapted.pt: cannot write"),
    JobFault("manifest missing", manifest_missing, "adapt_method",
             "manifest file not found (run rule prepare_dataset)"),
    JobFault("prototype pointer broken", prototype_pointer_broken, "adapt_method",
             "p.json: not a prototype pointer; rerun rule build_prototypes"),
    JobFault("metrics.json corrupt", metrics_corrupt, "collect_results", "metrics.json is not valid JSON"),
    JobFault("grid.json incomplete", grid_incomplete, "make_tables", "rerun rule write_grid"),
    JobFault("epoch log line incomplete", epoch_log_bad_line, "collect_results",
             "epochs.jsonl:1: lacks epoch key(s)"),
    JobFault("saliency arrays missing", saliency_arrays_missing, "plot_saliency", "s.npz"),
    JobFault("published file not pinned, no opt-in", unpinned_without_opt_in, "fetch_descriptions",
             "pins no sha256, so the file cannot be verified and is refused"),
    JobFault("Fashion-MNIST not installed", fashion_mnist_missing, "prepare_dataset",
             "apt-get install dataset-fashion-mnist"),
]


@pytest.mark.parametrize("fault", JOB_FAULTS, ids=[f.name for f in JOB_FAULTS])
def test_job_fault_stops_at_its_rule_with_one_clear_error(fault, tmp_path, tiny_world):
    from microclip.errors import MicroclipError

    if fault.name.startswith("CUDA") and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises((MicroclipError, FileNotFoundError)) as info:
        fault.probe(tmp_path, tiny_world)
    assert fault.fragment in str(info.value), str(info.value)


def test_more_than_forty_fault_kinds_are_tabled():
    assert len(CONFIG_FAULTS) + len(JOB_FAULTS) >= 40


# -- poisoned caches and checkpoints recover on the rerun -----------------------------------------
def _microclip_spec(world: dict, **train):
    from microclip.spec import RunSpec

    return RunSpec.build(method="microclip", dataset="tiny", model="microclip-demo-vit",
                         pretrained=str(world["weights"]), seed=1,
                         train_layers=({"epochs": 2, "batch_size": 12, **train},),
                         eval_each_epoch=False)


def test_a_truncated_checkpoint_is_moved_aside_and_the_run_starts_clean(tiny_world, tmp_path, caplog):
    spec = _microclip_spec(tiny_world)
    _adapt(tiny_world, tmp_path / "clean", spec)
    _adapt(tiny_world, tmp_path / "cut", spec, stop_after_epoch=1)
    checkpoint = tmp_path / "cut" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        _adapt(tiny_world, tmp_path / "cut", spec)
    assert f"{checkpoint} is unreadable" in caplog.text and "checkpoint.broken.pt" in caplog.text
    assert (tmp_path / "cut" / "checkpoint.broken.pt").is_file()
    clean = torch.load(tmp_path / "clean" / "adapted.pt", weights_only=False)["state"]["tensors"]
    rerun = torch.load(tmp_path / "cut" / "adapted.pt", weights_only=False)["state"]["tensors"]
    assert all(torch.equal(clean[k], rerun[k]) for k in clean)  # the clean start is exact


def test_a_resumed_run_counts_the_adaptation_time_of_every_session(tiny_world, tmp_path):
    spec = _microclip_spec(tiny_world)
    _adapt(tiny_world, tmp_path, spec, stop_after_epoch=1)
    first = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["wall_s"]
    _adapt(tiny_world, tmp_path, spec)
    total = torch.load(tmp_path / "adapted.pt", weights_only=False)["adapt_wall_s"]
    last = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["wall_s"]
    assert first > 0 and total >= last > first


def _prototypes(world: dict, tmp: Path, pointer: Path):
    from microclip.runner import make_prototypes

    return make_prototypes(dataset="tiny", model="microclip-demo-vit", pretrained=str(world["weights"]),
                           descriptions_path=world["root"] / "descriptions.json",
                           out_pointer=pointer, cache_dir=tmp / "cache",
                           classes=["blue circle", "green bar", "red square"],
                           templates=["a photo of a {}."])


def test_a_truncated_prototype_cache_is_rebuilt_not_reused(tiny_world, tmp_path, caplog):
    from microclip.text.prototypes import TextPrototypes

    cache = _prototypes(tiny_world, tmp_path, tmp_path / "p.json")
    good = cache.read_bytes()
    cache.write_bytes(good[: len(good) // 3])
    with pytest.raises(Exception, match="missing or corrupt.*rerun rule build_prototypes"):
        TextPrototypes.load(tmp_path / "p.json")
    with caplog.at_level(logging.WARNING):
        _prototypes(tiny_world, tmp_path, tmp_path / "p.json")
    assert "does not match its sha256" in caplog.text
    assert cache.read_bytes() == good  # rebuilt bit for bit
    assert TextPrototypes.load(tmp_path / "p.json").classes == ["blue circle", "green bar", "red square"]


def test_a_moved_project_keeps_its_prototype_pointers(tiny_world, tmp_path):
    from microclip.text.prototypes import TextPrototypes

    _prototypes(tiny_world, tmp_path / "before", tmp_path / "before" / "run" / "p.json")
    assert not Path(json.loads((tmp_path / "before" / "run" / "p.json").read_text())["file"]).is_absolute()
    shutil.move(tmp_path / "before", tmp_path / "after")
    assert TextPrototypes.load(tmp_path / "after" / "run" / "p.json").classes[0] == "blue circle"


def test_an_old_absolute_pointer_to_a_vanished_file_names_the_rule(tmp_path):
    from microclip.errors import TextError
    from microclip.text.prototypes import TextPrototypes

    (tmp_path / "p.json").write_text(json.dumps({"file": "/nowhere/x.pt"}))
    with pytest.raises(TextError, match="/nowhere/x.pt: text prototype cache missing.*build_prototypes"):
        TextPrototypes.load(tmp_path / "p.json")


def test_bf16_asked_on_a_cpu_runs_and_is_recorded_as_fp32(tiny_world, tmp_path):
    from microclip.runner import evaluate

    if torch.cuda.is_available():
        pytest.skip("bf16 runs for real on CUDA")
    spec = _spec(tiny_world, precision="bf16")
    _adapt(tiny_world, tmp_path, spec)
    record = evaluate(spec, manifest_dir=tiny_world["manifest"], prototypes_path=tiny_world["prototypes"],
                      adapted_state=tmp_path / "adapted.pt", out_metrics=tmp_path / "metrics.json")
    assert record.precision == "fp32"
    assert json.loads((tmp_path / "metrics.json").read_text())["precision"] == "fp32"
    assert record.config_hash == spec.fingerprint(_key(tiny_world), precision="fp32")


def _key(world: dict) -> str:
    return json.loads(Path(world["prototypes"]).read_text())["key"]


def test_every_rule_runs_its_stage_with_exec_so_a_kill_reaches_python():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "-p", "--cores", "1", "--configfile",
         "config/demo.yaml", "tests/configs/demo_ci.yaml", "--replace-workflow-config", "--forceall"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    commands = [line for line in result.stdout.splitlines() if "python -m microclip" in line]
    assert commands, result.stdout[-2000:] + result.stderr[-2000:]
    assert all("exec python -m microclip" in line for line in commands)


def test_a_killed_shell_wrapper_takes_the_python_process_with_it(tmp_path):
    """What `exec` buys: the job's shell is replaced by Python, so killing it kills Python."""
    import os
    import signal
    import time

    proc = subprocess.Popen(
        ["bash", "-c", f"exec {sys.executable} -c 'import time; time.sleep(60)'"],
        start_new_session=True,
    )
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=10) != 0  # the sleeping Python was the process that got the signal
