"""The ``microclip`` command: one subcommand per DAG stage, plus listings and checks.

Rules call these; each subcommand parses its arguments and calls one public function.
Building the parser imports nothing heavy: a subcommand imports what it needs when it
runs, so ``microclip --help`` is instant and an adaptation job never loads the report's
libraries. A ``MicroclipError`` (a fault in the user's input) prints as one line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("microclip")


def _json_object(text: str) -> dict:
    """A JSON object given inline, or ``@path`` to read it from a file."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text[:80]!r} ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text[:80]!r}")
    return value


def _optional(text: str | None) -> str | None:
    return None if text in (None, "", "none", "None", "null") else text


# -- listings and checks ------------------------------------------------------------------
def cmd_datasets(args: argparse.Namespace) -> int:
    from microclip.data.prepare import datasets_table

    print(datasets_table(Path(args.data_root)))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from microclip.methods.catalog import methods_table

    print(methods_table(backbone=args.backbone, num_classes=args.classes))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from microclip.config import load_config
    from microclip.grid import grid_runs

    config = load_config(args.configs)
    runs = grid_runs(config)
    print(f"{', '.join(args.configs)}: OK ({len(runs)} runs, run name '{config['run']}')")
    return 0


def cmd_spec(args: argparse.Namespace) -> int:
    from microclip.config import load_config
    from microclip.spec import RunSpec

    config = load_config(args.configs)
    spec = RunSpec.from_config(
        config, method=args.method, dataset=args.dataset, backbone=args.backbone, seed=args.seed
    )
    print(json.dumps(json.loads(spec.to_json()), indent=1))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from microclip.config import load_config
    from microclip.plan import plan_table

    print(plan_table(load_config(args.configs), images_per_s=args.images_per_s))
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    from microclip.results import DatasetInfo, write_grid

    write_grid(args.out, args.grid, [DatasetInfo.read(p) for p in args.datasets])
    return 0


# -- data and text --------------------------------------------------------------------------
def cmd_prepare(args: argparse.Namespace) -> int:
    from microclip.data import get_dataset
    from microclip.data.custom import custom_dataset_from_config
    from microclip.data.prepare import prepare_dataset
    from microclip.io import atomic_write_json
    from microclip.results import DatasetInfo

    if args.custom:
        spec = custom_dataset_from_config(
            args.dataset, args.custom, data_root=Path(args.root).resolve()
        )
    else:
        spec = get_dataset(args.dataset)
    out = Path(args.out)
    manifest = prepare_dataset(
        spec, root=Path(args.root), out_dir=out, seed=args.seed,
        verify=not args.no_verify, check_counts=not args.no_check_counts,
        download=args.download,
    )
    atomic_write_json(out / "templates.json", spec.templates())
    DatasetInfo(
        key=args.dataset, title=spec.title, label=spec.label or args.dataset,
        num_classes=manifest.num_classes, n_train=len(manifest.train), n_test=len(manifest.test),
    ).write(out / "dataset.json")
    log.info("prepared %s: %d adapt / %d test images, %d classes", args.dataset,
             len(manifest.train), len(manifest.test), manifest.num_classes)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from microclip.data.cache import build_image_cache

    build_image_cache(Path(args.manifest), Path(args.out), short_side=args.short_side,
                      workers=args.workers)
    return 0


def cmd_pretrain_demo(args: argparse.Namespace) -> int:
    import torch

    from microclip.data import get_dataset
    from microclip.fields import coerce
    from microclip.io import atomic_write_json
    from microclip.model.demo_clip import pretrain_demo_clip
    from microclip.model.demo_config import DemoPretrainConfig
    from microclip.text.descriptions import load_descriptions

    torch.set_num_threads(args.threads)
    spec = get_dataset(args.dataset)
    classes = spec.classes()
    stats = pretrain_demo_clip(
        data_root=Path(args.root), out_path=Path(args.out), classes=classes,
        templates=spec.templates(),
        synonyms=json.loads(Path(args.synonyms).read_text(encoding="utf-8")),
        descriptions=load_descriptions(Path(args.descriptions), classes),
        settings=DemoPretrainConfig(**coerce(DemoPretrainConfig, args.settings)), seed=args.seed,
    )
    atomic_write_json(Path(args.stats), stats)
    return 0


