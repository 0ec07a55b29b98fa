"""Tests for microclip.ops: the method's math on small hand-built tensors (CPU, fast)."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from microclip.ops import (
    SOAP,
    batch_fairness_loss,
    class_centroids,
    constant_lr,
    cosine_lr,
    dka_pseudo_labels,
    ema_decay,
    ensemble_head,
    fairness_loss,
    knn_affinity,
    label_propagation,
    label_smoothed_ce,
    llm_head,
    masked_cross_entropy,
    masked_patch_mean,
    multiview_prior,
    multiview_weights,
    ncut_foreground,
    patch_mean,
    pseudo_label_feature,
    random_patch,
    template_class_embedding,
    token_fusion_logits,
    top_singular_removal_projection,
    weighted_cross_entropy,
)

# ----------------------------------------------------------------------------- NCut (§2)

D_TOK = 16
N_BIG, N_SMALL = 10, 6


def _two_clusters(perms: list[torch.Tensor], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """B images of 10 tokens near 3 e_0 and 6 tokens near e_1, placed by a permutation each.

    Cross-cluster dot products stay far below tau = 0.2, so the thresholded graph is two
    cliques joined only by eps; the smaller clique holds the largest |f| entries.
    Returns patches (B, 16, D) and the expected foreground (B, 16) bool (the small cluster).
    """
    g = torch.Generator().manual_seed(seed)
    images, fg = [], []
    for perm in perms:
        tokens = torch.zeros(N_BIG + N_SMALL, D_TOK)
        tokens[:N_BIG, 0] = 3.0
        tokens[N_BIG:, 1] = 1.0
        tokens += 0.01 * torch.randn(tokens.shape, generator=g)
        is_small = torch.arange(N_BIG + N_SMALL) >= N_BIG
        images.append(tokens[perm])
        fg.append(is_small[perm])
    return torch.stack(images), torch.stack(fg)


def _perms(b: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randperm(N_BIG + N_SMALL, generator=g) for _ in range(b)]


def _force_fiedler_sign(monkeypatch: pytest.MonkeyPatch, sign: float) -> None:
    """Make eigh return the Fiedler vector with f_s = sign * max |f| (s = argmax |f|)."""
    real_eigh = torch.linalg.eigh

    def eigh(a: torch.Tensor):
        values, vectors = real_eigh(a)
        vectors = vectors.clone()
        f = vectors[..., 1]  # (B, N)
        s = f.abs().argmax(dim=-1, keepdim=True)
        vectors[..., 1] = f * f.gather(-1, s).sign() * sign
        return values, vectors

    monkeypatch.setattr(torch.linalg, "eigh", eigh)


def test_ncut_std_selects_cluster_holding_largest_fiedler_entry_per_image(monkeypatch):
    patches, expected = _two_clusters(_perms(4))
    _force_fiedler_sign(monkeypatch, +1.0)
    result = ncut_foreground(patches)
    assert torch.equal(result.mask, expected)
    assert len({tuple(m.tolist()) for m in result.mask}) == 4  # a different answer per image
    manual = torch.stack([patches[b][expected[b]].mean(0) for b in range(4)])
    torch.testing.assert_close(result.query, manual)


@pytest.mark.parametrize("sign", [+1.0, -1.0])
def test_ncut_mean_threshold_mask_is_independent_of_eigenvector_sign(monkeypatch, sign):
    patches, expected = _two_clusters(_perms(3))
    _force_fiedler_sign(monkeypatch, sign)
    assert torch.equal(ncut_foreground(patches, threshold="mean").mask, expected)


@pytest.mark.parametrize("threshold", ["std", "mean"])
@pytest.mark.parametrize("sign", [+1.0, -1.0])
def test_ncut_orient_vector_mask_is_independent_of_eigenvector_sign(monkeypatch, threshold, sign):
    patches, expected = _two_clusters(_perms(3))
    _force_fiedler_sign(monkeypatch, sign)
    result = ncut_foreground(patches, threshold=threshold, sign="orient_vector")
    assert torch.equal(result.mask, expected)


def test_ncut_std_release_rule_with_negative_fiedler_selects_every_token(monkeypatch):
    # Release quirk pinned: -f has no entry above std(f), the seed is outside the (empty)
    # mask, and the inversion turns it into all tokens.
    patches, _ = _two_clusters(_perms(3))
    _force_fiedler_sign(monkeypatch, -1.0)
    result = ncut_foreground(patches)
    assert result.mask.all()
    torch.testing.assert_close(result.query, patches.mean(dim=1))


def test_ncut_fiedler_of_two_cliques_is_degree_weighted_indicator():
    # Components coupled by eps only: float64 separates eigenvalues ~1e-6 apart, and
    # f is constant per clique with |f_small| / |f_big| = (n_big / n_small) ** 1.5.
    patches, expected = _two_clusters(_perms(2))
    f = ncut_foreground(patches).fiedler  # (B, N) float64
    assert f.dtype == torch.float64
    for b in range(2):
        big, small = f[b][~expected[b]], f[b][expected[b]]
        assert torch.allclose(big, big[0].expand_as(big), atol=1e-6)
        assert torch.allclose(small, small[0].expand_as(small), atol=1e-6)
        ratio = (small[0] / big[0]).abs().item()
        assert ratio == pytest.approx((N_BIG / N_SMALL) ** 1.5, rel=1e-4)


def test_ncut_calls_eigh_once_for_a_batch_of_64(monkeypatch):
    calls = []
    real_eigh = torch.linalg.eigh

    def counting_eigh(a):
        calls.append(tuple(a.shape))
        return real_eigh(a)

    monkeypatch.setattr(torch.linalg, "eigh", counting_eigh)
    patches = torch.randn(64, 49, 768)
    start = time.perf_counter()
    result = ncut_foreground(patches)
    elapsed = time.perf_counter() - start
    assert calls == [(64, 49, 49)]
    assert result.mask.shape == (64, 49) and result.query.shape == (64, 768)
    assert elapsed < 5.0


def test_ncut_gradient_reaches_patches_only_through_query():
    patches, _ = _two_clusters(_perms(2))
    patches.requires_grad_(True)
    result = ncut_foreground(patches)
    assert result.fiedler.grad_fn is None
    result.query.sum().backward()
    count = result.mask.sum(dim=1, keepdim=True).float()  # (B, 1)
    expected = (result.mask.float() / count).unsqueeze(-1).expand_as(patches)
    torch.testing.assert_close(patches.grad, expected)


def test_ncut_bf16_input_keeps_query_dtype_and_solves_in_float64():
    patches, expected = _two_clusters(_perms(2))
    result = ncut_foreground(patches.bfloat16(), threshold="mean")
    assert result.query.dtype == torch.bfloat16
    assert result.fiedler.dtype == torch.float64
    assert torch.equal(result.mask, expected)


def test_ncut_cosine_affinity_ignores_token_norms():
    patches, _ = _two_clusters(_perms(2))
    scales = torch.rand(2, N_BIG + N_SMALL, 1, generator=torch.Generator().manual_seed(3)) + 0.5
    a = ncut_foreground(patches, affinity="cosine", threshold="mean").mask
    b = ncut_foreground(patches * scales, affinity="cosine", threshold="mean").mask
    assert torch.equal(a, b)


def test_ncut_rejects_unknown_threshold():
    with pytest.raises(ValueError, match="allowed: 'std', 'mean'"):
        ncut_foreground(torch.randn(1, 4, 8), threshold="median")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- SOAP (§3)


def test_soap_query_equal_to_a_token_attends_mostly_to_that_token():
    d, n = 16, 8
    patches = (10.0 * torch.eye(d)[:n]).unsqueeze(0)  # (1, N, D) orthogonal tokens, norm 10
    soap = SOAP(d)
    out = soap(patches[:, 3], patches)  # logit 100 / 4 = 25 on token 3, 0 elsewhere
    assert out.attention.shape == (1, n + 1)
    assert out.attention[0, 3] > 0.999
    torch.testing.assert_close(out.pooled, patches[:, 3], atol=1e-3 * 10, rtol=0)


def test_soap_zero_null_token_takes_attention_but_adds_nothing_to_pooled():
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(3, 5, 8, generator=g)
    query = torch.randn(3, 8, generator=g)
    out = SOAP(8)(query, patches)
    torch.testing.assert_close(out.attention.sum(dim=-1), torch.ones(3))
    assert (out.attention[:, -1] > 0).all()
    real_only = torch.einsum("bn,bnd->bd", out.attention[:, :-1], patches)
    torch.testing.assert_close(out.pooled, real_only)


def test_soap_zero_query_spreads_attention_evenly_over_tokens_and_null():
    patches = torch.randn(2, 4, 8)
    out = SOAP(8)(torch.zeros(2, 8), patches)
    torch.testing.assert_close(out.attention, torch.full((2, 5), 0.2))
    torch.testing.assert_close(out.pooled, patches.sum(dim=1) / 5)


def test_soap_weights_start_at_identity_and_count_three_d_squared():
    soap = SOAP(768)
    for layer in (soap.w_q, soap.w_k, soap.w_v):
        assert layer.bias is None
        assert torch.equal(layer.weight, torch.eye(768))
    assert sum(p.numel() for p in soap.parameters()) == 1_769_472
    assert "null" not in dict(soap.named_parameters())
    assert "null" not in soap.state_dict()


def test_soap_learnable_null_is_a_zero_initialised_parameter_that_trains():
    soap = SOAP(8, learnable_null=True)
    params = dict(soap.named_parameters())
    assert "null" in params and torch.equal(params["null"], torch.zeros(8))
    out = soap(torch.randn(2, 8), torch.randn(2, 5, 8))
    out.pooled.sum().backward()
    assert soap.null.grad is not None and soap.null.grad.abs().sum() > 0
    assert soap.w_q.weight.grad is not None


def test_soap_rejects_tokens_of_the_wrong_width():
    with pytest.raises(ValueError, match="SOAP"):
        SOAP(8)(torch.randn(2, 16), torch.randn(2, 5, 16))


def test_patch_means_and_random_patch_helpers():
    patches = torch.arange(24.0).reshape(2, 3, 4)
    torch.testing.assert_close(patch_mean(patches), patches.mean(dim=1))
    mask = torch.tensor([[True, False, True], [False, False, False]])
    out = masked_patch_mean(patches, mask)
    torch.testing.assert_close(out[0], (patches[0, 0] + patches[0, 2]) / 2)
    torch.testing.assert_close(out[1], torch.zeros(4))  # empty mask -> zero vector
    picked = random_patch(patches, generator=torch.Generator().manual_seed(0))
    for b in range(2):
        assert any(torch.equal(picked[b], patches[b, j]) for j in range(3))


# ----------------------------------------------------------------------------- fusion (§4-§5)


def test_token_fusion_logits_follow_formula_on_hand_built_tensors():
    head = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # rows normalise to e_0, e_1
    z_cls = torch.tensor([[1.0, 0.0]])
    z_fg = torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(token_fusion_logits(z_cls, z_fg, head), torch.tensor([[50.0, 50.0]]))
    torch.testing.assert_close(
        token_fusion_logits(z_cls, z_fg, head, beta=0.25, scale=10.0), torch.tensor([[2.5, 7.5]])
    )


def test_pseudo_label_feature_is_normalised_average():
    f = pseudo_label_feature(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(f, torch.tensor([[1.0, 1.0]]) / math.sqrt(2))


def _equal_weight_descriptions(k: int, m: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """e_kj = cos(th) t_k + sin(th) u_kj with u_kj orthonormal and orthogonal to t_k."""
    basis = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0)))[0]
    t = basis[:, :k].T  # (K, d)
    e = torch.empty(k, m, d)
    for c in range(k):
        others = basis[:, k + c * m : k + (c + 1) * m].T  # (M, d)
        e[c] = math.cos(0.6) * t[c] + math.sin(0.6) * others
    return e, t


def test_llm_head_equals_description_mean_when_all_weights_are_equal():
    e, t = _equal_weight_descriptions(k=3, m=4, d=32)
    mask = torch.ones(3, 4, dtype=torch.bool)
    w_star_init = F.normalize(e.mean(dim=1), dim=-1)
    torch.testing.assert_close(llm_head(e, mask, t), w_star_init)
    torch.testing.assert_close(ensemble_head(e, mask), w_star_init)


def test_llm_head_ignores_padded_descriptions():
    e, t = _equal_weight_descriptions(k=2, m=3, d=16)
    mask = torch.ones(2, 3, dtype=torch.bool)
    padded = torch.cat([e, 5.0 * torch.randn(2, 2, 16)], dim=1)  # (K, 5, d) garbage padding
    padded_mask = torch.cat([mask, torch.zeros(2, 2, dtype=torch.bool)], dim=1)
    padded_mask[1, 2] = False  # class 1 has only two real descriptions
    expected = llm_head(e, mask, t)
    expected[1] = llm_head(e[1:, :2], mask[1:, :2], t[1:])[0]
    torch.testing.assert_close(llm_head(padded, padded_mask, t), expected)
    torch.testing.assert_close(ensemble_head(padded, padded_mask)[0], ensemble_head(e)[0])


def test_llm_head_weights_descriptions_by_agreement_with_class_embedding():
    e = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2, 2)
    t = F.normalize(torch.tensor([[3.0, 1.0]]), dim=-1)  # w = (3, 1) / sqrt(10)
    expected = F.normalize(torch.tensor([[3.0, 1.0]]), dim=-1)
    torch.testing.assert_close(llm_head(e, torch.ones(1, 2, dtype=torch.bool), t), expected)


def test_llm_head_rejects_a_class_without_descriptions():
    mask = torch.tensor([[True, True], [False, False]])
    with pytest.raises(ValueError, match=r"classes \[1\]"):
        llm_head(torch.randn(2, 2, 4), mask, torch.randn(2, 4))


def test_template_class_embedding_matches_hand_computation():
    raw = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])  # (K=1, T=2, d=2), Frobenius norm sqrt(10)
    by_hand = (raw[0] / math.sqrt(10.0)).mean(dim=0)  # (3, 1) / (2 sqrt 10)
    by_hand = by_hand / by_hand.norm()
    out = template_class_embedding(raw)
    torch.testing.assert_close(out[0], by_hand)
    torch.testing.assert_close(out[0], torch.tensor([3.0, 1.0]) / math.sqrt(10.0))
    # The ensemble normalises each template first, so the two heads differ here.
    torch.testing.assert_close(ensemble_head(raw)[0], torch.tensor([1.0, 1.0]) / math.sqrt(2.0))


# ----------------------------------------------------------------------------- prior, DKA (§6-§7)


def test_multiview_weights_are_softmax_of_crop_agreement_with_weak_view():
    crops = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (B=1, V=2, d=2)
    z_cls = torch.tensor([[1.0, 0.0]])
    pi = multiview_weights(crops, z_cls)
    e = math.e
    torch.testing.assert_close(pi, torch.tensor([[e / (e + 1), 1 / (e + 1)]]))
    expected_g = F.normalize(torch.tensor([[e, 1.0]]), dim=-1)
    torch.testing.assert_close(multiview_prior(crops, z_cls), expected_g)


def test_multiview_prior_of_identical_crops_is_that_crop():
    z = F.normalize(torch.randn(3, 8), dim=-1)
    crops = z.unsqueeze(1).expand(3, 8, 8)  # V = 8 identical crops
    torch.testing.assert_close(multiview_prior(crops, F.normalize(torch.randn(3, 8), dim=-1)), z)


def _dka_inputs():
    g = torch.Generator().manual_seed(0)
    unit = lambda *s: F.normalize(torch.randn(*s, generator=g), dim=-1)  # noqa: E731
    return unit(4, 8), unit(4, 8), unit(5, 8), 3.0 * torch.randn(5, 8, generator=g)


def test_dka_gamma_one_and_zero_reduce_to_fixed_and_dynamic_logits():
    g, f_w, w_llm, w_star = _dka_inputs()
    l_fix = g @ w_llm.T
    l_dyn = f_w @ F.normalize(w_star, dim=-1).T
    labels, logits = dka_pseudo_labels(g, f_w, w_llm, w_star, gamma=1.0)
    torch.testing.assert_close(logits, l_fix)
    assert torch.equal(labels, l_fix.argmax(dim=1))
    labels, logits = dka_pseudo_labels(g, f_w, w_llm, w_star, gamma=0.0)
    torch.testing.assert_close(logits, l_dyn)
    assert torch.equal(labels, l_dyn.argmax(dim=1))
    _, logits = dka_pseudo_labels(g, f_w, w_llm, w_star)
    torch.testing.assert_close(logits, 0.5 * l_fix + 0.5 * l_dyn)


def test_dka_pseudo_labels_carry_no_gradient():
    g, f_w, w_llm, w_star = _dka_inputs()
    w_star.requires_grad_(True)
    _, logits = dka_pseudo_labels(g, f_w, w_llm, w_star)
    assert not logits.requires_grad


# ----------------------------------------------------------------------------- losses (§8)


@pytest.mark.parametrize("k", [2, 102, 1000])
def test_fairness_loss_is_two_log_k_for_uniform_predictions(k):
    uniform = torch.full((k,), 1.0 / k)
    loss, running = fairness_loss(uniform, None)
    assert loss.item() == pytest.approx(2 * math.log(k), rel=1e-5)
    loss, _ = fairness_loss(uniform, running)
    assert loss.item() == pytest.approx(2 * math.log(k), rel=1e-5)
    assert batch_fairness_loss(torch.zeros(7, k)).item() == pytest.approx(math.log(k), rel=1e-5)


def test_fairness_running_average_halves_with_previous_and_resets_with_none():
    p0 = torch.tensor([0.7, 0.2, 0.1])
    p1 = torch.tensor([0.1, 0.3, 0.6])
    _, r0 = fairness_loss(p0, None)  # first step of an epoch: plain batch mean
    torch.testing.assert_close(r0, p0)
    loss, r1 = fairness_loss(p1, r0)
    torch.testing.assert_close(r1, 0.5 * (p0 + p1))
    assert loss.item() == pytest.approx((-(0.5 * (p0 + p1)).log().mean() / 0.5).item())
    _, reset = fairness_loss(p1, None)  # next epoch starts again from the batch mean
    torch.testing.assert_close(reset, p1)


def test_fairness_loss_stops_gradient_through_previous_and_returns_detached_running():
    previous = torch.tensor([0.5, 0.5], requires_grad=True)
    current = torch.tensor([0.9, 0.1], requires_grad=True)
    loss, running = fairness_loss(current, previous)
    loss.backward()
    assert previous.grad is None and current.grad is not None
    assert not running.requires_grad
    # d/dp of -2 mean log(0.5 (prev + p)) = -1 / (K * running)
    torch.testing.assert_close(current.grad, -1.0 / (2 * torch.tensor([0.7, 0.3])))


def test_weighted_cross_entropy_is_plain_batch_mean_not_normalised_by_weights():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, targets, reduction="none")
    loss = weighted_cross_entropy(logits, targets, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(loss, ce[0] / 2)


def test_label_smoothed_ce_matches_torch_label_smoothing():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(6, 5, generator=g), torch.randint(5, (6,), generator=g)
    expected = F.cross_entropy(logits, targets, label_smoothing=0.1)
    torch.testing.assert_close(label_smoothed_ce(logits, targets), expected)


def test_masked_cross_entropy_averages_selected_samples_and_is_zero_without_any():
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 0])
    mask = torch.tensor([True, False, True, False])
    ce = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(masked_cross_entropy(logits, targets, mask), (ce[0] + ce[2]) / 2)
    zero = masked_cross_entropy(logits, targets, torch.zeros(4, dtype=torch.bool))
    assert zero.item() == 0.0 and zero.requires_grad


# ----------------------------------------------------------------------------- schedules (§9)


def test_cosine_lr_starts_at_1e4_ends_at_2e6_and_decreases_monotonically():
    total = 15 * 13
    lrs = [cosine_lr(i, total, 1e-4, 2e-6) for i in range(total)]
    assert lrs[0] == 1e-4
    assert lrs[-1] == pytest.approx(2e-6, rel=1e-12, abs=1e-18)
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_cosine_lr_release_form_stops_one_step_above_min():
    total = 100
    last = cosine_lr(total - 1, total, 1e-4, 2e-6, end_inclusive=False)
    expected = 2e-6 + 0.5 * (1e-4 - 2e-6) * (1 + math.cos(math.pi * 99 / 100))
    assert last == pytest.approx(expected) and last > 2e-6
    assert cosine_lr(0, total, 1e-4, 2e-6, end_inclusive=False) == 1e-4


def test_cosine_lr_rises_when_base_is_below_min_as_in_dpa_configs():
    lrs = [cosine_lr(i, 10, 1e-6, 2e-6) for i in range(10)]
    assert lrs[0] == 1e-6 and lrs[-1] == pytest.approx(2e-6)
    assert all(a <= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_cosine_lr_single_step_runs_at_base_and_rejects_steps_outside_schedule():
    assert cosine_lr(0, 1, 1e-4, 2e-6) == 1e-4
    with pytest.raises(ValueError, match="outside"):
        cosine_lr(10, 10, 1e-4, 2e-6)
    with pytest.raises(ValueError, match="total_steps"):
        cosine_lr(0, 0, 1e-4, 2e-6)


def test_constant_lr_is_base_at_every_step():
    assert {constant_lr(i, 50, 5e-4) for i in range(50)} == {5e-4}


def test_ema_decay_ramps_linearly_to_final_then_holds():
    assert ema_decay(0, 0.99, 0.9998, 100) == 0.99
    assert ema_decay(50, 0.99, 0.9998, 100) == pytest.approx(0.99 + 0.5 * (0.9998 - 0.99))
    assert ema_decay(100, 0.99, 0.9998, 100) == pytest.approx(0.9998)
    assert ema_decay(10_000, 0.99, 0.9998, 100) == pytest.approx(0.9998)
    assert ema_decay(0, 0.99, 0.9998, 0) == 0.9998


# ----------------------------------------------------------------------------- ReCLIP (§4.2-4.3)


def _orthonormal(d: int, k: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    return q[:, :k]  # (d, k)


def test_projection_removes_exactly_the_top_singular_direction():
    u = _orthonormal(12, 3)  # (D, 3)
    v = _orthonormal(5, 3, seed=1)  # (C, 3)
    text_emb = (u @ torch.diag(torch.tensor([5.0, 2.0, 1.0])) @ v.T).T  # (C=5, D=12)
    p = top_singular_removal_projection(text_emb, cut_dim=768)
    torch.testing.assert_close(p @ u[:, 0], torch.zeros(12), atol=1e-5, rtol=0)
    torch.testing.assert_close(p @ u[:, 1], u[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(p @ u[:, 2], u[:, 2], atol=1e-5, rtol=0)
    torch.testing.assert_close(p @ p, p, atol=1e-5, rtol=0)
    # cut_dim = 2 keeps only the second direction.
    p2 = top_singular_removal_projection(text_emb, cut_dim=2)
    torch.testing.assert_close(p2 @ u[:, 2], torch.zeros(12), atol=1e-5, rtol=0)
    torch.testing.assert_close(p2 @ u[:, 1], u[:, 1], atol=1e-5, rtol=0)


def _two_blobs(n_per: int = 20, d: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(d)[:2]  # (2, d)
    labels = torch.arange(2).repeat_interleave(n_per)  # (N,)
    feats = F.normalize(centres[labels] + 0.15 * torch.randn(2 * n_per, d, generator=g), dim=-1)
    anchors = F.normalize(centres + 0.1 * torch.randn(2, d, generator=g), dim=-1)
    return anchors, feats, labels


def test_label_propagation_recovers_two_clusters_from_one_anchor_each():
    anchors, feats, labels = _two_blobs()
    result = label_propagation(anchors, feats, None, k=5)
    assert torch.equal(result.labels, labels)
    assert result.scores.shape == (40, 2)
    full = label_propagation(anchors, feats, None, k=5, include_anchors=True)
    assert torch.equal(full.labels[:2], torch.tensor([0, 1]))


def test_label_propagation_equals_dense_solve_when_cg_converges():
    anchors, feats, _ = _two_blobs(n_per=15)
    x = F.normalize(torch.cat([anchors, feats]), dim=-1)
    w_hat = knn_affinity(x, k=6).to_dense()
    y = torch.zeros(32, 2)
    y[:2] = torch.eye(2)
    dense = torch.linalg.solve(torch.eye(32) - 0.9 * w_hat, y)
    result = label_propagation(
        anchors, feats, None, k=6, alpha=0.9, cg_iters=500, tol=1e-10, include_anchors=True
    )
    torch.testing.assert_close(result.scores, dense, atol=1e-4, rtol=1e-4)


def test_knn_affinity_is_symmetric_normalised_and_chunk_size_invariant():
    x = F.normalize(torch.randn(30, 6, generator=torch.Generator().manual_seed(2)), dim=-1)
    w = knn_affinity(x, k=4, chunk_size=7).to_dense()
    torch.testing.assert_close(w, knn_affinity(x, k=4, chunk_size=1024).to_dense())
    torch.testing.assert_close(w, w.T)
    assert torch.all(w.diagonal() == 0)
    # Dense reference of the same construction.
    a = (x @ x.T + 1) / 2
    a.fill_diagonal_(float("-inf"))
    vals, idx = a.topk(4, dim=1)
    a_k = torch.zeros(30, 30).scatter_(1, idx, vals)
    sym = (a_k + a_k.T) / 2
    inv = sym.sum(1).rsqrt()
    torch.testing.assert_close(w, inv[:, None] * sym * inv[None, :])


def test_class_centroids_average_members_and_keep_fallback_for_empty_class():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    fallback = torch.tensor([[9.0, 9.0], [9.0, 9.0], [0.0, 2.0]])
    out = class_centroids(x, labels, 3, fallback=fallback)
    torch.testing.assert_close(out[0], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    torch.testing.assert_close(out[1], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    torch.testing.assert_close(out[2], torch.tensor([0.0, 1.0]))
