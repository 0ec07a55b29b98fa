"""Train throughput of the full microCLIP step (or any registered method) on synthetic data.

Random weights, synthetic images, no data or download needed: the same script measures
the demo backbone on a CPU and ViT-B/32 on a GPU. One step = weak view + 8 crops (no grad)
for the pseudo-labels, strong view forward/backward, AdamW update.

    python benchmarks/throughput.py --model microclip-demo-vit --batch 64
    python benchmarks/throughput.py --model ViT-B-32-quickgelu --batch 64 --precision bf16
"""

from __future__ import annotations

import argparse
import json
import time

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
    args = parser.parse_args()
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
