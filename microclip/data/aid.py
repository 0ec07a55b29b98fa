"""AID, the Aerial Image Dataset (Xia et al., 2017): 30 aerial scene classes.

The archive is one CamelCase folder per class (``BareLand/``) without a split; the suite
reads the user's split as ``<root>/aid/{train,test}/<class>/<image>`` (see
``FolderSplitSpec``). Class names are the folder names as lowercase words ("bare land"),
in alphabetical order.

Protocol: train/ adapted on, test/ scored.
"""

from __future__ import annotations

from microclip.data.base import DATASETS
from microclip.data.layout import FolderSplitSpec


class Aid(FolderSplitSpec):
    key = "aid"
    title = "AID"
    label = "AID"
    num_classes = 30
    folder = "aid"
    origin = "AID.zip from captain-whu.github.io/AID"


DATASETS.add(Aid.key, Aid())
