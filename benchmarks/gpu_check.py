"""The prepared GPU check (issue: microCLIP itself): run on a lent device machine.

1. ViT-B/32 microCLIP train throughput at batch 64 in fp32 and bf16, and peak memory.
2. Agreement of bf16 and fp32 pseudo-labels on one batch (random weights, same inputs).
Prints one JSON object; finishes in a few minutes on one H200.

    python -m benchmarks.gpu_check      # from the repository root
"""

from __future__ import annotations

import json
import sys

import torch

from benchmarks.throughput import measure
from microclip.methods.catalog import build_with_stand_in_text
from microclip.model.backbones import create_clip


@torch.no_grad()
def pseudo_label_agreement(model: str = "ViT-B-32-quickgelu", batch: int = 64) -> float:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    clip, tokenizer = create_clip(model, None, device=dev)
    method = build_with_stand_in_text(
        "microclip", clip, tokenizer, num_classes=102, device=dev
    ).eval()
    g = torch.Generator().manual_seed(1)
    size = clip.visual.image_size[0]
    batch_data = {
        "weak": torch.randn(batch, 3, size, size, generator=g).to(dev),
        "crops": torch.randn(batch, 8, 3, size, size, generator=g).to(dev),
    }
    fp32 = method.pseudo_labels(batch_data)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = method.pseudo_labels(batch_data)
    return float((fp32 == bf16).float().mean())


def main() -> int:
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    report = {"device": torch.cuda.get_device_name(0)}
    for precision in ("fp32", "bf16"):
        report[precision] = measure(
            model="ViT-B-32-quickgelu",
            method="microclip",
            batch=64,
            steps=30,
            warmup=5,
            classes=102,
            precision=precision,
            device="cuda",
            threads=8,
            options={},
        )
    report["bf16_fp32_pseudo_label_agreement"] = pseudo_label_agreement()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
