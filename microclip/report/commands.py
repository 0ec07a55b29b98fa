"""`microclip` subcommands of the report layer: collect, tables, plots, saliency.

Registered by ``microclip.cli`` through ``register_commands(add)``, where ``add(name, func,
help)`` returns the subparser. The workflow's report rules call these; each command is one
function call of ``microclip.report``. Which runs form which table, and every name printed,
come from grid.json, so no command takes method, dataset or ablation lists. pandas, scipy and
matplotlib are imported inside the command functions only: ``microclip --help`` builds its
parser from this module and must stay fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

AddCommand = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def _metrics_paths(args: argparse.Namespace) -> list[str]:
    paths = list(args.metrics)
    if args.metrics_list:
        paths += Path(args.metrics_list).read_text(encoding="utf-8").splitlines()
    return [p.strip() for p in paths if p.strip()]


def cmd_collect(args: argparse.Namespace) -> int:
    from microclip.report.collect import collect_runs

    collect_runs(
        _metrics_paths(args),
        args.runs,
        args.epochs,
        grid=args.grid,
        published_csv=args.published,
        echo=not args.quiet,
    )
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from microclip.report.tables import make_tables

    make_tables(args.runs, args.grid, args.published, args.out)
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from microclip.report.plots import make_plots

    make_plots(args.runs, args.epochs, args.grid, args.out)
    return 0


def cmd_saliency(args: argparse.Namespace) -> int:
    from microclip.report.plots import plot_saliency

    plot_saliency(args.npz, args.png, args.pdf, title=args.title, max_images=args.max_images)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_diagnostics(args: argparse.Namespace) -> int:
    from microclip.report.diagnostics import make_diagnostics_table

    make_diagnostics_table(args.diagnostics, args.grid, args.out)
    return 0


def cmd_readme(args: argparse.Namespace) -> int:
    from microclip.report.readme import write_readme

    section = write_readme(Path(args.run), Path(args.readme),
                           compare=Path(args.compare) if args.compare else None)
    print(section)
    return 0


def register_commands(add: AddCommand) -> None:
    grid_help = "results/<run>/grid.json (rule write_grid): the tables' runs, order and names"

    p = add("collect", cmd_collect, "merge metrics.json + epochs.jsonl into runs.csv, epochs.csv")
    p.add_argument("metrics", nargs="*", help="metrics.json paths (never a folder)")
    p.add_argument("--metrics-list", help="a file with one metrics.json path per line")
    p.add_argument("--grid", required=True, help=grid_help)
    p.add_argument("--runs", required=True, help="output runs.csv")
    p.add_argument("--epochs", required=True, help="output epochs.csv")
    p.add_argument("--published", default=None, help="reference/published.csv for the summary")
    p.add_argument("--quiet", action="store_true", help="do not print the summary table")

    p = add("tables", cmd_tables, "main, per-dataset and ablation tables (CSV/MD/LaTeX/HTML)")
    p.add_argument("--runs", required=True, help="runs.csv (rule collect_results)")
    p.add_argument("--grid", required=True, help=grid_help)
    p.add_argument("--published", default=None, help="reference/published.csv")
    p.add_argument("--out", required=True, help="tables folder, e.g. results/<run>/tables")

    p = add("plots", cmd_plots, "figures (PNG and PDF) from runs.csv and epochs.csv")
    p.add_argument("--runs", required=True, help="runs.csv (rule collect_results)")
    p.add_argument("--epochs", required=True, help="epochs.csv (rule collect_results)")
    p.add_argument("--grid", required=True, help=grid_help)
    p.add_argument("--out", required=True, help="plots folder, e.g. results/<run>/plots")

    p = add("saliency", cmd_saliency, "saliency figure (PNG and PDF) from an explain .npz")
    p.add_argument("npz", help="the .npz of rule explain: images, one array per map, maps")
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", required=True)
    p.add_argument("--title", default=None, help="figure title (default: the file's stem)")
    p.add_argument(
        "--max-images",
        type=_positive_int,
        required=True,
        help="images drawn (columns); config saliency.max_images",
    )

    p = add("diagnostics-table", cmd_diagnostics,
            "the mechanism-diagnostics table (CSV/MD/LaTeX/HTML) from diagnose's JSON files")
    p.add_argument("diagnostics", nargs="+", help="diagnostics JSON files, in table order")
    p.add_argument("--grid", required=True, help=grid_help)
    p.add_argument("--out", required=True, help="file stem, e.g. results/<run>/tables/diagnostics")

    p = add("readme", cmd_readme,
            "write the README's demo section (between its demo markers) from a finished run")
    p.add_argument("run", help="the run folder, e.g. results/demo")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--compare", default=None,
                   help="a second run of the same config (other threads or machine): tolerance")
