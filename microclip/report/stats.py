"""Significance of microCLIP's gains: per dataset over seeds, across datasets, and a bootstrap CI.

Three questions, three tests (all two-sided):

1. Per dataset, is the focus method better than baseline B? Paired t-test over seeds
   (``scipy.stats.ttest_rel``). Paired, because run i of every method shares seed i, which
   fixes the unlabelled subset order, the augmentations drawn and the initial head, so the
   per-seed differences remove that shared noise. A t-test rather than the Wilcoxon signed-rank
   test because with the usual 3 seeds an exact Wilcoxon test cannot reach p < 0.25; the price
   is assuming roughly normal seed-to-seed differences. Fewer than 2 paired seeds -> NaN.
2. Across datasets, is the focus method better on the benchmark as a whole? Wilcoxon
   signed-rank test on the per-dataset means (``scipy.stats.wilcoxon``; exact distribution for
   small n; zero differences dropped, ``zero_method="wilcox"``). Datasets are not
   exchangeable draws of one noise process, so a rank test, not a t-test. Fewer than 2 -> NaN.
3. How large is the mean gain? The mean over datasets of (focus - B), with a percentile
   bootstrap CI that resamples seeds with replacement within each dataset (paired by seed),
   ``n_boot`` replicates, a fixed ``numpy`` seed. NaN when any dataset has fewer than 2 pairs.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

BOOTSTRAP_SEED = 0
BOOTSTRAP_REPLICATES = 10_000
CI_LEVEL = 0.95


@dataclass(frozen=True)
class PairedTest:
    """Paired t-test of focus - baseline over seeds on one dataset."""

    n: int  # seeds present for both methods
    mean_diff: float  # mean over paired seeds of focus - baseline (points)
    statistic: float  # t
    pvalue: float


@dataclass(frozen=True)
class RankTest:
    """Wilcoxon signed-rank test of focus - baseline over per-dataset means."""

    n: int  # datasets present for both methods
    statistic: float  # scipy's W = min(W+, W-) for the two-sided test
    pvalue: float


@dataclass(frozen=True)
class BootstrapCI:
    """Mean over datasets of focus - baseline, with a percentile bootstrap CI over seeds."""

    estimate: float
    low: float
    high: float
    level: float
    n_boot: int
    seed: int


def paired_seed_diffs(
    runs: pd.DataFrame, focus: str, baseline: str, *, dataset: str, metric: str = "top1"
) -> np.ndarray:
    """focus - baseline per seed on one dataset, over the seeds both have (sorted by seed)."""
    part = runs[runs["dataset"] == dataset]
    a = part[part["method"] == focus].groupby("seed")[metric].mean()
    b = part[part["method"] == baseline].groupby("seed")[metric].mean()
    both = a.to_frame("a").join(b.to_frame("b"), how="inner").dropna()
    return (both["a"] - both["b"]).to_numpy(dtype=float)


def paired_ttest(diffs: np.ndarray) -> PairedTest:
    """Paired t-test on per-seed differences; NaN statistic/p for fewer than 2 pairs.

    Identical differences (zero spread, e.g. two deterministic zero-shot methods) leave the
    test undefined: NaN, where scipy would return t = inf and p = 0.
    """
    diffs = np.asarray(diffs, dtype=float)
    n = int(diffs.size)
    mean = float(diffs.mean()) if n else math.nan
    if n < 2:
        return PairedTest(n, mean, math.nan, math.nan)
    if np.allclose(diffs, diffs[0], rtol=0.0, atol=1e-12):
        return PairedTest(n, mean, math.nan, math.nan)
    res = stats.ttest_rel(diffs, np.zeros_like(diffs))  # == ttest_rel(focus, baseline)
    return PairedTest(n, mean, float(res.statistic), float(res.pvalue))


def wilcoxon_datasets(diffs: np.ndarray) -> RankTest:
    """Wilcoxon signed-rank test on per-dataset mean differences; NaN for n < 2 or all zero."""
    diffs = np.asarray(diffs, dtype=float)
    diffs = diffs[~np.isnan(diffs)]
    n = int(diffs.size)
    if n < 2 or np.all(diffs == 0):
        return RankTest(n, math.nan, math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sample size too small for normal approximation"
        res = stats.wilcoxon(diffs, zero_method="wilcox", alternative="two-sided")
    return RankTest(n, float(res.statistic), float(res.pvalue))


def bootstrap_mean_delta(
    diffs_per_dataset: list[np.ndarray],
    *,
    n_boot: int = BOOTSTRAP_REPLICATES,
    level: float = CI_LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> BootstrapCI:
    """Percentile CI of mean_d(mean_s diff[d, s]) resampling seeds within each dataset."""
    groups = [np.asarray(g, dtype=float) for g in diffs_per_dataset]
    if not groups or any(g.size == 0 for g in groups):
        return BootstrapCI(math.nan, math.nan, math.nan, level, n_boot, seed)
    estimate = float(np.mean([g.mean() for g in groups]))
    if min(g.size for g in groups) < 2:
        return BootstrapCI(estimate, math.nan, math.nan, level, n_boot, seed)
    rng = np.random.default_rng(seed)
    replicate = np.zeros(n_boot)
    for g in groups:  # (n_boot, n_seeds) resampled indices per dataset
        idx = rng.integers(0, g.size, size=(n_boot, g.size))
        replicate += g[idx].mean(axis=1)
    replicate /= len(groups)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(replicate, [alpha, 1.0 - alpha])
    return BootstrapCI(estimate, float(low), float(high), level, n_boot, seed)


def compare_methods(
    runs: pd.DataFrame,
    focus: str,
    baselines: list[str],
    datasets: list[str],
    *,
    metric: str = "top1",
    n_boot: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All tests of ``focus`` against each baseline on one backbone's runs.

    Returns (per_dataset, overall):
    - per_dataset: baseline, dataset, n_pairs, mean_diff, t, p (paired t-test over seeds);
    - overall: baseline, n_datasets, mean_delta, ci_low, ci_high, wilcoxon_w, wilcoxon_p. The
      mean delta and its CI use datasets where both methods have a paired seed; the Wilcoxon
      test uses the per-dataset means of all seeds (NaN datasets dropped).
    """
    per_rows, overall_rows = [], []
    for base in baselines:
        paired = []
        mean_diffs = []
        for ds in datasets:
            diffs = paired_seed_diffs(runs, focus, base, dataset=ds, metric=metric)
            test = paired_ttest(diffs)
            per_rows.append(
                {
                    "baseline": base,
                    "dataset": ds,
                    "n_pairs": test.n,
                    "mean_diff": test.mean_diff,
                    "t": test.statistic,
                    "p": test.pvalue,
                }
            )
            if diffs.size:
                paired.append(diffs)
            part = runs[runs["dataset"] == ds]
            fm = part.loc[part["method"] == focus, metric].mean()
            bm = part.loc[part["method"] == base, metric].mean()
            mean_diffs.append(fm - bm)
        rank = wilcoxon_datasets(np.array(mean_diffs, dtype=float))
        ci = bootstrap_mean_delta(paired, n_boot=n_boot, seed=seed)
        overall_rows.append(
            {
                "baseline": base,
                "n_datasets": len(paired),
                "mean_delta": ci.estimate,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "wilcoxon_n": rank.n,
                "wilcoxon_w": rank.statistic,
                "wilcoxon_p": rank.pvalue,
            }
        )
    per_cols = ["baseline", "dataset", "n_pairs", "mean_diff", "t", "p"]
    overall_cols = [
        "baseline",
        "n_datasets",
        "mean_delta",
        "ci_low",
        "ci_high",
        "wilcoxon_n",
        "wilcoxon_w",
        "wilcoxon_p",
    ]
    return pd.DataFrame(per_rows, columns=per_cols), pd.DataFrame(
        overall_rows, columns=overall_cols
    )
