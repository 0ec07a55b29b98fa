# Checks, wildcard constraints and every input function of the DAG. The grid, the paths and
# the run specifications come from tested functions of microclip.grid and microclip.spec;
# config reaches jobs only through params; microclip/ never imports snakemake.

import json
import re
import shlex
from argparse import Namespace

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

try:
    from microclip import grid
    from microclip.config import Sources, check_config
    from microclip.errors import ConfigError
    from microclip.plan import announce_once
    from microclip.spec import RunSpec
except ImportError as err:
    raise WorkflowError(
        f"the microclip package is not importable ({err}); run `make setup` or "
        "`pip install -e .` in the environment that runs snakemake"
    )


def _config_files():
    """The files this config was merged from, in order (to name them in messages)."""
    settings = workflow.config_settings
    cli = [str(f) for f in settings.configfiles or []]
    return cli if settings.replace_workflow_config or not workflow.configfiles else [
        *[str(f) for f in workflow.configfiles if str(f) not in cli], *cli
    ]


try:
    _, _sources = Sources.read(_config_files())
    check_config(config, sources=_sources)  # fills the schema's defaults into config
except ConfigError as err:
    raise WorkflowError(str(err))


# Rules call the package's command line (`python -m microclip` = the `microclip` console
# script) with the repository on PYTHONPATH, so the conda envs need no install of it.
# `exec` makes the Python process the job's process: a kill reaches it.
MICROCLIP = f"PYTHONPATH={workflow.basedir}${{PYTHONPATH:+:$PYTHONPATH}} exec python -m microclip"

RUN = config["run"]
RESULTS = grid.results_dir(config)
RUNTIME = config["runtime"]
# GPU slots a training/scoring job claims (`--resources gpu=N` caps them); 0 for CPU-only
# configurations such as the demo, so `--cores N` runs N of them side by side.
GPU_PER_JOB = 1 if RUNTIME["gpu"] else 0
GRID = grid.grid_runs(config)
RUN_DIR = f"{RESULTS}/{{method}}/{{dataset}}/{{backbone}}/seed{{seed}}"
announce_once(config, logger.info)  # what the grid costs, before anything runs


def _alternatives(names):
    return "|".join(re.escape(str(n)) for n in sorted(set(names), key=str)) or "(?!)"


wildcard_constraints:
    method=_alternatives(r.method for r in GRID),
    dataset=_alternatives(grid.grid_datasets(config)),
    backbone=_alternatives(config["backbones"]),
    seed=r"\d+",
    descset=r"[A-Za-z0-9_.-]+",


def _run(wildcards):
    return grid.Run(wildcards.method, wildcards.dataset, wildcards.backbone, int(wildcards.seed))


def all_targets():
    return [f"{grid.run_dir(config, r)}/metrics.json" for r in GRID] + report_targets()


# -- datasets ---------------------------------------------------------------------------------
def get_manifest(wildcards):
    folder = grid.manifest_dir(config, wildcards.dataset)
    return {
        "train": f"{folder}/train.csv",
        "test": f"{folder}/test.csv",
        "classes": f"{folder}/classes.json",
        "templates": f"{folder}/templates.json",
    }


def get_manifest_dir(wildcards):
    return grid.manifest_dir(config, wildcards.dataset)


def get_dataset_root(wildcards):
    """Registered datasets: data_root/<dataset>; custom ones resolve their own root."""
    if grid.custom_entry(config, wildcards.dataset):
        return config["data_root"]
    return f"{config['data_root']}/{wildcards.dataset}"


def get_image_cache(wildcards):
    """The dataset's decoded-image cache when prepare.image_cache is on (rule cache_images)."""
    if not config["prepare"]["image_cache"]:
        return []
    return [f"{grid.manifest_dir(config, wildcards.dataset)}/images"]


def image_cache_arg(wildcards, input):
    return f"--image-cache {input.image_cache}" if input.get("image_cache") else ""


def get_custom_entry(wildcards):
    """A custom dataset's config entry as JSON; {} for a registered dataset."""
    return json.dumps(grid.custom_entry(config, wildcards.dataset) or {}, sort_keys=True)