def cmd_demo_folder(args: argparse.Namespace) -> int:
    from microclip.data.fashion_shift import FOLDER_EXAMPLE_CLASSES, write_folder_dataset

    classes = tuple(args.classes or FOLDER_EXAMPLE_CLASSES)
    out = write_folder_dataset(
        Path(args.root), Path(args.out), classes=classes,
        train_per_class=args.per_class, test_per_class=args.per_class,
    )
    log.info("wrote %s/{train,test}/<class>/*.png: %d classes x %d images per split",
             out, len(classes), args.per_class)
    return 0


def cmd_prototypes(args: argparse.Namespace) -> int:
    from microclip.runner import make_prototypes

    classes = json.loads(Path(args.classes).read_text()) if args.classes else None
    templates = json.loads(Path(args.templates).read_text()) if args.templates else None
    make_prototypes(
        dataset=args.dataset, model=args.model, pretrained=_optional(args.pretrained),
        descriptions_path=Path(args.descriptions), out_pointer=Path(args.out),
        cache_dir=Path(args.cache_dir), classes=classes, templates=templates,
        device=args.device,
    )
    return 0


def cmd_fetch_descriptions(args: argparse.Namespace) -> int:
    from microclip.text.published import fetch_published

    fetch_published(
        set_name=args.set, dataset=args.dataset,
        classes=json.loads(Path(args.classes).read_text(encoding="utf-8")),
        out_path=Path(args.out), manifest_path=Path(args.manifest),
        sources_path=Path(args.sources), base_urls=args.base_urls, timeout_s=args.timeout_s,
        allow_unpinned=args.allow_unpinned,
    )
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from microclip.text.describe import describe_dataset

    describe_dataset(
        dataset=args.dataset, classes=json.loads(Path(args.classes).read_text(encoding="utf-8")),
        questions_path=Path(args.questions), styles_path=Path(args.styles),
        generation=args.generation, cache_dir=Path(args.cache_dir), out_path=Path(args.out),
        manifest_path=Path(args.manifest), set_name=args.set, mode=args.mode,
        max_retries=args.max_retries, malformed_retries=args.malformed_retries,
        timeout_s=args.timeout_s,
    )
    return 0


# -- runs ------------------------------------------------------------------------------------
def _spec(value: dict):
    from microclip.spec import RunSpec

    return RunSpec.from_json(json.dumps(value))


def _placement(args: argparse.Namespace):
    """Where the job's runs go (device, threads, workers) and the image cache they read."""
    from microclip.runner import Placement

    placement = Placement(device=args.device, threads=args.threads, workers=args.workers)
    return placement, (Path(args.image_cache) if args.image_cache else None)


def _spec_and_placement(args: argparse.Namespace):
    return (_spec(args.spec), *_placement(args))


def _adapt_runs(args: argparse.Namespace) -> list[tuple[dict, Path, Path, Path, Path | None]]:
    """The k-th --spec with the k-th --out, --epoch-log, --checkpoint (and --metrics)."""
    from microclip.errors import ConfigError

    n = len(args.spec)
    counts = {"--out": args.out, "--epoch-log": args.epoch_log, "--checkpoint": args.checkpoint}
    if args.metrics:
        counts["--metrics"] = args.metrics
    wrong = {flag: len(values) for flag, values in counts.items() if len(values) != n}
    if wrong:
        given = ", ".join(f"{count} {flag}" for flag, count in wrong.items())
        raise ConfigError(
            f"adapt: {n} --spec but {given}; every run needs its own --out, --epoch-log, "
            "--checkpoint (and --metrics, for all runs or none), in the order of --spec"
        )
    metrics = args.metrics or [None] * n
    return [
        (spec, Path(out), Path(epochs), Path(checkpoint), Path(m) if m else None)
        for spec, out, epochs, checkpoint, m in zip(
            args.spec, args.out, args.epoch_log, args.checkpoint, metrics, strict=True)
    ]


