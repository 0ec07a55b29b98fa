"""Read and check a workflow configuration before any job runs (torch-free).

``check_config`` is the one check the Snakefile (``common.smk``) and ``microclip
check-config`` both run: the JSON schema (types, unknown keys, defaults filled in), then
every name against the registries and every method setting against its dataclass, so a
typo stops the workflow with the file, the key, the value and what is allowed, e.g.
``config.yaml: methods[2] = 'dpaa' is not a registered method or variant; registered: ...``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from microclip.errors import ConfigError
from microclip.grid import (
    Run,
    base_method,
    description_file,
    description_set_of,
    grid_runs,
    saliency_runs,
)

SCHEMA = "microclip/schemas/config.schema.yaml"


# -- reading ------------------------------------------------------------------------------------
def read_yaml(path: str | Path) -> Any:
    """Parse one YAML file; a syntax error names the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {err.problem or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: YAML error: {err}") from None


def merge(base: dict, override: Mapping) -> dict:
    """Snakemake's merge of config files: mappings merge key by key, anything else replaces."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


class Sources:
    """Which file set each key, so a message names the file a user must edit."""

    def __init__(self, files: Sequence[str] = ()) -> None:
        self.files = list(files)
        self._by_path: dict[tuple[str, ...], str] = {}

    def record(self, obj: Any, file: str, prefix: tuple[str, ...] = ()) -> None:
        self._by_path[prefix] = file
        if isinstance(obj, Mapping):
            for key, value in obj.items():
                self.record(value, file, (*prefix, str(key)))

    def of(self, path: Sequence[str | int] = ()) -> str:
        """The file that set ``path`` (its deepest recorded prefix); all files if unknown."""
        keys = tuple(str(p) for p in path)
        for n in range(len(keys), -1, -1):
            if n and keys[:n] in self._by_path:
                return self._by_path[keys[:n]]
        return ", ".join(self.files) or "config"

    @classmethod
    def read(cls, files: Iterable[str | Path]) -> tuple[dict, Sources]:
        """Parse and merge ``files`` in order, remembering who set what."""
        names = [str(f) for f in files]
        sources, config = cls(names), {}
        for name in names:
            data = read_yaml(name)
            if data is None:
                data = {}
            if not isinstance(data, Mapping):
                raise ConfigError(
                    f"{name}: a configuration is a mapping of keys, got {type(data).__name__}"
                )
            merge(config, data)
            sources.record(data, name)
        return config, sources


def load_config(files: Sequence[str | Path]) -> dict:
    """Read, merge and check configuration files (later files override earlier ones)."""
    config, sources = Sources.read(files)
    return check_config(config, sources=sources)


# -- the schema ---------------------------------------------------------------------------------
@cache
def schema() -> dict:
    text = resources.files("microclip").joinpath("schemas", "config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _validator():
    import jsonschema

    base = jsonschema.Draft202012Validator
    set_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from set_properties(validator, properties, instance, schema_)

    extended = jsonschema.validators.extend(base, {"properties": properties_with_defaults})
    return extended(schema())


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_message(error) -> str:
    """One readable sentence per schema error: key, value, what is allowed."""
    path = list(error.absolute_path)
    where = _dotted(path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return (
            f"{where}: unknown key(s) {', '.join(map(repr, extra))}"
            + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        )
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "enum":
        return f"{where} = {error.instance!r}: allowed: {', '.join(map(str, error.validator_value))}"
    if error.validator == "pattern" and path and path[-1] == "device":
        return f"{where} = {error.instance!r}: allowed: auto, cpu, cuda, cuda:N, mps"
    return f"{where} = {error.instance!r}: {error.message}"


def apply_schema(config: dict, sources: Sources) -> list[str]:
    """Fill schema defaults into ``config`` (in place); return the schema violations."""
    problems = []
    for error in sorted(_validator().iter_errors(config), key=lambda e: list(e.absolute_path)):
        problems.append(f"{sources.of(list(error.absolute_path))}: {_schema_message(error)}")
    return problems


# -- registries ---------------------------------------------------------------------------------
@cache
def open_clip_architectures() -> frozenset[str]:
    """open_clip's architecture names plus the package's own, read from their JSON files
    (no torch import)."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    names: set[str] = set()
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0]) / "model_configs"
        names |= {p.stem for p in folder.glob("*.json")}
    ours = resources.files("microclip.model").joinpath("configs")
    names |= {Path(str(p)).stem for p in ours.iterdir() if str(p).endswith(".json")}
    return frozenset(names)


