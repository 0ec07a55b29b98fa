"""Birdsnap (Berg et al., 2014): 500 North American bird species.

Birdsnap is published as a list of image URLs (many now dead), so every copy differs; the
suite reads the copy the user has, as ``<root>/birdsnap/{train,test}/<species>/<image>``
(see ``FolderSplitSpec``). Label order and class names are CuPL's bird keys (alphabetical,
e.g. "Allens Hummingbird"); folder names may use underscores or apostrophes.

Protocol: train/ adapted on, test/ scored (the official test list has 2,443 images).
"""

from __future__ import annotations

from microclip.data.base import DATASETS
from microclip.data.layout import FolderSplitSpec


class Birdsnap(FolderSplitSpec):
    key = "birdsnap"
    title = "Birdsnap"
    label = "Birdsnap"
    num_classes = 500
    folder = "birdsnap"
    origin = (
        "thomasberg.org/datasets/birdsnap: get_birdsnap.py fetches the images from their URLs; "
        "put the images named in test_images.txt under test/"
    )


DATASETS.add(Birdsnap.key, Birdsnap())
