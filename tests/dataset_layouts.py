"""Miniature copies of each dataset's real on-disk layout, for tests without real data.

Each builder writes, under a data root, the folder and file names and annotation formats
of the real dataset (torchvision's layout where torchvision has the class) with a few tiny
generated images per class, and returns a ``Miniature``: the spec to read it with (the
registered one, or a copy with miniature per-class counts) and the truth the manifest must
reproduce.

Raw class names (folders, class lists, annotation strings) are written as the real
downloads spell them, which is often not the package's spelling (the prompts' words). Each
builder takes them from a table of the real names, or from the package's names through the
dataset's own spelling rule plus a table of the names the rule gets wrong; the comment at
each table or rule says where the real spelling comes from. A package name that the real
files spell differently and no table lists would make the miniature agree with the package
and hide the mismatch (CUB's "141.Artic_Tern" was missed that way), so tests/
test_datasets.py checks the quirks below against its own list of real spellings.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from collections import Counter
from collections.abc import Callable, Mapping
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
    # the class identifiers written to disk (folder, class-list entry or annotation string),
    # in label order: the real download's spelling, not the package's
    raw: list[str] = field(default_factory=list)
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


def spelled(key: str, rule: Callable[[str], str], wrong: Mapping[str, str] | None = None):
    """The real spelling of each class, in label order: ``rule`` applied to the package's
    name, except for the names in ``wrong`` (package name -> real spelling)."""
    names = get_dataset(key).classes()
    wrong = dict(wrong or {})
    stale = sorted(set(wrong) - set(names))
    assert not stale, f"{key}: spelling table lists names the package does not have: {stale}"
    return [wrong.get(name, rule(name)) for name in names]


def underscores(name: str) -> str:
    return name.replace(" ", "_")


def verbatim(name: str) -> str:
    return name


# --- torchvision layouts ------------------------------------------------------------------

# The folders of 101_ObjectCategories/ in caltech-101.zip (torchvision.datasets.Caltech101
# downloads it and labels sorted(os.listdir()), capitals first), less the two the protocol
# drops; the real spellings include plurals ("Leopards", "airplanes"), short forms
# ("car_side", "yin_yang") and the archive's own typo "water_lilly".
CALTECH_FOLDERS = [
    "Faces", "Leopards", "Motorbikes", "accordion", "airplanes", "anchor", "ant", "barrel",
    "bass", "beaver", "binocular", "bonsai", "brain", "brontosaurus", "buddha", "butterfly",
    "camera", "cannon", "car_side", "ceiling_fan", "cellphone", "chair", "chandelier",
    "cougar_body", "cougar_face", "crab", "crayfish", "crocodile", "crocodile_head", "cup",
    "dalmatian", "dollar_bill", "dolphin", "dragonfly", "electric_guitar", "elephant", "emu",
    "euphonium", "ewer", "ferry", "flamingo", "flamingo_head", "garfield", "gerenuk",
    "gramophone", "grand_piano", "hawksbill", "headphone", "hedgehog", "helicopter", "ibis",
    "inline_skate", "joshua_tree", "kangaroo", "ketch", "lamp", "laptop", "llama", "lobster",
    "lotus", "mandolin", "mayfly", "menorah", "metronome", "minaret", "nautilus", "octopus",
    "okapi", "pagoda", "panda", "pigeon", "pizza", "platypus", "pyramid", "revolver", "rhino",
    "rooster", "saxophone", "schooner", "scissors", "scorpion", "sea_horse", "snoopy",
    "soccer_ball", "stapler", "starfish", "stegosaurus", "stop_sign", "strawberry",
    "sunflower", "tick", "trilobite", "umbrella", "watch", "water_lilly", "wheelchair",
    "wild_cat", "windsor_chair", "wrench", "yin_yang",
]  # fmt: skip
CALTECH_DROPPED = ["BACKGROUND_Google", "Faces_easy"]  # real folders that are not classes


def build_caltech101(root: Path) -> Miniature:
    base = root / "caltech101" / "101_ObjectCategories"
    assert len(CALTECH_FOLDERS) == 100 and sorted(CALTECH_FOLDERS) == CALTECH_FOLDERS
    mini = Miniature(Caltech101(train_per_class=2), n_train=200, n_test=200, listed=False)
    mini.raw = list(CALTECH_FOLDERS)
    for label, folder in enumerate(CALTECH_FOLDERS):
        for i in range(1, 5):
            path = base / folder / f"image_{i:04d}.jpg"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
    for excluded in CALTECH_DROPPED:
        for i in range(1, 4):
            path = base / excluded / f"image_{i:04d}.jpg"
            write_image(path, i)
            mini.unused.add(_rel(root, path))
    return mini


# The 47 folders of dtd/images/ in dtd-r1.0.1.tar.gz (torchvision.datasets.DTD labels them
# in sorted order); one carries a hyphen, "polka-dotted", in folder and file names alike.
DTD_FOLDERS = [
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked",
    "crosshatched", "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly",
    "gauzy", "grid", "grooved", "honeycombed", "interlaced", "knitted", "lacelike", "lined",
    "marbled", "matted", "meshed", "paisley", "perforated", "pitted", "pleated",
    "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled", "sprinkled",
    "stained", "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven",
    "wrinkled", "zigzagged",
]  # fmt: skip


def build_dtd(root: Path) -> Miniature:
    data = root / "dtd" / "dtd"
    assert len(DTD_FOLDERS) == 47
    mini = Miniature(get_dataset("dtd"), n_train=94, n_test=47, raw=list(DTD_FOLDERS))
    lists: dict[str, list[str]] = {f"{s}{k}": [] for s in ("train", "val", "test") for k in (1, 2)}
    for label, cls in enumerate(DTD_FOLDERS):
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


# The class folders of 2750/ in torchvision's EuroSAT.zip (the RGB release), CamelCase.
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
    mini.raw = list(EUROSAT_FOLDERS)
    for label, folder in enumerate(EUROSAT_FOLDERS):
        for i in range(1, 7):
            path = base / folder / f"{folder}_{i}.jpg"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
    return mini


def build_fgvc(root: Path) -> Miniature:
    data = root / "fgvc-aircraft-2013b" / "data"
    # data/variants.txt of fgvc-aircraft-2013b is the package's list verbatim (CLIP and CuPL
    # keep the dataset's names), spaces and slashes included ("BAE 146-200", "F/A-18"); the
    # images_variant_*.txt lines "<image id> <variant>" split at the first space only
    variants = spelled("fgvc", verbatim)
    write_text(data / "variants.txt", variants)
    mini = Miniature(get_dataset("fgvc"), n_train=100, n_test=100, raw=variants)
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": [], "trainval": []}
    image_id = 56_000  # real ids are 7 digits with leading zeros ("0056978")
    for label, variant in enumerate(variants):
        for split in ("train", "val", "test"):
            image_id += 1
            path = data / "images" / f"{image_id:07d}.jpg"
            write_image(path, image_id)
            lists[split].append(f"{image_id:07d} {variant}")
            if split != "test":
                lists["trainval"].append(f"{image_id:07d} {variant}")
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
    # food-101/images/ folders and meta/classes.txt of food-101.tar.gz: the package's names
    # with underscores ("apple_pie", "creme_brulee"); meta/labels.txt has "Apple pie"
    raw = spelled("food101", underscores)
    meta: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    mini = Miniature(get_dataset("food101"), n_train=202, n_test=101, raw=raw)
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
    write_text(base / "meta" / "labels.txt", [c.replace("_", " ").capitalize() for c in raw])
    return mini


# The third field of CoOp's split_zhou_OxfordFlowers.json is the class name from the
# cat_to_name.json that CoOp's DATASETS.md links (datasets/oxford_flowers.py: lab2cname);
# the package's names (CuPL's keys, CLIP's names) differ for these four. The parser reads
# only the 0-based label in the second field, so the names need not match.
FLOWERS_COOP_NAMES = {
    "globe flower": "globe-flower",
    "pink and yellow dahlia": "pink-yellow dahlia",
    "lotus": "lotus lotus",
    "air plant": "ball moss",
}


def build_flowers(root: Path) -> Miniature:
    from scipy.io import savemat

    base = root / "flowers-102"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    raw = spelled("flowers", verbatim, FLOWERS_COOP_NAMES)
    mini = Miniature(get_dataset("flowers"), n_train=102, n_test=102, raw=raw)
    image_id = 0
    for label, name in enumerate(raw):
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
    # image ids in images.tar.gz and annotations/*.txt are "<breed>_<n>", the breed with
    # underscores and cats capitalised ("Abyssinian_100", "american_bulldog_1"); a line is
    # "<id> <class id 1-37> <species 1 = cat, 2 = dog> <breed id within the species>"
    raw = spelled("pets", underscores)
    mini = Miniature(get_dataset("pets"), n_train=37, n_test=37, raw=raw)
    breed_ids: Counter[int] = Counter()
    for label, breed in enumerate(raw):
        species = 1 if breed[0].isupper() else 2
        breed_ids[species] += 1
        for i, split in enumerate(("trainval", "test"), start=1):
            image_id = f"{breed}_{i}"
            write_image(base / "images" / f"{image_id}.jpg", i)
            lists[split].append(f"{image_id} {label + 1} {species} {breed_ids[species]}")
            rel = _rel(root, base / "images" / f"{image_id}.jpg")
            mini.labels[rel] = label
            mini.splits[rel] = "train" if split == "trainval" else "test"
    for split, lines in lists.items():
        write_text(base / "annotations" / f"{split}.txt", lines)
    header = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids", "#SPECIES: 1:Cat 2:Dog"]
    write_text(base / "annotations" / "list.txt", [*header, *lists["trainval"], *lists["test"]])
    return mini


def sun_class_path(name: str) -> str:
    """Package name -> ClassName.txt entry: 'bow window (indoor)' -> '/b/bow_window/indoor'.

    The rule holds for all 397 entries of SUN397.tar.gz's ClassName.txt, including its own
    misspellings, which the package keeps ('/t/theater/indoor_procenium',
    '/k/kindergarden_classroom') and its dropped apostrophes ('/b/batters_box').
    """
    base, _, sub = name.partition(" (")
    path = f"/{base[0]}/{base.replace(' ', '_')}"
    return path + (f"/{sub.rstrip(')').replace(' ', '_')}" if sub else "")


def build_sun397(root: Path) -> Miniature:
    base = root / "SUN397"
    paths = spelled("sun397", sun_class_path)
    write_text(base / "ClassName.txt", paths)
    mini = Miniature(
        get_dataset("sun397"), n_train=397 * 7, n_test=397 * 2, listed=False, raw=paths
    )
    for label, class_path in enumerate(paths):
        for i in range(10):
            path = base / class_path.strip("/") / f"sun_{label:03d}{i:02d}abc.jpg"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
    return mini


# devkit/cars_meta.mat class_names (car_devkit.tgz) are the package's names ("Make Model
# Type Year"), except one with a slash, which CuPL's keys drop.
CARS_META_NAMES = {"Ram CV Cargo Van Minivan 2012": "Ram C/V Cargo Van Minivan 2012"}


def build_cars(root: Path) -> Miniature:
    from scipy.io import savemat

    base = root / "stanford_cars"
    meta = spelled("cars", verbatim, CARS_META_NAMES)
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    mini = Miniature(get_dataset("cars"), n_train=196, n_test=196, raw=meta)
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


# batches.meta label_names of cifar-10-python.tar.gz
CIFAR10_LABEL_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


CIFAR100_COARSE_NAMES = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
]  # fmt: skip


def _cifar(root: Path, key: str, folder: str, files: dict[str, int], meta: dict[str, list]):
    """Pickled batches in the python-version format; ``files`` maps name -> images per class,
    ``meta`` the meta pickle's content, its first list the class names in label order."""
    raw = next(iter(meta.values()))
    k = len(raw)
    label_key = "labels" if key == "cifar10" else "fine_labels"
    base = root / folder
    base.mkdir(parents=True)
    mini = Miniature(get_dataset(key), n_train=0, n_test=0, raw=list(raw))
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
    meta_file = "batches.meta" if key == "cifar10" else "meta"
    with (base / meta_file).open("wb") as handle:
        pickle.dump(meta, handle)
    mini.n_train, mini.n_test = counts["train"], counts["test"]
    return mini


