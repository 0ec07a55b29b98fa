"""What produced the collected numbers: suite versions, commits, config hashes, packages.

Written as ``provenance.md`` (for a paper's supplement) and ``provenance.html`` (for the
Snakemake report): a two-column key/value table whose long values (lists of config hashes,
commits) wrap inside their cell, so nothing runs off the page.
"""

from __future__ import annotations

import html
from importlib import metadata
from pathlib import Path

import pandas as pd

from microclip.io import atomic_write_text
from microclip.report.render import PAGE_STYLE, html_page

REPORT_PACKAGES = ("pandas", "scipy", "matplotlib", "numpy")  # what this layer renders with
PACKAGE_PREFIX = "packages."


def _values(runs: pd.DataFrame, column: str) -> str:
    if column not in runs.columns:
        return "n/a"
    return ", ".join(sorted(str(v) for v in runs[column].dropna().unique())) or "n/a"


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance_items(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(key, value) rows: run-wide facts, then config hashes per method, then packages."""
    items = [
        (column, _values(runs, column))
        for column in ("run", "version", "git_commit", "device", "precision", "report")
    ]
    items.append(("runs collected", str(len(runs))))
    if "config_hash" in runs.columns:
        for method, part in runs.groupby("method", sort=True):
            items.append((f"config hashes: {method}", _values(part, "config_hash")))
    for column in sorted(c for c in runs.columns if c.startswith(PACKAGE_PREFIX)):
        items.append((f"{column.removeprefix(PACKAGE_PREFIX)} (training)", _values(runs, column)))
    for name in REPORT_PACKAGES:
        items.append((f"{name} (reporting)", _installed(name)))
    return items


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def provenance_markdown(items: list[tuple[str, str]]) -> str:
    lines = ["# Provenance", "", "| key | value |", "|---|---|"]
    lines += [f"| {_md_escape(k)} | {_md_escape(v)} |" for k, v in items]
    return "\n".join(lines) + "\n"


PROVENANCE_STYLE = PAGE_STYLE + (
    "table.kv{table-layout:fixed;width:100%}"
    "table.kv th,table.kv td{text-align:left;vertical-align:top}"
    "table.kv td:first-child{width:16em}"
    "table.kv td+td{white-space:normal;overflow-wrap:anywhere;font-family:monospace}"
)


def provenance_html(items: list[tuple[str, str]]) -> str:
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in items)
    body = (
        "<p><b>Provenance</b></p><table class='kv'>"
        f"<tr><th>key</th><th>value</th></tr>{rows}</table>"
    )
    return html_page(body, style=PROVENANCE_STYLE)


def write_provenance(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """provenance.md and provenance.html under ``out_dir``; the paths."""
    items = provenance_items(runs)
    out_dir = Path(out_dir)
    md, page = out_dir / "provenance.md", out_dir / "provenance.html"
    atomic_write_text(md, provenance_markdown(items))
    atomic_write_text(page, provenance_html(items))
    return [md, page]
