"""The experiment grid a configuration asks for, and where its files go (torch-free).

Everything the Snakefile derives from the configuration lives here as small functions of a
checked config (``microclip.config.check_config``): the runs of the main grid, the scaling
grid and every ablation table, the backbone weights, the description set of each method,
and the paths of the result files. The same functions write ``results/{run}/grid.json``,
the file that tells the report which runs form which table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Config = Mapping[str, Any]


@dataclass(frozen=True)
class Run:
    """One cell of the grid: a configured method (or variant) on a dataset, backbone, seed."""

    method: str
    dataset: str
    backbone: str
    seed: int


# -- names ------------------------------------------------------------------------------------
def expand_dataset_names(config: Config, names: Sequence[str]) -> list[str]:
    """Set names expand to their datasets; order kept, duplicates dropped."""
    sets = config.get("dataset_sets") or {}
    out: list[str] = []
    for name in names:
        for key in sets.get(name, [name]):
            if key not in out:
                out.append(key)
    return out


def main_datasets(config: Config) -> list[str]:
    return expand_dataset_names(config, config["datasets"])


def base_method(config: Config, method: str) -> str:
    """The registered method a configured name runs (a variant names its method)."""
    return (config.get("variants") or {}).get(method, {}).get("method", method)


def description_set_of(config: Config, method: str) -> str:
    return (config.get("variants") or {}).get(method, {}).get(
        "descriptions", config["description_set"]
    )


def custom_entry(config: Config, dataset: str) -> dict[str, Any] | None:
    return (config.get("custom_datasets") or {}).get(dataset)


# -- paths ------------------------------------------------------------------------------------
def results_dir(config: Config) -> str:
    return f"results/{config['run']}"


def run_dir(config: Config, run: Run) -> str:
    return f"{results_dir(config)}/{run.method}/{run.dataset}/{run.backbone}/seed{run.seed}"


def checkpoint_file(config: Config, run: Run) -> str:
    """The run's epoch checkpoint: beside its outputs, never a declared output, so a killed
    or failed job resumes from it."""
    return f"{run_dir(config, run)}/checkpoint.pt"


def manifest_dir(config: Config, dataset: str) -> str:
    return f"{results_dir(config)}/data/{dataset}"


def is_demo_backbone(config: Config, backbone: str) -> bool:
    return bool(config["backbones"][backbone].get("demo", False))


def demo_weights(config: Config, backbone: str) -> str:
    """The checkpoint rule pretrain_demo_clip writes for a ``demo: true`` backbone."""
    return f"{results_dir(config)}/backbones/{backbone}.pt"


def pretrained_of(config: Config, backbone: str) -> str | None:
    """open_clip ``pretrained``: a tag ("openai"), the demo checkpoint, or None (random)."""
    if is_demo_backbone(config, backbone):
        return demo_weights(config, backbone)
    return config["backbones"][backbone]["pretrained"]


def description_file(config: Config, dataset: str, description_set: str) -> str:
    """A custom dataset's own ``descriptions:`` file, else descriptions/{set}/{dataset}.json."""
    entry = custom_entry(config, dataset) or {}
    return entry.get("descriptions", f"descriptions/{description_set}/{dataset}.json")


def prototypes_pointer(config: Config, dataset: str, backbone: str, description_set: str) -> str:
    return f"{results_dir(config)}/prototypes/{backbone}/{description_set}/{dataset}.json"


# -- job sizes (Snakemake resources; SLURM --mem and -t) ----------------------------------------
TRAINING_RULES = ("adapt_method", "adapt_seeds")  # sized by runtime.mem_mb and runtime.minutes


def job_mem_mb(config: Config, rule: str) -> int:
    """Memory of a rule's job: runtime.mem_mb for a training job (its runs follow one another
    in one process), else mem_scale x it (at least runtime.min_mem_mb)."""
    runtime = config["runtime"]
    if rule in TRAINING_RULES:
        return int(runtime["mem_mb"])
    return max(int(runtime["min_mem_mb"]), round(runtime["mem_mb"] * runtime["mem_scale"][rule]))


def job_minutes(config: Config, rule: str) -> int:
    """Wall time of a rule's job: runtime.minutes per run for a training job."""
    runtime = config["runtime"]
    if rule == "adapt_seeds":
        return int(runtime["minutes"]) * len(config["seeds"])
    return int(runtime["minutes"] if rule == "adapt_method" else runtime["rule_minutes"][rule])


