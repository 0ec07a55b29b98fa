"""The prior-adaptation baselines (microclip/methods/{dpa,lafter,must,reclip}.py).

Hand-built tensors check each method's own math (its pure helpers); conftest's tiny world
(3 classes of 28 px PNGs, a random-weight ``microclip-demo-vit`` saved once so that the
adapt and evaluate sessions load the same weights) runs every method end to end through
``microclip.runner`` with one epoch of batch 8. CPU only, a few tens of seconds.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from microclip.data import DATASETS, get_dataset
from microclip.data.base import read_manifest
from microclip.methods import METHODS
from microclip.methods.dpa import (
    alignment_loss,
    dpa_pseudo_labels,
    prior_renormalise,
    push_prior,
    sample_weights,
)
from microclip.methods.lafter import (
    prompt_init_bound,
    text_training_set,
    train_text_classifier,
)
from microclip.methods.must import (
    block_mask,
    confident,
    layer_decay_groups,
    layer_id,
    mim_l1_loss,
    resolve_mask_patch_size,
)
from microclip.methods.reclip import ReCLIPConfig, agreement_losses, reclip_epochs
from microclip.methods.settings import release_row
from microclip.model.backbones import DEMO_MODEL
from microclip.results import read_epochs
from microclip.runner import RunContext, adapt, evaluate
from microclip.spec import RunSpec
from microclip.text.prototypes import TextPrototypes

torch.set_num_threads(1)  # the CPU is shared: keep every test single-threaded
BASELINES = ("dpa", "lafter", "must", "must_ln", "reclip")


def resolve(method: str, dataset: str):
    """(method config, train settings) the suite resolves for a release's dataset row."""
    spec = RunSpec.build(method=method, dataset=dataset, model=DEMO_MODEL, pretrained=None)
    return spec.method_config(), spec.train_settings()


# ------------------------------------------------------------------- settings data files
@pytest.mark.parametrize("method", BASELINES)
def test_every_registered_dataset_resolves_from_the_settings_file(method):
    for dataset in DATASETS.names():
        config, settings = resolve(method, dataset)
        row = release_row("must" if method == "must_ln" else method, dataset)
        assert row["_source"], f"{method}/{dataset}: every row names its source"
        assert settings.epochs >= 1 and settings.lr > 0
        assert dataclasses.is_dataclass(config)
        assert METHODS.get(method).config is type(config)


def test_a_settings_row_with_an_unknown_key_names_the_allowed_ones(monkeypatch):
    import microclip.methods.settings as settings_module
    from microclip.errors import ConfigError

    table = {"_default": {"lr": 1e-4, "_source": "x"}, "dtd": {"alpha_typo": 1.0}}
    monkeypatch.setattr(settings_module, "_table", lambda name: table)
    dpa = METHODS.get("dpa")
    with pytest.raises(ConfigError, match="'dtd' has unknown key.*alpha_typo.*DPAConfig fields"):
        dpa.resolve_options("dtd")
    assert dpa.resolve_train("cars")["lr"] == 1e-4


def test_dpa_settings_reproduce_the_release_table():
    config, settings = resolve("dpa", "eurosat")
    assert (config.a, config.w, config.reg, config.align) == (0.5, 1.0, 1.0, 0.01)
    assert (settings.lr, settings.epochs, settings.batch_size) == (3e-5, 10, 64)
    assert (settings.weight_decay, settings.min_lr, settings.schedule) == (0.1, 2e-6, "cosine")
    assert not release_row("dpa", "aid")["_configured"]


def test_must_settings_use_the_b16_rows_and_a_marked_transferred_recipe():
    config, settings = resolve("must", "sun397")
    assert (config.conf_threshold, config.ema_init, config.warm_it) == (0.4, 0.99, 500)
    assert (config.w_fair, config.w_align, settings.lr, settings.epochs) == (0.2, 1.0, 1e-4, 20)
    assert "transferred" in release_row("must", "cars")["_source"]


