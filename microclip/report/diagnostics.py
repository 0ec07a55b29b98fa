"""The mechanism-diagnostics table: one row per dataset x backbone, from diagnose's JSON files.

Each file is what ``microclip diagnose`` wrote (``results/{run}/diagnostics/{dataset}/
{backbone}.json``): NCut's affinity density and collapse, the foreground's overlap with the
object, zero-shot of [CLS] / [FG] / fused, and the initial pseudo-label accuracy for
gamma 0 / 0.5 / 1 from one view and from the crops. Read as: a density near 1 or a collapse
near 100 % says NCut has nothing to cut; a crop prior far below the weak [CLS] says the
multi-view prior hurts on this backbone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from microclip.report.grid import ReportGrid
from microclip.report.render import write_table
from microclip.report.tables import Table
from microclip.results import read_json_object

COLUMNS = (
    # (header, path in the JSON, format)
    ("density (median)", ("ncut", "affinity_density", "median"), "{:.2f}"),
    ("foreground share (median)", ("ncut", "foreground_share", "median"), "{:.2f}"),
    ("collapse %", ("ncut", "fixed_position_collapse"), "pct"),
    ("eigengap (median)", ("ncut", "eigengap", "median"), "{:.3f}"),
    ("sign rules agree %", ("ncut", "sign_rules_agree"), "pct"),
    ("IoU object (NCut)", ("object_iou", "ncut"), "{:.2f}"),
    ("IoU object (random)", ("object_iou", "random_same_size"), "{:.2f}"),
    ("ZS [CLS]", ("zero_shot", "cls"), "{:.1f}"),
    ("ZS [FG]", ("zero_shot", "fg"), "{:.1f}"),
    ("ZS fused", ("zero_shot", "fused"), "{:.1f}"),
    ("PL γ=0 single", ("pseudo_labels", "single", "0"), "{:.1f}"),
    ("PL γ=0.5 single", ("pseudo_labels", "single", "0.5"), "{:.1f}"),
    ("PL γ=1 single (weak [CLS])", ("pseudo_labels", "single", "1"), "{:.1f}"),
    ("PL γ=0 multi", ("pseudo_labels", "multi", "0"), "{:.1f}"),
    ("PL γ=0.5 multi", ("pseudo_labels", "multi", "0.5"), "{:.1f}"),
    ("PL γ=1 multi (crop prior)", ("pseudo_labels", "multi", "1"), "{:.1f}"),
)


def _get(data: dict, path: Sequence[str]) -> float:
    for key in path:
        if not isinstance(data, dict) or key not in data or data[key] is None:
            return math.nan
        data = data[key]
    return float(data)


def _fmt(value: float, spec: str) -> str:
    if math.isnan(value):
        return "–"
    return f"{100 * value:.1f}" if spec == "pct" else spec.format(value)


def diagnostics_table(paths: Sequence[str | Path], grid: ReportGrid) -> Table:
    """Rows: dataset / backbone (grid order of the files given); columns: ``COLUMNS``."""
    rows, bold, tidy = [], [], []
    for path in paths:
        data = read_json_object(path)
        label = f"{grid.label(data['dataset'])} / {data['backbone']}"
        values = [_get(data, p) for _, p, _ in COLUMNS]
        rows.append([label, *(_fmt(v, f) for v, (_, _, f) in zip(values, COLUMNS, strict=True))])
        bold.append([False] * (len(COLUMNS) + 1))
        tidy.append({"dataset": data["dataset"], "backbone": data["backbone"],
                     "n_images": data.get("n_images"),
                     **{h: v for (h, _, _), v in zip(COLUMNS, values, strict=True)}})
    return Table(
        name="diagnostics",
        caption="Mechanism diagnostics on the initial backbone (unlabelled train split; labels "
        "only score pseudo-labels): NCut, [FG] and the multi-view prior.",
        header=["Dataset / backbone", *(h for h, _, _ in COLUMNS)],
        rows=rows,
        bold=bold,
        notes=[
            "density: share of patch pairs whose raw dot product exceeds NCut's tau (1 = a "
            "complete graph: the cut is arbitrary). collapse: images whose foreground equals "
            "the most common mask. eigengap: lambda_3 - lambda_2 of the normalised Laplacian.",
            "IoU: NCut foreground vs the object's patches (patches the object box covers by at "
            "least half), beside a random mask of the same size ('–' without boxes).",
            "ZS: zero-shot top-1 (%) of [CLS], of [FG] (SOAP at identity init with the NCut "
            "query) and of their fusion, with the initial head W* (descriptions).",
            "PL: pseudo-label accuracy (%) at initialisation, gamma x (prior x W_LLM) + "
            "(1 - gamma) x (fused weak feature x W*); single: the prior is the weak view's "
            "[CLS]; multi: the crops' multi-view prior. gamma = 1 is the prior alone.",
        ],
        tidy=pd.DataFrame(tidy),
    )


def make_diagnostics_table(paths: Sequence[str | Path], grid_json: str | Path,
                           out_stem: str | Path) -> list[Path]:
    table = diagnostics_table(paths, ReportGrid.read(grid_json))
    return write_table(table, Path(out_stem), label="tab:diagnostics")
