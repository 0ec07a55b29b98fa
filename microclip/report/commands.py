"""`microclip` subcommands of the report layer: collect, tables, plots, saliency.

Registered by ``microclip.cli`` through ``register_commands(add)``, where ``add(name, func,
help)`` returns the subparser. The workflow's report rules call these; each command is one
function call of ``microclip.report``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({err})") from None


def _grid_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--focus", default="microclip", help="the method compared with the baselines")
    p.add_argument("--methods", nargs="*", default=None, help="main-grid methods (config)")
    p.add_argument("--datasets", nargs="*", default=None, help="main-grid datasets (config)")
    p.add_argument("--backbones", nargs="*", default=None, help="backbones with a main table")
    p.add_argument("--seeds", nargs="*", type=int, default=None, help="main-grid seeds (config)")


def cmd_collect(args: argparse.Namespace) -> int:
    from microclip.report.collect import collect_runs

    paths = list(args.metrics)
    if args.metrics_list:
        paths += [line.strip() for line in Path(args.metrics_list).read_text().splitlines()]
    collect_runs(
        [p for p in paths if p],
        args.runs,
        args.epochs,
        published_csv=args.published,
        echo=not args.quiet,
    )
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from microclip.report.tables import make_tables

    make_tables(
        args.runs,
        args.published,
        args.out,
        focus_method=args.focus,
        methods=args.methods,
        datasets=args.datasets,
        backbones=args.backbones,
        seeds=args.seeds,
        ablations=args.ablations,
    )
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from microclip.report.plots import make_plots

    make_plots(
        args.runs,
        args.epochs,
        args.out,
        focus_method=args.focus,
        methods=args.methods,
        datasets=args.datasets,
        backbones=args.backbones,
        seeds=args.seeds,
        gamma_ablation=args.gamma_ablation,
        gamma_spec=args.gamma_spec,
    )
    return 0


def cmd_saliency(args: argparse.Namespace) -> int:
    from microclip.report.plots import plot_saliency

    plot_saliency(args.npz, args.png, args.pdf, title=args.title, max_images=args.max_images)
    return 0


def register_commands(add) -> None:
    p = add("collect", cmd_collect, "merge metrics.json files into runs.csv and epochs.csv")
    p.add_argument("metrics", nargs="*", help="metrics.json paths (never a folder)")
    p.add_argument("--metrics-list", help="a file with one metrics.json path per line")
    p.add_argument("--runs", required=True, help="output runs.csv")
    p.add_argument("--epochs", required=True, help="output epochs.csv")
    p.add_argument("--published", default=None, help="reference/published.csv for the summary")
    p.add_argument("--quiet", action="store_true", help="do not print the summary table")

    p = add("tables", cmd_tables, "main, per-dataset and ablation tables (CSV/MD/LaTeX/HTML)")
    p.add_argument("--runs", required=True)
    p.add_argument("--published", default=None, help="reference/published.csv")
    p.add_argument("--out", required=True, help="tables folder, e.g. results/<run>/tables")
    _grid_arguments(p)
    p.add_argument(
        "--ablations",
        type=_json,
        default=None,
        help='JSON: ["dka", ...] or {"dka": {"methods": [...], "datasets": [...], ...}}',
    )

    p = add("plots", cmd_plots, "figures (PNG and PDF) from runs.csv and epochs.csv")
    p.add_argument("--runs", required=True)
    p.add_argument("--epochs", required=True)
    p.add_argument("--out", required=True, help="plots folder, e.g. results/<run>/plots")
    _grid_arguments(p)
    p.add_argument("--gamma-ablation", default="dka", help="ablation table of the gamma sweep")
    p.add_argument("--gamma-spec", type=_json, default=None, help="JSON: that table's grid")

    p = add("saliency", cmd_saliency, "NCut / SOAP / [CLS] saliency figure from an .npz")
    p.add_argument("npz")
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", required=True)
    p.add_argument("--title", default=None)
    p.add_argument("--max-images", type=int, default=8)