def build_cifar10(root: Path) -> Miniature:
    files = {f"data_batch_{i}": 1 for i in range(1, 6)} | {"test_batch": 1}
    meta = {"label_names": CIFAR10_LABEL_NAMES, "num_cases_per_batch": 10_000, "num_vis": 3072}
    return _cifar(root, "cifar10", "cifar-10-batches-py", files, meta)


def build_cifar100(root: Path) -> Miniature:
    files = {"train": 2, "test": 1}
    # meta of cifar-100-python.tar.gz: fine_label_names are the package's names with
    # underscores ("aquarium_fish", "willow_tree"), coarse_label_names the 20 superclasses
    fine = spelled("cifar100", underscores)
    meta = {"fine_label_names": fine, "coarse_label_names": CIFAR100_COARSE_NAMES}
    return _cifar(root, "cifar100", "cifar-100-python", files, meta)


def build_gtsrb(root: Path) -> Miniature:
    base = root / "gtsrb"
    # torchvision.datasets.GTSRB's downloads: GTSRB-Training_fixed.zip has one folder per
    # class, named by the class id ("00000".."00042", each with its GT-<id>.csv); the test
    # images are GTSRB/Final_Test/Images/<nnnnn>.ppm (that folder also holds the label-less
    # GT-final_test.test.csv) and their labels GT-final_test.csv in the dataset folder
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"
    folders = [f"{label:05d}" for label in range(43)]
    mini = Miniature(get_dataset("gtsrb"), n_train=86, n_test=43, raw=folders)
    rows, unlabelled = [header], [header.rsplit(";", 1)[0]]
    for label, name in enumerate(folders):
        folder = base / "GTSRB" / "Training" / name
        for i in range(2):
            path = folder / f"00000_{i:05d}.ppm"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
            mini.splits[_rel(root, path)] = "train"
        write_text(
            folder / f"GT-{name}.csv",
            [header, *(f"00000_{i:05d}.ppm;12;8;1;1;11;7;{label}" for i in range(2))],
        )
        test = base / "GTSRB" / "Final_Test" / "Images" / f"{label:05d}.ppm"
        write_image(test, label)
        rows.append(f"{label:05d}.ppm;12;8;1;1;11;7;{label}")
        unlabelled.append(f"{label:05d}.ppm;12;8;1;1;11;7")
        mini.labels[_rel(root, test)] = label
        mini.splits[_rel(root, test)] = "test"
    write_text(base / "GT-final_test.csv", rows)
    write_text(base / "GTSRB" / "Final_Test" / "Images" / "GT-final_test.test.csv", unlabelled)
    return mini