def test_reclip_epoch_table_follows_the_release_rule():
    for dataset in DATASETS.names():
        n = get_dataset(dataset).expected_train
        _, settings = resolve("reclip", dataset)
        if n is not None:
            assert settings.epochs == reclip_epochs(n), dataset
    assert [reclip_epochs(n) for n in (1880, 10_000, 50_000, 10**7)] == [2, 4, 12, 100]


def test_lafter_text_steps_per_dataset():
    steps = {
        d: resolve("lafter", d)[0].text_steps
        for d in ("dtd", "flowers", "pets")
    }
    assert steps == {"dtd": 400, "flowers": 600, "pets": 500}


def test_reclip_transductive_option_explains_how_to_run_it():
    with pytest.raises(ValueError, match="train.csv lists the test images"):
        ReCLIPConfig(transductive=True)


# ------------------------------------------------------------------------------ DPA (§1)
def test_dpa_prior_renormalisation_divides_by_the_prior_and_renormalises():
    probs = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    prior = torch.tensor([0.5, 0.25])
    # rows: [1.2, 1.6] / 2.8 and [0.4, 3.2] / 3.6
    expected = torch.tensor([[1.2 / 2.8, 1.6 / 2.8], [0.4 / 3.6, 3.2 / 3.6]])
    assert torch.allclose(prior_renormalise(probs, prior), expected)
    assert torch.allclose(prior_renormalise(probs, torch.full((2,), 0.5)), probs)


def test_dpa_prior_fifo_keeps_the_last_batches_including_the_current_one():
    fifo = []
    for value in range(1, 6):
        fifo, prior = push_prior(fifo, torch.tensor([float(value), 0.0]), size=3)
    assert len(fifo) == 3
    assert prior.tolist() == [4.0, 0.0]  # mean of 3, 4, 5


def test_dpa_sample_weights_are_products_of_ratios_to_the_max():
    p_txt = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1]])
    p_img = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.8, 0.0]])
    labels = torch.tensor([0, 1])
    w = sample_weights(p_txt, p_img, labels)
    assert w[0].item() == pytest.approx(1.0, abs=1e-6)  # both agree with y
    assert w[1].item() == pytest.approx(0.4 / 0.5 * 1.0, abs=1e-6)


def test_dpa_mixing_weight_selects_the_source_of_the_label():
    p_txt = torch.tensor([[0.9, 0.1]])
    p_img = torch.tensor([[0.2, 0.8]])
    uniform = torch.full((2,), 0.5)
    assert dpa_pseudo_labels(p_txt, p_img, uniform, a=0.0)[0].item() == 0
    assert dpa_pseudo_labels(p_txt, p_img, uniform, a=1.0)[0].item() == 1
    # A prior that over-represents class 0 flips the text-only label.
    assert dpa_pseudo_labels(p_txt, p_img, torch.tensor([0.99, 0.01]), a=0.0)[0].item() == 1


def test_dpa_alignment_loss_moves_only_the_text_prototypes():
    image = F.normalize(torch.randn(4, 8), dim=-1).requires_grad_(True)
    text = F.normalize(torch.randn(4, 8), dim=-1).requires_grad_(True)
    loss = alignment_loss(image, text, w=100.0)
    loss.backward()
    assert image.grad is None and text.grad is not None
    assert alignment_loss(image, image.detach(), w=100.0).item() < 1e-3 + loss.item()


# --------------------------------------------------------------------------- LaFTer (§3)
def test_lafter_stage_one_learns_a_separable_text_set():
    torch.manual_seed(0)
    k, d = 4, 16
    centres = torch.eye(d)[:k]  # one orthogonal direction per class
    texts = F.normalize(centres.repeat_interleave(10, 0) + 0.05 * torch.randn(k * 10, d), dim=-1)
    labels = torch.arange(k).repeat_interleave(10)
    head = torch.nn.Linear(d, k, bias=False)
    losses = train_text_classifier(
        head, texts, labels, steps=200, lr=5e-3, weight_decay=0.01, noise_std=0.1, smoothing=0.1
    )
    assert losses[-1] < losses[0]
    held_out = F.normalize(centres.repeat_interleave(5, 0) + 0.05 * torch.randn(k * 5, d), -1)
    assert (head(held_out).argmax(1) == torch.arange(k).repeat_interleave(5)).all()