def _allowed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "(none)"


def check_config(
    config: dict, *, sources: Sources | None = None, where: str = "config"
) -> dict:
    """Check ``config`` and fill its defaults in place; raise ConfigError listing every problem.

    Returns ``config``. ``sources`` (``Sources.read``) names the file of each key; without it
    messages say ``where``.
    """
    from microclip.data import DATASETS
    from microclip.methods import METHODS

    sources = sources or Sources([where])
    problems = apply_schema(config, sources)
    if problems:  # names are checked only on a well-typed config
        raise ConfigError("\n".join(problems))

    def need(ok: bool, path: Sequence[str | int], message: str) -> None:
        if not ok:
            problems.append(f"{sources.of(path)}: {_dotted(path)} {message}")

    # datasets --------------------------------------------------------------------------------
    custom = config["custom_datasets"]
    dataset_keys = set(DATASETS.names()) | set(custom)
    set_names = set(config["dataset_sets"])
    for i, name in enumerate(config["datasets"]):
        need(
            name in dataset_keys or name in set_names,
            ["datasets", i],
            f"= '{name}' is not a dataset or dataset set; datasets: {_allowed(dataset_keys)}; "
            f"sets: {_allowed(set_names)}",
        )
    for set_name, members in config["dataset_sets"].items():
        for i, name in enumerate(members):
            need(
                name in dataset_keys,
                ["dataset_sets", set_name, i],
                f"= '{name}' is not a registered dataset; registered: {_allowed(dataset_keys)}",
            )
    for i, name in enumerate(config["ablations"]["datasets"]):
        need(
            name in dataset_keys,
            ["ablations", "datasets", i],
            f"= '{name}' is not a registered dataset; registered: {_allowed(dataset_keys)}",
        )
    for key, entry in custom.items():
        need(
            key not in DATASETS,
            ["custom_datasets", key],
            "uses the name of a registered dataset; choose another key",
        )
        from microclip.data.custom import custom_dataset_problems

        for message in custom_dataset_problems(key, entry, data_root=Path(config["data_root"])):
            problems.append(f"{sources.of(['custom_datasets', key])}: {message}")

    # methods and variants --------------------------------------------------------------------
    variants = config["variants"]
    registered = METHODS.names()
    for name, variant in variants.items():
        need(
            name not in METHODS,
            ["variants", name],
            "uses the name of a registered method; choose another name",
        )
        if variant["method"] not in METHODS:
            need(
                False,
                ["variants", name, "method"],
                f"= '{variant['method']}' is not a registered method; registered: "
                f"{_allowed(registered)}",
            )
            continue
        declaration = METHODS.get(variant["method"])
        problems += [
            f"{sources.of(['variants', name, 'options'])}: {p}"
            for p in declaration.option_problems(
                variant["options"], where=f"variants.{name}.options"
            )
        ]
    method_names = set(registered) | set(variants)

    def check_methods(path: list, names: Sequence[str]) -> None:
        for i, name in enumerate(names):
            need(
                name in method_names,
                [*path, i],
                f"= '{name}' is not a registered method or variant; registered: "
                f"{_allowed(method_names)}",
            )

    check_methods(["methods"], config["methods"])
    check_methods(["scaling", "methods"], config["scaling"]["methods"])
    for table, spec in config["ablations"]["tables"].items():
        check_methods(["ablations", "tables", table, "methods"], spec["methods"])
    for method, settings in config["method_settings"].items():
        if method not in METHODS:
            need(
                False,
                ["method_settings", method],
                f"is not a registered method; registered: {_allowed(registered)}",
            )
            continue
        problems += [
            f"{sources.of(['method_settings', method, 'options'])}: {p}"
            for p in METHODS.get(method).option_problems(
                settings["options"], where=f"method_settings.{method}.options"
            )
        ]

    # backbones -------------------------------------------------------------------------------
    backbones = config["backbones"]
    architectures = open_clip_architectures()
    for key, spec in backbones.items():
        need(
            spec["model"] in architectures,
            ["backbones", key, "model"],
            f"= '{spec['model']}' is not an open_clip architecture (see open_clip.list_models(); "
            "OpenAI weights: ViT-B-32-quickgelu, ViT-B-16-quickgelu, ViT-L-14-quickgelu)",
        )
    refs: list[tuple[list, str]] = [(["main_backbone"], config["main_backbone"])]
    refs += [(["scaling", "backbones", i], b) for i, b in enumerate(config["scaling"]["backbones"])]
    for table, spec in config["ablations"]["tables"].items():
        refs += [
            (["ablations", "tables", table, "backbones", i], b)
            for i, b in enumerate(spec.get("backbones") or [])
        ]
    refs += [(["saliency", "backbones", i], b) for i, b in enumerate(config["saliency"].get("backbones") or [])]
    for path, name in refs:
        need(
            name in backbones,
            path,
            f"= '{name}' is not a configured backbone; configured: {_allowed(backbones)}",
        )
    if problems:  # the grid below needs valid names
        raise ConfigError("\n".join(problems))

    # every run of the grid: its settings must build ---------------------------------------------
    from microclip.spec import RunSpec

    runs = grid_runs(config)
    built: set[tuple[str, str]] = set()
    for run in runs:
        if (run.method, run.dataset) in built:
            continue
        built.add((run.method, run.dataset))
        try:
            spec = RunSpec.from_config(
                config, method=run.method, dataset=run.dataset, backbone=run.backbone,
                seed=run.seed,
            )
            spec.method_config()
        except ConfigError as err:
            path = ["variants", run.method] if run.method in config["variants"] else ["method_settings"]
            problems.append(f"{sources.of(path)}: {run.method} on {run.dataset}: {err}")
            continue
        if spec.train["report"] == "best" and not spec.eval_each_epoch:
            problems.append(
                f"{sources.of(['train'])}: train.report = 'best' ({run.method}) needs "
                "runtime.eval_each_epoch: true (the best epoch is chosen on per-epoch test scores)"
            )

    # saliency figures: the method must explain, and its run must be in the grid ----------------
    saliency = config["saliency"]
    if saliency["datasets"]:
        method = saliency["method"]
        if method not in method_names:
            need(False, ["saliency", "method"], f"= '{method}' is not a registered method or "
                 f"variant; registered: {_allowed(method_names)}")
        else:
            base = base_method(config, method)
            explaining = sorted(n for n in registered if METHODS.get(n).explains)
            need(
                METHODS.get(base).explains,
                ["saliency", "method"],
                f"= '{method}' ({base}) draws no saliency maps; methods that do: "
                f"{_allowed(explaining)} (and their variants)",
            )
            in_grid = set(runs)
            for i, run in enumerate(saliency_runs(config)):
                need(
                    run in in_grid,
                    ["saliency", "datasets", i % len(saliency["datasets"])],
                    f"= '{run.dataset}': no run of {run.method} on {run.dataset} / {run.backbone} / "
                    f"seed {run.seed} in the grid to explain; add the dataset to `datasets` or "
                    "remove it from saliency.datasets",
                )

    # mechanism diagnostics: microCLIP's own, with its [FG] token -------------------------------
    method = config["diagnostics"]["method"]
    if method not in method_names or base_method(config, method) != "microclip":
        need(False, ["diagnostics", "method"],
             f"= '{method}': the diagnostics measure microCLIP's mechanisms; use microclip or "
             "one of its variants")
    elif not RunSpec.from_config(config, method=method, dataset=runs[0].dataset,
                                 backbone=runs[0].backbone, seed=0).options["use_fg"]:
        need(False, ["diagnostics", "method"], f"= '{method}' has no [FG] token (use_fg: false)")

    # description sets ------------------------------------------------------------------------
    problems += _description_problems(config, runs, sources)
    # demo pretraining ------------------------------------------------------------------------
    if any(spec.get("demo") for spec in backbones.values()):
        from microclip.fields import override_problems
        from microclip.model.demo_config import DemoPretrainConfig

        problems += [
            f"{sources.of(['demo', 'pretrain'])}: {p}"
            for p in override_problems(
                DemoPretrainConfig, config["demo"]["pretrain"], where="demo.pretrain"
            )
        ]
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _description_problems(config: dict, runs: list[Run], sources: Sources) -> list[str]:
    """Every (dataset, description set) a run needs must exist, be fetched or be generated."""
    from microclip.errors import TextError
    from microclip.text.describe import GenerationConfig
    from microclip.text.published import load_sources, resolve_entry

    problems = []
    desc = config["descriptions"]
    try:
        sources_yaml = load_sources(Path(desc["sources"]))
    except (TextError, FileNotFoundError) as err:
        return [f"{sources.of(['descriptions', 'sources'])}: descriptions.sources: {err}"]
    published = sources_yaml["sets"]
    generated = desc["generate"]
    for name, values in generated.items():
        try:
            GenerationConfig.from_mapping(values, where=f"descriptions.generate.{name}")
        except (TextError, TypeError) as err:
            problems.append(f"{sources.of(['descriptions', 'generate', name])}: {err}")
    for i, name in enumerate(desc["allow_unpinned"]):
        if name not in published:
            problems.append(
                f"{sources.of(['descriptions', 'allow_unpinned'])}: "
                f"descriptions.allow_unpinned[{i}] = '{name}' is not a set of {desc['sources']}; "
                f"sets: {_allowed(published)}"
            )
    seen: set[tuple[str, str]] = set()
    for run in runs:
        description_set = description_set_of(config, run.method)
        if (run.dataset, description_set) in seen:
            continue
        seen.add((run.dataset, description_set))
        key = ["variants", run.method, "descriptions"] if run.method in config["variants"] \
            else ["description_set"]
        file = description_file(config, run.dataset, description_set)
        if run.dataset in config["custom_datasets"] and "descriptions" in config["custom_datasets"][run.dataset]:
            if not Path(file).is_file():
                problems.append(
                    f"{sources.of(['custom_datasets', run.dataset, 'descriptions'])}: "
                    f"custom_datasets.{run.dataset}.descriptions = '{file}': file not found"
                )
            continue
        if description_set in generated:
            continue
        if description_set in published:
            try:
                entry = resolve_entry(sources_yaml, description_set, run.dataset,
                                      where=desc["sources"])
            except TextError as err:
                problems.append(f"{sources.of(key)}: {err}")
                continue
            allowed = desc["allow_unpinned"]
            if entry.sha256 is None and not {description_set, entry.set_name} & set(allowed):
                problems.append(
                    f"{sources.of(key)}: description set '{description_set}' for dataset "
                    f"'{run.dataset}' pins no sha256 in {desc['sources']} (sets."
                    f"{entry.set_name}.datasets.{run.dataset}), so it is refused; pin it, or "
                    f"accept it unverified with descriptions.allow_unpinned: [{description_set}]"
                )
            continue
        if not Path(file).is_file():
            problems.append(
                f"{sources.of(key)}: description set '{description_set}' is unknown for dataset "
                f"'{run.dataset}': {file} does not exist, and '{description_set}' is neither a "
                f"published set ({desc['sources']}: {_allowed(published)}) nor generated "
                f"(descriptions.generate: {_allowed(generated)})"
            )
    return problems
