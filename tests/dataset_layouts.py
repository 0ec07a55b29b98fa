"""Miniature copies of each dataset's real on-disk layout, for tests without real data.

Each builder writes, under a data root, the folder and file names and annotation formats
of the real dataset (torchvision's layout where torchvision has the class) with a few tiny
generated images per class, and returns a ``Miniature``: the spec to read it with (the
registered one, or a copy with miniature per-class counts) and the truth the manifest must
reproduce. Raw class names (folders, annotation strings) are written as the real datasets
spell them, which is not always the package's spelling.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from microclip.data import get_dataset
from microclip.data.base import DatasetSpec
from microclip.data.caltech101 import Caltech101
from microclip.data.eurosat import EuroSat
from microclip.data.imagenet import ImageNet, wnids


@dataclass
class Miniature:
    """What a builder wrote: the spec to read it and the facts the manifest must show."""

    spec: DatasetSpec
    n_train: int
    n_test: int
    # path relative to the data root -> label, for every image the protocol uses
    labels: dict[str, int] = field(default_factory=dict)
    # path -> "train"/"test" where the protocol fixes it (not for seeded splits)
    splits: dict[str, str] = field(default_factory=dict)
    # images that exist but the protocol must not use (e.g. FGVC val, background)
    unused: set[str] = field(default_factory=set)
    # False where the layout is scanned (folder per class), not listed by annotation files:
    # a deleted image then just drops out, and only the count check can notice
    listed: bool = True


@cache
def encoded(fmt: str, shade: int) -> bytes:
    """A tiny 12 x 8 image in ``fmt``, colour varying with ``shade``."""
    rng = np.random.default_rng(shade)
    pixels = rng.integers(0, 256, size=(8, 12, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def write_image(path: Path, n: int = 0) -> None:
    fmt = {".png": "PNG", ".ppm": "PPM"}.get(path.suffix.lower(), "JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded(fmt, n % 7))


def write_text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def names(key: str) -> list[str]:
    return get_dataset(key).classes()


# --- torchvision layouts ------------------------------------------------------------------

CALTECH_RAW = {  # package name -> real folder name, where more than spaces differ
    "off-center face": "Faces",
    "leopard": "Leopards",
    "motorbike": "Motorbikes",
    "airplane": "airplanes",
    "side of a car": "car_side",
    "body of a cougar cat": "cougar_body",
    "face of a cougar cat": "cougar_face",
    "head of a crocodile": "crocodile_head",
    "head of a flamingo": "flamingo_head",
    "snoopy (cartoon beagle)": "snoopy",
    "yin and yang symbol": "yin_yang",
}


def build_caltech101(root: Path) -> Miniature:
    base = root / "caltech101" / "101_ObjectCategories"
    raw = [CALTECH_RAW.get(n, n.replace(" ", "_")) for n in names("caltech101")]
    assert raw == sorted(raw), "label order must be torchvision's sorted folder order"
    mini = Miniature(Caltech101(train_per_class=2), n_train=200, n_test=200, listed=False)
    for label, folder in enumerate(raw):
        for i in range(1, 5):
            path = base / folder / f"image_{i:04d}.jpg"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
    for excluded in ("BACKGROUND_Google", "Faces_easy"):
        for i in range(1, 4):
            path = base / excluded / f"image_{i:04d}.jpg"
            write_image(path, i)
            mini.unused.add(_rel(root, path))
    return mini


def build_dtd(root: Path) -> Miniature:
    data = root / "dtd" / "dtd"
    mini = Miniature(get_dataset("dtd"), n_train=94, n_test=47)
    lists: dict[str, list[str]] = {f"{s}{k}": [] for s in ("train", "val", "test") for k in (1, 2)}
    for label, cls in enumerate(names("dtd")):
        for i, split in enumerate(("train", "val", "test"), start=1):
            rel = f"{cls}/{cls}_{i:04d}.jpg"
            write_image(data / "images" / rel, i)
            lists[f"{split}1"].append(rel)
            mini.labels[_rel(root, data / "images" / rel)] = label
            mini.splits[_rel(root, data / "images" / rel)] = "test" if split == "test" else "train"
        extra = f"{cls}/{cls}_0004.jpg"  # listed only in partition 2: not part of split 1
        write_image(data / "images" / extra, 4)
        lists["train2"].append(extra)
        mini.unused.add(_rel(root, data / "images" / extra))
    for name, lines in lists.items():
        write_text(data / "labels" / f"{name}.txt", lines)
    return mini


EUROSAT_FOLDERS = [
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
]


def build_eurosat(root: Path) -> Miniature:
    base = root / "eurosat" / "2750"
    mini = Miniature(
        EuroSat(train_per_class=3, test_per_class=2), n_train=30, n_test=20, listed=False
    )
    for label, folder in enumerate(EUROSAT_FOLDERS):
        for i in range(1, 7):
            path = base / folder / f"{folder}_{i}.jpg"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
    return mini


def build_fgvc(root: Path) -> Miniature:
    data = root / "fgvc-aircraft-2013b" / "data"
    variants = names("fgvc")
    write_text(data / "variants.txt", variants)
    mini = Miniature(get_dataset("fgvc"), n_train=100, n_test=100)
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": [], "trainval": []}
    image_id = 1_000_000
    for label, variant in enumerate(variants):
        for split in ("train", "val", "test"):
            image_id += 1
            path = data / "images" / f"{image_id}.jpg"
            write_image(path, image_id)
            lists[split].append(f"{image_id} {variant}")
            if split != "test":
                lists["trainval"].append(f"{image_id} {variant}")
            if split == "val":
                mini.unused.add(_rel(root, path))
            else:
                mini.labels[_rel(root, path)] = label
                mini.splits[_rel(root, path)] = split
    for split, lines in lists.items():
        write_text(data / f"images_variant_{split}.txt", lines)
    return mini


def build_food101(root: Path) -> Miniature:
    base = root / "food-101"
    raw = [n.replace(" ", "_") for n in names("food101")]
    meta: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    mini = Miniature(get_dataset("food101"), n_train=202, n_test=101)
    for label, cls in enumerate(raw):
        for i, split in enumerate(("train", "train", "test")):
            rel = f"{cls}/{100 + i}"
            path = base / "images" / f"{rel}.jpg"
            write_image(path, i)
            meta[split].setdefault(cls, []).append(rel)
            mini.labels[_rel(root, path)] = label
            mini.splits[_rel(root, path)] = split
    for split, content in meta.items():
        (base / "meta").mkdir(parents=True, exist_ok=True)
        (base / "meta" / f"{split}.json").write_text(json.dumps(content))
    write_text(base / "meta" / "classes.txt", raw)
    return mini


def build_flowers(root: Path) -> Miniature:
    from scipy.io import savemat

    base = root / "flowers-102"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    mini = Miniature(get_dataset("flowers"), n_train=102, n_test=102)
    image_id = 0
    for label, name in enumerate(names("flowers")):
        for part, setid in (("train", "tstid"), ("val", "valid"), ("test", "trnid")):
            # setid.mat deliberately disagrees with CoOp's split: the protocol must use CoOp's
            image_id += 1
            fname = f"image_{image_id:05d}.jpg"
            write_image(base / "jpg" / fname, image_id)
            labels.append(label + 1)
            ids[setid].append(image_id)
            split[part].append([fname, label, name])
            rel = _rel(root, base / "jpg" / fname)
            if part == "val":
                mini.unused.add(rel)
            else:
                mini.labels[rel] = label
                mini.splits[rel] = part
    savemat(str(base / "imagelabels.mat"), {"labels": np.array([labels])})
    savemat(str(base / "setid.mat"), {k: np.array([v]) for k, v in ids.items()})
    (base / "split_zhou_OxfordFlowers.json").write_text(json.dumps(split))
    return mini


def build_pets(root: Path) -> Miniature:
    base = root / "oxford-iiit-pet"
    lists: dict[str, list[str]] = {"trainval": [], "test": []}
    mini = Miniature(get_dataset("pets"), n_train=37, n_test=37)
    for label, name in enumerate(names("pets")):
        raw = name.replace(" ", "_")
        species = 1 if raw[0].isupper() else 2  # cats are capitalised
        for i, split in enumerate(("trainval", "test"), start=1):
            image_id = f"{raw}_{i}"
            write_image(base / "images" / f"{image_id}.jpg", i)
            lists[split].append(f"{image_id} {label + 1} {species} {i}")
            rel = _rel(root, base / "images" / f"{image_id}.jpg")
            mini.labels[rel] = label
            mini.splits[rel] = "train" if split == "trainval" else "test"
    for split, lines in lists.items():
        write_text(base / "annotations" / f"{split}.txt", lines)
    write_text(
        base / "annotations" / "list.txt",
        ["#Image CLASS-ID SPECIES BREED ID", *lists["trainval"], *lists["test"]],
    )
    return mini


def sun_class_path(name: str) -> str:
    """Package name -> ClassName.txt entry: 'bow window (indoor)' -> '/b/bow_window/indoor'."""
    base, _, sub = name.partition(" (")
    path = f"/{base[0]}/{base.replace(' ', '_')}"
    return path + (f"/{sub.rstrip(')').replace(' ', '_')}" if sub else "")


def build_sun397(root: Path) -> Miniature:
    base = root / "SUN397"
    paths = [sun_class_path(n) for n in names("sun397")]
    write_text(base / "ClassName.txt", paths)
    mini = Miniature(get_dataset("sun397"), n_train=397 * 7, n_test=397 * 2, listed=False)
    for label, class_path in enumerate(paths):
        for i in range(10):
            path = base / class_path.strip("/") / f"sun_{label:03d}{i:02d}abc.jpg"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
    return mini


def build_cars(root: Path) -> Miniature:
    from scipy.io import savemat

    base = root / "stanford_cars"
    meta = [n.replace("Ram CV", "Ram C/V") for n in names("cars")]  # cars_meta.mat's spelling
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    mini = Miniature(get_dataset("cars"), n_train=196, n_test=196)
    for split, folder, annos in (
        ("train", "cars_train", base / "devkit" / "cars_train_annos.mat"),
        ("test", "cars_test", base / "cars_test_annos_withlabels.mat"),
    ):
        rows = np.zeros((1, len(meta)), dtype=[(f, "O") for f in fields])
        for label in range(len(meta)):
            fname = f"{label + 1:05d}.jpg"
            write_image(base / folder / fname, label)
            rows[0, label] = (1, 2, 10, 7, label + 1, fname)
            rel = _rel(root, base / folder / fname)
            mini.labels[rel] = label
            mini.splits[rel] = split
        annos.parent.mkdir(parents=True, exist_ok=True)
        savemat(str(annos), {"annotations": rows})
    class_names = np.empty((1, len(meta)), dtype=object)
    class_names[0, :] = meta
    savemat(str(base / "devkit" / "cars_meta.mat"), {"class_names": class_names})
    return mini


def _cifar(root: Path, key: str, folder: str, files: dict[str, int], meta: tuple[str, str]):
    """Pickled batches in the python-version format; ``files`` maps name -> images per class."""
    k = len(names(key))
    label_key = "labels" if key == "cifar10" else "fine_labels"
    base = root / folder
    base.mkdir(parents=True)
    mini = Miniature(get_dataset(key), n_train=0, n_test=0)
    counts = {"train": 0, "test": 0}
    for name, per_class in files.items():
        split = "test" if "test" in name else "train"
        labels = [(c * 7 + i) % k for i in range(per_class) for c in range(k)]  # shuffled order
        data = np.random.default_rng(len(name)).integers(
            0, 256, (len(labels), 3072), dtype=np.uint8
        )
        with (base / name).open("wb") as handle:
            pickle.dump({"data": data, label_key: labels, "filenames": []}, handle)
        for label in labels:  # images are written as <key>_png/<split>/<index>.png
            rel = f"{key}_png/{split}/{counts[split]:05d}.png"
            mini.labels[rel], mini.splits[rel] = label, split
            counts[split] += 1
    meta_file, meta_key = meta
    raw = [n.replace(" ", "_") for n in names(key)]
    with (base / meta_file).open("wb") as handle:
        pickle.dump({meta_key: raw}, handle)
    mini.n_train, mini.n_test = counts["train"], counts["test"]
    return mini


def build_cifar10(root: Path) -> Miniature:
    files = {f"data_batch_{i}": 1 for i in range(1, 6)} | {"test_batch": 1}
    return _cifar(root, "cifar10", "cifar-10-batches-py", files, ("batches.meta", "label_names"))


def build_cifar100(root: Path) -> Miniature:
    files = {"train": 2, "test": 1}
    return _cifar(root, "cifar100", "cifar-100-python", files, ("meta", "fine_label_names"))


def build_gtsrb(root: Path) -> Miniature:
    base = root / "gtsrb"
    mini = Miniature(get_dataset("gtsrb"), n_train=86, n_test=43)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for label in range(43):
        folder = base / "GTSRB" / "Training" / f"{label:05d}"
        for i in range(2):
            path = folder / f"00000_{i:05d}.ppm"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
            mini.splits[_rel(root, path)] = "train"
        write_text(folder / f"GT-{label:05d}.csv", ["Filename;Width;Height;ClassId"])
        test = base / "GTSRB" / "Final_Test" / "Images" / f"{label:05d}.ppm"
        write_image(test, label)
        rows.append(f"{label:05d}.ppm;12;8;1;1;11;7;{label}")
        mini.labels[_rel(root, test)] = label
        mini.splits[_rel(root, test)] = "test"
    write_text(base / "GT-final_test.csv", rows)
    return mini


# --- layouts torchvision does not have ----------------------------------------------------


def build_imagenet(root: Path) -> Miniature:
    base = root / "imagenet"
    mini = Miniature(ImageNet(train_per_class=2), n_train=2000, n_test=1000, listed=False)
    for label, wnid in enumerate(wnids()):
        for i in range(3):
            path = base / "train" / wnid / f"{wnid}_{i}.JPEG"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
        path = base / "val" / wnid / f"ILSVRC2012_val_{label + 1:08d}.JPEG"
        write_image(path, label)
        mini.labels[_rel(root, path)] = label
        mini.splits[_rel(root, path)] = "test"
    return mini


UCF_RAW = {"Hand Stand Pushups": ("Handstand_Pushups", "HandStandPushups")}


def build_ucf101(root: Path) -> Miniature:
    base = root / "ucf101"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    mini = Miniature(get_dataset("ucf101"), n_train=101, n_test=101)
    for label, name in enumerate(names("ucf101")):
        folder, video = UCF_RAW.get(name, (name.replace(" ", "_"), name.replace(" ", "")))
        for g, part in enumerate(("train", "val", "test"), start=1):
            rel = f"{folder}/v_{video}_g{g:02d}_c01.jpg"
            path = base / "UCF-101-midframes" / rel
            write_image(path, g)
            split[part].append([rel, label, folder])
            if part == "val":
                mini.unused.add(_rel(root, path))
            else:
                mini.labels[_rel(root, path)] = label
                mini.splits[_rel(root, path)] = part
    (base / "split_zhou_UCF101.json").write_text(json.dumps(split))
    return mini


def build_cub(root: Path) -> Miniature:
    base = root / "CUB_200_2011"
    classes, images, labels, is_train = [], [], [], []
    mini = Miniature(get_dataset("cub"), n_train=200, n_test=200)
    image_id = 0
    for label, name in enumerate(names("cub")):
        folder = f"{label + 1:03d}.{name.replace(' ', '_')}"
        classes.append(f"{label + 1} {folder}")
        for i, split in ((1, "train"), (2, "test")):
            image_id += 1
            rel = f"{folder}/{name.replace(' ', '_')}_{i:04d}_{image_id}.jpg"
            write_image(base / "images" / rel, image_id)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {label + 1}")
            is_train.append(f"{image_id} {1 if split == 'train' else 0}")
            mini.labels[_rel(root, base / "images" / rel)] = label
            mini.splits[_rel(root, base / "images" / rel)] = split
    write_text(base / "classes.txt", classes)
    write_text(base / "images.txt", images)
    write_text(base / "image_class_labels.txt", labels)
    write_text(base / "train_test_split.txt", is_train)
    return mini


AID_FOLDERS = [
    "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church",
    "Commercial", "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow",
    "MediumResidential", "Mountain", "Park", "Parking", "Playground", "Pond", "Port",
    "RailwayStation", "Resort", "River", "School", "SparseResidential", "Square", "Stadium",
    "StorageTanks", "Viaduct",
]  # fmt: skip


def _folder_split(root: Path, key: str, folders: list[str]) -> Miniature:
    base = root / key
    mini = Miniature(get_dataset(key), n_train=len(folders), n_test=len(folders), listed=False)
    for label, folder in enumerate(folders):
        for split in ("train", "test"):
            path = base / split / folder / f"{folder.lower()}_{split}_001.jpg"
            write_image(path, label)
            mini.labels[_rel(root, path)] = label
            mini.splits[_rel(root, path)] = split
    return mini


def build_birdsnap(root: Path) -> Miniature:
    # the species folders of Birdsnap's download script keep apostrophes out and use underscores
    return _folder_split(root, "birdsnap", [n.replace(" ", "_") for n in names("birdsnap")])


def build_resisc45(root: Path) -> Miniature:
    return _folder_split(root, "resisc45", [n.replace(" ", "_") for n in names("resisc45")])


def build_aid(root: Path) -> Miniature:
    return _folder_split(root, "aid", AID_FOLDERS)


LAYOUTS: dict[str, Callable[[Path], Miniature]] = {
    "aid": build_aid,
    "birdsnap": build_birdsnap,
    "caltech101": build_caltech101,
    "cars": build_cars,
    "cifar10": build_cifar10,
    "cifar100": build_cifar100,
    "cub": build_cub,
    "dtd": build_dtd,
    "eurosat": build_eurosat,
    "fgvc": build_fgvc,
    "flowers": build_flowers,
    "food101": build_food101,
    "gtsrb": build_gtsrb,
    "imagenet": build_imagenet,
    "pets": build_pets,
    "resisc45": build_resisc45,
    "sun397": build_sun397,
    "ucf101": build_ucf101,
}
