"""Optional image cache: decode every manifest image once, store it resized, read it back fast.

Adaptation runs several epochs over the same images; decoding full-size JPEGs each time
dominates a CPU-bound loader. The cache stores each image as raw RGB pixels with its short
side resized to ``short_side`` (a little above the crop size; smaller images are kept as
they are), all in one uint8 file read through a memory map, so a read is a slice and a copy.

Files in the cache folder:

- ``pixels.u8``: the images' HWC RGB bytes, one after another;
- ``index.npz``: ``offsets`` (int64), ``heights`` and ``widths`` (int32), in ``paths.json`` order;
- ``paths.json``: the manifest paths, the keys ``ImageCache`` is read with;
- ``meta.json``: ``short_side``, ``count``, ``bytes``, ``format`` and ``key``.

The folder is written under a temporary name and renamed when complete. ``key`` is a hash of
what the cache holds (every image's path, size and modification time, the short side, the
format), so ``ImageCache.open`` refuses a cache that no longer matches its manifest's files
(rerun rule cache_images) instead of serving stale pixels.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from microclip.data.base import DataError, read_manifest

log = logging.getLogger(__name__)

FORMAT = "microclip-image-cache-2"


def content_key(paths: list[str], short_side: int) -> str:
    """Hash of the images a cache would hold: path, byte size and mtime of each, short side."""
    from microclip.io import canonical_hash

    stats = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise DataError(f"{path}: image listed in the manifest does not exist") from None
        stats.append((path, st.st_size, st.st_mtime_ns))
    return canonical_hash({"format": FORMAT, "short_side": short_side, "images": stats}, length=32)


def resized_rgb(path: str, short_side: int) -> np.ndarray:
    """Decode ``path`` as RGB with its short side at most ``short_side``: (H, W, 3) uint8."""
    try:
        with Image.open(path) as image:
            w, h = image.size
            scale = short_side / min(w, h)
            size = (w, h) if scale >= 1 else (max(1, round(w * scale)), max(1, round(h * scale)))
            image.draft("RGB", size)  # JPEG: decode at a reduced scale >= size
            rgb = image.convert("RGB")
            if rgb.size != size:
                rgb = rgb.resize(size, Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image listed in the manifest does not exist") from None
    except OSError as err:
        raise OSError(f"{path}: cannot decode image ({err})") from None


def build_image_cache(
    manifest_dir: Path,
    out_dir: Path,
    *,
    short_side: int,
    splits: tuple[str, ...] = ("train", "test"),
    workers: int | None = None,
) -> Path:
    """Cache every image of the manifest in ``manifest_dir`` into ``out_dir``; returns ``out_dir``."""
    if short_side < 1:
        raise ValueError(f"short_side = {short_side}; must be a positive pixel count")
    manifest = read_manifest(Path(manifest_dir))
    unknown = sorted(set(splits) - {"train", "test"})
    if unknown:
        raise ValueError(f"splits {unknown} are not manifest splits; allowed: train, test")
    paths = list(dict.fromkeys(s.path for split in splits for s in getattr(manifest, split)))
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    offsets = np.zeros(len(paths), dtype=np.int64)
    heights = np.zeros(len(paths), dtype=np.int32)
    widths = np.zeros(len(paths), dtype=np.int32)
    position = 0
    workers = workers or min(8, os.cpu_count() or 1)
    try:
        with (tmp / "pixels.u8").open("wb") as sink, ThreadPoolExecutor(workers) as pool:
            # map() keeps manifest order; chunks bound the memory held by finished decodes
            for start in range(0, len(paths), 256):
                chunk = paths[start : start + 256]
                for i, pixels in enumerate(pool.map(resized_rgb, chunk, [short_side] * len(chunk))):
                    offsets[start + i] = position
                    heights[start + i], widths[start + i] = pixels.shape[:2]
                    sink.write(pixels.tobytes())
                    position += pixels.nbytes
        np.savez(tmp / "index.npz", offsets=offsets, heights=heights, widths=widths)
        (tmp / "paths.json").write_text(json.dumps(paths) + "\n", encoding="utf-8")
        meta = {"format": FORMAT, "short_side": short_side, "count": len(paths), "bytes": position,
                "key": content_key(paths, short_side)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("cached %d images (%.1f MiB) in %s", len(paths), position / 2**20, out_dir)
    return out_dir


class ImageCache:
    """Read cached images by manifest path: ``cache[path] -> PIL.Image`` (RGB).

    Usable directly as a data-loader ``loader`` (``cache(path)``). The memory map opens
    lazily in each process, so the object pickles cheaply into DataLoader workers.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.meta = json.loads((self.cache_dir / "meta.json").read_text(encoding="utf-8"))
        if self.meta.get("format") != FORMAT:
            raise ValueError(
                f"{self.cache_dir}: cache format {self.meta.get('format')!r}, expected {FORMAT!r}; "
                "rebuild it with build_image_cache"
            )
        paths = json.loads((self.cache_dir / "paths.json").read_text(encoding="utf-8"))
        self.rows = {p: i for i, p in enumerate(paths)}
        with np.load(self.cache_dir / "index.npz") as index:
            self.offsets, self.heights, self.widths = (
                index["offsets"],
                index["heights"],
                index["widths"],
            )
        self._pixels: np.memmap | None = None

    @classmethod
    def open(cls, cache_dir: Path, *, verify: bool = True) -> ImageCache:
        """Open a cache; with ``verify`` (default) its key must match the images on disk and
        its pixel file the size the index says."""
        cache_dir = Path(cache_dir)
        for name in ("meta.json", "paths.json", "index.npz", "pixels.u8"):
            if not (cache_dir / name).is_file():
                raise DataError(
                    f"{cache_dir / name}: image cache incomplete or missing; rerun rule "
                    "cache_images (microclip cache)"
                )
        cache = cls(cache_dir)
        if verify:
            paths = sorted(cache.rows, key=cache.rows.get)
            stale = cache.meta.get("key") != content_key(paths, cache.short_side)
            size = (cache_dir / "pixels.u8").stat().st_size
            if stale or size != int(cache.meta["bytes"]):
                raise DataError(
                    f"{cache_dir}: image cache does not match its images ("
                    + ("files changed since it was built" if stale else
                       f"pixels.u8 has {size} bytes, the index says {cache.meta['bytes']}")
                    + "); rerun rule cache_images"
                )
        return cache

    @property
    def short_side(self) -> int:
        return int(self.meta["short_side"])

    def _map(self) -> np.memmap:
        if self._pixels is None:
            if int(self.meta["bytes"]) == 0:
                self._pixels = np.zeros(0, dtype=np.uint8)  # type: ignore[assignment]
            else:
                self._pixels = np.memmap(self.cache_dir / "pixels.u8", dtype=np.uint8, mode="r")
        return self._pixels  # type: ignore[return-value]

    def array(self, path: str) -> np.ndarray:
        """The cached pixels of ``path``: uint8 (H, W, 3), a copy."""
        row = self.rows.get(str(path))
        if row is None:
            raise DataError(f"{path}: not in the image cache {self.cache_dir}; rerun rule cache_images")
        h, w = int(self.heights[row]), int(self.widths[row])
        start = int(self.offsets[row])
        return np.array(self._map()[start : start + h * w * 3]).reshape(h, w, 3)

    def tensor(self, path: str):
        """uint8 (3, H, W) for the device views (``DeviceManifestImages``' loader)."""
        import torch

        return torch.from_numpy(self.array(path)).permute(2, 0, 1)

    def __getitem__(self, path: str) -> Image.Image:
        return Image.fromarray(self.array(path))

    __call__ = __getitem__

    def __contains__(self, path: object) -> bool:
        return path in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pixels"] = None  # re-mapped in the receiving process
        return state