# --- layouts torchvision does not have ----------------------------------------------------


def build_imagenet(root: Path) -> Miniature:
    base = root / "imagenet"
    # train/ and val/ hold one folder per WordNet id (ILSVRC2012_img_train.tar's member
    # tars; the val images sorted into the same folders as torchvision.datasets.ImageNet
    # does with the devkit), labelled in sorted wnid order; the package ships the 1,000
    # ids as meta/imagenet_wnids.json, the real folder names
    mini = Miniature(ImageNet(train_per_class=2), n_train=2000, n_test=1000, listed=False)
    mini.raw = wnids()
    for label, wnid in enumerate(mini.raw):
        for i in range(3):
            path = base / "train" / wnid / f"{wnid}_{i}.JPEG"
            write_image(path, i)
            mini.labels[_rel(root, path)] = label
        path = base / "val" / wnid / f"ILSVRC2012_val_{label + 1:08d}.JPEG"
        write_image(path, label)
        mini.labels[_rel(root, path)] = label
        mini.splits[_rel(root, path)] = "test"
    return mini


# ucfTrainTestlist/classInd.txt of UCF101: the 101 action names in label order (1-based),
# CamelCase as the video folders and files of UCF101.rar are named.
UCF_CLASSIND = [
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam",
    "BandMarching", "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress", "Biking",
    "Billiards", "BlowDryHair", "BlowingCandles", "BodyWeightSquats", "Bowling",
    "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke", "BrushingTeeth", "CleanAndJerk",
    "CliffDiving", "CricketBowling", "CricketShot", "CuttingInKitchen", "Diving", "Drumming",
    "Fencing", "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch", "FrontCrawl",
    "GolfSwing", "Haircut", "Hammering", "HammerThrow", "HandstandPushups",
    "HandstandWalking", "HeadMassage", "HighJump", "HorseRace", "HorseRiding", "HulaHoop",
    "IceDancing", "JavelinThrow", "JugglingBalls", "JumpingJack", "JumpRope", "Kayaking",
    "Knitting", "LongJump", "Lunges", "MilitaryParade", "Mixing", "MoppingFloor",
    "Nunchucks", "ParallelBars", "PizzaTossing", "PlayingCello", "PlayingDaf", "PlayingDhol",
    "PlayingFlute", "PlayingGuitar", "PlayingPiano", "PlayingSitar", "PlayingTabla",
    "PlayingViolin", "PoleVault", "PommelHorse", "PullUps", "Punch", "PushUps", "Rafting",
    "RockClimbingIndoor", "RopeClimbing", "Rowing", "SalsaSpin", "ShavingBeard", "Shotput",
    "SkateBoarding", "Skiing", "Skijet", "SkyDiving", "SoccerJuggling", "SoccerPenalty",
    "StillRings", "SumoWrestling", "Surfing", "Swing", "TableTennisShot", "TaiChi",
    "TennisSwing", "ThrowDiscus", "TrampolineJumping", "Typing", "UnevenBars",
    "VolleyballSpiking", "WalkingWithDog", "WallPushups", "WritingOnBoard", "YoYo",
]  # fmt: skip
# The one class whose video files do not repeat the folder's name: UCF101's
# HandstandPushups/ holds v_HandStandPushups_gNN_cNN.avi.
UCF_VIDEO_NAMES = {"HandstandPushups": "HandStandPushups"}


