"""ReCLIP's projection space and label propagation (baselines.md §4.2-§4.3).

The kNN graph over C + N nodes is built in row chunks and kept sparse, so N = 50k images never
needs an N x N dense matrix; the result matches the dense construction up to top-k ties.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LabelPropagationResult",
    "class_centroids",
    "knn_affinity",
    "label_propagation",
    "top_singular_removal_projection",
]


class LabelPropagationResult(NamedTuple):
    labels: Tensor  # (N,) int64 argmax of the scores
    scores: Tensor  # (N, C) propagated class scores F


def _work_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def top_singular_removal_projection(text_emb: Tensor, cut_dim: int) -> Tensor:
    """P = U[:, 1:cut_dim] U[:, 1:cut_dim]^T from the thin SVD of T = text_emb^T, §4.2.

    Drops the first (largest) singular direction, the one shared by all classes, keeps the
    next min(cut_dim, rank) - 1 and removes everything outside the span of the class
    embeddings (when C < D only C - 1 directions survive).

    Args:
        text_emb: (C, D) class text embeddings (rows).
        cut_dim: k >= 2 (ReCLIP: 768; 250 when C > 500).

    Returns:
        (D, D) symmetric projection, float32 (float64 for float64 input).
    """
    if cut_dim < 2:
        raise ValueError(
            f"top_singular_removal_projection: cut_dim = {cut_dim}; it must be >= 2 "
            "(the first singular direction is always dropped)"
        )
    t = text_emb.to(torch.float64).T  # (D, C)
    u, _, _ = torch.linalg.svd(t, full_matrices=False)  # (D, min(D, C)), descending
    basis = u[:, 1:cut_dim]  # (D, <= cut_dim - 1)
    return (basis @ basis.T).to(_work_dtype(text_emb))  # (D, D)


def knn_affinity(x: Tensor, *, k: int = 20, chunk_size: int = 1024) -> Tensor:
    """Normalised sparse kNN affinity W_hat = D^-1/2 W D^-1/2, §4.3 step 2.

    A_ij = (x_i . x_j + 1) / 2 with a zero diagonal; the top-k entries of each row are kept;
    W = (A_k + A_k^T) / 2; D = diag(row sums of W).

    Args:
        x: (M, D) L2-normalised node features.
        k: neighbours per row (capped at M - 1).
        chunk_size: rows of the similarity computed at once (memory ~ chunk_size x M).

    Returns:
        (M, M) sparse COO tensor (coalesced), symmetric.
    """
    m = x.shape[0]
    k_eff = min(k, m - 1)
    if k_eff < 1:
        raise ValueError(f"knn_affinity: need at least 2 nodes and k >= 1; got M = {m}, k = {k}")
    rows, cols, vals = [], [], []
    for start in range(0, m, chunk_size):
        stop = min(start + chunk_size, m)
        idx = torch.arange(start, stop, device=x.device)  # (c,)
        sim = (x[start:stop] @ x.T + 1.0) / 2.0  # (c, M)
        sim[idx - start, idx] = float("-inf")  # zero diagonal: never a neighbour of itself
        top_vals, top_idx = sim.topk(k_eff, dim=1)  # (c, k)
        rows.append(idx.repeat_interleave(k_eff))
        cols.append(top_idx.flatten())
        vals.append(top_vals.flatten())
    r, c, v = torch.cat(rows), torch.cat(cols), torch.cat(vals)  # (M k,)
    # Symmetrise: every kept entry contributes half to (i, j) and half to (j, i).
    r, c, v = torch.cat([r, c]), torch.cat([c, r]), torch.cat([v, v]) / 2.0  # (2 M k,)
    # Indices are built here and valid by construction: skip the invariant check.
    w = torch.sparse_coo_tensor(torch.stack([r, c]), v, (m, m), check_invariants=False)
    w = w.coalesce()
    r, c = w.indices()
    v = w.values()
    degree = torch.zeros(m, dtype=v.dtype, device=v.device).index_add_(0, r, v)  # (M,)
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-30).rsqrt(), torch.zeros_like(degree))
    v = v * inv_sqrt[r] * inv_sqrt[c]
    return torch.sparse_coo_tensor(
        torch.stack([r, c]), v, (m, m), is_coalesced=True, check_invariants=False
    )


def _batched_cg(w_hat: Tensor, y: Tensor, *, alpha: float, iters: int, tol: float) -> Tensor:
    """Solve (I - alpha W_hat) F = Y for every column of Y by conjugate gradient, from zero.

    Each column stops on its own once ||r|| <= tol ||b|| (SciPy's relative criterion); at most
    ``iters`` iterations: a truncated solve, as in the release.
    """
    x = torch.zeros_like(y)  # (M, C)
    r = y.clone()  # (M, C) residual b - A x with x = 0
    p = r.clone()  # (M, C)
    rs = (r * r).sum(dim=0)  # (C,)
    stop = tol * rs.sqrt()  # (C,)
    for _ in range(iters):
        active = rs.sqrt() > stop  # (C,)
        if not bool(active.any()):
            break
        ap = p - alpha * (w_hat @ p)  # (M, C)
        pap = (p * ap).sum(dim=0)  # (C,)
        step = torch.where(active, rs / pap, torch.zeros_like(rs))  # (C,)
        x = x + step * p
        r = r - step * ap
        rs_new = (r * r).sum(dim=0)  # (C,)
        beta = torch.where(active, rs_new / rs, torch.zeros_like(rs))  # (C,)
        p = r + beta * p
        rs = rs_new
    return x


def label_propagation(
    anchors: Tensor,
    features: Tensor,
    projection: Tensor | None,
    *,
    k: int = 20,
    alpha: float = 0.99,
    cg_iters: int = 20,
    tol: float = 1e-6,
    chunk_size: int = 1024,
    include_anchors: bool = False,
) -> LabelPropagationResult:
    """ReCLIP's label propagation, §4.3: one labelled anchor per class, CG-solved diffusion.

    Steps: 1. X = [anchors; features], projected by P (if given), rows L2-normalised.
    2. Sparse top-k affinity, symmetrised and normalised (``knn_affinity``).
    3. Y (C + N, C) with Y[c, c] = 1 for anchor c.
    4. (I - alpha W_hat) F = Y by conjugate gradient per class (batched over classes).
    5. labels = argmax_c F.

    Args:
        anchors: (C, D) labelled nodes, one per class (the text embeddings).
        features: (N, D) image features (normalised or not; rows are normalised after P).
        projection: (D, D) from ``top_singular_removal_projection`` or None (no projection).
        k, alpha, cg_iters, tol: kNN size, diffusion strength, CG iterations and tolerance.
        chunk_size: rows per chunk of the kNN search.
        include_anchors: return the C anchor rows first (C + N rows), e.g. for centroids.

    Returns:
        LabelPropagationResult(labels (N,), scores (N, C)), or C + N rows with include_anchors.
    """
    if anchors.dim() != 2 or features.dim() != 2 or anchors.shape[1] != features.shape[1]:
        raise ValueError(
            "label_propagation: expected anchors (C, D) and features (N, D); "
            f"got {tuple(anchors.shape)} and {tuple(features.shape)}"
        )
    dtype = _work_dtype(features)
    device = features.device
    num_classes = anchors.shape[0]
    # 1. Nodes in the projected space.
    x = torch.cat([anchors.to(device, dtype), features.to(dtype)])  # (M, D), M = C + N
    if projection is not None:
        x = x @ projection.to(device, dtype)  # (M, D)
    x = F.normalize(x, dim=-1)
    # 2. Graph.
    w_hat = knn_affinity(x, k=k, chunk_size=chunk_size)  # (M, M) sparse
    # 3. Seeds.
    y = torch.zeros(x.shape[0], num_classes, dtype=dtype, device=device)  # (M, C)
    y[:num_classes] = torch.eye(num_classes, dtype=dtype, device=device)
    # 4. Diffusion.
    scores = _batched_cg(w_hat, y, alpha=alpha, iters=cg_iters, tol=tol)  # (M, C)
    if not include_anchors:
        scores = scores[num_classes:]  # (N, C)
    # 5. Labels.
    return LabelPropagationResult(labels=scores.argmax(dim=1), scores=scores)


def class_centroids(
    x: Tensor, labels: Tensor, num_classes: int, *, fallback: Tensor | None = None
) -> Tensor:
    """mu_c = norm(mean{x_i : label_i = c}) for every class (ReCLIP §4.3 step 7, DPA §1.2).

    Args:
        x: (M, D) features (unprojected), labels: (M,) int64 in [0, num_classes).
        fallback: (C, D) rows used for classes with no member (the previous centroid or the
            text prototype); without it an empty class gives a zero row.

    Returns:
        (C, D) rows L2-normalised (fallback rows normalised too).
    """
    sums = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device)
    sums.index_add_(0, labels, x)  # (C, D)
    counts = torch.bincount(labels, minlength=num_classes)  # (C,)
    centroids = F.normalize(sums, dim=-1)  # mean and sum share a direction
    if fallback is not None:
        empty = (counts == 0).unsqueeze(1)  # (C, 1)
        centroids = torch.where(empty, F.normalize(fallback.to(x), dim=-1), centroids)
    return centroids