def test_lafter_text_set_holds_every_description_and_template():
    desc = torch.zeros(2, 3, 4)
    desc[0, :2] = torch.eye(4)[:2]
    desc[1, :3] = torch.eye(4)[1:]
    mask = torch.tensor([[True, True, False], [True, True, True]])
    templ = torch.randn(2, 2, 4) * 5  # raw: normalised by the helper
    protos = TextPrototypes(["a", "b"], desc, mask, templ, *(torch.zeros(2, 4),) * 4)
    texts, labels = text_training_set(protos)
    assert texts.shape == (5 + 4, 4)
    assert labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1]
    assert torch.allclose(texts.norm(dim=-1), torch.ones(9))


def test_lafter_prompt_init_bound_matches_the_release_for_b16_values():
    assert prompt_init_bound(768, 16) == pytest.approx(0.0625)
    assert prompt_init_bound(768, 32) == pytest.approx(math.sqrt(6 / (3 * 32 * 32 + 768)))


# ----------------------------------------------------------------------------- MUST (§2)
def test_must_confidence_threshold_is_strict():
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    labels, mask = confident(probs, 0.7)
    assert labels.tolist()[:2] == [0, 1]
    assert mask.tolist() == [False, True, False]


def test_must_layer_ids_follow_the_release_including_the_mask_token_quirk():
    names = {
        "adapter.visual.conv1.weight": 0,
        "adapter.visual.class_embedding": 0,
        "adapter.visual.positional_embedding": 0,
        "adapter.visual.ln_pre.weight": 0,
        "adapter.visual.transformer.resblocks.0.attn.in_proj_weight": 1,
        "adapter.visual.transformer.resblocks.11.ln_2.bias": 12,
        "adapter.visual.ln_post.weight": 13,
        "adapter.visual.proj": 13,
        "head": 13,
        "ln_patch.weight": 13,
        "decoder.0.weight": 13,
        "mask_token": 0,
    }
    for name, expected in names.items():
        assert layer_id(name, 12) == expected, name
    assert layer_id("mask_token", 12, mask_token_quirk=False) == 13


def test_must_layer_decay_groups_scale_lr_and_decay_only_matrices():
    params = {
        "adapter.visual.conv1.weight": torch.nn.Parameter(torch.zeros(4, 3, 2, 2)),
        "adapter.visual.class_embedding": torch.nn.Parameter(torch.zeros(4)),
        "adapter.visual.transformer.resblocks.1.mlp.c_fc.weight": torch.nn.Parameter(
            torch.zeros(4, 4)
        ),
        "adapter.visual.transformer.resblocks.1.mlp.c_fc.bias": torch.nn.Parameter(torch.zeros(4)),
        "head": torch.nn.Parameter(torch.zeros(3, 4)),
        "mask_token": torch.nn.Parameter(torch.zeros(1, 1, 4)),
    }
    groups = layer_decay_groups(
        list(params.items()), num_layers=2, decay=0.65, weight_decay=0.05, lr_multiplier=0.25
    )
    by_name = {n: g for g in groups for n in g["param_names"]}
    assert by_name["head"]["lr_scale"] == pytest.approx(0.25)
    assert by_name["adapter.visual.transformer.resblocks.1.mlp.c_fc.weight"]["lr_scale"] == (
        pytest.approx(0.25 * 0.65)
    )
    assert by_name["mask_token"]["lr_scale"] == pytest.approx(0.25 * 0.65**3)
    assert by_name["adapter.visual.conv1.weight"]["weight_decay"] == 0.05
    assert by_name["mask_token"]["weight_decay"] == 0.05  # (1, 1, D): decayed, as released
    assert by_name["adapter.visual.class_embedding"]["weight_decay"] == 0.0
    assert by_name["adapter.visual.transformer.resblocks.1.mlp.c_fc.bias"]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(params)


