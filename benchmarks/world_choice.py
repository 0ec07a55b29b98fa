"""How the demo world's target shift was chosen: the mechanism diagnostics of candidate shifts.

The pretraining sees only the source, so one pretrained demo CLIP (a finished demo run's
``backbones/demo-clip.pt``) scores every candidate. For each candidate target style the
script composes the demo's 1,000 adaptation scenes in that style and runs the diagnostics of
rule ``diagnose_mechanisms`` on them (labels score the diagnostics only; no method is trained
and no test image is read). The acceptance of issue 11 is printed beside each row.

    python -m benchmarks.world_choice results/demo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from microclip.config import load_config
from microclip.data.base import Manifest, write_manifest
from microclip.data.fashion_shift import (
    SOURCE_STYLE,
    TARGET_STYLE,
    WORLD_SEED,
    FashionShift,
    load_split,
    target_split_ids,
    write_scenes,
)
from microclip.runner import diagnose
from microclip.runner.context import Placement
from microclip.spec import RunSpec

CANDIDATES = {
    "no shift (source style)": SOURCE_STYLE,
    "object blur 2.5 px + noise 0.06 (the demo's)": TARGET_STYLE,
    "object pixelated to 6 px + noise 0.06": dataclasses.replace(
        SOURCE_STYLE, noise_sigma=0.06, object_pixels=6),
    "low contrast: object 0.35-0.55 + noise 0.06": dataclasses.replace(
        SOURCE_STYLE, noise_sigma=0.06, object_level=(0.35, 0.55)),
}


def adaptation_scenes(root: Path, out: Path, style) -> Path:
    """The demo's adaptation items (same ids as prepare_dataset, seed 0) in ``style``."""
    train_x, train_y = load_split(root, train=True)
    _, test_y = load_split(root, train=False)
    adapt_ids, _ = target_split_ids(train_y, test_y, seed=0)
    samples = write_scenes(train_x, train_y, adapt_ids, style, seed=[WORLD_SEED, 1],
                           folder=out / "images")
    write_manifest(Manifest(FashionShift().classes(), samples, samples[:1]), out / "manifest")
    return out / "manifest"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished demo run, e.g. results/demo")
    parser.add_argument("--config", nargs="+", default=["config/demo.yaml"])
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    config = load_config(args.config)
    backbone = config["main_backbone"]
    spec = RunSpec.from_config(config, method=config["diagnostics"]["method"],
                               dataset=config["demo"]["dataset"], backbone=backbone, seed=0)
    spec = spec.replace(pretrained=str(args.run / "backbones" / f"{backbone}.pt"),
                        views="cpu", image_cache=None)
    prototypes = args.run / "prototypes" / backbone / config["description_set"] / (
        f"{config['demo']['dataset']}.json")
    rows = []
    print(f"{'candidate':48s} {'density':>7s} {'collapse':>8s} {'IoU':>5s} {'rand':>5s} "
          f"{'ZS CLS':>6s} {'ZS FG':>6s} {'crops':>6s}  acceptance")
    for name, style in CANDIDATES.items():
        with tempfile.TemporaryDirectory() as tmp:
            manifest = adaptation_scenes(args.data_root, Path(tmp), style)
            report = diagnose(spec, manifest_dir=manifest, prototypes_path=prototypes,
                              out_json=Path(tmp) / "diagnostics.json", max_images=1000,
                              placement=Placement(device="cpu", threads=2, workers=0))
        ncut, zs, iou = report["ncut"], report["zero_shot"], report["object_iou"]
        checks = {
            "density 0.2-0.8": 0.2 <= ncut["affinity_density"]["median"] <= 0.8,
            "collapse <20%": ncut["fixed_position_collapse"] < 0.2,
            "IoU>=0.4,2x": iou["ncut"] >= 0.4 and iou["ncut"] >= 2 * iou["random_same_size"],
            "crops>=CLS-3": report["crop_prior"] >= report["weak_cls_prior"] - 3,
            "FG>=CLS-10": zs["fg"] >= zs["cls"] - 10,
            "ZS 30-70": 30 <= zs["cls"] <= 70,
        }
        failed = [k for k, ok in checks.items() if not ok]
        print(f"{name:48s} {ncut['affinity_density']['median']:7.2f} "
              f"{100 * ncut['fixed_position_collapse']:7.1f}% {iou['ncut']:5.2f} "
              f"{iou['random_same_size']:5.2f} {zs['cls']:6.1f} {zs['fg']:6.1f} "
              f"{report['crop_prior']:6.1f}  {'all met' if not failed else 'fails ' + ', '.join(failed)}")
        rows.append({"candidate": name, "style": dataclasses.asdict(style), "failed": failed,
                     **{k: report[k] for k in ("ncut", "zero_shot", "crop_prior",
                                                "weak_cls_prior", "object_iou")}})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
