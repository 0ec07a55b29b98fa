"""The ``microclip`` command: one subcommand per DAG stage, plus registry listings.

Rules call these; each subcommand parses its arguments and calls one public function.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("microclip")


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _optional(text: str | None) -> str | None:
    return None if text in (None, "", "none", "None", "null") else text


# -- subcommands --------------------------------------------------------------------------
def cmd_datasets(args: argparse.Namespace) -> int:
    from microclip.data.prepare import datasets_table

    print(datasets_table(Path(args.data_root)))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from microclip.methods.catalog import methods_table

    print(methods_table(backbone=args.backbone, num_classes=args.classes))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from microclip.data import get_dataset
    from microclip.data.base import atomic_write_text
    from microclip.data.custom import custom_dataset_from_config
    from microclip.data.prepare import prepare_dataset

    if args.custom:
        spec = custom_dataset_from_config(
            args.dataset, args.custom, data_root=Path(args.root).resolve()
        )
    else:
        spec = get_dataset(args.dataset)
    manifest = prepare_dataset(
        spec, root=Path(args.root), out_dir=Path(args.out), seed=args.seed,
        verify=not args.no_verify, check_counts=not args.no_check_counts,
        download=args.download,
    )
    templates = json.dumps(spec.templates(), indent=1) + "\n"
    atomic_write_text(Path(args.out) / "templates.json", templates)
    log.info("prepared %s: %d adapt / %d test images, %d classes", args.dataset,
             len(manifest.train), len(manifest.test), manifest.num_classes)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from microclip.data.cache import build_image_cache

    build_image_cache(Path(args.manifest), Path(args.out), short_side=args.short_side)
    return 0


def cmd_pretrain_demo(args: argparse.Namespace) -> int:
    import torch

    from microclip.data import get_dataset
    from microclip.data.base import atomic_write_text
    from microclip.model.demo_clip import pretrain_demo_clip
    from microclip.text.descriptions import load_descriptions

    torch.set_num_threads(args.threads)
    spec = get_dataset(args.dataset)
    classes = spec.classes()
    stats = pretrain_demo_clip(
        data_root=Path(args.root), out_path=Path(args.out), classes=classes,
        templates=spec.templates(), synonyms=json.loads(Path(args.synonyms).read_text()),
        descriptions=load_descriptions(Path(args.descriptions), classes),
        seed=args.seed, **args.options,
    )
    atomic_write_text(Path(args.stats), json.dumps(stats, indent=1) + "\n")
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


def _run_spec(args: argparse.Namespace):
    from microclip.runner import RunSpec

    return RunSpec(
        method=args.method, dataset=args.dataset, model=args.model,
        pretrained=_optional(args.pretrained), seed=args.seed, options=args.options,
        train=args.train, precision=args.precision, device=args.device,
        threads=args.threads, workers=args.workers,
        eval_each_epoch=args.eval_each_epoch, test_crop=args.test_crop, tf32=args.tf32,
    )


def cmd_adapt(args: argparse.Namespace) -> int:
    from microclip.runner import adapt

    adapt(
        _run_spec(args), manifest_dir=Path(args.manifest), prototypes_path=Path(args.prototypes),
        out_state=Path(args.out), log_path=Path(args.epoch_log),
        checkpoint_path=Path(args.checkpoint), stop_after_epoch=args.stop_after_epoch,
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from microclip.runner import evaluate

    metrics = evaluate(
        _run_spec(args), manifest_dir=Path(args.manifest), prototypes_path=Path(args.prototypes),
        adapted_state=Path(args.adapted), out_metrics=Path(args.out), labels=args.labels,
    )
    log.info("%s %s %s seed %s: top-1 %.2f", metrics.get("method"), args.dataset,
             metrics.get("backbone"), args.seed, metrics["top1"])
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from microclip.runner import explain

    explain(
        _run_spec(args), manifest_dir=Path(args.manifest), prototypes_path=Path(args.prototypes),
        adapted_state=Path(args.adapted), out_npz=Path(args.out), max_images=args.max_images,
    )
    return 0


def cmd_fetch_descriptions(args: argparse.Namespace) -> int:
    from microclip.text.published import fetch_published

    fetch_published(
        set_name=args.set, dataset=args.dataset,
        classes=json.loads(Path(args.classes).read_text(encoding="utf-8")),
        out_path=Path(args.out), manifest_path=Path(args.manifest),
        sources_path=Path(args.sources), base_urls=args.base_urls, timeout_s=args.timeout_s,
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


def cmd_check_config(args: argparse.Namespace) -> int:
    import yaml

    from microclip.config import check_config

    config = yaml.safe_load(Path(args.config).read_text())
    check_config(config, where=args.config)
    print(f"{args.config}: OK")
    return 0


# -- parser --------------------------------------------------------------------------------
def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True, help="open_clip architecture name")
    p.add_argument("--pretrained", default=None, help="open_clip tag or checkpoint path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", type=_json_arg, default={}, help="method options (JSON)")
    p.add_argument("--train", type=_json_arg, default={}, help="train overrides (JSON)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--eval-each-epoch", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--test-crop", choices=["center", "random"], default="center")
    p.add_argument("--tf32", action="store_true")
    p.add_argument("--manifest", required=True, help="folder with train.csv/test.csv")
    p.add_argument("--prototypes", required=True, help="prototype pointer (.json) or .pt")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microclip", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str):
        p = sub.add_parser(name, help=help)
        commands[name] = func
        p.set_defaults(func=func)
        return p

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
    p.add_argument("--custom", type=_json_arg, default=None, help="custom dataset entry (JSON)")
    p.add_argument("--no-verify", action="store_true", help="skip decoding every image")
    p.add_argument("--no-check-counts", action="store_true")
    p.add_argument("--download", action="store_true", help="allow torchvision's downloader")

    p = add("cache", cmd_cache, "decode and resize a manifest's images once")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--short-side", type=int, default=256)

    p = add("pretrain-demo", cmd_pretrain_demo, "pretrain the demo world's small CLIP")
    p.add_argument("--dataset", default="fashion_shift")
    p.add_argument("--root", required=True)
    p.add_argument("--descriptions", required=True)
    p.add_argument("--synonyms", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--options", type=_json_arg, default={}, help="pretraining options (JSON)")

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

    p = add("adapt", cmd_adapt, "adapt one (method, dataset, backbone, seed); resumes")
    _run_arguments(p)
    p.add_argument("--out", required=True, help="adapted state (.pt)")
    p.add_argument("--epoch-log", required=True, help="JSON-lines epoch log")
    p.add_argument("--checkpoint", required=True, help="per-epoch checkpoint for resume")
    p.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)

    p = add("evaluate", cmd_evaluate, "score an adapted state and write metrics.json")
    _run_arguments(p)
    p.add_argument("--adapted", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--labels", type=_json_arg, default={}, help="run/method/backbone labels")

    p = add("explain", cmd_explain, "saliency arrays (NCut, SOAP, [CLS]) of an adapted state")
    _run_arguments(p)
    p.add_argument("--adapted", required=True)
    p.add_argument("--out", required=True, help=".npz for `microclip saliency`")
    p.add_argument("--max-images", type=int, default=8)

    p = add("fetch-descriptions", cmd_fetch_descriptions, "fetch a published description set")
    p.add_argument("--set", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--classes", required=True, help="classes JSON (label order)")
    p.add_argument("--sources", default="descriptions/sources.yaml")
    p.add_argument("--base-urls", type=_json_arg, default={})
    p.add_argument("--timeout-s", type=float, default=60.0)
    p.add_argument("--out", required=True)
    p.add_argument("--manifest", required=True)

    p = add("describe", cmd_describe, "generate (record) or replay LLM class descriptions")
    p.add_argument("--set", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--classes", required=True)
    p.add_argument("--questions", required=True)
    p.add_argument("--styles", required=True)
    p.add_argument("--generation", type=_json_arg, default={})
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--mode", choices=["replay", "record"], default="replay")
    p.add_argument("--max-retries", type=int, default=5)
    p.add_argument("--malformed-retries", type=int, default=2)
    p.add_argument("--timeout-s", type=float, default=60.0)
    p.add_argument("--out", required=True)
    p.add_argument("--manifest", required=True)

    p = add("check-config", cmd_check_config, "validate a config against the registries")
    p.add_argument("config")

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
    try:
        return args.func(args)
    except (KeyError, ValueError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        log.error("%s", message)
        return 2
    except Exception as err:  # DatasetError and friends: clear message, non-zero exit
        if type(err).__name__ in {"DatasetError", "MalformedAnswerError"}:
            log.error("%s", err)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
