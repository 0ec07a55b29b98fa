"""UCF-101 middle frames (Soomro et al., 2012): 101 actions, one frame per video.

Layout (CoOp's release, the one unsupervised-adaptation code bases read):
``<root>/ucf101/UCF-101-midframes/<Class_Name>/v_<Class>_gNN_cNN.jpg`` (the middle frame
of each video) and ``<root>/ucf101/split_zhou_UCF101.json`` (``{"train"|"val"|"test":
[[relative path, label, class folder], ...]}``), built from the official split 1: its
train + val are trainlist01, its test is testlist01. Label order is CoOp's (classInd.txt);
class names are CuPL's keys, matched to the folder names ignoring case and underscores
(``Handstand_Pushups`` = "Hand Stand Pushups").

Protocol: split 1 as CoOp's file gives it: ``train`` (7,639 frames) adapted on, ``test``
(3,783) scored; ``val`` (1,898) is unused, as for Flowers.
"""

from __future__ import annotations

import json
from pathlib import Path

from microclip.data.base import DATASETS, DatasetError, DatasetSpec, Manifest
from microclip.data.layout import ClassIndex, make_manifest, require_dir, require_file

SPLIT_FILE = "split_zhou_UCF101.json"
FRAMES_DIR = "UCF-101-midframes"
SOURCE = "CoOp's DATASETS.md, section UCF101: https://github.com/KaiyangZhou/CoOp"


class Ucf101(DatasetSpec):
    key = "ucf101"
    title = "UCF-101 middle frames (split 1)"
    label = "UCF101"
    num_classes = 101
    source = "manual"
    expected_train = 7_639
    expected_test = 3_783
    protocol = "split 1 (CoOp train -> test)"

    def base(self, root: Path) -> Path:
        return Path(root) / "ucf101"

    def is_present(self, root: Path) -> bool:
        base = self.base(root)
        return (base / FRAMES_DIR).is_dir() and (base / SPLIT_FILE).is_file()

    def download_help(self, root: Path) -> str:
        base = self.base(root)
        return (
            f"UCF-101 middle frames are a manual download ({SOURCE}): unzip "
            f"UCF-101-midframes.zip and add {SPLIT_FILE}, so that {base}/{FRAMES_DIR}/"
            f"Apply_Eye_Makeup/v_ApplyEyeMakeup_g08_c01.jpg and {base}/{SPLIT_FILE} exist."
        )

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        frames = require_dir(self, root, self.base(root) / FRAMES_DIR)
        split_path = require_file(self, root, self.base(root) / SPLIT_FILE)
        index = ClassIndex(self, self.classes())
        try:
            split = json.loads(split_path.read_text(encoding="utf-8"))
            parts = {
                name: [
                    (frames / str(item[0]), index(str(item[2]), where=str(split_path)))
                    for item in split[name]
                ]
                for name in ("train", "test")
            }
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
            raise DatasetError(
                f"{self.key}: {split_path} is not CoOp's split file (expected keys train/test "
                f"holding [path, label, class] lists): {err!r}. Get it from {SOURCE}."
            ) from None
        return make_manifest(self, parts["train"], parts["test"])


DATASETS.add(Ucf101.key, Ucf101())
