"""Images of a manifest as a torch Dataset that returns the views a method asks for."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from microclip.data.base import Sample


def load_image(path: str) -> Image.Image:
    """Decode one image as RGB; a missing or corrupt file names the path."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image listed in the manifest does not exist") from None
    except OSError as err:
        raise OSError(f"{path}: cannot decode image ({err})") from None


class ManifestImages(Dataset):
    """(views, label, index) for every sample; ``views`` maps view name -> tensor."""

    def __init__(
        self,
        samples: Sequence[Sample],
        views: Callable[[Image.Image], dict[str, torch.Tensor]],
        *,
        loader: Callable[[str], Image.Image] = load_image,
    ) -> None:
        self.samples = list(samples)
        self.views = views
        self.loader = loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        sample = self.samples[index]
        item: dict[str, torch.Tensor | int] = dict(self.views(self.loader(sample.path)))
        item["label"] = sample.label
        item["index"] = index
        return item