def coop_frames_folder(action: str) -> str:
    """CoOp's UCF-101-midframes folder of a classInd action: the name cut before each
    capital and joined by underscores ('ApplyEyeMakeup' -> 'Apply_Eye_Makeup', 'YoYo' ->
    'Yo_Yo'); CoOp's split file repeats it as the class name (datasets/ucf101.py)."""
    return "_".join(re.split(r"(?=[A-Z])", action)[1:])


def build_ucf101(root: Path) -> Miniature:
    base = root / "ucf101"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    assert len(UCF_CLASSIND) == 101
    folders = [coop_frames_folder(action) for action in UCF_CLASSIND]
    mini = Miniature(get_dataset("ucf101"), n_train=101, n_test=101, raw=folders)
    for label, (action, folder) in enumerate(zip(UCF_CLASSIND, folders, strict=True)):
        video = UCF_VIDEO_NAMES.get(action, action)
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


# CUB_200_2011.tgz's classes.txt lines are "<id> <id:03d>.<name>", the same string naming
# the image folder; <name> is the package's name with underscores except where the
# archive's words differ: its typo "141.Artic_Tern" (in every public copy).
CUB_ARCHIVE_NAMES = {"Arctic Tern": "Artic_Tern"}


def build_cub(root: Path) -> Miniature:
    base = root / "CUB_200_2011"
    classes, images, labels, is_train = [], [], [], []
    words = spelled("cub", underscores, CUB_ARCHIVE_NAMES)
    folders = [f"{number:03d}.{name}" for number, name in enumerate(words, start=1)]
    mini = Miniature(get_dataset("cub"), n_train=200, n_test=200, raw=folders)
    image_id = 0
    for label, (name, folder) in enumerate(zip(words, folders, strict=True)):
        classes.append(f"{label + 1} {folder}")
        for i, split in ((1, "train"), (2, "test")):
            image_id += 1
            rel = f"{folder}/{name}_{i:04d}_{image_id}.jpg"
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


