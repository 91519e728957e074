"""Hypothesis tests, effect sizes and bootstrap intervals on tidy per-image scores.

Scores come as a tidy frame with one row per (block, group): typically ``image_id`` (the block: every
method is scored on the same images, so the design is repeated measures) and ``method`` (the group), with
the score in ``value``. The omnibus test is Friedman's (rank-based, no normality assumed) with Kendall's W
as its effect size; the post-hoc test is the Wilcoxon signed-rank test on every pair of groups with
Holm's step-down correction (Holm 1979, "A simple sequentially rejective multiple test procedure").

Everything here is deterministic: outputs are sorted, bootstrap resampling is seeded and operates on
sorted values, so rerunning on the same data (in any row order) writes byte-identical CSV files.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

CORRECTIONS = ("holm", "bonferroni", "none")


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman test over complete blocks.

    Attributes:
        statistic: Friedman chi-square, tie-corrected (as :func:`scipy.stats.friedmanchisquare`).
        p: its p-value (chi-square with ``k - 1`` degrees of freedom).
        n_blocks: blocks used (those that have a finite score for every group).
        k: number of groups.
        kendall_w: Kendall's coefficient of concordance ``W = statistic / (n_blocks * (k - 1))`` in [0, 1]
            (tie-corrected): 1 when every block ranks the groups identically, 0 when the mean ranks are equal.
        n_blocks_dropped: blocks left out because a group's score was missing or NaN.
        groups: the group labels, sorted.
    """

    statistic: float
    p: float
    n_blocks: int
    k: int
    kendall_w: float
    n_blocks_dropped: int
    groups: tuple[Any, ...]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["groups"] = list(self.groups)
        return out


