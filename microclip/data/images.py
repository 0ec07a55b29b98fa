"""Images of a manifest as torch Datasets: the views themselves (PIL path, ``runtime.views:
cpu``) or decoded pixels plus view parameters rendered later on the device (``device``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from microclip.data.base import Sample
from microclip.data.device_views import collate_device_batch, sample_view_params
from microclip.data.views import VIEW_NAMES, Views, ViewSpec


def load_image(path: str) -> Image.Image:
    """Decode one image as RGB; a missing or corrupt file names the path."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image listed in the manifest does not exist") from None
    except OSError as err:
        raise OSError(f"{path}: cannot decode image ({err})") from None


def load_image_uint8(path: str) -> torch.Tensor:
    """The image of :func:`load_image` as uint8 (3, H, W), memory in PIL's (H, W, 3) order."""
    return torch.from_numpy(np.array(load_image(path))).permute(2, 0, 1)


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


class DeviceManifestImages(Dataset):
    """Decoded pixels and view parameters per sample, for ``render_views`` on the device.

    Each item is {"image": uint8 (3, H, W), "params": {view: {field: tensor}}, "label",
    "index"}; batch with :func:`microclip.data.device_views.collate_device_batch`. ``loader``
    maps a path to uint8 (3, H, W) (an image cache can stand in for decoding).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        spec: ViewSpec,
        names: Sequence[str],
        *,
        loader: Callable[[str], torch.Tensor] = load_image_uint8,
    ) -> None:
        unknown = sorted(set(names) - set(VIEW_NAMES))
        if unknown:
            raise ValueError(f"unknown view(s) {unknown}; known: {', '.join(VIEW_NAMES)}")
        self.samples = list(samples)
        self.spec = spec
        self.names = tuple(names)
        self.loader = loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image = self.loader(sample.path)
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"{sample.path}: loader must return uint8 (3, H, W), "
                             f"got {image.dtype} {tuple(image.shape)}")
        height, width = image.shape[-2:]
        return {
            "image": image,
            "params": sample_view_params(height, width, self.spec, self.names),
            "label": sample.label,
            "index": index,
        }


def view_dataset(
    samples: Sequence[Sample], spec: ViewSpec, names: Sequence[str], *, path: str,
    image_cache=None,
) -> tuple[Dataset, Callable | None]:
    """The Dataset and DataLoader collate function of one view path (``runtime.views``):
    "cpu" renders the views in the worker (PIL + timm), "device" ships uint8 images and
    view parameters for ``render_views``. ``image_cache`` (an ImageCache) replaces decoding."""
    if path == "device":
        decode = image_cache.tensor if image_cache else load_image_uint8
        return DeviceManifestImages(samples, spec, names, loader=decode), collate_device_batch
    if path == "cpu":
        return ManifestImages(samples, Views(spec, names), loader=image_cache or load_image), None
    raise ValueError(f"views = {path!r}; allowed: cpu, device")
