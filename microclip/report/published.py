"""Published numbers (reference data, never results) to print beside the suite's measurements.

``reference/published.csv`` transcribes ``spec/published.md``: one row per (source, method,
backbone, dataset) with the value (top-1 %, test split), how it was read (``text`` from a
text-bearing source, ``image`` typed from a picture of a table and not yet verified), the
source's ``priority`` (1 first: which source to show when several report the same cell) and, for
a paper's own average, ``mean_of``: the space-separated dataset keys that average covers.

Everything the report needs to know about a source is in that file; adding a source or a
dataset means adding rows, never editing this module. Method and dataset keys follow the suite
where a published method or dataset corresponds to one (checked by the tests against the
registries, not here).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

PUBLISHED_COLUMNS = (
    "source",  # short key of the table, e.g. the paper and table number
    "citation",  # authors, venue, table
    "method",  # suite method key where one corresponds, else the published method's own key
    "published_name",  # the name printed in the source
    "backbone",  # suite backbone key, e.g. ViT-B-32
    "dataset",  # suite dataset key; for an average, the source's own name for it
    "value",  # top-1 accuracy in percent
    "read_from",  # "text" or "image"
    "note",  # protocol differences worth knowing
    "priority",  # integer, the same on every row of a source; 1 is shown first
    "mean_of",  # an average's dataset keys, space-separated; empty for a per-dataset value
)
READ_FROM = ("text", "image")
DEFAULT_PUBLISHED_CSV = Path(__file__).resolve().parents[2] / "reference" / "published.csv"


@dataclass(frozen=True)
class PublishedValue:
    """One published number as a table cell shows it."""

    value: float
    source: str
    read_from: str


def normalise_backbone(name: str) -> str:
    """'ViT-B-32-quickgelu' / 'ViT-B/32' / 'vit_b32' -> 'vitb32', so suite and paper names meet."""
    key = re.sub(r"-?quickgelu$", "", str(name).strip().lower())
    return re.sub(r"[^a-z0-9]", "", key)


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate the published-numbers table (default: ``reference/published.csv``).

    Returns ``PUBLISHED_COLUMNS`` with ``value`` float, ``priority`` int, ``note`` and
    ``mean_of`` "" when empty. Raises ValueError naming the file and the offending rows.
    """
    path = Path(path) if path is not None else DEFAULT_PUBLISHED_CSV
    if not path.is_file():
        raise FileNotFoundError(f"published numbers: {path} does not exist")
    text_columns = [c for c in PUBLISHED_COLUMNS if c not in ("value", "priority")]
    table = pd.read_csv(path, dtype=dict.fromkeys(text_columns, str))
    missing = [c for c in PUBLISHED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(PUBLISHED_COLUMNS)}")
    table["note"] = table["note"].fillna("")
    table["mean_of"] = table["mean_of"].fillna("").str.strip()
    table["value"] = _numbers(table["value"], path, "value")
    table["priority"] = _numbers(table["priority"], path, "priority")
    _check_integer_priority(table, path)
    table["priority"] = table["priority"].astype(int)
    _check_constant_priority(table, path)
    _check_read_from(table, path)
    _check_unique(table, path)
    return table[list(PUBLISHED_COLUMNS)]


def _numbers(column: pd.Series, path: Path, name: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = column[values.isna()]
    if len(bad):
        raise ValueError(f"{path}: column {name} must be a number; row(s) {_rows(bad.index)}")
    return values


def _rows(index: pd.Index) -> list[int]:
    """1-based file line numbers of table rows (line 1 is the header)."""
    return [int(i) + 2 for i in index[:5]]


def _check_integer_priority(table: pd.DataFrame, path: Path) -> None:
    bad = table[table["priority"] != table["priority"].round()]
    if len(bad):
        raise ValueError(f"{path}: priority must be an integer; row(s) {_rows(bad.index)}")


def _check_constant_priority(table: pd.DataFrame, path: Path) -> None:
    per_source = table.groupby("source")["priority"].nunique()
    mixed = sorted(per_source[per_source > 1].index)
    if mixed:
        raise ValueError(f"{path}: source(s) {mixed} have more than one priority; use one each")


def _check_read_from(table: pd.DataFrame, path: Path) -> None:
    bad = sorted(set(table["read_from"]) - set(READ_FROM))
    if bad:
        raise ValueError(f"{path}: read_from {bad} not allowed; allowed: {list(READ_FROM)}")


def _check_unique(table: pd.DataFrame, path: Path) -> None:
    dup = table.duplicated(["source", "method", "backbone", "dataset"])
    if dup.any():
        first = table[dup].iloc[0]
        raise ValueError(
            f"{path}: duplicate row for source={first.source} method={first.method} "
            f"backbone={first.backbone} dataset={first.dataset}"
        )


def _for_backbone(published: pd.DataFrame, backbone: str) -> pd.DataFrame:
    key = normalise_backbone(backbone)
    return published[published["backbone"].map(normalise_backbone) == key]


def _first_by_priority(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return rows.sort_values(["priority", "source"], kind="stable").drop_duplicates(keys)


def published_lookup(published: pd.DataFrame, backbone: str) -> pd.DataFrame:
    """One per-dataset value per (method, dataset) for ``backbone``: the highest-priority source.

    Averages (rows with ``mean_of``) are left out; see ``published_means``. Returns columns
    method, dataset, value, source, read_from (empty if nothing was published).
    """
    rows = _for_backbone(published, backbone)
    rows = _first_by_priority(rows[rows["mean_of"] == ""], ["method", "dataset"])
    return rows[["method", "dataset", "value", "source", "read_from"]].reset_index(drop=True)


def published_means(
    published: pd.DataFrame, backbone: str, datasets: list[str] | tuple[str, ...]
) -> pd.DataFrame:
    """Published averages over exactly ``datasets`` (their ``mean_of`` set), one per method.

    An average over other datasets is not comparable with the table's mean, so it is dropped.
    Returns columns method, value, source, read_from.
    """
    rows = _for_backbone(published, backbone)
    wanted = frozenset(datasets)
    covers = rows["mean_of"].map(lambda text: frozenset(text.split()) == wanted).astype(bool)
    rows = _first_by_priority(rows[covers & (rows["mean_of"] != "")], ["method"])
    return rows[["method", "value", "source", "read_from"]].reset_index(drop=True)


def published_cells(
    published: pd.DataFrame | None,
    backbone: str,
    datasets: list[str] | tuple[str, ...],
    *,
    mean_column: str,
) -> dict[str, dict[str, PublishedValue]]:
    """{method: {column: PublishedValue}} for a table with columns ``datasets`` + the mean."""
    if published is None:
        return {}
    cells: dict[str, dict[str, PublishedValue]] = {}
    look = published_lookup(published, backbone)
    for r in look[look["dataset"].isin(list(datasets))].itertuples():
        cells.setdefault(r.method, {})[r.dataset] = PublishedValue(r.value, r.source, r.read_from)
    for r in published_means(published, backbone, datasets).itertuples():
        cells.setdefault(r.method, {})[mean_column] = PublishedValue(r.value, r.source, r.read_from)
    return cells
