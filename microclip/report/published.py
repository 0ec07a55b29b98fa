"""Published numbers (reference data, never results) to print beside the suite's measurements.

``reference/published.csv`` transcribes ``spec/published.md``: one row per (source, method,
backbone, dataset) with the value (top-1 %, test split) and how it was read (``text`` from a
text-bearing source, ``image`` typed from a picture of a table and not yet verified).

Method keys follow the suite where a published method corresponds to one (zero-shot CLIP with
template ensembles -> ``zs_templates``, CuPL -> ``zs_descriptions``, LaFTer -> ``lafter``, DPA ->
``dpa``, MUST -> ``must``, microCLIP -> ``microclip``); the others keep their own names (``upl``,
``pouf``, ``clip_single_template``, ``dpa_base``...). Dataset keys are the suite's; ``mean`` is a
paper's average over its own benchmark set and ``mean11`` DPA's 11-dataset ablation average.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

PUBLISHED_COLUMNS = (
    "source",  # short key of the table, e.g. dpa_wacv2025_table1
    "citation",  # authors, venue, table
    "method",  # suite method key where one corresponds, else the published method's own key
    "published_name",  # the name printed in the source
    "backbone",  # suite backbone key: ViT-B-32, ViT-B-16, ViT-L-14
    "dataset",  # suite dataset key, or "mean" / "mean11" for a paper's own averages
    "value",  # top-1 accuracy in percent
    "read_from",  # "text" or "image"
    "note",  # protocol differences worth knowing
)
READ_FROM = ("text", "image")
DATASET_KEYS = [
    "imagenet",
    "caltech101",
    "dtd",
    "eurosat",
    "fgvc",
    "food101",
    "flowers",
    "pets",
    "sun397",
    "cars",
    "cifar10",
    "cifar100",
    "ucf101",
    "cub",
    "birdsnap",
    "resisc45",
    "gtsrb",
    "aid",
]
AVERAGE_KEYS = ("mean", "mean11")

# Which source to show beside a measured cell when several report the same (method, backbone,
# dataset): the table that shares the suite's protocol first, text before image.
SOURCE_PRIORITY = (
    "dpa_wacv2025_table1",
    "microclip_abstract",
    "must_iclr2023_readme",
    "clip_benchmark",
    "mpvr_main",
    "lafter_neurips2023_main",
    "dpa_wacv2025_ablation",
    "microclip_devlog",
)

DEFAULT_PUBLISHED_CSV = Path(__file__).resolve().parents[2] / "reference" / "published.csv"


def normalise_backbone(name: str) -> str:
    """'ViT-B-32-quickgelu' / 'ViT-B/32' / 'vit_b32' -> 'vitb32', so suite and paper names meet."""
    key = re.sub(r"-?quickgelu$", "", str(name).strip().lower())
    return re.sub(r"[^a-z0-9]", "", key)


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate the published-numbers table (default: ``reference/published.csv``).

    Returns a DataFrame with ``PUBLISHED_COLUMNS`` (``value`` as float, ``note`` "" when empty).
    """
    path = Path(path) if path is not None else DEFAULT_PUBLISHED_CSV
    if not path.is_file():
        raise FileNotFoundError(f"published numbers: {path} does not exist")
    table = pd.read_csv(path, dtype={c: str for c in PUBLISHED_COLUMNS if c != "value"})
    missing = [c for c in PUBLISHED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(PUBLISHED_COLUMNS)}")
    table["note"] = table["note"].fillna("")
    table["value"] = pd.to_numeric(table["value"], errors="raise")
    bad_read = sorted(set(table["read_from"]) - set(READ_FROM))
    if bad_read:
        raise ValueError(f"{path}: read_from {bad_read} not allowed; allowed: {list(READ_FROM)}")
    allowed = set(DATASET_KEYS) | set(AVERAGE_KEYS)
    bad_ds = sorted(set(table["dataset"]) - allowed)
    if bad_ds:
        raise ValueError(f"{path}: dataset {bad_ds} not a suite key; allowed: {sorted(allowed)}")
    dup = table.duplicated(["source", "method", "backbone", "dataset"])
    if dup.any():
        first = table[dup].iloc[0]
        raise ValueError(
            f"{path}: duplicate row for source={first.source} method={first.method} "
            f"backbone={first.backbone} dataset={first.dataset}"
        )
    return table[list(PUBLISHED_COLUMNS)]


def published_lookup(published: pd.DataFrame, backbone: str) -> pd.DataFrame:
    """One published value per (method, dataset) for ``backbone``, the highest-priority source.

    Returns columns method, dataset, value, source, read_from (empty if nothing was published).
    """
    key = normalise_backbone(backbone)
    rows = published[published["backbone"].map(normalise_backbone) == key].copy()
    rank = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    rows["_rank"] = rows["source"].map(lambda s: rank.get(s, len(rank)))
    rows = rows.sort_values(["_rank", "source"]).drop_duplicates(["method", "dataset"])
    return rows[["method", "dataset", "value", "source", "read_from"]].reset_index(drop=True)