def test_must_block_masks_cover_ceil_ratio_blocks_per_sample():
    torch.manual_seed(0)
    mask = block_mask(5, (14, 14), 2, 0.1, device=torch.device("cpu"))  # B/16, 32 px blocks
    assert mask.shape == (5, 196)
    assert mask.sum(1).tolist() == [math.ceil(0.1 * 49) * 4] * 5
    blocks = mask.view(5, 7, 2, 7, 2)  # every 2x2 patch block is all-or-nothing
    assert (blocks.all(dim=(2, 4)) == blocks.any(dim=(2, 4))).all()


def test_must_mask_patch_size_is_32_where_legal_else_the_model_patch():
    assert resolve_mask_patch_size(None, 16, 224) == 32
    assert resolve_mask_patch_size(None, 32, 224) == 32
    assert resolve_mask_patch_size(None, 7, 28) == 7
    with pytest.raises(ValueError, match="multiple of 32"):
        resolve_mask_patch_size(16, 32, 224)


def test_must_mim_loss_is_the_mean_l1_over_masked_pixel_channels():
    recon = torch.zeros(1, 3, 4, 4)
    target = torch.zeros(1, 3, 4, 4)
    target[..., :2, :2] = 2.0  # the masked patch (top left, 2 px patches) is off by 2
    target[..., 2:, 2:] = 9.0  # an unmasked patch does not count
    mask = torch.tensor([[[True, False], [False, False]]])
    assert mim_l1_loss(recon, target, mask, 2).item() == pytest.approx(2.0)


# --------------------------------------------------------------------------- ReCLIP (§4)
def test_reclip_agreement_losses_scale_the_visual_loss_by_an_extra_one_over_b():
    logits_t = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    logits_v = logits_t.flip(1)
    labels_t = torch.tensor([0, 1, 0, 1])
    labels_v = torch.tensor([0, 0, 0, 0])  # agree on samples 0 and 2
    ce_t = F.cross_entropy(logits_t, labels_t, reduction="none")
    ce_v = F.cross_entropy(logits_v, labels_v, reduction="none")
    loss_t, loss_v, mask = agreement_losses(logits_t, logits_v, labels_t, labels_v)
    assert mask.tolist() == [True, False, True, False]
    assert loss_t.item() == pytest.approx((ce_t[0] + ce_t[2]).item() / 2)
    assert loss_v.item() == pytest.approx((ce_v[0] + ce_v[2]).item() / 4 / 2)
    _, plain_v, _ = agreement_losses(logits_t, logits_v, labels_t, labels_v, visual_quirk=False)
    assert plain_v.item() == pytest.approx(loss_v.item() * 4)
    none_t, none_v, none = agreement_losses(logits_t, logits_v, labels_t, 1 - labels_t)
    assert not none.any() and none_t.item() == 0.0 and none_v.item() == 0.0


# ------------------------------------------------------------------- end to end (runner)
@dataclasses.dataclass
class World:
    manifest: Path
    prototypes: Path
    weights: Path
    runs: Path


@pytest.fixture(scope="module")
def world(tiny_world, tmp_path_factory) -> World:
    """conftest's tiny world (an unregistered dataset: every method's ``_default`` row)."""
    return World(
        manifest=tiny_world["manifest"],
        prototypes=tiny_world["prototypes"],
        weights=tiny_world["weights"],
        runs=tmp_path_factory.mktemp("baseline_runs"),
    )


def _spec(world: World, method: str, **train) -> RunSpec:
    return RunSpec.build(
        method=method,
        dataset="tiny",
        model=DEMO_MODEL,
        pretrained=str(world.weights),
        seed=0,
        train_layers=({"epochs": 1, "batch_size": 8, **train},),
    )


def _session(world: World, method: str) -> RunContext:
    return RunContext(
        _spec(world, method), manifest_dir=world.manifest, prototypes_path=world.prototypes
    )


