"""Datasets: importing this package registers every dataset module in DATASETS.

Every module of this package that is not part of the dataset machinery below is a dataset
module and registers itself on import, so adding a dataset is adding its module (plus its
class-name and template JSONs); no import line to edit.
"""

import importlib
import pkgutil

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest, Sample, get_dataset

# The machinery shared by the dataset modules; every other module is a dataset.
_MACHINERY = frozenset({"base", "cache", "custom", "images", "layout", "prepare", "views"})

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _MACHINERY and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["DATASETS", "DatasetError", "DatasetSpec", "Manifest", "Sample", "get_dataset"]