def cmd_adapt(args: argparse.Namespace) -> int:
    """One run, or several in one process (rule adapt_seeds: the seeds of one method pay the
    interpreter and library start-up once); each run is exactly what it is alone."""
    from microclip.runner import adapt

    runs = _adapt_runs(args)
    placement, image_cache = _placement(args)
    for spec, out, epoch_log, checkpoint, metrics in runs:
        adapt(
            _spec(spec), manifest_dir=Path(args.manifest), prototypes_path=Path(args.prototypes),
            out_state=out, log_path=epoch_log, checkpoint_path=checkpoint, out_metrics=metrics,
            placement=placement, image_cache=image_cache, stop_after_epoch=args.stop_after_epoch,
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from microclip.runner import evaluate

    spec, placement, image_cache = _spec_and_placement(args)
    record = evaluate(
        spec, manifest_dir=Path(args.manifest), prototypes_path=Path(args.prototypes),
        adapted_state=Path(args.adapted), out_metrics=Path(args.out), placement=placement,
        image_cache=image_cache,
    )
    log.info("%s %s %s seed %s: top-1 %.2f", record.method, record.dataset, record.backbone,
             record.seed, record.top1)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from microclip.runner import explain

    spec, placement, image_cache = _spec_and_placement(args)
    explain(
        spec, manifest_dir=Path(args.manifest), prototypes_path=Path(args.prototypes),
        adapted_state=Path(args.adapted), out_npz=Path(args.out), max_images=args.max_images,
        placement=placement, image_cache=image_cache,
    )
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from microclip.runner import diagnose

    spec, placement, image_cache = _spec_and_placement(args)
    report = diagnose(
        spec, manifest_dir=Path(args.manifest), prototypes_path=Path(args.prototypes),
        out_json=Path(args.out), max_images=args.max_images, placement=placement,
        image_cache=image_cache,
    )
    ncut = report["ncut"]
    log.info("%s / %s: density %.2f, collapse %.0f %%, ZS [CLS] %.1f [FG] %.1f, crop prior %.1f",
             spec.dataset, spec.backbone, ncut["affinity_density"]["median"],
             100 * ncut["fixed_position_collapse"], report["zero_shot"]["cls"],
             report["zero_shot"]["fg"], report["crop_prior"])
    return 0


# -- parser --------------------------------------------------------------------------------
def _run_arguments(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    p.add_argument("--spec", required=True, type=_json_object, action="append" if many else None,
                   help="the run specification (JSON, or @file): `microclip spec` prints one"
                   + ("; repeat it for several runs in one process" if many else ""))
    p.add_argument("--manifest", required=True, help="folder with train.csv/test.csv")
    p.add_argument("--prototypes", required=True, help="prototype pointer (.json) or .pt")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--image-cache", default=None,
                   help="decoded-image cache folder (rule cache_images), when the spec reads one")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microclip", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("check-config", cmd_check_config,
            "check configuration files (merged in order) as the Snakefile does")
    p.add_argument("configs", nargs="+", metavar="FILE")

    p = add("spec", cmd_spec, "print the run specification of one grid cell")
    p.add_argument("configs", nargs="+", metavar="FILE")
    p.add_argument("--method", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--backbone", required=True, help="backbone key of the config")
    p.add_argument("--seed", type=int, default=0)

    p = add("plan", cmd_plan, "training images and estimated GPU hours of a grid, per dataset")
    p.add_argument("configs", nargs="+", metavar="FILE")
    p.add_argument("--images-per-s", type=float, default=None,
                   help="training throughput (default: the benchmark's measurement)")

    p = add("datasets", cmd_datasets, "list the dataset registry and what is present")
    p.add_argument("--data-root", default="data")

    p = add("methods", cmd_methods, "list the registered methods and what trains")
    p.add_argument("--backbone", default="ViT-B-32", help="backbone key or open_clip name")
    p.add_argument("--classes", type=int, default=102)

    p = add("prepare", cmd_prepare, "check a dataset and write its manifest")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--custom", type=_json_object, default={},
                   help="custom dataset entry (JSON); empty for a registered dataset")
    p.add_argument("--no-verify", action="store_true", help="skip decoding every image")
    p.add_argument("--no-check-counts", action="store_true")
    p.add_argument("--download", action="store_true", help="allow torchvision's downloader")

    p = add("cache", cmd_cache, "decode and resize a manifest's images once")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--short-side", type=int, required=True)
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: <= 8)")

    p = add("pretrain-demo", cmd_pretrain_demo, "pretrain the demo world's small CLIP")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--descriptions", required=True)
    p.add_argument("--synonyms", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--settings", type=_json_object, default={},
                   help="DemoPretrainConfig fields (JSON)")

    p = add("demo-folder", cmd_demo_folder,
            "write a folder-layout dataset cut from the demo world (the custom-dataset example)")
    p.add_argument("out", help="writes OUT/{train,test}/<class>/<id>.png")
    p.add_argument("--root", default="data", help="where Fashion-MNIST is (or is unpacked)")
    p.add_argument("--classes", nargs="+", default=None,
                   help="demo-world class names (default: sandal sneaker bag 'ankle boot')")
    p.add_argument("--per-class", type=int, default=50, help="images per class and split")

    p = add("prototypes", cmd_prototypes, "encode templates and descriptions once (cached)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--pretrained", default=None)
    p.add_argument("--descriptions", required=True)
    p.add_argument("--classes", default=None, help="classes.json (default: the registry's)")
    p.add_argument("--templates", default=None, help="templates JSON (default: the registry's)")
    p.add_argument("--out", required=True, help="pointer JSON naming the cached file")
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--device", default="auto")

    p = add("adapt", cmd_adapt,
            "adapt one run or several (resuming from their checkpoints) and, with --metrics, "
            "score them; the paths of the k-th --spec are the k-th of each path option")
    _run_arguments(p, many=True)
    p.add_argument("--out", required=True, action="append", help="adapted state (.pt)")
    p.add_argument("--epoch-log", required=True, action="append", help="JSON-lines epoch log")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="per-epoch checkpoint for resume")
    p.add_argument("--metrics", default=None, action="append",
                   help="score the test split in this process and write metrics.json here")
    p.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)

    p = add("evaluate", cmd_evaluate, "score a saved adapted state again (metrics.json)")
    _run_arguments(p)
    p.add_argument("--adapted", required=True)
    p.add_argument("--out", required=True)

    p = add("explain", cmd_explain, "saliency maps of an adapted state (.npz)")
    _run_arguments(p)
    p.add_argument("--adapted", required=True)
    p.add_argument("--out", required=True, help=".npz for `microclip saliency`")
    p.add_argument("--max-images", type=int, required=True)

    p = add("diagnose", cmd_diagnose,
            "microCLIP's mechanisms on the initial backbone (NCut, [FG], multi-view prior)")
    _run_arguments(p)
    p.add_argument("--out", required=True, help="diagnostics JSON")
    p.add_argument("--max-images", type=int, required=True,
                   help="at most this many train images (a seeded subset)")

    p = add("fetch-descriptions", cmd_fetch_descriptions, "fetch a published description set")
    p.add_argument("--set", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--classes", required=True, help="classes JSON (label order)")
    p.add_argument("--sources", required=True)
    p.add_argument("--base-urls", type=_json_object, default={})
    p.add_argument("--timeout-s", type=float, required=True)
    p.add_argument("--allow-unpinned", nargs="*", default=[], metavar="SET",
                   help="sets used although sources.yaml pins no sha256 for their file")
    p.add_argument("--out", required=True)
    p.add_argument("--manifest", required=True)

    p = add("describe", cmd_describe, "generate (record) or replay LLM class descriptions")
    p.add_argument("--set", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--classes", required=True)
    p.add_argument("--questions", required=True)
    p.add_argument("--styles", required=True)
    p.add_argument("--generation", type=_json_object, default={})
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--mode", choices=["replay", "record"], required=True)
    p.add_argument("--max-retries", type=int, required=True)
    p.add_argument("--malformed-retries", type=int, required=True)
    p.add_argument("--timeout-s", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--manifest", required=True)

    p = add("grid", cmd_grid, "write grid.json: which runs form which table (for the report)")
    p.add_argument("--grid", required=True, type=_json_object, help="microclip.grid.report_grid")
    p.add_argument("--datasets", nargs="*", default=[], help="dataset.json of every dataset")
    p.add_argument("--out", required=True)

    # The report layer's subcommands (collect, tables, plots, saliency) live beside it.
    from microclip.report.commands import register_commands

    register_commands(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("microclip").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from microclip.errors import MicroclipError

    try:
        return args.func(args)
    except (MicroclipError, FileNotFoundError) as err:
        log.error("%s", err)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
