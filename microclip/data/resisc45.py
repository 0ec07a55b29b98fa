"""NWPU-RESISC45 (Cheng et al., 2017): 45 aerial scene classes, 700 images each.

The archive is one folder per class without a split; the suite reads the user's split as
``<root>/resisc45/{train,test}/<class>/<image>`` (see ``FolderSplitSpec``). Label order
and class names are CuPL's keys (the folder names with spaces, alphabetical).

Protocol: train/ adapted on, test/ scored.
"""

from __future__ import annotations

from microclip.data.base import DATASETS
from microclip.data.layout import FolderSplitSpec


class Resisc45(FolderSplitSpec):
    key = "resisc45"
    title = "NWPU-RESISC45"
    label = "RESISC45"
    num_classes = 45
    folder = "resisc45"
    origin = "NWPU-RESISC45.rar from the authors' OneDrive, linked from gcheng-nwpu.github.io"


DATASETS.add(Resisc45.key, Resisc45())
