# Input functions and targets of the report stage (report.smk). Written beside common.smk
# until the lead moves them there; they read config only through the names common.smk
# defines (RESULTS, RUN, MAIN_DATASETS, SEEDS, ablation_runs) and return paths or strings.

import json


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