# -- backbones and text ---------------------------------------------------------------------
def get_weights_input(wildcards):
    """The demo checkpoint a `demo: true` backbone needs (pretrained inside the DAG)."""
    if grid.is_demo_backbone(config, wildcards.backbone):
        return [grid.demo_weights(config, wildcards.backbone)]
    return []


def get_prototypes(wildcards):
    descset = grid.description_set_of(config, wildcards.method)
    return grid.prototypes_pointer(config, wildcards.dataset, wildcards.backbone, descset)


# -- runs -----------------------------------------------------------------------------------
def spec_json(run):
    """The run specification, resolved once in Python (microclip.spec)."""
    return RunSpec.from_config(
        config, method=run.method, dataset=run.dataset, backbone=run.backbone, seed=run.seed
    ).to_json()


def get_spec(wildcards):
    return spec_json(_run(wildcards))


def get_checkpoint(wildcards):
    return grid.checkpoint_file(config, _run(wildcards))


# -- seed groups (runtime.batch_seeds: rule adapt_seeds) -----------------------------------------
SEED_GROUPS = grid.seed_groups(config)


def in_group(input_function):
    """An input function of one run, for a seed group: the group's runs share their inputs."""

    def of_group(wildcards):
        first = SEED_GROUPS[wildcards.group][0]
        return input_function(Namespace(method=first.method, dataset=first.dataset,
                                        backbone=first.backbone, seed=str(first.seed)))

    return of_group


def group_outputs(name):
    """One output of every run of a group, in seed order ({group} stays a wildcard)."""
    return [f"{RESULTS}/{{group}}/seed{seed}/{name}" for seed in config["seeds"]]


def group_run_arguments(wildcards, output):
    """--spec, --out, --epoch-log, --metrics and --checkpoint of each run of the group."""
    arguments = []
    runs = SEED_GROUPS[wildcards.group]
    for run, adapted, epochs, metrics in zip(
        runs, output.adapted, output.epochs, output.metrics, strict=True
    ):
        arguments += ["--spec", spec_json(run), "--out", adapted, "--epoch-log", epochs,
                      "--metrics", metrics, "--checkpoint", grid.checkpoint_file(config, run)]
    return shlex.join(arguments)


def placement(wildcards, threads):
    """Device, threads and workers: they never change a result, so they are a function of
    `threads` (Snakemake does not rerun a job when such a param changes)."""
    return f"--device {RUNTIME['device']} --threads {threads} --workers {RUNTIME['workers']}"


def get_saliency_run(wildcards):
    """The run whose checkpoint a saliency figure explains: `saliency.method`, first seed."""
    return grid.Run(config["saliency"]["method"], wildcards.dataset, wildcards.backbone,
                    int(config["seeds"][0]))


def get_diagnosed_run(wildcards):
    """The grid cell whose settings the diagnostics use: `diagnostics.method`, first seed."""
    return grid.Run(config["diagnostics"]["method"], wildcards.dataset, wildcards.backbone,
                    int(config["seeds"][0]))


def diagnostics_files():
    return [grid.diagnostics_file(config, d, b) for d, b in grid.diagnosed_pairs(config)]


# -- report ------------------------------------------------------------------------------------
def report_targets():
    saliency = [
        f"{RESULTS}/plots/saliency/{r.backbone}/{r.dataset}.{ext}"
        for r in grid.saliency_runs(config)
        for ext in ("png", "pdf")
    ]
    return [
        f"{RESULTS}/runs.csv",
        f"{RESULTS}/epochs.csv",
        f"{RESULTS}/tables/main",
        f"{RESULTS}/tables/datasets",
        f"{RESULTS}/tables/ablations",
        f"{RESULTS}/tables/provenance.html",
        f"{RESULTS}/tables/diagnostics.html",
        f"{RESULTS}/plots/accuracy",
        f"{RESULTS}/plots/overview",
        f"{RESULTS}/plots/epochs",
        f"{RESULTS}/plots/delta",
        f"{RESULTS}/plots/gamma",
        *saliency,
    ]
