"""The device path of the views (microclip.data.device_views) against the PIL path.

Tiny images (about 60 x 45 -> S = 32) keep this fast on the CPU. Errors are measured in grey
levels (0..255, the PIL path's uint8 scale) after undoing the normalisation.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import ks_2samp
from timm.data.auto_augment import AugmentOp, rand_augment_transform
from timm.data.transforms import RandomResizedCropAndInterpolation
from torchvision import transforms as T
from torchvision.transforms import functional as TVF

from microclip.data import device_views as dv
from microclip.data.base import Sample
from microclip.data.images import DeviceManifestImages
from microclip.data.views import (
    STRONG_AUTO_AUGMENT,
    MultiCrop,
    Views,
    ViewSpec,
    crop_boxes,
    strong_fill_colour,
)

S = 32
SPEC = ViewSpec(image_size=S)
ALL_VIEWS = ("weak", "strong", "crops", "test", "lafter_strong")


def _photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth colour field with one hard-edged rectangle: gradients and edges."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (max(2, height // 6), max(2, width // 6), 3), dtype=np.uint8)
    pixels = np.array(Image.fromarray(base).resize((width, height), Image.BICUBIC))
    x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
    pixels[y0:y0 + height // 3, x0:x0 + width // 3] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels)


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)  # (3, H, W) uint8


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _levels(x: torch.Tensor, spec: ViewSpec = SPEC) -> torch.Tensor:
    """Normalised views -> grey levels 0..255."""
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    return (x.cpu() * std + mean) * 255


def _pil_levels(image: Image.Image) -> torch.Tensor:
    return _tensor(image).float()


def _items(images, spec=SPEC, names=ALL_VIEWS) -> list[dict]:
    out = []
    for i, image in enumerate(images):
        t = _tensor(image)
        params = dv.sample_view_params(t.shape[1], t.shape[2], spec, names)
        out.append({"image": t, "params": params, "label": i % 3, "index": i})
    return out


def _render(images, spec=SPEC, names=ALL_VIEWS, seed=None, **kwargs):
    if seed is not None:
        _seed(seed)
    items = _items(images, spec, names)
    batch = dv.collate_device_batch(items)
    return batch, dv.render_views(batch, names, spec, "cpu", **kwargs)


def _errors(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    diff = (a.double() - b.double()).abs()
    return diff.mean().item(), diff.max().item()


IMAGES = [_photo(60, 45, 0), _photo(45, 60, 1), _photo(50, 50, 2), _photo(52, 37, 3)]


# -- geometry: crops and resizes ------------------------------------------------------------


def test_weak_test_crops_match_pil_for_the_same_parameters():
    """Measured: mean < 0.01, max 1 grey level (PIL's and torch's antialiased bicubic)."""
    batch, out = _render(IMAGES, seed=0)
    for b, image in enumerate(IMAGES):
        new_h, new_w = dv.resized_shape(image.height, image.width, S)
        resized = image.resize((new_w, new_h), Image.BICUBIC)  # the PIL path's Resize(S)
        for name in ("weak", "test"):
            top, left = batch["params"][name]["offset"][b].tolist()
            ref = _pil_levels(resized.crop((left, top, left + S, top + S)))
            mean, worst = _errors(_levels(out[name][b]), ref)
            assert mean < 0.05 and worst <= 2, (name, b, mean, worst)
        for v, box in enumerate(batch["params"]["crops"]["box"][b].tolist()):
            ref = _pil_levels(image.crop(tuple(box)).resize((S, S), Image.BICUBIC))
            mean, worst = _errors(_levels(out["crops"][b, v]), ref)
            assert mean < 0.05 and worst <= 2, ("crops", b, v, mean, worst)


def test_strong_geometry_and_flip_match_pil_without_rand_augment():
    _seed(1)
    items = _items(IMAGES * 3, names=["strong"])
    batch = dv.collate_device_batch(items)
    batch["params"]["strong"]["applied"][:] = False
    out = dv.render_views(batch, ["strong"], SPEC, "cpu")["strong"]
    flips = batch["params"]["strong"]["flip"]
    assert 0 < int(flips.sum()) < len(items)  # both branches exercised
    for b in range(len(items)):
        image = IMAGES[b % len(IMAGES)]
        ref = image.crop(tuple(batch["params"]["strong"]["box"][b].tolist()))
        ref = ref.resize((S, S), Image.BICUBIC)
        if flips[b]:
            ref = ref.transpose(Image.FLIP_LEFT_RIGHT)
        mean, worst = _errors(_levels(out[b]), _pil_levels(ref))
        assert mean < 0.05 and worst <= 2, (b, mean, worst)


def test_every_view_matches_the_pil_path_for_one_seed():
    """Same seed -> the same random draws on both paths; what differs is interpolation.

    Measured over these 24 images: weak/test/crops mean 0.003-0.006, max 1-2 levels;
    lafter_strong mean 0.014 (per image at most 0.07); strong mean 0.2 (per image at most
    0.9: RandAugment's rotations/shears use torch's a=-0.75 cubic, PIL's is a=-1).
    """
    names = list(ALL_VIEWS)
    worst_mean = dict.fromkeys(names, 0.0)
    means = {name: [] for name in names}
    for seed in range(24):
        image = _photo(60, 45, 100 + seed)
        _seed(seed)
        ref = Views(SPEC, names)(image)
        _, out = _render([image], names=names, seed=seed)
        for name in names:
            mean, worst = _errors(_levels(out[name][0]), _levels(ref[name]))
            means[name].append(mean)
            worst_mean[name] = max(worst_mean[name], mean)
            if name in ("weak", "test", "crops"):
                assert worst <= 2, (name, seed, worst)
    for name in ("weak", "test", "crops"):
        assert worst_mean[name] < 0.05, (name, worst_mean[name])
    assert worst_mean["lafter_strong"] < 0.3 and np.mean(means["lafter_strong"]) < 0.05
    assert worst_mean["strong"] < 2.0 and np.mean(means["strong"]) < 0.5


def test_random_test_crop_draws_as_the_pil_path():
    spec = ViewSpec(image_size=S, test_crop="random")
    offsets = set()
    for seed in range(8):
        image = _photo(60, 45, seed)
        _seed(seed)
        ref = Views(spec, ["test"])(image)["test"]
        batch, out = _render([image], spec=spec, names=["test"], seed=seed)
        offsets.add(tuple(batch["params"]["test"]["offset"][0].tolist()))
        mean, worst = _errors(_levels(out["test"][0]), _levels(ref))
        assert mean < 0.05 and worst <= 2, (seed, mean, worst)
    assert len(offsets) > 3  # it is random


# -- RandAugment ops --------------------------------------------------------------------------


def _timm_op(name: str, magnitude: float, fill: tuple[int, int, int]) -> AugmentOp:
    hparams = {"translate_const": int(S * 0.45), "img_mean": fill,
               "interpolation": Image.BICUBIC}
    return AugmentOp(name, prob=1.0, magnitude=magnitude, hparams=hparams)


def _device_op(name: str, x: torch.Tensor, arg: float, fill) -> torch.Tensor:
    if name in dv.GEOMETRIC_OPS:
        matrix = torch.tensor([dv.pil_affine_matrix(name, arg, x.shape[-1])], dtype=torch.float64)
        return dv.affine(x, matrix, torch.tensor(fill, dtype=torch.float32))
    return dv.COLOUR_OPS[name](x, torch.tensor(arg, dtype=torch.float32).view(1, 1, 1, 1))


@pytest.mark.parametrize("name", dv.RAND_OPS)
def test_rand_op_matches_timm(name):
    """Colour ops are exact; geometric ops (measured mean 0.1-0.9, max 6) within 1.2 / 10."""
    fill = strong_fill_colour(ViewSpec(S, strong_fill="mean"))
    diffs, filled = [], []
    for k, magnitude in enumerate((0.0, 3.0, 9.0, 9.7, 10.0, 5.5)):
        image = _photo(S, S, 10 + k)
        random.seed(k)
        ref = _pil_levels(_timm_op(name, magnitude, fill)(image))
        random.seed(k)  # the same sign draw as timm's level function
        arg = dv.rand_op_argument(name, magnitude)
        out = _device_op(name, _pil_levels(image)[None], arg, fill)[0]
        diffs.append((out - ref).abs())
        is_fill = lambda t: (t == torch.tensor(fill).view(3, 1, 1)).all(0)  # noqa: E731
        filled.append((is_fill(out) != is_fill(ref)).float().mean().item())
    diff = torch.stack(diffs)
    if name in dv.GEOMETRIC_OPS:
        assert diff.mean() < 1.2 and diff.max() <= 10, (diff.mean(), diff.max())
        assert max(filled) < 0.03  # the same pixels are filled
    else:
        assert diff.max() == 0, diff.max()


def test_rand_augment_draws_are_timms_draw_for_draw():
    """The sampler consumes numpy's and Python's generators exactly as timm's RandAugment."""
    hparams = {"translate_const": int(S * 0.45), "img_mean": (0, 0, 0),
               "interpolation": Image.BICUBIC}
    augment = rand_augment_transform(STRONG_AUTO_AUGMENT, hparams)
    assert [op.name for op in augment.ops] == list(dv.RAND_OPS)
    assert augment.num_layers == dv.RA_LAYERS
    assert {op.prob for op in augment.ops} == {dv.RA_PROB}
    assert {op.magnitude for op in augment.ops} == {dv.RA_MAGNITUDE}
    assert {op.magnitude_std for op in augment.ops} == {dv.RA_MAGNITUDE_STD}
    calls: list[tuple[str, tuple]] = []

    def record(name, image, *args, **_):
        calls.append((name, tuple(args)))
        return image

    for op in augment.ops:
        op.aug_fn = functools.partial(record, op.name)
    image = _photo(S, S, 0)
    for seed in range(300):
        calls.clear()
        _seed(seed)
        augment(image)
        _seed(seed)
        draws = dv.sample_rand_augment()
        mine = [(dv.RAND_OPS[op], arg) for op, applied, arg in zip(
            draws["op"].tolist(), draws["applied"].tolist(), draws["arg"].tolist(), strict=True)
            if applied]
        theirs = [(name, args[0] if args else 0.0) for name, args in calls]
        assert mine == theirs, seed


def test_rand_augment_distribution():
    """20k images: ops uniform over 15, applied half the time, magnitude N(9, 0.5) <= 10."""
    random.seed(7)
    np.random.seed(7)
    draws = [dv.sample_rand_augment() for _ in range(20_000)]
    ops = torch.stack([d["op"] for d in draws]).flatten()
    applied = torch.stack([d["applied"] for d in draws]).flatten()
    magnitude = torch.stack([d["magnitude"] for d in draws]).flatten()[applied]
    arg = torch.stack([d["arg"] for d in draws]).flatten()
    n = ops.numel()
    counts = torch.bincount(ops, minlength=15).double()
    sd = (n * (1 / 15) * (14 / 15)) ** 0.5
    assert ((counts - n / 15).abs() < 4.5 * sd).all(), counts
    assert abs(applied.double().mean().item() - 0.5) < 4.5 * (0.25 / n) ** 0.5
    assert abs(magnitude.mean().item() - 9.0) < 0.02  # clipping at 10 moves it by 0.004
    assert 0.47 < magnitude.std().item() < 0.51
    assert magnitude.max().item() == 10.0 and magnitude.min().item() >= 0.0
    assert 0.015 < (magnitude == 10.0).double().mean().item() < 0.03  # P(N(9, .5) > 10) = 2.3%
    for name in ("Rotate", "ShearX", "TranslateYRel", "ColorIncreasing"):
        k = dv.RAND_OPS.index(name)
        chosen = arg[(ops == k) & applied]
        centre = 1.0 if name.endswith("Increasing") else 0.0
        negative = (chosen < centre).double().mean().item()
        assert abs(negative - 0.5) < 4.5 * (0.25 / chosen.numel()) ** 0.5, (name, negative)


# -- crop boxes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(60, 45), (45, 60), (200, 20), (7, 90)])
def test_strong_box_is_timms_get_params(width, height):
    """Draw for draw (the last two sizes hit the central-crop fallback)."""
    image = Image.new("RGB", (width, height))
    for seed in range(200):
        random.seed(seed)
        top, left, h, w = RandomResizedCropAndInterpolation.get_params(
            image, SPEC.strong_scale, dv.STRONG_RATIO)
        random.seed(seed)
        assert dv.timm_resized_crop_box(height, width, SPEC.strong_scale) == (
            left, top, left + w, top + h)


@pytest.mark.parametrize(("width", "height"), [(60, 45), (200, 20)])
def test_lafter_box_is_torchvisions_get_params(width, height):
    image = Image.new("RGB", (width, height))
    for seed in range(200):
        torch.manual_seed(seed)
        top, left, h, w = T.RandomResizedCrop.get_params(image, [0.2, 1.0], [3 / 4, 4 / 3])
        torch.manual_seed(seed)
        assert dv.torchvision_resized_crop_box(height, width, (0.2, 1.0)) == (
            left, top, left + w, top + h)


def test_strong_box_distribution_matches_timm():
    """Two-sample KS on area fraction and log aspect ratio, independent seeds."""
    height, width = 375, 500
    image = Image.new("RGB", (width, height))
    random.seed(1)
    mine = [dv.timm_resized_crop_box(height, width, (0.3, 1.0)) for _ in range(4000)]
    random.seed(2)
    theirs = [RandomResizedCropAndInterpolation.get_params(image, (0.3, 1.0), dv.STRONG_RATIO)
              for _ in range(4000)]
    mine_wh = np.array([(r - left, b - top) for left, top, r, b in mine], dtype=float)
    theirs_wh = np.array([(w, h) for _, _, h, w in theirs], dtype=float)
    for stat in (lambda wh: wh[:, 0] * wh[:, 1] / (height * width),
                 lambda wh: np.log(wh[:, 0] / wh[:, 1])):
        assert ks_2samp(stat(mine_wh), stat(theirs_wh)).pvalue > 1e-3
    assert (mine_wh[:, 0] * mine_wh[:, 1] >= 0.29 * height * width).all()


def test_num_crops_is_honoured_on_both_paths():
    spec = ViewSpec(image_size=S, num_crops=3)
    image = IMAGES[0]
    _seed(5)
    pil = MultiCrop(spec)(image)
    _seed(5)
    boxes = crop_boxes(image.width, image.height, 3, spec.crop_scale)
    batch, out = _render([image], spec=spec, names=["crops"], seed=5)
    assert pil.shape == (3, 3, S, S) and out["crops"].shape == (1, 3, 3, S, S)
    assert batch["params"]["crops"]["box"][0].tolist() == [list(b) for b in boxes]
    mean, worst = _errors(_levels(out["crops"][0]), _levels(pil))
    assert mean < 0.05 and worst <= 2


# -- strong fill ------------------------------------------------------------------------------


def _forced_rotation(spec: ViewSpec, degrees: float) -> torch.Tensor:
    _seed(3)
    batch = dv.collate_device_batch(_items(IMAGES, spec, ["strong"]))
    params = batch["params"]["strong"]
    params["op"][:, 0] = dv.RAND_OPS.index("Rotate")
    params["applied"][:, 0], params["applied"][:, 1] = True, False
    params["arg"][:, 0] = degrees
    return dv.render_views(batch, ["strong"], spec, "cpu")["strong"]


def test_strong_fill_zero_and_mean_differ_only_where_filled():
    zero = ViewSpec(S, strong_fill="zero")
    mean = ViewSpec(S, strong_fill="mean")
    assert strong_fill_colour(zero) == (0, 0, 0)
    assert strong_fill_colour(mean) == (123, 117, 104)  # round(255 * CLIP mean)
    a, b = _levels(_forced_rotation(zero, 27.0)), _levels(_forced_rotation(mean, 27.0))
    differ = (a - b).abs().amax(1) > 1e-3  # (B, S, S)
    assert 0.05 < differ.double().mean() < 0.5  # the rotated-out corners
    black = torch.zeros(3, 1)
    fill = torch.tensor([123.0, 117.0, 104.0]).view(3, 1)
    for k in range(len(IMAGES)):
        assert torch.allclose(a[k][:, differ[k]], black.expand(3, -1), atol=1e-3)
        assert torch.allclose(b[k][:, differ[k]], fill.expand(3, -1), atol=1e-3)


def test_strong_fill_on_the_pil_path():
    """"mean" is the old transform (timm normalising); "zero" fills where the device fills."""
    from timm.data import create_transform

    old = create_transform(input_size=S, is_training=True, scale=(0.3, 1.0), hflip=0.5,
                           color_jitter=0.0, auto_augment=STRONG_AUTO_AUGMENT,
                           interpolation="bicubic", mean=SPEC.mean, std=SPEC.std, re_prob=0.0)
    zero, mean = ViewSpec(S, strong_fill="zero"), ViewSpec(S, strong_fill="mean")
    agree, total = 0, 0
    for seed in range(40):
        image = _photo(60, 45, seed)
        outs = {}
        for key, transform in (("old", old), ("zero", Views(zero, ["strong"])),
                               ("mean", Views(mean, ["strong"]))):
            _seed(seed)
            result = transform(image)
            outs[key] = result if key == "old" else result["strong"]
        assert torch.equal(outs["old"], outs["mean"])
        pil_differ = (outs["zero"] - outs["mean"]).abs().amax(0) > 1e-4
        _, dz = _render([image], zero, ["strong"], seed=seed)
        _, dm = _render([image], mean, ["strong"], seed=seed)
        dev_differ = (dz["strong"][0] - dm["strong"][0]).abs().amax(0) > 1e-4
        agree += int((pil_differ & dev_differ).sum())
        total += int((pil_differ | dev_differ).sum())
    assert total > 100  # some seeds drew geometric ops
    assert agree / total > 0.97


def test_unknown_fill_and_views_are_rejected():
    with pytest.raises(ValueError, match="strong_fill"):
        strong_fill_colour(ViewSpec(S, strong_fill="grey"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown view"):
        DeviceManifestImages([], SPEC, ["weak", "blurry"])
    with pytest.raises(ValueError, match="unknown view"):
        dv.render_views(dv.collate_device_batch(_items(IMAGES[:1], names=["weak"])),
                        ["nope"], SPEC, "cpu")


# -- LaFTer's colour ops ------------------------------------------------------------------------


def test_lafter_colour_ops_match_torchvision_pil():
    image = _photo(S, S, 4)
    x = _pil_levels(image)[None]
    for hue in (-0.1, -0.037, 0.0, 0.05, 0.0999):
        ref = _pil_levels(TVF.adjust_hue(image, hue))
        assert torch.equal(dv.adjust_hue(x.clone(), torch.tensor([hue]))[0], ref), hue
    for factor, ours, theirs in ((0.7, dv.brightness, TVF.adjust_brightness),
                                 (1.35, dv.contrast, TVF.adjust_contrast),
                                 (0.61, dv.color, TVF.adjust_saturation)):
        f = torch.tensor(factor).view(1, 1, 1, 1)
        assert torch.equal(ours(x.clone(), f)[0], _pil_levels(theirs(image, factor)))
    assert torch.equal(dv.luma(x).expand(-1, 3, -1, -1)[0],
                       _pil_levels(TVF.rgb_to_grayscale(image, 3)))
    from PIL import ImageFilter

    radii = (0.1, 0.5, 1.3, 2.0)
    blurred = dv.gaussian_blur_pil(x.expand(len(radii), -1, -1, -1).clone(),
                                   torch.tensor(radii, dtype=torch.float64))
    for k, radius in enumerate(radii):
        ref = _pil_levels(image.filter(ImageFilter.GaussianBlur(radius=radius)))
        assert torch.equal(blurred[k], ref), radius


# -- dataset, collate, determinism --------------------------------------------------------------


def _dataset(spec=SPEC, names=ALL_VIEWS) -> DeviceManifestImages:
    pixels = {f"img{k}": _tensor(image) for k, image in enumerate(IMAGES)}
    samples = [Sample(f"img{k}", k % 3) for k in range(len(IMAGES))]
    return DeviceManifestImages(samples, spec, names, loader=pixels.__getitem__)


def _epoch(seed: int, names=ALL_VIEWS) -> list[dict[str, torch.Tensor]]:
    _seed(seed)
    loader = torch.utils.data.DataLoader(
        _dataset(names=names), batch_size=3, shuffle=True,
        generator=torch.Generator().manual_seed(seed), collate_fn=dv.collate_device_batch)
    return [dv.render_views(batch, names, SPEC, "cpu") for batch in loader]


def test_dataset_collate_and_render_shapes():
    dataset = _dataset()
    item = dataset[2]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 50, 50)
    assert item["label"] == 2 and item["index"] == 2
    batch = dv.collate_device_batch([dataset[k] for k in range(4)])
    assert batch["pixels"].numel() == sum(3 * im.width * im.height for im in IMAGES)
    assert batch["sizes"].tolist() == [[im.height, im.width] for im in IMAGES]
    assert batch["params"]["crops"]["box"].shape == (4, 8, 4)
    assert batch["params"]["strong"]["op"].shape == (4, 2)
    out = dv.render_views(batch, ALL_VIEWS, SPEC, "cpu", chunk=3)  # chunks of 3 and 1
    for name in ("weak", "strong", "test", "lafter_strong"):
        assert out[name].shape == (4, 3, S, S) and out[name].dtype == torch.float32
    assert out["crops"].shape == (4, 8, 3, S, S)
    assert out["label"].tolist() == [0, 1, 2, 0] and out["index"].tolist() == [0, 1, 2, 3]
    whole = dv.render_views(batch, ALL_VIEWS, SPEC, "cpu", chunk=64)
    for name in ALL_VIEWS:  # chunking changes nothing
        assert torch.equal(out[name], whole[name]), name
    with pytest.raises(ValueError, match="uint8"):
        DeviceManifestImages([Sample("x", 0)], SPEC, ["weak"],
                             loader=lambda _: torch.zeros(3, 4, 4))[0]


def test_same_seed_same_batches():
    first, again, other = _epoch(11), _epoch(11), _epoch(12)
    assert len(first) == 2
    for a, b in zip(first, again, strict=True):
        for name in a:
            assert torch.equal(a[name], b[name]), name
    assert not torch.equal(first[0]["strong"], other[0]["strong"])


def test_time_views_reports_both_paths():
    timings = dv.time_views(IMAGES[:2], SPEC, ["weak", "crops"], "cpu", repeats=1)
    assert set(timings["cpu"]) == {"weak", "crops"}
    assert set(timings["device"]) == {"sample", "collate", "weak", "crops"}
    assert all(v > 0 for path in timings.values() for v in path.values())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_renders_what_the_cpu_renders():
    """Measured on CPU vs CUDA float resizes: expect rounding-level differences only."""
    _seed(0)
    batch = dv.collate_device_batch(_items(IMAGES * 4))
    cpu = dv.render_views(batch, ALL_VIEWS, SPEC, "cpu")
    cuda = dv.render_views(batch, ALL_VIEWS, SPEC, "cuda")
    for name in ALL_VIEWS:
        mean, worst = _errors(_levels(cuda[name]), _levels(cpu[name]))
        assert mean < 0.5, (name, mean, worst)
