# Validation, wildcard constraints and every input function of the DAG.
# Config reaches jobs only through params; microclip/ never imports snakemake.

import json
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

try:
    from microclip.config import check_config, expand_dataset_names
except ImportError as err:
    raise WorkflowError(
        f"the microclip package is not importable ({err}); run `make setup` or "
        "`pip install -e .` in the environment that runs snakemake"
    )

try:
    check_config(config, where="config")
except ValueError as err:
    raise WorkflowError(str(err))


# Rules call the package's command line (`python -m microclip` = the `microclip` console
# script) with the repository on PYTHONPATH, so the conda envs need no install of it.
MICROCLIP = f"PYTHONPATH={workflow.basedir}${{PYTHONPATH:+:$PYTHONPATH}} python -m microclip"

RUN = config["run"]
RESULTS = f"results/{RUN}"
RUNTIME = config["runtime"]
# GPU slots a training/scoring job claims (`--resources gpu=N` caps them); 0 for CPU-only
# configurations such as the demo, so `--cores N` runs N of them side by side.
GPU_PER_JOB = 1 if RUNTIME.get("gpu", True) else 0
VARIANTS = config.get("variants", {}) or {}
MAIN_DATASETS = expand_dataset_names(config, config["datasets"])
SEEDS = config["seeds"]


def _known_description_sets():
    sets = set(config.get("descriptions", {}).get("generate", {}) or {})
    sources = lookup(dpath="descriptions/sources", within=config, default="descriptions/sources.yaml")
    import yaml

    with open(sources, encoding="utf-8") as handle:
        sets |= set(yaml.safe_load(handle)["sets"])
    sets |= {p.name for p in Path("descriptions").iterdir() if p.is_dir()}
    return sets


def description_set_of(method):
    return VARIANTS.get(method, {}).get("descriptions", config["description_set"])


_sets = _known_description_sets()
for _name in {config["description_set"]} | {description_set_of(m) for m in VARIANTS}:
    if _name not in _sets:
        raise WorkflowError(
            f"config: description set '{_name}' is unknown; known: {', '.join(sorted(_sets))} "
            "(sets of descriptions/sources.yaml, descriptions.generate, folders in descriptions/)"
        )


# -- the grid -------------------------------------------------------------------------------
def grid_runs():
    """Every (method, dataset, backbone, seed) the config asks for, without duplicates."""
    runs = []
    main = config["main_backbone"]
    for method in config["methods"]:
        for dataset in MAIN_DATASETS:
            for seed in SEEDS:
                runs.append((method, dataset, main, seed))
    scaling = config.get("scaling") or {"backbones": [], "methods": []}
    for backbone in scaling["backbones"]:
        for method in scaling["methods"]:
            for dataset in MAIN_DATASETS:
                for seed in SEEDS:
                    runs.append((method, dataset, backbone, seed))
    for run in ablation_runs():
        runs.append(run[1:])
    return list(dict.fromkeys(runs))


def ablation_runs():
    """(table, method, dataset, backbone, seed) of every ablation table."""
    ablations = config.get("ablations") or {}
    out = []
    for table, spec in (ablations.get("tables") or {}).items():
        for backbone in spec.get("backbones", [config["main_backbone"]]):
            for method in spec["methods"]:
                for dataset in ablations["datasets"]:
                    for seed in ablations["seeds"]:
                        out.append((table, method, dataset, backbone, seed))
    return out


GRID = grid_runs()


def run_dir(method, dataset, backbone, seed):
    return f"{RESULTS}/{method}/{dataset}/{backbone}/seed{seed}"


def metrics_files():
    return [f"{run_dir(*run)}/metrics.json" for run in GRID]


def all_targets():
    return metrics_files() + report_targets()


def _alternatives(names):
    return "|".join(re.escape(str(n)) for n in sorted(set(names), key=str)) or "(?!)"


wildcard_constraints:
    method=_alternatives(run[0] for run in GRID),
    dataset=_alternatives(list(MAIN_DATASETS) + [r[1] for r in GRID]),
    backbone=_alternatives(config["backbones"]),
    seed=r"\d+",
    descset=r"[A-Za-z0-9_.-]+",