def _run(world: World, spec: RunSpec, name: str):
    out = world.runs / name
    common = {"manifest_dir": world.manifest, "prototypes_path": world.prototypes}
    adapt(
        spec,
        **common,
        out_state=out / "adapted.pt",
        log_path=out / "log.jsonl",
        checkpoint_path=out / "ckpt.pt",
    )
    return evaluate(
        spec,
        **common,
        adapted_state=out / "adapted.pt",
        out_metrics=out / "metrics.json",
    )


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_adapts_and_evaluates_end_to_end(world, method):
    record = _run(world, _spec(world, method), method)
    assert 0.0 <= record.top1 <= 100.0
    assert record.n_test == len(read_manifest(world.manifest).test)
    (epoch,) = read_epochs(world.runs / method / "log.jsonl")
    assert math.isfinite(epoch["loss"]) and epoch["pseudo_label_acc"] is not None
    assert record.trainable_params > 0


def test_trainable_sets_match_each_release(world):
    session = _session(world, "dpa")
    visual = session.method.adapter.visual
    k = session.manifest.num_classes
    adapter = session.method.adapter  # microclip-demo-vit's shapes, read from the model
    width, d, p = adapter.width, adapter.embed_dim, adapter.patch_size
    ln = sum(
        q.numel()
        for m in visual.modules()
        if isinstance(m, torch.nn.LayerNorm)
        for q in m.parameters()
    )
    mim = width + 2 * width + (width * 3 * p * p + 3 * p * p)  # mask token, ln_patch, decoder
    expected = {
        "dpa": ln + k * d,
        "lafter": ln + 50 * width + k * d,
        "must_ln": ln + k * d + mim,
        "must": sum(q.numel() for q in visual.parameters()) + k * d + mim,
    }
    for method, count in expected.items():
        s = _session(world, method)
        assert s.method.num_trainable() == count, method
    s = _session(world, "reclip")
    text_ln = sum(
        q.numel()
        for n, m in s.method.clip_t.named_modules()
        if isinstance(m, torch.nn.LayerNorm) and not n.startswith("visual.")
        for q in m.parameters()
    )
    assert s.method.num_trainable() == ln + text_ln


@pytest.mark.parametrize("method", ["dpa", "must"])
def test_resumed_run_ends_where_an_uninterrupted_one_does(world, method):
    spec = _spec(world, method, epochs=2)
    whole = _run(world, spec, f"{method}-whole")
    out = world.runs / f"{method}-resume"
    common = {
        "manifest_dir": world.manifest,
        "prototypes_path": world.prototypes,
        "out_state": out / "adapted.pt",
        "log_path": out / "log.jsonl",
        "checkpoint_path": out / "ckpt.pt",
    }
    assert adapt(spec, **common, stop_after_epoch=1) == {"stopped_after_epoch": 1}
    adapt(spec, **common)
    a = torch.load(world.runs / f"{method}-whole" / "adapted.pt", weights_only=False)
    b = torch.load(out / "adapted.pt", weights_only=False)
    for name, tensor in a["state"]["tensors"].items():
        assert torch.equal(tensor, b["state"]["tensors"][name]), name
    assert whole.top1 == pytest.approx(
        evaluate(
            spec,
            manifest_dir=world.manifest,
            prototypes_path=world.prototypes,
            adapted_state=out / "adapted.pt",
            out_metrics=out / "metrics.json",
        ).top1
    )


def test_must_teacher_follows_the_ema_ramp(world):
    session = _session(world, "must_ln")
    method = session.method
    c = method.config
    student = dict(method.adapter.visual.named_parameters())
    teacher = dict(method.teacher.visual.named_parameters())
    name = "ln_post.weight"
    before = teacher[name].detach().clone()
    with torch.no_grad():
        student[name].add_(1.0)
        student["conv1.weight"].add_(1.0)  # frozen in must_ln: never averaged
    method.after_optimizer_step(0)  # d = ema_init at step 0
    assert torch.allclose(teacher[name], before + (1 - c.ema_init))
    assert not torch.equal(teacher["conv1.weight"], student["conv1.weight"])
    before = teacher[name].detach().clone()
    method.after_optimizer_step(10 * c.warm_it)  # past the ramp: d = ema_final
    gap = student[name] - before
    assert torch.allclose(teacher[name], before + (1 - c.ema_final) * gap, atol=1e-6)
