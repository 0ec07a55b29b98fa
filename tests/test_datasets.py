"""Dataset registry, protocol splits, prepare checks, custom datasets and the image cache.

No real data: every dataset is read from a miniature copy of its real on-disk layout
(tests/dataset_layouts.py). Nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from dataset_layouts import LAYOUTS, Miniature, write_image
from PIL import Image

from microclip.data import DATASETS, DatasetError, get_dataset
from microclip.data.base import read_manifest
from microclip.data.cache import ImageCache, build_image_cache
from microclip.data.caltech101 import Caltech101
from microclip.data.custom import custom_dataset_from_config
from microclip.data.eurosat import EuroSat
from microclip.data.layout import rank_by_hash
from microclip.data.prepare import datasets_table, prepare_dataset
from microclip.errors import DataError

# The generated demo dataset has no download whose layout a miniature could imitate:
# microclip/data/fashion_shift.py builds it from Debian's Fashion-MNIST files, and
# tests/test_workflow.py prepares and runs it end to end. Every other registered dataset
# must have a miniature in tests/dataset_layouts.py.
NO_MINIATURE = {"fashion_shift"}
DOWNLOADED = [key for key in DATASETS.names() if key not in NO_MINIATURE]
PACKAGE_DATA = Path(__file__).resolve().parents[1] / "microclip" / "data"

# ../shared/spec/datasets.md: class counts and template counts of the paper's datasets (an
# independent oracle where it has an entry; a dataset added later needs none)
SPEC_K = {
    "imagenet": 1000, "caltech101": 100, "dtd": 47, "eurosat": 10, "fgvc": 100,
    "food101": 101, "flowers": 102, "pets": 37, "sun397": 397, "cars": 196, "cifar10": 10,
    "cifar100": 100, "ucf101": 101, "birdsnap": 500, "cub": 200, "resisc45": 45,
    "gtsrb": 43, "aid": 30,
}  # fmt: skip
SPEC_TEMPLATES = {
    "imagenet": 80, "ucf101": 48, "caltech101": 34, "cifar10": 18, "cifar100": 18,
    "resisc45": 18, "aid": 18, "dtd": 8, "cars": 8, "eurosat": 3, "sun397": 2, "fgvc": 2,
    "food101": 1, "pets": 1, "flowers": 1, "cub": 1, "birdsnap": 1, "gtsrb": 1,
}  # fmt: skip
PAPER13 = [
    "imagenet", "caltech101", "dtd", "eurosat", "fgvc", "food101", "flowers", "pets",
    "sun397", "cars", "cifar10", "cifar100", "ucf101",
]  # fmt: skip
FINEGRAINED_EXTRA = ["birdsnap", "cub", "resisc45"]
# CuPL's published description files (reference copies, never part of the package)
CUPL_DIR = Path(
    os.environ.get("MICROCLIP_CUPL_DIR", Path(__file__).resolve().parents[2] / "shared/data/cupl")
)
CUPL_FILES = {
    "caltech101": "cal_prompts_full.json", "dtd": "texture_prompts_full.json",
    "fgvc": "airplane_prompts_full.json", "food101": "food_prompts_full.json",
    "flowers": "flower_prompts_full.json", "pets": "pets_prompts_full.json",
    "sun397": "sun_prompts_full.json", "cars": "cars_prompts_full.json",
    "cifar10": "cifar10_prompts_full.json", "cifar100": "cifar100_prompts_full.json",
    "ucf101": "ucf_prompts_full.json", "birdsnap": "bird_prompts_full.json",
    "resisc45": "res45_prompts_full.json",
}  # fmt: skip


# How each real download spells some of its classes on disk (folder names, class lists,
# annotation strings), as (package class name, real spelling): facts about the public
# files, written down independently of the builders' rules and tables, and chosen where
# the spelling is not simply the package's name (or is one of its quirks).
REAL_SPELLINGS: dict[str, list[tuple[str, str]]] = {
    # AID.zip: CamelCase class folders
    "aid": [("bare land", "BareLand"), ("storage tanks", "StorageTanks")],
    # no archive (Birdsnap ships URLs): the user's species folders, here with underscores
    "birdsnap": [
        ("Allens Hummingbird", "Allens_Hummingbird"), ("Annas Hummingbird", "Annas_Hummingbird"),
    ],
    # caltech-101.zip, 101_ObjectCategories/ folders
    "caltech101": [
        ("off-center face", "Faces"), ("leopard", "Leopards"), ("motorbike", "Motorbikes"),
        ("airplane", "airplanes"), ("side of a car", "car_side"),
        ("water lilly", "water_lilly"), ("yin and yang symbol", "yin_yang"),
    ],
    # car_devkit.tgz, cars_meta.mat class_names
    "cars": [
        ("AM General Hummer SUV 2000", "AM General Hummer SUV 2000"),
        ("Ram CV Cargo Van Minivan 2012", "Ram C/V Cargo Van Minivan 2012"),
    ],
    # cifar-10-python.tar.gz, batches.meta label_names
    "cifar10": [("airplane", "airplane"), ("automobile", "automobile"), ("truck", "truck")],
    # cifar-100-python.tar.gz, meta fine_label_names
    "cifar100": [("aquarium fish", "aquarium_fish"), ("willow tree", "willow_tree")],
    # CUB_200_2011.tgz, classes.txt = images/ folder names (class 141 misspelled there)
    "cub": [
        ("Black footed Albatross", "001.Black_footed_Albatross"),
        ("Geococcyx", "110.Geococcyx"),
        ("Arctic Tern", "141.Artic_Tern"),
        ("Common Yellowthroat", "200.Common_Yellowthroat"),
    ],
    # dtd-r1.0.1.tar.gz, images/ folders
    "dtd": [("banded", "banded"), ("polka-dotted", "polka-dotted")],
    # EuroSAT.zip, 2750/ folders
    "eurosat": [
        ("Annual Crop Land", "AnnualCrop"), ("Highway or Road", "Highway"),
        ("Sea or Lake", "SeaLake"),
    ],
    # fgvc-aircraft-2013b.tar.gz, data/variants.txt
    "fgvc": [("707-320", "707-320"), ("BAE 146-200", "BAE 146-200"), ("F/A-18", "F/A-18")],
    # CoOp's split_zhou_OxfordFlowers.json, third field (cat_to_name.json names)
    "flowers": [
        ("pink primrose", "pink primrose"), ("globe flower", "globe-flower"),
        ("pink and yellow dahlia", "pink-yellow dahlia"), ("lotus", "lotus lotus"),
        ("air plant", "ball moss"),
    ],
    # food-101.tar.gz, images/ folders and meta/classes.txt
    "food101": [("apple pie", "apple_pie"), ("hot and sour soup", "hot_and_sour_soup")],
    # GTSRB-Training_fixed.zip, Training/ folders named by class id
    "gtsrb": [
        ("red and white circle 20 kph speed limit", "00000"), ("stop", "00014"),
        ("white circle with gray strike bar indicating no passing for trucks has ended", "00042"),
    ],
    # ILSVRC2012 train/ and val/ folders (WordNet ids)
    "imagenet": [("tench", "n01440764"), ("toilet paper", "n15075141")],
    # Oxford-IIIT Pet image ids "<breed>_<n>" (cats capitalised)
    "pets": [
        ("Abyssinian", "Abyssinian"), ("american bulldog", "american_bulldog"),
        ("British Shorthair", "British_Shorthair"), ("german shorthaired", "german_shorthaired"),
    ],
    # NWPU-RESISC45.rar class folders
    "resisc45": [("sea ice", "sea_ice"), ("thermal power station", "thermal_power_station")],
    # SUN397.tar.gz, ClassName.txt (with the dataset's own misspellings)
    "sun397": [
        ("abbey", "/a/abbey"), ("apartment building (outdoor)", "/a/apartment_building/outdoor"),
        ("batters box", "/b/batters_box"), ("kindergarden classroom", "/k/kindergarden_classroom"),
        ("theater (indoor procenium)", "/t/theater/indoor_procenium"),
    ],
    # CoOp's UCF-101-midframes folders: classInd.txt names cut at capitals
    "ucf101": [
        ("Apply Eye Makeup", "Apply_Eye_Makeup"), ("Hand Stand Pushups", "Handstand_Pushups"),
        ("Yo Yo", "Yo_Yo"), ("Skijet", "Skijet"),
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Miniature]]:
    """Every miniature layout under one data root, built once for the read-only tests."""
    root = tmp_path_factory.mktemp("data")
    return root, {key: build(root) for key, build in LAYOUTS.items()}


def layout(key: str):
    """The miniature builder of a registered dataset; a dataset without one fails its tests."""
    if key not in LAYOUTS:
        pytest.fail(f"dataset '{key}' is registered but tests/dataset_layouts.py has no miniature")
    return LAYOUTS[key]


def miniature(built, key: str) -> tuple[Path, Miniature]:
    root, minis = built
    layout(key)
    return root, minis[key]


def by_rel(root: Path, samples) -> dict[str, int]:
    return {Path(s.path).relative_to(root).as_posix(): s.label for s in samples}


# --- registry, class names, templates -----------------------------------------------------


def test_registry_holds_every_benchmark_dataset() -> None:
    for key in [*PAPER13, *FINEGRAINED_EXTRA, "gtsrb", "aid"]:
        spec = get_dataset(key)
        assert spec.key == key
        assert spec.source in ("torchvision", "manual")
        assert spec.title


def test_every_registered_dataset_has_a_miniature_layout() -> None:
    missing = [key for key in DOWNLOADED if key not in LAYOUTS]
    assert not missing, f"registered datasets without a miniature in dataset_layouts.py: {missing}"
    assert sorted(LAYOUTS) == DOWNLOADED  # no layout for a dataset that is not registered
    assert all(get_dataset(key).source == "generated" for key in NO_MINIATURE)
    assert set(SPEC_K) <= set(DOWNLOADED) and set(SPEC_TEMPLATES) <= set(DOWNLOADED)


@pytest.mark.parametrize("key", DATASETS.names())
def test_classnames_json_length_equals_num_classes(key: str) -> None:
    spec = get_dataset(key)
    path = PACKAGE_DATA / "classnames" / f"{key}.json"
    names = json.loads(path.read_text(encoding="utf-8"))
    assert len(names) == spec.num_classes
    assert names == spec.classes()
    assert all(isinstance(n, str) and n == n.strip() and n for n in names)
    if key in SPEC_K:
        assert spec.num_classes == SPEC_K[key]


@pytest.mark.parametrize("key", [k for k in DATASETS.names() if k != "imagenet"])
def test_classnames_are_unique(key: str) -> None:
    # imagenet is exempt: CLIP's names repeat "missile" and "sunglasses", as CuPL's keys do
    names = get_dataset(key).classes()
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("key", DATASETS.names())
def test_templates_are_distinct_with_one_slot_and_count_follows_spec(key: str) -> None:
    templates = get_dataset(key).templates()
    assert templates
    assert len(set(templates)) == len(templates)
    assert all(t.count("{}") == 1 for t in templates)
    if key in SPEC_TEMPLATES:
        assert len(templates) == SPEC_TEMPLATES[key]


@pytest.mark.parametrize("key", sorted(CUPL_FILES))
def test_classnames_are_spelled_as_cupl_keys(key: str) -> None:
    path = CUPL_DIR / CUPL_FILES[key]
    if not path.is_file():
        pytest.skip(f"CuPL reference copy {path} not available")
    cupl = set(json.loads(path.read_text(encoding="utf-8")))
    names = set(get_dataset(key).classes())
    assert names <= cupl, sorted(names - cupl)[:5]
    if key != "caltech101":  # CuPL's caltech file also keys 'background' and 'centered face'
        assert names == cupl


def test_rank_by_hash_is_the_same_on_every_machine() -> None:
    # sha256-based: a pinned order, independent of PYTHONHASHSEED and numpy
    assert rank_by_hash(["a", "b", "c", "d"], seed=0, salt="x") == ["a", "d", "c", "b"]
    assert rank_by_hash(["a", "b", "c", "d"], seed=1, salt="x") == ["d", "c", "b", "a"]


# --- every layout parses into its protocol ------------------------------------------------


@pytest.mark.parametrize("key", DOWNLOADED)
def test_layout_parses_into_protocol_split(key: str, built) -> None:
    root, mini = miniature(built, key)
    manifest = mini.spec.build_manifest(root, seed=0)
    k = get_dataset(key).num_classes
    assert manifest.classes == get_dataset(key).classes()
    assert (len(manifest.train), len(manifest.test)) == (mini.n_train, mini.n_test)
    assert {s.label for s in manifest.train} == set(range(k))
    assert {s.label for s in manifest.test} == set(range(k))
    train, test = by_rel(root, manifest.train), by_rel(root, manifest.test)
    assert not set(train) & set(test)
    for rel, label in {**train, **test}.items():
        assert mini.labels[rel] == label, rel
    for rel, split in mini.splits.items():
        assert rel in (train if split == "train" else test), (rel, split)
    assert not mini.unused & (set(train) | set(test))
    assert all(Path(s.path).is_absolute() for s in manifest.train + manifest.test)


@pytest.mark.parametrize("key", DOWNLOADED)
def test_miniature_spells_classes_as_the_real_download_and_they_parse_to_package_labels(
    key: str, built
) -> None:
    root, mini = miniature(built, key)
    assert key in REAL_SPELLINGS, f"add spot checks of the real {key} download's class names"
    classes = get_dataset(key).classes()
    assert len(mini.raw) == len(classes)
    manifest = mini.spec.build_manifest(root, seed=0)
    parsed = by_rel(root, manifest.train + manifest.test)
    for name, real in REAL_SPELLINGS[key]:
        label = classes.index(name)  # label order is the package JSON's order
        assert mini.raw[label] == real, (name, mini.raw[label], real)
        filed = [rel for rel, truth in mini.labels.items() if truth == label and rel in parsed]
        assert filed, f"no image of '{real}' in the manifest"
        assert {parsed[rel] for rel in filed} == {label}, (real, name)
        if not mini.listed:  # a scanned layout: the class is the folder the image is in
            assert all(f"/{real.strip('/')}/" in f"/{rel}" for rel in filed), (real, filed[:1])


def test_cub_reads_the_archives_artic_tern_folder_as_arctic_tern(built) -> None:
    root, mini = miniature(built, "cub")
    base = root / "CUB_200_2011"
    assert "141 141.Artic_Tern" in (base / "classes.txt").read_text().splitlines()
    assert (base / "images" / "141.Artic_Tern").is_dir()
    manifest = mini.spec.build_manifest(root, seed=0)
    terns = {s.label for s in manifest.train + manifest.test if "/141.Artic_Tern/" in s.path}
    assert terns == {140} and manifest.classes[140] == "Arctic Tern"


@pytest.mark.parametrize(
    ("entry", "replacement", "loads"),
    [
        ("2 002.Laysan_Albatross", "2 002.Sooty_Albatross", False),
        ("141 141.Artic_Tern", "141 141.Antarctic_Tern", False),
        ("141 141.Artic_Tern", "141 141.Arctic_Tern", True),  # a copy with the typo fixed
    ],
)
def test_cub_class_check_is_strict_beyond_the_known_typo(
    entry: str, replacement: str, loads: bool, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    mini = layout("cub")(root)
    listing = root / "CUB_200_2011" / "classes.txt"
    lines = listing.read_text().splitlines()
    lines[lines.index(entry)] = replacement
    listing.write_text("\n".join(lines) + "\n")
    if loads:
        assert mini.spec.build_manifest(root, seed=0).classes[140] == "Arctic Tern"
    else:
        with pytest.raises(DatasetError, match=f"classes.txt id {entry.split()[0]} is"):
            mini.spec.build_manifest(root, seed=0)


@pytest.mark.parametrize("key", DOWNLOADED)
def test_prepare_checks_counts_only_when_asked(key: str, built, tmp_path: Path) -> None:
    root, mini = miniature(built, key)
    spec = mini.spec
    if spec.expected_train is not None:
        # the spec's full-dataset counts do not hold for the miniature copy
        with pytest.raises(DatasetError, match="the protocol has"):
            prepare_dataset(spec, root=root, out_dir=tmp_path / "full", verify=False)
    manifest = prepare_dataset(spec, root=root, out_dir=tmp_path / "m", check_counts=False)
    written = read_manifest(tmp_path / "m")
    assert written == manifest
    assert (tmp_path / "m" / "classes.json").is_file()


def test_prepare_accepts_a_registry_key_and_full_counts(tmp_path: Path) -> None:
    # dtd's miniature has the real file names but not the real counts; patch the counts in
    root = tmp_path / "data"
    mini = layout("dtd")(root)
    spec = type(mini.spec)()
    spec.expected_train, spec.expected_test = mini.n_train, mini.n_test
    manifest = prepare_dataset(spec, root=root, out_dir=tmp_path / "m")
    assert len(manifest.train) == mini.n_train
    with pytest.raises(DatasetError, match="3,760"):
        prepare_dataset("dtd", root=root, out_dir=tmp_path / "m2")


# --- protocol details ---------------------------------------------------------------------


def test_seeded_splits_are_deterministic_and_follow_the_seed(built) -> None:
    root, minis = built
    for key in ("caltech101", "eurosat", "sun397", "imagenet"):
        spec = minis[key].spec
        a, b = spec.build_manifest(root, seed=0), spec.build_manifest(root, seed=0)
        assert a == b, key
        c = spec.build_manifest(root, seed=1)
        assert {s.path for s in c.train} != {s.path for s in a.train}, key
        assert Counter(s.label for s in c.train) == Counter(s.label for s in a.train), key


def test_caltech_takes_a_fixed_number_per_class_and_drops_background(built) -> None:
    root, minis = built
    manifest = minis["caltech101"].spec.build_manifest(root, seed=0)
    assert set(Counter(s.label for s in manifest.train).values()) == {2}
    assert set(Counter(s.label for s in manifest.test).values()) == {2}
    paths = " ".join(s.path for s in manifest.train + manifest.test)
    assert "BACKGROUND_Google" not in paths and "Faces_easy" not in paths
    assert manifest.classes[0] == "off-center face"  # torchvision's sorted order: Faces first
    assert Caltech101().train_per_class == 30


def test_caltech_class_with_too_few_images_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "data"
    layout("caltech101")(root)
    with pytest.raises(DatasetError, match="holds 4 images"):
        Caltech101(train_per_class=4).build_manifest(root, seed=0)


def test_eurosat_is_class_balanced(built) -> None:
    root, minis = built
    manifest = minis["eurosat"].spec.build_manifest(root, seed=3)
    assert set(Counter(s.label for s in manifest.train).values()) == {3}
    assert set(Counter(s.label for s in manifest.test).values()) == {2}
    assert manifest.classes[0] == "Annual Crop Land"
    default = EuroSat()
    assert (default.train_per_class, default.test_per_class) == (1000, 500)


def test_sun397_splits_each_class_70_10_20(built) -> None:
    root, minis = built
    manifest = minis["sun397"].spec.build_manifest(root, seed=0)
    assert set(Counter(s.label for s in manifest.train).values()) == {7}
    assert set(Counter(s.label for s in manifest.test).values()) == {2}
    assert "apartment building (outdoor)" in manifest.classes


def test_imagenet_adapts_on_a_per_class_subset_and_scores_val(built) -> None:
    root, minis = built
    manifest = minis["imagenet"].spec.build_manifest(root, seed=0)
    assert set(Counter(s.label for s in manifest.train).values()) == {2}
    assert all("/train/" in s.path for s in manifest.train)
    assert all("/val/" in s.path for s in manifest.test)
    assert get_dataset("imagenet").train_per_class == 50


def test_unknown_class_folder_is_named(tmp_path: Path) -> None:
    root = tmp_path / "data"
    mini = layout("eurosat")(root)
    write_image(root / "eurosat" / "2750" / "Glacier" / "Glacier_1.jpg")
    with pytest.raises(DatasetError, match="Glacier"):
        mini.spec.build_manifest(root, seed=0)


def test_missing_class_folder_names_class_and_layout(tmp_path: Path) -> None:
    root = tmp_path / "data"
    mini = layout("resisc45")(root)
    shutil.rmtree(root / "resisc45" / "test" / "sea_ice")
    with pytest.raises(DatasetError, match=r"sea ice.*train/<class>/<image>"):
        mini.spec.build_manifest(root, seed=0)


# --- errors: missing datasets, missing files, corrupt images ------------------------------


@pytest.mark.parametrize("key", DOWNLOADED)
def test_absent_dataset_says_how_to_get_it(key: str, tmp_path: Path) -> None:
    spec = get_dataset(key)
    assert not spec.is_present(tmp_path)
    with pytest.raises(DatasetError) as err:
        prepare_dataset(key, root=tmp_path, out_dir=tmp_path / "m")
    message = str(err.value)
    assert key in message and "not found" in message
    assert spec.download_help(tmp_path.resolve()) in message
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("key", DOWNLOADED)
def test_missing_and_corrupt_images_are_named(key: str, tmp_path: Path) -> None:
    root = tmp_path / "data"
    mini = layout(key)(root)
    manifest = prepare_dataset(mini.spec, root=root, out_dir=tmp_path / "m", check_counts=False)
    victim = Path(manifest.test[-1].path)
    victim.unlink()
    if mini.listed:  # an annotation file names the image: its absence is an error
        with pytest.raises(DatasetError, match="do not exist") as err:
            prepare_dataset(mini.spec, root=root, out_dir=tmp_path / "m", check_counts=False)
        assert str(victim) in str(err.value)
    else:  # a scanned folder: the image drops out (the count check covers full copies)
        rescanned = mini.spec.build_manifest(root, seed=0)
        assert str(victim) not in {s.path for s in rescanned.train + rescanned.test}
    victim.write_bytes(b"\xff\xd8\xff\xe0 definitely not an image")
    with pytest.raises(DatasetError, match="cannot be decoded") as err:
        prepare_dataset(mini.spec, root=root, out_dir=tmp_path / "m", check_counts=False)
    assert str(victim) in str(err.value)
    # without decoding, the corrupt file passes: verify=False is the fast path
    prepare_dataset(mini.spec, root=root, out_dir=tmp_path / "m", check_counts=False, verify=False)


def test_count_check_notices_an_image_missing_from_a_scanned_folder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    mini = layout("caltech101")(root)
    spec = Caltech101(train_per_class=2)
    spec.expected_train, spec.expected_test = mini.n_train, mini.n_test
    prepare_dataset(spec, root=root, out_dir=tmp_path / "m")
    (root / "caltech101" / "101_ObjectCategories" / "wrench" / "image_0003.jpg").unlink()
    with pytest.raises(DatasetError, match="has 199 images, the protocol has 200"):
        prepare_dataset(spec, root=root, out_dir=tmp_path / "m")


def test_truncated_jpeg_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "data"
    mini = layout("dtd")(root)
    victim = root / "dtd" / "dtd" / "images" / "banded" / "banded_0001.jpg"
    big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    big.save(victim, format="JPEG")
    victim.write_bytes(victim.read_bytes()[:-200])
    with pytest.raises(DatasetError, match="banded_0001.jpg"):
        prepare_dataset(mini.spec, root=root, out_dir=tmp_path / "m", check_counts=False)


def test_inconsistent_annotation_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "data"
    mini = layout("pets")(root)
    listing = root / "oxford-iiit-pet" / "annotations" / "test.txt"
    lines = listing.read_text().splitlines()
    lines[0] = lines[0].replace(" 1 1 ", " 5 1 ", 1)  # Abyssinian labelled as class 5
    listing.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"test.txt:1"):
        mini.spec.build_manifest(root, seed=0)


def test_cifar_pngs_are_written_once(tmp_path: Path) -> None:
    root = tmp_path / "data"
    mini = layout("cifar10")(root)
    first = mini.spec.build_manifest(root, seed=0)
    png = Path(first.train[0].path)
    stamp = png.stat().st_mtime_ns
    assert mini.spec.build_manifest(root, seed=0) == first
    assert png.stat().st_mtime_ns == stamp
    with (root / "cifar-10-batches-py" / "data_batch_1").open("rb") as handle:
        batch = pickle.load(handle)
    expected = batch["data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(np.asarray(Image.open(png)), expected)


# --- datasets table -----------------------------------------------------------------------


def test_datasets_table_lists_every_dataset_and_presence(built) -> None:
    root, _ = built
    table = datasets_table(root)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["key", "K", "adapt", "score"]
    rows = {line.split()[0]: line for line in lines[2:] if line and not line.startswith("(")}
    assert set(rows) == set(DATASETS.names())
    assert rows["cars"].rstrip().endswith("yes")
    assert "8,144" in rows["cars"] and "8,041" in rows["cars"]
    assert datasets_table(root / "empty").count(" yes") <= 1  # only the Debian-backed demo


# --- custom datasets ----------------------------------------------------------------------


def test_custom_folder_dataset_prepares_like_a_registered_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("red_daisy", "rose"):
            for i in range(n):
                write_image(data / "flowers_mine" / split / cls / f"{i}.png", i)
    spec = custom_dataset_from_config(
        "flowers_mine",
        {"type": "custom", "root": "flowers_mine", "templates": ["a photo of a {}, a flower."]},
    )
    manifest = prepare_dataset(spec, root=data, out_dir=tmp_path / "m")
    assert manifest.classes == ["red daisy", "rose"]
    assert (len(manifest.train), len(manifest.test)) == (6, 4)
    assert spec.templates() == ["a photo of a {}, a flower."]
    assert spec.num_classes == 2
    # given the data root, the class list is known before prepare (for the text stages)
    early = custom_dataset_from_config("flowers_mine", {"root": "flowers_mine"}, data_root=data)
    assert early.classes() == ["red daisy", "rose"]
    assert early.is_present(tmp_path / "elsewhere")  # an absolute root wins


def test_custom_csv_dataset_takes_names_or_indices(tmp_path: Path) -> None:
    base = tmp_path / "mine"
    rows = []
    for i, (label, split) in enumerate(
        [(0, "train"), ("cat", "train"), (1, "test"), ("dog", "test")]
    ):
        write_image(base / "img" / f"{i}.jpg", i)
        rows.append({"path": f"img/{i}.jpg", "label": label, "split": split})
    with (base / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    (base / "classes.txt").write_text("dog\ncat\n")
    entry = {"root": str(base), "csv": "labels.csv", "classes": str(base / "classes.txt")}
    spec = custom_dataset_from_config("mine", entry)
    manifest = prepare_dataset(spec, root=tmp_path, out_dir=tmp_path / "m")
    assert manifest.classes == ["dog", "cat"]
    assert [s.label for s in manifest.train] == [0, 1]
    assert [s.label for s in manifest.test] == [1, 0]
    assert spec.templates() == ["a photo of a {}."]


def test_custom_split_csvs_with_bad_label_are_reported(tmp_path: Path) -> None:
    base = tmp_path / "mine"
    write_image(base / "a.jpg")
    (base / "train.csv").write_text("path,label\na.jpg,0\n")
    (base / "test.csv").write_text("path,label\na.jpg,7\n")
    spec = custom_dataset_from_config(
        "mine", {"root": str(base), "train": "train.csv", "test": "test.csv", "classes": ["x"]}
    )
    with pytest.raises(DatasetError, match=r"test.csv:2: label 7 is outside 0..0"):
        prepare_dataset(spec, root=tmp_path, out_dir=tmp_path / "m")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"root": "x", "clases": ["a"]}, "unknown keys"),
        ({"type": "folder", "root": "x"}, "allowed: custom"),
        ({"classes": ["a"]}, "needs 'root'"),
        ({"root": "x", "templates": ["no placeholder"]}, "one '{}'"),
        ({"root": "x", "csv": "l.csv"}, "needs 'classes'"),
        ({"root": "x", "train": "t.csv", "test": "s.csv"}, "needs 'classes'"),
        ({"root": "x", "classes": ["a", "a"]}, "duplicate"),
    ],
)
def test_custom_config_errors_name_the_key(entry: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        custom_dataset_from_config("mine", entry)
    assert "datasets.mine" in str(err.value)


# --- image cache --------------------------------------------------------------------------


def test_image_cache_returns_resized_pixels(tmp_path: Path) -> None:
    images = tmp_path / "img"
    images.mkdir()
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (20, 50), (8, 8)]  # (W, H); the last is smaller than short_side
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"{i}.png")
    (tmp_path / "m").mkdir()
    rows = "".join(f"{images / f'{i}.png'},{i % 2}\n" for i in range(3))
    (tmp_path / "m" / "train.csv").write_text("path,label\n" + rows)
    (tmp_path / "m" / "test.csv").write_text("path,label\n" + rows.splitlines()[0] + "\n")
    (tmp_path / "m" / "classes.json").write_text('["a", "b"]')
    build_image_cache(tmp_path / "m", tmp_path / "cache", short_side=10)
    cache = ImageCache.open(tmp_path / "cache")
    assert len(cache) == 3 and cache.short_side == 10
    for i, (w, h) in enumerate(sizes):
        path = str(images / f"{i}.png")
        got = cache[path]
        scale = min(1.0, 10 / min(w, h))
        size = (round(w * scale), round(h * scale))
        assert got.size == size and got.mode == "RGB"
        want = Image.open(path).convert("RGB")
        want = want if want.size == size else want.resize(size, Image.Resampling.BICUBIC)
        assert np.array_equal(np.asarray(got), np.asarray(want))
        assert cache(path).size == size
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._pixels is None and np.array_equal(np.asarray(clone[path]), np.asarray(got))
    with pytest.raises(DataError, match="missing.png: not in the image cache .*rerun rule cache_images"):
        cache[str(images / "missing.png")]


def test_image_cache_missing_folder_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing/meta.json: image cache incomplete or missing; "
                       r"rerun rule cache_images \(microclip cache\)"):
        ImageCache.open(tmp_path / "nothing")


def test_image_cache_of_a_prepared_dataset(built, tmp_path: Path) -> None:
    root, minis = built
    prepare_dataset(minis["gtsrb"].spec, root=root, out_dir=tmp_path / "m", check_counts=False)
    build_image_cache(tmp_path / "m", tmp_path / "c", short_side=6)
    cache = ImageCache.open(tmp_path / "c")
    manifest = read_manifest(tmp_path / "m")
    assert len(cache) == len(manifest.train) + len(manifest.test)
    assert min(cache[manifest.test[0].path].size) == 6