# The class folders of AID.zip (captain-whu.github.io/AID), CamelCase.
AID_FOLDERS = [
    "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church",
    "Commercial", "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow",
    "MediumResidential", "Mountain", "Park", "Parking", "Playground", "Pond", "Port",
    "RailwayStation", "Resort", "River", "School", "SparseResidential", "Square", "Stadium",
    "StorageTanks", "Viaduct",
]  # fmt: skip


def _folder_split(root: Path, key: str, folders: list[str]) -> Miniature:
    """The user's split of a folder-per-class archive: the archive's class folders and file
    names, one image per class under train/ and one under test/."""
    base = root / key
    mini = Miniature(get_dataset(key), n_train=len(folders), n_test=len(folders), listed=False)
    mini.raw = list(folders)
    for label, folder in enumerate(folders):
        for n, split in enumerate(("train", "test"), start=1):
            path = base / split / folder / f"{folder.lower()}_{n:03d}.jpg"
            write_image(path, label)
            mini.labels[_rel(root, path)] = label
            mini.splits[_rel(root, path)] = split
    return mini


def build_birdsnap(root: Path) -> Miniature:
    # Birdsnap ships image URLs (get_birdsnap.py fetches them), not an archive, so there is
    # no canonical folder spelling: the miniature uses the package's names (CuPL's keys,
    # which drop the apostrophes of common names like "Allen's Hummingbird") with
    # underscores; the parser matches folders ignoring case and punctuation either way
    return _folder_split(root, "birdsnap", spelled("birdsnap", underscores))


def build_resisc45(root: Path) -> Miniature:
    # NWPU-RESISC45.rar's class folders (and file prefixes): lowercase with underscores
    # ("baseball_diamond", "sea_ice"), the package's names with underscores
    return _folder_split(root, "resisc45", spelled("resisc45", underscores))


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
