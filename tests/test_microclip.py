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
    images = torch.randn(3, 3, 28, 28)
    features = VisualAdapter(clip.visual)(images)
    expected = F.normalize(clip.encode_image(images), dim=-1)
    torch.testing.assert_close(features.z_cls, expected)


def test_value_path_tokens_equal_step_by_step_block_computation(demo_clip):
    clip, _ = demo_clip
    visual = clip.visual
    adapter = VisualAdapter(visual)
    images = torch.randn(2, 3, 28, 28)
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
    assert got.shape == (2, 16, width)
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
