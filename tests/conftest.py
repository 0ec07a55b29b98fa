"""Shared fixtures: a tiny generated image dataset and prototypes for a random demo CLIP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from toy_shapes import CLASSES, draw

from microclip.data.base import Manifest, Sample, write_manifest

REPO = Path(__file__).resolve().parents[1]
TINY_CLASSES = CLASSES


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> dict[str, Path]:
    """A manifest (24 train / 12 test images, 3 classes), descriptions and prototypes."""
    root = tmp_path_factory.mktemp("tiny_world")
    rng = np.random.default_rng(0)
    samples = {"train": [], "test": []}
    for split, per_class in (("train", 8), ("test", 4)):
        for label in range(3):
            for i in range(per_class):
                path = root / "images" / split / f"{label}_{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(draw(TINY_CLASSES[label], rng)).save(path)
                samples[split].append(Sample(str(path), label))
    manifest_dir = root / "manifest"
    write_manifest(Manifest(TINY_CLASSES, samples["train"], samples["test"]), manifest_dir)
    descriptions = {
        name: [f"a picture of a {name}.", f"the {name} is bright on a dark background."]
        for name in TINY_CLASSES
    }
    desc_path = root / "descriptions.json"
    desc_path.write_text(json.dumps(descriptions))
    import torch

    from microclip.model.backbones import DEMO_MODEL, create_clip
    from microclip.runner import make_prototypes

    # A randomly initialised demo CLIP saved as a checkpoint, loaded back like a real one.
    torch.manual_seed(0)
    clip, _ = create_clip(DEMO_MODEL, None)
    weights = root / "random_demo_clip.pt"
    torch.save(clip.state_dict(), weights)
    pointer = root / "prototypes.json"
    make_prototypes(
        dataset="tiny",
        model=DEMO_MODEL,
        pretrained=str(weights),
        descriptions_path=desc_path,
        out_pointer=pointer,
        cache_dir=root / "cache",
        classes=TINY_CLASSES,
        templates=["a photo of a {}.", "an image of a {}."],
    )
    return {"root": root, "manifest": manifest_dir, "prototypes": pointer, "weights": weights}
