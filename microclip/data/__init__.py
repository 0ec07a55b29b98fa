"""Datasets: importing this package registers every dataset module in DATASETS.

A dataset is its module ``microclip/data/<key>.py`` plus ``classnames/<key>.json`` and
``templates/<key>.json``; the package imports the module of every class-name file, so adding
a dataset needs no import line, and the shared machinery (views, cache, layouts) is never
mistaken for a dataset.
"""

import importlib
from importlib import resources

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest, Sample, get_dataset

for _entry in sorted(resources.files(__name__).joinpath("classnames").iterdir(), key=str):
    if _entry.name.endswith(".json"):
        importlib.import_module(f"{__name__}.{_entry.name.removesuffix('.json')}")

__all__ = ["DATASETS", "DatasetError", "DatasetSpec", "Manifest", "Sample", "get_dataset"]