# -- the runs ---------------------------------------------------------------------------------
def ablation_tables(config: Config) -> dict[str, dict[str, Any]]:
    """{table: {title, methods, datasets, backbones, seeds}} of every configured ablation."""
    ablations = config.get("ablations") or {}
    tables = {}
    for name, spec in (ablations.get("tables") or {}).items():
        tables[name] = {
            "title": spec.get("title") or name,
            "methods": list(spec["methods"]),
            "datasets": list(ablations["datasets"]),
            "backbones": list(spec.get("backbones") or [config["main_backbone"]]),
            "seeds": [int(s) for s in ablations["seeds"]],
        }
    return tables


def main_grid(config: Config) -> dict[str, list]:
    """Methods, datasets, backbones and seeds of the main tables (scaling backbones too)."""
    scaling = config.get("scaling") or {}
    return {
        "methods": list(dict.fromkeys([*config["methods"], *(scaling.get("methods") or [])])),
        "datasets": main_datasets(config),
        "backbones": list(dict.fromkeys([config["main_backbone"], *(scaling.get("backbones") or [])])),
        "seeds": [int(s) for s in config["seeds"]],
    }


def grid_runs(config: Config) -> list[Run]:
    """Every run the config asks for, once: main grid, scaling grid, ablation tables."""
    datasets, seeds = main_datasets(config), [int(s) for s in config["seeds"]]
    runs = [
        Run(m, d, config["main_backbone"], s)
        for m in config["methods"]
        for d in datasets
        for s in seeds
    ]
    scaling = config.get("scaling") or {}
    runs += [
        Run(m, d, b, s)
        for b in scaling.get("backbones") or []
        for m in scaling.get("methods") or []
        for d in datasets
        for s in seeds
    ]
    for table in ablation_tables(config).values():
        runs += [
            Run(m, d, b, s)
            for b in table["backbones"]
            for m in table["methods"]
            for d in table["datasets"]
            for s in table["seeds"]
        ]
    return list(dict.fromkeys(runs))


def seed_group_name(run: Run) -> str:
    return f"{run.method}/{run.dataset}/{run.backbone}"


def seed_groups(config: Config) -> dict[str, list[Run]]:
    """With ``runtime.batch_seeds``: {"method/dataset/backbone": its runs, in the order of
    ``seeds``} for every (method, dataset, backbone) that runs all the configured seeds (at
    least two). Rule adapt_seeds adapts each group in one process, so its seeds pay the
    interpreter and library start-up once; every other run is a job of its own."""
    seeds = [int(s) for s in config["seeds"]]
    if not config["runtime"]["batch_seeds"] or len(seeds) < 2:
        return {}
    groups: dict[str, dict[int, Run]] = {}
    for run in grid_runs(config):
        groups.setdefault(seed_group_name(run), {})[run.seed] = run
    return {
        name: [runs[s] for s in seeds] for name, runs in groups.items() if set(runs) == set(seeds)
    }


def grid_datasets(config: Config) -> list[str]:
    """Datasets of every run, main grid first."""
    return list(dict.fromkeys([*main_datasets(config), *(r.dataset for r in grid_runs(config))]))


def saliency_runs(config: Config) -> list[Run]:
    """The runs whose checkpoints the saliency figures explain (``saliency``, first seed)."""
    spec = config["saliency"]
    backbones = spec.get("backbones") or [config["main_backbone"]]
    seed = int(config["seeds"][0])
    return [
        Run(spec["method"], dataset, backbone, seed)
        for backbone in backbones
        for dataset in spec["datasets"]
    ]


def diagnosed_pairs(config: Config) -> list[tuple[str, str]]:
    """(dataset, backbone) of every run of the grid, once: what rule diagnose_mechanisms
    measures before any adaptation."""
    return list(dict.fromkeys((r.dataset, r.backbone) for r in grid_runs(config)))


def diagnostics_file(config: Config, dataset: str, backbone: str) -> str:
    return f"{results_dir(config)}/diagnostics/{dataset}/{backbone}.json"


def report_grid(config: Config) -> dict[str, Any]:
    """The content of grid.json, less the datasets' titles (added from their dataset.json)."""
    report = config["report"]
    return {
        "run": config["run"],
        "focus_method": report["focus_method"],
        "main": main_grid(config),
        "ablations": ablation_tables(config),
        "gamma_ablation": report["gamma_ablation"],
        "base_methods": {r.method: base_method(config, r.method) for r in grid_runs(config)},
    }
