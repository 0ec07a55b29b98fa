"""Train throughput of the full microCLIP step (or any registered method).

Random weights, no data or download needed: the same script measures the demo backbone on a
CPU and ViT-B/32 on a GPU. One step = weak view + 8 crops (no grad) for the pseudo-labels,
strong view forward/backward, AdamW update.

Step only, on synthetic tensors:

    python -m benchmarks.throughput --model microclip-demo-vit --batch 64
    python -m benchmarks.throughput --model ViT-B-32-quickgelu --batch 64 --precision bf16

End to end (``--end-to-end``): JPEG files on disk (500 x 375, written once under
``--images``) -> DataLoader -> the views (``--views cpu``: PIL + timm in the loader;
``device``: uint8 images + view parameters from the loader, rendered batched on the device)
-> the step -> AdamW, with images/s per stage. ``--no-step`` times the input pipeline alone
(the per-core figure of the PIL and device view paths on a CPU: ``--threads 1``):

    python -m benchmarks.throughput --end-to-end --model ViT-B-32-quickgelu --views cpu \\
        --no-step --threads 1
    python -m benchmarks.throughput --end-to-end --model ViT-B-32-quickgelu --views device \\
        --no-step --threads 1 [--image-cache]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from microclip.methods.catalog import build_with_stand_in_text
from microclip.model.backbones import create_clip
from microclip.train.loop import build_optimizer
from microclip.train.precision import autocast
from microclip.train.settings import TrainSettings


def synthetic_batch(batch: int, size: int, crops: int, classes: int, device, g) -> dict:
    def images(*shape):
        return torch.randn(*shape, 3, size, size, generator=g).to(device)

    return {
        "weak": images(batch),
        "strong": images(batch),
        "crops": images(batch, crops),
        "label": torch.randint(0, classes, (batch,), generator=g).to(device),
    }


def measure(
    *,
    model: str,
    method: str,
    batch: int,
    steps: int,
    warmup: int,
    classes: int,
    precision: str,
    device: str,
    threads: int,
    options: dict,
) -> dict:
    torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    clip, tokenizer = create_clip(model, None, device=dev)
    m = build_with_stand_in_text(
        method, clip, tokenizer, num_classes=classes, options=options, device=dev
    ).train()
    config = getattr(m, "config", None)
    optimizer = build_optimizer(m, TrainSettings())
    size = clip.visual.image_size[0]
    crops = getattr(config, "num_crops", 8)
    g = torch.Generator().manual_seed(0)
    batch_data = synthetic_batch(batch, size, crops, classes, dev, g)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    timings = []
    for step in range(warmup + steps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        with autocast(dev, precision):
            out = m.training_step(batch_data, step=step, epoch=0)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if step >= warmup:
            timings.append(time.perf_counter() - start)
    seconds = sum(timings)
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    if peak is None:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux: KiB)
    return {
        "model": model,
        "method": method,
        "batch": batch,
        "precision": precision,
        "device": str(dev),
        "threads": threads,
        "steps": steps,
        "train_images_per_s": batch * steps / seconds,
        "peak_memory_gib": peak,
        "peak_memory_kind": "cuda" if dev.type == "cuda" else "rss",
        "trainable": m.num_trainable(),
    }


def write_jpegs(folder: Path, count: int, size: tuple[int, int] = (500, 375)) -> list[str]:
    """``count`` seeded JPEGs of natural-image-like content (smooth colour fields, edges)."""
    import numpy as np
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.jpg"
        if not path.is_file():
            coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
            image = image.filter(ImageFilter.DETAIL)
            noise = rng.integers(-12, 13, (size[1], size[0], 3))
            pixels = np.clip(np.asarray(image).astype(int) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return paths


def measure_end_to_end(
    *, model: str, method: str, batch: int, batches: int, views: str, step: bool, images: Path,
    precision: str, device: str, threads: int, workers: int, cache: bool,
) -> dict:
    """Images/s of each stage: the loader (decode + views on the PIL path; decode + view
    parameters + packing on the device path), rendering on the device, and the step."""
    from torch.utils.data import DataLoader

    from microclip.data.base import Sample
    from microclip.data.cache import ImageCache, build_image_cache
    from microclip.data.device_views import render_views
    from microclip.data.images import view_dataset
    from microclip.data.views import ViewSpec

    torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    clip, tokenizer = create_clip(model, None, device=dev)
    size = clip.visual.image_size[0]
    spec = ViewSpec(image_size=size)
    names = ("weak", "strong", "crops")
    paths = write_jpegs(images, batch * (batches + 1))
    samples = [Sample(p, 0) for p in paths]
    image_cache = None
    if cache:  # decoded once, short side kept at 2 x the input (the crops' 0.5 of it)
        from microclip.data.base import Manifest, write_manifest

        write_manifest(Manifest(["x"], samples, samples[:1]), images / "manifest")
        build_image_cache(images / "manifest", images / f"cache{2 * size}", short_side=2 * size)
        image_cache = ImageCache.open(images / f"cache{2 * size}")
    dataset, collate = view_dataset(samples, spec, names, path=views, image_cache=image_cache)
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate,
                        pin_memory=dev.type == "cuda")
    m = optimizer = None
    if step:
        m = build_with_stand_in_text(method, clip, tokenizer, num_classes=102,
                                     device=dev).train()
        optimizer = build_optimizer(m, TrainSettings())

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    seconds = {"loader": 0.0, "render": 0.0, "step": 0.0}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    it = iter(loader)
    for index in range(batches + 1):  # the first batch warms up and is not counted
        t0 = time.perf_counter()
        data = next(it)
        t1 = time.perf_counter()
        if views == "device":
            data = render_views(data, names, spec, dev)
        else:
            data = {k: v.to(dev, non_blocking=True) for k, v in data.items()}
        sync()
        t2 = time.perf_counter()
        if step:
            with autocast(dev, precision):
                out = m.training_step(data, step=index, epoch=0)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            sync()
        t3 = time.perf_counter()
        if index:
            seconds["loader"] += t1 - t0
            seconds["render"] += t2 - t1
            seconds["step"] += t3 - t2
    counted = batch * batches
    total = sum(seconds.values())
    rate = {k: counted / v if v else None for k, v in seconds.items()}
    return {
        "mode": "end_to_end",
        "model": model,
        "image_size": size,
        "views": views,
        "image_cache": cache,
        "step": step,
        "method": method if step else None,
        "batch": batch,
        "batches": batches,
        "precision": precision,
        "device": str(dev),
        "threads": threads,
        "workers": workers,
        "images_per_s": {**rate, "input_pipeline": counted / (seconds["loader"] + seconds["render"]),
                         "end_to_end": counted / total},
        "ms_per_image": {k: 1e3 * v / counted for k, v in seconds.items()},
        "peak_memory_gib": torch.cuda.max_memory_allocated(dev) / 2**30
        if dev.type == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="microclip-demo-vit")
    parser.add_argument("--method", default="microclip")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--classes", type=int, default=102)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--options", type=json.loads, default={})
    parser.add_argument("--end-to-end", action="store_true",
                        help="JPEG files -> loader -> views -> step (see above)")
    parser.add_argument("--views", choices=["cpu", "device"], default="device")
    parser.add_argument("--no-step", action="store_true", help="end to end without the step")
    parser.add_argument("--batches", type=int, default=4, help="end-to-end batches timed")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--image-cache", action="store_true",
                        help="decode once into microclip's image cache (rule cache_images)")
    parser.add_argument("--images", type=Path, default=Path("results/benchmarks/jpegs"),
                        help="where the benchmark's JPEGs are written (kept for reruns)")
    args = parser.parse_args()
    if args.end_to_end:
        result = measure_end_to_end(
            model=args.model,
            method=args.method, batch=args.batch, batches=args.batches, views=args.views,
            step=not args.no_step, images=args.images, precision=args.precision,
            device=args.device, threads=args.threads, workers=args.workers,
            cache=args.image_cache,
        )
        print(json.dumps(result, indent=1))
        return
    result = measure(
        model=args.model,
        method=args.method,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        classes=args.classes,
        precision=args.precision,
        device=args.device,
        threads=args.threads,
        options=args.options,
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
