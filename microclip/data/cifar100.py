"""CIFAR-100 (Krizhevsky, 2009): 100 fine classes of 32 x 32 images, 50,000 / 10,000.

Layout (torchvision.datasets.CIFAR100): ``<root>/cifar-100-python/{train,test,meta}``
pickles; images are written once as PNG under ``<root>/cifar100_png/`` (see cifar10.py).
Label order is ``fine_label_names``; class names are CuPL's keys (underscores as spaces).

Protocol: official train (50,000) adapted on, official test (10,000) scored.
"""

from __future__ import annotations

from pathlib import Path

from microclip.data.base import DATASETS
from microclip.data.cifar10 import CifarSpec


class Cifar100(CifarSpec):
    key = "cifar100"
    title = "CIFAR-100"
    label = "CIFAR-100"
    num_classes = 100
    folder = "cifar-100-python"
    train_files = ("train",)
    test_files = ("test",)
    meta_file = "meta"
    meta_key = "fine_label_names"
    label_key = "fine_labels"

    def download(self, root: Path) -> None:
        from torchvision.datasets import CIFAR100

        CIFAR100(str(root), train=True, download=True)


DATASETS.add(Cifar100.key, Cifar100())