# -- datasets -------------------------------------------------------------------------------
def manifest_dir(dataset):
    return f"{RESULTS}/data/{dataset}"


def get_manifest(wildcards):
    folder = manifest_dir(wildcards.dataset)
    return {
        "train": f"{folder}/train.csv",
        "test": f"{folder}/test.csv",
        "classes": f"{folder}/classes.json",
        "templates": f"{folder}/templates.json",
    }


def get_custom_entry(wildcards):
    entry = (config.get("custom_datasets") or {}).get(wildcards.dataset)
    return json.dumps(entry) if entry else ""


def get_dataset_root(wildcards):
    """Registered datasets: data_root/<dataset>; custom ones resolve their own root."""
    if wildcards.dataset in (config.get("custom_datasets") or {}):
        return config["data_root"]
    return f"{config['data_root']}/{wildcards.dataset}"


# -- backbones -------------------------------------------------------------------------------
def is_demo_backbone(backbone):
    return bool(config["backbones"][backbone].get("demo", False))


def demo_weights(backbone):
    return f"{RESULTS}/backbones/{backbone}.pt"


def get_pretrained(backbone):
    """open_clip `pretrained`: a tag ("openai"), or the demo checkpoint the DAG trains."""
    if is_demo_backbone(backbone):
        return demo_weights(backbone)
    return config["backbones"][backbone]["pretrained"] or "none"


def get_weights_input(wildcards):
    return [demo_weights(wildcards.backbone)] if is_demo_backbone(wildcards.backbone) else []


# -- text -------------------------------------------------------------------------------------
def description_file(dataset, description_set):
    entry = (config.get("custom_datasets") or {}).get(dataset) or {}
    return entry.get("descriptions", f"descriptions/{description_set}/{dataset}.json")


def prototypes_pointer(dataset, backbone, description_set):
    return f"{RESULTS}/prototypes/{backbone}/{description_set}/{dataset}.json"


def get_prototypes(wildcards):
    return prototypes_pointer(
        wildcards.dataset, wildcards.backbone, description_set_of(wildcards.method)
    )


# -- methods ----------------------------------------------------------------------------------
def base_method(method):
    return VARIANTS[method]["method"] if method in VARIANTS else method


def get_options(wildcards):
    method = base_method(wildcards.method)
    options = dict((config.get("method_settings") or {}).get(method, {}).get("options", {}))
    options.update(VARIANTS.get(wildcards.method, {}).get("options", {}))
    return json.dumps(options, sort_keys=True)


def get_train(wildcards):
    method = base_method(wildcards.method)
    train = {k: v for k, v in (config.get("train") or {}).items() if v is not None}
    train.update((config.get("method_settings") or {}).get(method, {}).get("train", {}))
    train.update(VARIANTS.get(wildcards.method, {}).get("train", {}))
    return json.dumps(train, sort_keys=True)


def get_labels(wildcards):
    this_run = (wildcards.method, wildcards.dataset, wildcards.backbone, int(wildcards.seed))
    tables = sorted({run[0] for run in ablation_runs() if run[1:] == this_run})
    return json.dumps(
        {
            "run": RUN,
            "method": wildcards.method,
            "backbone": wildcards.backbone,
            "ablation": ",".join(tables),
            "description_set": description_set_of(wildcards.method),
        },
        sort_keys=True,
    )


def saliency_wildcards(wildcards):
    """The run whose checkpoint the saliency figure explains: `saliency.method`, first seed."""
    from types import SimpleNamespace

    method = lookup(dpath="saliency/method", within=config, default="microclip")
    return SimpleNamespace(
        method=method, dataset=wildcards.dataset, backbone=wildcards.backbone, seed=SEEDS[0]
    )