def complete_blocks(
    scores: pd.DataFrame, *, block: str = "image_id", group: str = "method", value: str = "value"
) -> tuple[pd.DataFrame, int]:
    """Pivot tidy scores to a ``blocks x groups`` matrix, keeping only complete blocks.

    Returns:
        ``(matrix, n_dropped)``: float matrix with sorted block index and sorted group columns, and the
        number of blocks dropped because some group had no finite score there.

    Raises:
        ValueError: a column is missing, or a (block, group) pair occurs more than once.
    """
    missing = [c for c in (block, group, value) if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack columns {missing}; have {list(scores.columns)}")
    duplicated = scores.duplicated([block, group], keep=False)
    if duplicated.any():
        first = scores.loc[duplicated, [block, group]].iloc[0].tolist()
        raise ValueError(
            f"({block}, {group}) = {tuple(first)} occurs more than once; filter the scores to one dataset, "
            "model and metric (and aggregate repeats) before testing"
        )
    matrix = scores.pivot(index=block, columns=group, values=value).astype(np.float64)
    matrix = matrix.sort_index(axis=0).sort_index(axis=1)
    complete = np.isfinite(matrix.to_numpy()).all(axis=1)
    return matrix.loc[complete], int((~complete).sum())


def friedman(
    scores: pd.DataFrame, *, block: str = "image_id", group: str = "method", value: str = "value"
) -> FriedmanResult:
    """Friedman test of "all groups score alike" with Kendall's W, on the complete blocks of ``scores``.

    Args:
        scores: tidy frame with one row per (block, group) and the score in ``value``.

    Raises:
        ValueError: fewer than 3 groups (use :func:`pairwise_wilcoxon` for two) or fewer than 2 complete blocks.

    When every block ties all groups the statistic is undefined (0/0); the result is then reported as
    ``statistic = 0, p = 1, kendall_w = 0`` (no evidence of any difference).
    """
    matrix, n_dropped = complete_blocks(scores, block=block, group=group, value=value)
    n_blocks, k = matrix.shape
    if k < 3:
        raise ValueError(f"Friedman needs at least 3 groups, got {k} ({list(matrix.columns)}); "
                         "compare two groups with pairwise_wilcoxon")
    if n_blocks < 2:
        raise ValueError(f"Friedman needs at least 2 complete blocks, got {n_blocks} ({n_dropped} incomplete dropped)")
    values = matrix.to_numpy()
    if np.all(values == values[:, :1]):
        statistic, p = 0.0, 1.0
    else:
        result = stats.friedmanchisquare(*values.T)
        statistic, p = float(result.statistic), float(result.pvalue)
    return FriedmanResult(
        statistic=statistic,
        p=p,
        n_blocks=int(n_blocks),
        k=int(k),
        kendall_w=statistic / (n_blocks * (k - 1)),
        n_blocks_dropped=n_dropped,
        groups=tuple(matrix.columns),
    )


def holm_adjust(pvalues: Sequence[float] | np.ndarray, nan_policy: str = "raise") -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    With the ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of the ``i``-th
    (1-based) is ``max_{j <= i} min(1, (m - j + 1) * p_(j))``. Rejecting where the adjusted p is below alpha
    is Holm's procedure. (Not Benjamini-Hochberg, which :func:`scipy.stats.false_discovery_control` does
    and which controls the false discovery rate instead.)

    Args:
        pvalues: one-dimensional.
        nan_policy: ``raise`` (a NaN is an error) or ``omit`` (a NaN marks a test that could not be run: it stays
            NaN and does not count in the family's size).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p-values must be one-dimensional, got shape {p.shape}")
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    finite = ~np.isnan(p)
    if not finite.all():
        if nan_policy == "raise":
            raise ValueError("p-values contain NaN")
        out = np.full(p.shape, np.nan)
        out[finite] = holm_adjust(p[finite])
        return out
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def _adjust(pvalues: np.ndarray, correction: str) -> np.ndarray:
    if correction == "holm":
        return holm_adjust(pvalues)
    if correction == "bonferroni":
        return np.minimum(1.0, pvalues * pvalues.size)
    if correction == "none":
        return pvalues.copy()
    raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (Kerby 2014), in [-1, 1].

    ``(R+ - R-) / (R+ + R-)`` where ``R+``/``R-`` are the sums of the (average) ranks of ``|d|`` over the
    positive/negative non-zero differences (zeros dropped, as the Wilcoxon "wilcox" zero method does).
    Positive: the first group scores higher. 0 when every difference is zero.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((r_plus - r_minus) / (r_plus + r_minus))


def pairwise_wilcoxon(
    scores: pd.DataFrame,
    *,
    block: str = "image_id",
    group: str = "method",
    value: str = "value",
    correction: str = "holm",
    alternative: str = "two-sided",
) -> pd.DataFrame:
    """Wilcoxon signed-rank test for every pair of groups, on the complete blocks, with a multiple-test correction.

    The same complete blocks as :func:`friedman` are used, so the post-hoc tests see the omnibus test's data.

    Returns:
        One row per pair ``group_a < group_b`` (sorted), columns ``group_a, group_b, n_blocks, statistic``
        (scipy's: ``min(R+, R-)`` for two-sided), ``p_raw``, ``p_adjusted`` (``correction`` over all pairs),
        ``median_difference`` (median of ``a - b`` per block) and ``rank_biserial`` (see :func:`rank_biserial`;
        positive = ``a`` higher). A pair whose differences are all zero gets ``statistic 0, p_raw 1``.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    matrix, _ = complete_blocks(scores, block=block, group=group, value=value)
    if matrix.shape[1] < 2 or matrix.shape[0] < 1:
        raise ValueError(f"need at least 2 groups and 1 complete block, got matrix {matrix.shape}")
    rows = []
    for a, b in itertools.combinations(matrix.columns, 2):
        diff = matrix[a].to_numpy() - matrix[b].to_numpy()
        if np.all(diff == 0):
            statistic, p = 0.0, 1.0
        else:
            result = stats.wilcoxon(diff, zero_method="wilcox", alternative=alternative)
            statistic, p = float(result.statistic), float(result.pvalue)
        rows.append(
            {
                "group_a": a,
                "group_b": b,
                "n_blocks": int(diff.size),
                "statistic": statistic,
                "p_raw": p,
                "median_difference": float(np.median(diff)),
                "rank_biserial": rank_biserial(diff),
            }
        )
    table = pd.DataFrame(rows)
    table.insert(5, "p_adjusted", _adjust(table["p_raw"].to_numpy(), correction))
    return table


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    statistic: Callable[..., Any] = np.mean,
    n_resamples: int = 9999,
    confidence: float = 0.95,
    method: str = "BCa",
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and bootstrap confidence interval of ``statistic`` over ``values``.

    Args:
        values: 1-D finite sample (NaN raises: drop missing scores first, as :func:`summarise` does).
        statistic: a reducer such as ``np.mean`` or ``np.median``; if it takes ``axis`` it is vectorised.
        n_resamples, confidence: as :func:`scipy.stats.bootstrap`.
        method: ``"BCa"`` (bias-corrected and accelerated), ``"percentile"`` or ``"basic"``.
        seed: seeds the resampling; the same seed and data give the same interval.

    Returns:
        ``(estimate, low, high)``. Degenerate samples are handled without resampling: a single value gives
        ``(value, nan, nan)`` (no interval from one observation); constant data give ``(c, c, c)``. When BCa
        is undefined for a non-constant sample (e.g. the median of heavily tied data, where every resample
        falls on one side of the estimate), the percentile interval is returned instead.

    Raises:
        ValueError: empty sample, NaN/inf in it, or a bad method.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D sample, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_ci: the sample contains NaN or inf; drop missing scores first")
    if method not in ("BCa", "percentile", "basic"):
        raise ValueError(f"method must be 'BCa', 'percentile' or 'basic', got {method!r}")
    estimate = float(statistic(x))
    if x.size == 1:
        return estimate, float("nan"), float("nan")
    if np.all(x == x[0]):
        return estimate, estimate, estimate

    def run(which: str) -> tuple[float, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.bootstrap(
                (x,), statistic, n_resamples=n_resamples, confidence_level=confidence, method=which,
                rng=np.random.default_rng(seed),
            )
        return float(result.confidence_interval.low), float(result.confidence_interval.high)

    low, high = run(method)
    if method == "BCa" and not (np.isfinite(low) and np.isfinite(high)):
        low, high = run("percentile")
    return estimate, low, high


def two_level_bootstrap_ci(
    values: Sequence[Sequence[float]] | Sequence[np.ndarray],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and percentile CI of a two-level (hierarchical) bootstrap: clusters, then observations within them.

    Each resample draws as many clusters as there are, with replacement, then within each drawn cluster as many
    observations as it holds, with replacement, and takes the mean of everything drawn (Davison & Hinkley 1997,
    section 3.8: resampling both stages keeps the between-cluster variance in the interval). Used for training-seed
    repeats: clusters are the training seeds, observations the images.

    Args:
        values: one 1-D finite sample per cluster (each non-empty).
        n_resamples: bootstrap resamples.
        confidence: level of the percentile interval.
        seed: seeds the resampling.

    Returns:
        ``(estimate, low, high)``: the mean of the cluster means and the interval; a single cluster falls back to
        :func:`bootstrap_ci` over its observations (BCa).
    """
    clusters = [np.asarray(v, dtype=np.float64) for v in values]
    if not clusters or any(c.ndim != 1 or c.size == 0 for c in clusters):
        raise ValueError("two_level_bootstrap_ci needs at least one non-empty 1-D sample per cluster")
    if not all(np.all(np.isfinite(c)) for c in clusters):
        raise ValueError("two_level_bootstrap_ci: a sample contains NaN or inf; drop missing scores first")
    estimate = float(np.mean([c.mean() for c in clusters]))
    if len(clusters) == 1:
        _, low, high = bootstrap_ci(clusters[0], n_resamples=n_resamples, confidence=confidence, seed=seed)
        return estimate, low, high
    rng = np.random.default_rng(seed)
    k = len(clusters)
    times_drawn = np.stack([np.bincount(row, minlength=k) for row in rng.integers(0, k, size=(n_resamples, k))])
    totals = np.zeros(n_resamples)
    counts = np.zeros(n_resamples)
    for c, sample in enumerate(clusters):
        # every resample draws cluster c times_drawn[:, c] times, each time sample.size observations of it
        picks = rng.integers(0, sample.size, size=(n_resamples, k, sample.size))
        used = np.arange(k)[None, :, None] < times_drawn[:, c][:, None, None]
        totals += np.where(used, sample[picks], 0.0).sum(axis=(1, 2))
        counts += times_drawn[:, c] * sample.size
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(totals / counts, [tail, 1.0 - tail])
    return estimate, float(low), float(high)


SUMMARY_COLUMNS = ("n", "n_missing", "mean", "median", "std", "ci_low", "ci_high")


def summarise(
    tidy: pd.DataFrame,
    by: Sequence[str],
    *,
    value: str = "value",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    method: str = "BCa",
    seed: int = 0,
) -> pd.DataFrame:
    """Per-group descriptive statistics with a bootstrap CI of the mean.

    Args:
        tidy: tidy scores; ``by`` columns identify the group, ``value`` holds the score.
        by: grouping columns, e.g. ``["dataset", "model", "method", "metric"]``.

    Returns:
        One row per group, sorted by ``by``, columns ``by + [n, n_missing, mean, median, std, ci_low,
        ci_high]``: ``n`` finite scores (NaN scores are counted in ``n_missing`` and left out), sample ``std``
        (ddof 1), and the :func:`bootstrap_ci` interval of the mean. Each group is resampled with the same
        ``seed`` after sorting its values, so the output does not depend on row order or on other groups.
        A group with no finite score has ``n = 0`` and NaN statistics.
    """
    by = list(by)
    missing = [c for c in [*by, value] if c not in tidy.columns]
    if missing:
        raise ValueError(f"tidy table lacks columns {missing}; have {list(tidy.columns)}")
    rows = []
    for key, frame in tidy.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        raw = frame[value].to_numpy(dtype=np.float64)
        finite = np.sort(raw[np.isfinite(raw)])
        row: dict[str, Any] = dict(zip(by, key))
        row["n"] = int(finite.size)
        row["n_missing"] = int(raw.size - finite.size)
        if finite.size == 0:
            row.update(mean=np.nan, median=np.nan, std=np.nan, ci_low=np.nan, ci_high=np.nan)
        else:
            mean, low, high = bootstrap_ci(
                finite, statistic=np.mean, n_resamples=n_resamples, confidence=confidence, method=method, seed=seed
            )
            row.update(
                mean=mean,
                median=float(np.median(finite)),
                std=float(np.std(finite, ddof=1)) if finite.size > 1 else np.nan,
                ci_low=low,
                ci_high=high,
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS])
