"""Datasets: importing this package registers every dataset module in DATASETS."""

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest, Sample, get_dataset

# One import line per dataset module (registration happens on import); kept one per line.
# isort: off
from microclip.data import fashion_shift  # noqa: E402,F401  (the offline demo world)
from microclip.data import aid  # noqa: E402,F401
from microclip.data import birdsnap  # noqa: E402,F401
from microclip.data import caltech101  # noqa: E402,F401
from microclip.data import cars  # noqa: E402,F401
from microclip.data import cifar10  # noqa: E402,F401
from microclip.data import cifar100  # noqa: E402,F401
from microclip.data import cub  # noqa: E402,F401
from microclip.data import dtd  # noqa: E402,F401
from microclip.data import eurosat  # noqa: E402,F401
from microclip.data import fgvc  # noqa: E402,F401
from microclip.data import flowers  # noqa: E402,F401
from microclip.data import food101  # noqa: E402,F401
from microclip.data import gtsrb  # noqa: E402,F401
from microclip.data import imagenet  # noqa: E402,F401
from microclip.data import pets  # noqa: E402,F401
from microclip.data import resisc45  # noqa: E402,F401
from microclip.data import sun397  # noqa: E402,F401
from microclip.data import ucf101  # noqa: E402,F401
# isort: on

__all__ = ["DATASETS", "DatasetError", "DatasetSpec", "Manifest", "Sample", "get_dataset"]
