"""The prepared GPU check of the speed issue: run once on a lent device machine.

1. The step alone (synthetic tensors): ViT-B/32 batch 64 in fp32 and bf16, ViT-B/16 batch 64
   in bf16; images/s and peak memory.
2. End to end from JPEG files (500 x 375 on disk) -> DataLoader (``--workers``) -> views ->
   step -> AdamW, for fp32/bf16 x cpu/device views on ViT-B/32 batch 64, and device views
   in bf16 on ViT-B/16; images/s per stage.
3. Agreement of bf16 and fp32 pseudo-labels (random weights, same inputs, 4 batches).
4. NCut's float64 ``eigh`` of (B, N, N) Laplacians on CUDA and on the CPU, N = 49 (B/32)
   and 196 (B/16): where it belongs.

Prints one JSON object and writes the end-to-end bf16 device-view figure of ViT-B/32 to
results/benchmarks/throughput.json, which ``microclip plan`` then uses. Budget: under 8
minutes on one H200 (each part is timed; ``--quick`` halves the batches).

    python -m benchmarks.gpu_check      # from the repository root
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from benchmarks.throughput import measure, measure_end_to_end
from microclip.io import atomic_write_json
from microclip.methods.catalog import build_with_stand_in_text
from microclip.model.backbones import create_clip
from microclip.plan import THROUGHPUT_FILE

B32, B16 = "ViT-B-32-quickgelu", "ViT-B-16"


@torch.no_grad()
def pseudo_label_agreement(model: str = B32, batch: int = 64, batches: int = 4) -> float:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    clip, tokenizer = create_clip(model, None, device=dev)
    method = build_with_stand_in_text(
        "microclip", clip, tokenizer, num_classes=102, device=dev
    ).eval()
    g = torch.Generator().manual_seed(1)
    size = clip.visual.image_size[0]
    same = total = 0
    for _ in range(batches):
        data = {
            "weak": torch.randn(batch, 3, size, size, generator=g).to(dev),
            "crops": torch.randn(batch, 8, 3, size, size, generator=g).to(dev),
        }
        fp32 = method.pseudo_labels(data)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = method.pseudo_labels(data)
        same += int((fp32 == bf16).sum())
        total += len(fp32)
    return same / total


def eigh_timing(batch: int = 64, repeats: int = 5) -> dict:
    """Milliseconds per batched float64 eigh of (batch, N, N) symmetric matrices."""
    out = {}
    for n in (49, 196):
        a = torch.randn(batch, n, n, dtype=torch.float64)
        a = a @ a.transpose(1, 2)
        for where in ("cuda", "cpu"):
            x = a.to(where)
            torch.linalg.eigh(x)  # warm-up (cuSOLVER handles)
            if where == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(repeats):
                torch.linalg.eigh(x)
            if where == "cuda":
                torch.cuda.synchronize()
            out[f"N{n}_{where}_ms"] = 1e3 * (time.perf_counter() - start) / repeats
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    started = time.perf_counter()
    batches = 5 if args.quick else 10
    report: dict = {"device": torch.cuda.get_device_name(0), "workers": args.workers}

    def timed(name: str, fn) -> None:
        start = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as err:  # noqa: BLE001 - one failing part must not lose the others
            report[name] = {"error": f"{type(err).__name__}: {err}"}
        report.setdefault("part_s", {})[name] = round(time.perf_counter() - start, 1)
        print(f"{name}: {report['part_s'][name]} s", file=sys.stderr, flush=True)

    for model, precision in ((B32, "fp32"), (B32, "bf16"), (B16, "bf16")):
        timed(f"step_{model}_{precision}", lambda m=model, p=precision: measure(
            model=m, method="microclip", batch=64, steps=20, warmup=3, classes=102,
            precision=p, device="cuda", threads=8, options={}))
    runs = [(B32, p, v) for p in ("fp32", "bf16") for v in ("cpu", "device")]
    runs.append((B16, "bf16", "device"))
    for model, precision, views in runs:
        timed(f"e2e_{model}_{precision}_{views}", lambda m=model, p=precision, v=views:
              measure_end_to_end(
                  model=m, method="microclip", batch=64, batches=batches, views=v, step=True,
                  images=Path("results/benchmarks/jpegs"), precision=p, device="cuda",
                  threads=8, workers=args.workers, cache=False))
    timed("bf16_fp32_pseudo_label_agreement", pseudo_label_agreement)
    timed("eigh", eigh_timing)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    best = report.get(f"e2e_{B32}_bf16_device", {})
    if "images_per_s" in best:
        atomic_write_json(THROUGHPUT_FILE, {
            "images_per_s": best["images_per_s"]["end_to_end"],
            "source": f"benchmarks.gpu_check on {report['device']}: ViT-B/32 microCLIP, batch "
                      f"64, bf16, device views, {args.workers} workers, end to end from JPEGs",
        })
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
