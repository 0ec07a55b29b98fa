"""The README's custom-dataset example: a folder-layout dataset cut from the demo world.
Class order is data, not position: permuting the description keys and the class list leaves
every prediction (as a class name) unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from microclip.data.fashion_shift import FOLDER_EXAMPLE_CLASSES, ensure_raw_files

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def footwear(tmp_path_factory) -> Path:
    from microclip.data.fashion_shift import write_folder_dataset

    try:
        ensure_raw_files(REPO / "data")
    except Exception as err:  # noqa: BLE001 - the Debian package is a CI install
        pytest.skip(f"Fashion-MNIST not installed: {err}")
    out = tmp_path_factory.mktemp("footwear") / "footwear"
    return write_folder_dataset(REPO / "data", out, train_per_class=3, test_per_class=6)


def test_the_example_is_four_folders_of_disjoint_scenes(footwear):
    folders = sorted(p.name for p in (footwear / "test").iterdir())
    assert folders == sorted(c.replace(" ", "_") for c in FOLDER_EXAMPLE_CLASSES)
    for split, count in (("train", 3), ("test", 6)):
        for folder in (footwear / split).iterdir():
            assert len(list(folder.glob("*.png"))) == count
    train_ids = {p.stem for p in (footwear / "train").rglob("*.png")}
    test_ids = {p.stem for p in (footwear / "test").rglob("*.png")}
    # train items come from the held-out half of Fashion-MNIST's train split, test from its
    # test split, never from the demo's adaptation or test images
    assert all(int(i) >= 30_000 for i in train_ids) and test_ids


def test_unknown_class_is_refused_with_the_allowed_names(tmp_path):
    from microclip.data.base import DatasetError
    from microclip.data.fashion_shift import write_folder_dataset

    with pytest.raises(DatasetError, match="'boot'.*allowed"):
        write_folder_dataset(REPO / "data", tmp_path, classes=("boot",))


def _predicted_names(
    footwear: Path, weights: Path, tmp: Path, *, classes: list[str] | None, reverse_keys: bool,
    method: str, miskey: bool = False,
) -> dict[str, tuple[str, str]]:
    """{image file: (true class, predicted class)} of one zero-shot run."""
    from microclip.data.custom import custom_dataset_from_config
    from microclip.data.prepare import prepare_dataset
    from microclip.model.backbones import DEMO_MODEL
    from microclip.runner import make_prototypes
    from microclip.runner.context import RunContext
    from microclip.spec import RunSpec

    entry = {"type": "custom", "root": str(footwear), "templates": ["a photo of a {}."]}
    if classes is not None:
        entry["classes"] = classes
    dataset = custom_dataset_from_config("footwear", entry, data_root=footwear.parent)
    manifest = prepare_dataset(dataset, root=footwear.parent, out_dir=tmp / "manifest",
                               check_counts=False)
    descriptions = json.loads((REPO / "descriptions" / "demo" / "footwear.json").read_text())
    keys = sorted(descriptions, reverse=reverse_keys)
    values = [descriptions[k] for k in (keys[1:] + keys[:1] if miskey else keys)]
    (tmp / "descriptions.json").write_text(json.dumps(dict(zip(keys, values, strict=True))))
    make_prototypes(
        dataset="footwear", model=DEMO_MODEL, pretrained=str(weights),
        descriptions_path=tmp / "descriptions.json", out_pointer=tmp / "prototypes.json",
        cache_dir=tmp / "cache", classes=manifest.classes, templates=dataset.templates(),
    )
    spec = RunSpec.build(method=method, dataset="footwear", model=DEMO_MODEL,
                         pretrained=str(weights))
    ctx = RunContext(spec, manifest_dir=tmp / "manifest", prototypes_path=tmp / "prototypes.json",
                     placement=None)
    predictions = ctx.test_score().predictions.tolist()
    return {
        Path(s.path).name + Path(s.path).parent.name: (manifest.classes[s.label],
                                                       manifest.classes[p])
        for s, p in zip(manifest.test, predictions, strict=True)
    }


@pytest.mark.parametrize("method", ["zs_templates", "zs_descriptions"])
def test_permuted_classes_and_description_keys_give_the_same_predictions(
    footwear, tiny_world, tmp_path, method
):
    weights = tiny_world["weights"]  # a random demo CLIP: predictions vary by class
    for name in "ab":
        (tmp_path / name).mkdir()
    sorted_run = _predicted_names(footwear, weights, tmp_path / "a", classes=None,
                                  reverse_keys=False, method=method)
    permuted = ["sneaker", "ankle boot", "sandal", "bag"]
    permuted_run = _predicted_names(footwear, weights, tmp_path / "b", classes=permuted,
                                    reverse_keys=True, method=method)
    assert len(sorted_run) == 24
    assert {true for true, _ in sorted_run.values()} == set(FOLDER_EXAMPLE_CLASSES)
    assert permuted_run == sorted_run


def test_a_mis_keyed_description_file_does_change_the_predictions(footwear, tiny_world, tmp_path):
    """The permutation test has teeth: descriptions moved to other class names move the
    predictions with them."""
    for name in "ab":
        (tmp_path / name).mkdir()
    weights = tiny_world["weights"]
    honest = _predicted_names(footwear, weights, tmp_path / "a", classes=None,
                              reverse_keys=False, method="zs_descriptions")
    miskeyed = _predicted_names(footwear, weights, tmp_path / "b", classes=None,
                                reverse_keys=False, method="zs_descriptions", miskey=True)
    assert miskeyed != honest