def run_args(wildcards):
    """The shared command-line arguments of `microclip adapt` and `microclip evaluate`."""
    backbone = config["backbones"][wildcards.backbone]
    return " ".join(
        [
            f"--method {base_method(wildcards.method)}",
            f"--dataset {wildcards.dataset}",
            f"--model {backbone['model']}",
            f"--pretrained {get_pretrained(wildcards.backbone)}",
            f"--seed {wildcards.seed}",
            f"--options '{get_options(wildcards)}'",
            f"--train '{get_train(wildcards)}'",
            f"--precision {RUNTIME['precision']}",
            f"--device {RUNTIME['device']}",
            f"--workers {RUNTIME['workers']}",
            f"--test-crop {RUNTIME.get('test_crop', 'center')}",
            "--eval-each-epoch" if RUNTIME.get("eval_each_epoch", True) else "--no-eval-each-epoch",
            "--tf32" if RUNTIME.get("tf32", False) else "",
        ]
    )


# -- report stage ------------------------------------------------------------------------

def get_report_methods():
    """Main-grid methods of every backbone: config methods, then the scaling methods."""
    scaling = config.get("scaling") or {}
    return list(dict.fromkeys([*config["methods"], *(scaling.get("methods") or [])]))


def get_report_backbones():
    """Backbones with a main table: the main backbone, then the scaling backbones."""
    scaling = config.get("scaling") or {}
    return list(dict.fromkeys([config["main_backbone"], *(scaling.get("backbones") or [])]))


def get_focus_method():
    return lookup(dpath="report/focus_method", within=config, default="microclip")


def get_report_grid_args(wildcards=None):
    """`microclip tables/plots` arguments naming the main grid, so the files do not depend on
    which runs succeeded."""
    return " ".join(
        [
            f"--focus {get_focus_method()}",
            "--methods " + " ".join(get_report_methods()),
            "--datasets " + " ".join(MAIN_DATASETS),
            "--backbones " + " ".join(get_report_backbones()),
            "--seeds " + " ".join(str(s) for s in SEEDS),
        ]
    )


def get_ablation_specs():
    """{table: {methods, datasets, backbones, seeds}}: the ablation grids of the config."""
    ablations = config.get("ablations") or {}
    specs = {}
    for table, spec in (ablations.get("tables") or {}).items():
        specs[table] = {
            "methods": list(spec["methods"]),
            "datasets": list(ablations["datasets"]),
            "backbones": list(spec.get("backbones", [config["main_backbone"]])),
            "seeds": list(ablations["seeds"]),
        }
    return specs


def get_ablation_specs_json(wildcards=None):
    return json.dumps(get_ablation_specs(), sort_keys=True)


def get_gamma_spec_json(wildcards=None):
    """The grid of the ablation table the gamma sweep plots ("null": the ablation column)."""
    table = lookup(dpath="report/gamma_ablation", within=config, default="dka")
    return json.dumps(get_ablation_specs().get(table))


def get_saliency_targets():
    """Saliency figures of config `saliency: {datasets: [...], backbones: [...]}` (none if unset);
    their .npz inputs come from the lead's saliency rule."""
    spec = config.get("saliency") or {}
    datasets = spec.get("datasets") or []
    backbones = spec.get("backbones") or [config["main_backbone"]]
    return [
        f"{RESULTS}/plots/saliency/{backbone}/{dataset}.{ext}"
        for backbone in backbones
        for dataset in datasets
        for ext in ("png", "pdf")
    ]


def get_report_targets():
    return [
        f"{RESULTS}/runs.csv",
        f"{RESULTS}/epochs.csv",
        f"{RESULTS}/tables/main",
        f"{RESULTS}/tables/datasets",
        f"{RESULTS}/tables/ablations",
        f"{RESULTS}/tables/provenance.html",
        f"{RESULTS}/plots/accuracy",
        f"{RESULTS}/plots/overview",
        f"{RESULTS}/plots/epochs",
        f"{RESULTS}/plots/delta",
        f"{RESULTS}/plots/gamma",
        *get_saliency_targets(),
    ]


def report_targets():
    """What `rule all` needs from the report stage (called by all_targets in common.smk)."""
    return get_report_targets()
