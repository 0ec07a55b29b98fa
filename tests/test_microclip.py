"""microCLIP in the harness: adapter invariants, trainable counts, resume, registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from microclip.errors import ConfigError
from microclip.methods import METHODS
from microclip.methods.catalog import build_with_stand_in_text, count_trainable
from microclip.model.adapter import VisualAdapter
from microclip.model.backbones import DEMO_MODEL, create_clip
from microclip.results import read_epochs, read_json_object
from microclip.runner import adapt, evaluate
from microclip.spec import RunSpec


@pytest.fixture(scope="module")
def demo_clip():
    torch.manual_seed(0)
    clip, tokenizer = create_clip(DEMO_MODEL, None)
    return clip, tokenizer


def test_adapter_cls_embedding_equals_open_clip_encode_image(demo_clip):
    clip, _ = demo_clip
    size = clip.visual.image_size[0]
    images = torch.randn(3, 3, size, size)
    features = VisualAdapter(clip.visual)(images)
    expected = F.normalize(clip.encode_image(images), dim=-1)
    torch.testing.assert_close(features.z_cls, expected)


def test_value_path_tokens_equal_step_by_step_block_computation(demo_clip):
    clip, _ = demo_clip
    visual = clip.visual
    adapter = VisualAdapter(visual)
    size = visual.image_size[0]
    images = torch.randn(2, 3, size, size)
    # Step by step from the block's own weights.
    x = visual.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(2, 1, -1), x], 1) + visual.positional_embedding
    x = visual.ln_pre(x)
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    last = visual.transformer.resblocks[-1]
    width = x.shape[-1]
    w_v = last.attn.in_proj_weight[2 * width :]
    b_v = last.attn.in_proj_bias[2 * width :]
    v = last.ln_1(x) @ w_v.T + b_v
    u1 = x + (v @ last.attn.out_proj.weight.T + last.attn.out_proj.bias)
    u = u1 + last.mlp(last.ln_2(u1))
    expected = visual.ln_post(u)[:, 1:]
    got = adapter(images, with_patches=True).patches
    assert got.shape == (2, adapter.num_patches, width)
    torch.testing.assert_close(got, expected)


def test_vit_b32_microclip_has_1861632_trainable_values_for_102_classes():
    assert count_trainable("microclip", model="ViT-B-32-quickgelu", num_classes=102) == 1_861_632


def test_trainable_set_is_only_visual_layernorms_head_and_soap(demo_clip):
    clip, tokenizer = demo_clip
    method = build_with_stand_in_text("microclip", clip, tokenizer, num_classes=5)
    names = [n for n, _ in method.trainable_parameters()]
    assert "head" in names and any(n.startswith("soap.w_q") for n in names)
    for name in names:
        assert name in {"head"} or name.startswith("soap.") or ".ln_" in name, name
    assert not any("attn.in_proj" in n or "conv1" in n for n in names)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ViT-B-16-quickgelu", "ViT-L-14-quickgelu"])
def test_larger_backbones_build_and_run_one_microclip_step(model):
    torch.manual_seed(0)
    clip, tokenizer = create_clip(model, None)
    method = build_with_stand_in_text(
        "microclip", clip, tokenizer, num_classes=4, options={"num_crops": 2}
    )
    adapter = method.adapter
    size = clip.visual.image_size[0]
    batch = {
        "weak": torch.randn(1, 3, size, size),
        "strong": torch.randn(1, 3, size, size),
        "crops": torch.randn(1, 2, 3, size, size),
        "label": torch.zeros(1, dtype=torch.long),
    }
    out = method.training_step(batch, step=0, epoch=0)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert method.soap.w_q.weight.grad is not None
    assert adapter.width == clip.visual.conv1.out_channels


def _spec(method: str, world, *, options=None, eval_each_epoch=True, **train) -> RunSpec:
    return RunSpec.build(
        method=method,
        dataset="tiny",
        model=DEMO_MODEL,
        pretrained=str(world["weights"]),
        seed=3,
        option_layers=(options or {},),
        train_layers=({"epochs": 3, "batch_size": 8, "lr": 1e-3, **train},),
        eval_each_epoch=eval_each_epoch,
    )


def _adapt(spec: RunSpec, world, out: Path, **kwargs):
    return adapt(
        spec,
        manifest_dir=world["manifest"],
        prototypes_path=world["prototypes"],
        out_state=out / "adapted.pt",
        log_path=out / "epochs.jsonl",
        checkpoint_path=out / "checkpoint.pt",
        **kwargs,
    )


def test_resume_after_kill_gives_bit_identical_final_state(tiny_world, tmp_path):
    spec = _spec("microclip", tiny_world)
    straight = _adapt(spec, tiny_world, tmp_path / "straight")
    killed = tmp_path / "killed"
    partial = _adapt(spec, tiny_world, killed, stop_after_epoch=1)
    assert partial == {"stopped_after_epoch": 1}
    resumed = _adapt(spec, tiny_world, killed)
    for name, tensor in straight["state"]["tensors"].items():
        assert torch.equal(tensor, resumed["state"]["tensors"][name]), name
    assert [e["test_top1"] for e in straight["history"]] == [
        e["test_top1"] for e in resumed["history"]
    ]
    lines = (killed / "epochs.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_checkpoint_of_another_configuration_is_kept_aside_not_resumed(tiny_world, tmp_path):
    _adapt(_spec("microclip", tiny_world), tiny_world, tmp_path, stop_after_epoch=1)
    other = _adapt(_spec("microclip", tiny_world, lr=2e-3), tiny_world, tmp_path)
    assert [e["epoch"] for e in other["history"]] == [1, 2, 3]  # started over
    assert len(list(tmp_path.glob("checkpoint.stale-*.pt"))) == 1


def test_microclip_adapts_and_writes_flat_metrics(tiny_world, tmp_path):
    spec = _spec("microclip", tiny_world)
    _adapt(spec, tiny_world, tmp_path)
    record = evaluate(
        spec,
        manifest_dir=tiny_world["manifest"],
        prototypes_path=tiny_world["prototypes"],
        adapted_state=tmp_path / "adapted.pt",
        out_metrics=tmp_path / "metrics.json",
    )
    saved = read_json_object(tmp_path / "metrics.json")
    assert saved["top1"] == record.top1 and 0.0 <= saved["top1"] <= 100.0
    assert saved["n_test"] == 12 and saved["num_classes"] == 3
    assert saved["method"] == "microclip" and saved["method_config.gamma"] == 0.5
    assert all(not isinstance(v, (dict, list)) or k == "train_settings.betas"
               for k, v in saved.items()), "metrics.json is flat"
    epochs = read_epochs(tmp_path / "epochs.jsonl")
    assert len(epochs) == 3 and all(e["pseudo_label_acc"] is not None for e in epochs)
    for key in ("config_hash", "version", "packages.torch", "wall_s", "mean_per_class_recall"):
        assert key in saved


@pytest.mark.parametrize(
    "options",
    [
        {"fg_pooling": "patch_mean"},
        {"fg_pooling": "ncut_mean"},
        {"query": "cls"},
        {"query": "mean_patch"},
        {"query": "random_patch"},
        {"learnable_null": True},
        {"gamma": 1.0},
        {"multiview": False},
        {"head_init": "templates"},
        {"train_head": False},
        {"ncut_input": "key_cosine"},
        {"prior_encoder": "frozen"},
        {"supervised": True},
    ],
)
def test_every_ablation_switch_trains_one_epoch(tiny_world, tmp_path, options):
    spec = _spec("microclip", tiny_world, options=options, eval_each_epoch=False,
                 epochs=1, batch_size=12, lr=1e-4)
    result = _adapt(spec, tiny_world, tmp_path)
    assert len(result["history"]) == 1 and result["history"][0]["loss"] > 0


def test_supervised_upper_bound_pseudo_labels_are_the_true_labels(tiny_world, tmp_path):
    spec = _spec("microclip", tiny_world, options={"supervised": True}, eval_each_epoch=False,
                 epochs=1, batch_size=12, lr=1e-4)
    result = _adapt(spec, tiny_world, tmp_path)
    assert result["history"][0]["pseudo_label_acc"] == 100.0


def test_unknown_method_option_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="unknown key.*gamm.*allowed:.*gamma"):
        METHODS.get("microclip").build_config({"gamm": 0.3})


def test_cls_selftrain_variants_are_registered_as_methods():
    assert {"cls_selftrain", "multiview_cls_selftrain", "microclip"} <= set(METHODS.names())


# -- release parity (the differential check against the authors' release) ---------------------
def test_multiview_cls_selftrain_pseudo_labels_are_the_prior_times_the_learnable_head(demo_clip):
    clip, tokenizer = demo_clip
    method = build_with_stand_in_text("multiview_cls_selftrain", clip, tokenizer, num_classes=5)
    size = clip.visual.image_size[0]
    torch.manual_seed(3)
    batch = {"weak": torch.randn(4, 3, size, size), "crops": torch.randn(4, 8, 3, size, size)}
    from microclip.ops.prior import multiview_prior

    weak = method.adapter(batch["weak"]).z_cls
    crops = method.adapter(batch["crops"].flatten(0, 1)).z_cls.view(4, 8, -1)
    g = multiview_prior(crops, weak)  # (B, d)
    expected = (g @ F.normalize(method.head, dim=-1).T).argmax(-1)  # release: g W* only
    assert torch.equal(method.pseudo_labels(batch), expected)
    dka = build_with_stand_in_text("multiview_cls_selftrain", clip, tokenizer, num_classes=5,
                                   options={"gamma": 0.5, "prior_head": "llm"})
    mixed = (0.5 * g @ dka.w_llm.T + 0.5 * weak @ F.normalize(dka.head, dim=-1).T).argmax(-1)
    assert torch.equal(dka.pseudo_labels(batch), mixed)  # the suite's earlier form, an option


def test_key_cosine_keys_omit_the_key_bias_as_the_release_does(demo_clip):
    import copy

    clip = copy.deepcopy(demo_clip[0])
    with torch.no_grad():  # a nonzero key bias, so leaving it out is visible
        clip.visual.transformer.resblocks[-1].attn.in_proj_bias.normal_()
    adapter = VisualAdapter(clip.visual)
    size = clip.visual.image_size[0]
    images = torch.randn(2, 3, size, size)
    blocks = clip.visual.transformer.resblocks
    h = adapter._run_blocks(adapter.embed(images), blocks[:-1])
    width = h.shape[-1]
    w_k = blocks[-1].attn.in_proj_weight[width : 2 * width]
    expected = (blocks[-1].ln_1(h) @ w_k.T)[:, 1:]
    torch.testing.assert_close(adapter(images, with_keys=True).keys, expected)


def test_num_crops_reaches_the_views(tiny_world, tmp_path):
    from microclip.runner import RunContext

    spec = _spec("microclip", tiny_world, options={"num_crops": 3})
    ctx = RunContext(spec, manifest_dir=tiny_world["manifest"], prototypes_path=tiny_world["prototypes"])
    assert ctx.view_spec.num_crops == 3
    batch = next(iter(ctx.train_data().loader(("weak", "crops"), shuffle=False)))
    assert batch["crops"].shape[1] == 3


# -- the device view path and the image cache (the speed issue) --------------------------------
def test_device_views_train_and_resume_bit_identically(tiny_world, tmp_path):
    spec = _spec("microclip", tiny_world, epochs=2).replace(views="device")
    straight = _adapt(spec, tiny_world, tmp_path / "straight")
    assert _adapt(spec, tiny_world, tmp_path / "cut", stop_after_epoch=1) == {"stopped_after_epoch": 1}
    resumed = _adapt(spec, tiny_world, tmp_path / "cut")
    for name, tensor in straight["state"]["tensors"].items():
        assert torch.equal(tensor, resumed["state"]["tensors"][name]), name
    cpu = _adapt(_spec("microclip", tiny_world, epochs=2), tiny_world, tmp_path / "cpu")
    assert straight["fingerprint"] != cpu["fingerprint"]  # a device-view run is its own config


def test_an_image_cache_at_full_size_changes_no_result(tiny_world, tmp_path):
    from microclip.data.cache import build_image_cache

    cache = build_image_cache(tiny_world["manifest"], tmp_path / "images", short_side=64)
    spec = _spec("microclip", tiny_world, epochs=1).replace(views="device")
    plain = _adapt(spec, tiny_world, tmp_path / "plain")
    cached = _adapt(spec.replace(image_cache=64), tiny_world, tmp_path / "cached", image_cache=cache)
    for name, tensor in plain["state"]["tensors"].items():  # 28 px images: cached as they are
        assert torch.equal(tensor, cached["state"]["tensors"][name]), name


def test_a_stale_image_cache_is_refused_naming_the_rule(tiny_world, tmp_path):
    import os

    from microclip.data.base import read_manifest
    from microclip.data.cache import ImageCache, build_image_cache
    from microclip.errors import DataError

    cache = build_image_cache(tiny_world["manifest"], tmp_path / "images", short_side=64)
    ImageCache.open(cache)  # fresh: fine
    path = read_manifest(tiny_world["manifest"]).train[0].path
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        with pytest.raises(DataError, match="files changed since it was built.*rule cache_images"):
            ImageCache.open(cache)
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
