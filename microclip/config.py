"""Registry checks of a workflow configuration, run before any job (common.smk).

The JSON schema checks types; this checks that every name exists and says which are
allowed, e.g. "config.yaml: methods[2] = 'dpaa' is not a registered method or variant;
registered: ...".
"""

from __future__ import annotations

from typing import Any


def expand_dataset_names(config: dict[str, Any], names: list[str]) -> list[str]:
    """Set names expand to their datasets; order kept, duplicates dropped."""
    sets = config.get("dataset_sets", {}) or {}
    out: list[str] = []
    for name in names:
        for key in sets.get(name, [name]):
            if key not in out:
                out.append(key)
    return out


def check_config(config: dict[str, Any], *, where: str = "config") -> None:
    from microclip.data import DATASETS
    from microclip.methods import METHODS
    from microclip.model.backbones import known_models

    problems: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(f"{where}: {message}")

    custom = set(config.get("custom_datasets", {}) or {})
    dataset_keys = set(DATASETS.names()) | custom
    allowed_sets = sorted(config.get("dataset_sets", {}) or {})
    for i, name in enumerate(config["datasets"]):
        need(
            name in dataset_keys or name in allowed_sets,
            f"datasets[{i}] = '{name}' is not a dataset or dataset set; datasets: "
            f"{', '.join(sorted(dataset_keys))}; sets: {', '.join(allowed_sets) or '(none)'}",
        )
    for set_name, members in (config.get("dataset_sets", {}) or {}).items():
        for i, name in enumerate(members):
            need(
                name in dataset_keys,
                f"dataset_sets.{set_name}[{i}] = '{name}' is not a "
                f"registered dataset; registered: {', '.join(sorted(dataset_keys))}",
            )

    variants = config.get("variants", {}) or {}
    for name, variant in variants.items():
        need(
            variant["method"] in METHODS,
            f"variants.{name}.method = '{variant['method']}' is "
            f"not a registered method; registered: {', '.join(METHODS.names())}",
        )
        if variant["method"] in METHODS:
            try:
                METHODS.get(variant["method"]).build_config(variant.get("options", {}))
            except (KeyError, TypeError) as err:
                problems.append(f"{where}: variants.{name}.options: {err}")
    method_names = set(METHODS.names()) | set(variants)
    allowed_methods = ", ".join(sorted(method_names))

    def check_methods(key: str, names: list[str]) -> None:
        for i, name in enumerate(names):
            need(
                name in method_names,
                f"{key}[{i}] = '{name}' is not a registered method or "
                f"variant; registered: {allowed_methods}",
            )

    check_methods("methods", config["methods"])
    check_methods("scaling.methods", (config.get("scaling") or {}).get("methods", []))
    for table, spec in ((config.get("ablations") or {}).get("tables") or {}).items():
        check_methods(f"ablations.tables.{table}.methods", spec["methods"])
    for method in config.get("method_settings") or {}:
        need(
            method in METHODS,
            f"method_settings.{method} is not a registered method; "
            f"registered: {', '.join(METHODS.names())}",
        )

    backbones = config["backbones"]
    models = set(known_models())
    for key, spec in backbones.items():
        need(
            spec["model"] in models,
            f"backbones.{key}.model = '{spec['model']}' is not an "
            "open_clip architecture (see open_clip.list_models(); OpenAI weights: "
            "ViT-B-32-quickgelu, ViT-B-16-quickgelu, ViT-L-14-quickgelu)",
        )
    allowed_backbones = ", ".join(sorted(backbones))
    refs = [("main_backbone", config["main_backbone"])]
    refs += [
        (f"scaling.backbones[{i}]", b)
        for i, b in enumerate((config.get("scaling") or {}).get("backbones", []))
    ]
    for table, spec in ((config.get("ablations") or {}).get("tables") or {}).items():
        refs += [
            (f"ablations.tables.{table}.backbones[{i}]", b)
            for i, b in enumerate(spec.get("backbones", []))
        ]
    for key, name in refs:
        need(
            name in backbones,
            f"{key} = '{name}' is not a configured backbone; configured: {allowed_backbones}",
        )
    for i, name in enumerate((config.get("ablations") or {}).get("datasets", [])):
        need(
            name in dataset_keys,
            f"ablations.datasets[{i}] = '{name}' is not a registered "
            f"dataset; registered: {', '.join(sorted(dataset_keys))}",
        )
    if problems:
        raise ValueError("\n".join(problems))
