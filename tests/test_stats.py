"""Statistics: Friedman + Kendall's W, Holm, pairwise Wilcoxon, bootstrap CIs, deterministic summaries."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from depthxai.stats.hypothesis import (
    bootstrap_ci,
    complete_blocks,
    friedman,
    holm_adjust,
    pairwise_wilcoxon,
    rank_biserial,
    summarise,
    two_level_bootstrap_ci,
)


def _tidy(matrix: np.ndarray, methods: list[str]) -> pd.DataFrame:
    """Tidy scores from an (images x methods) matrix; rows deliberately not in sorted order."""
    rows = [
        {"image_id": f"img{i:03d}", "method": m, "value": float(matrix[i, j])}
        for j, m in enumerate(methods)
        for i in range(matrix.shape[0])
    ]
    return pd.DataFrame(rows[::-1])


def test_friedman_separated_methods() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=20)
    scores = _tidy(np.stack([base + 20, base, base + 10], axis=1), ["c", "a", "b"])
    result = friedman(scores)
    # Every image ranks the methods the same way: S is maximal, chi2 = n (k - 1) = 40, W = 1.
    assert result.statistic == pytest.approx(40.0)
    assert result.kendall_w == pytest.approx(1.0)
    assert result.p == pytest.approx(math.exp(-20.0), rel=1e-9)  # chi2 with 2 df: sf(x) = exp(-x / 2)
    assert (result.n_blocks, result.k, result.n_blocks_dropped, result.groups) == (20, 3, 0, ("a", "b", "c"))


def test_friedman_identical_scores() -> None:
    scores = _tidy(np.full((10, 4), 0.5), ["a", "b", "c", "d"])
    result = friedman(scores)
    assert (result.statistic, result.p, result.kendall_w) == (0.0, 1.0, 0.0)


def test_friedman_matches_scipy_and_hand_w() -> None:
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(15, 4)) + np.array([0.0, 0.3, 0.6, 0.9])
    result = friedman(_tidy(matrix, ["m0", "m1", "m2", "m3"]))
    expected = stats.friedmanchisquare(*matrix.T)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p == pytest.approx(expected.pvalue, rel=1e-12)
    # Kendall's W by hand (continuous data, no ties): W = 12 S / (n^2 (k^3 - k)).
    n, k = matrix.shape
    ranks = matrix.argsort(axis=1).argsort(axis=1) + 1.0
    s = np.sum((ranks.sum(axis=0) - n * (k + 1) / 2) ** 2)
    assert result.kendall_w == pytest.approx(12 * s / (n**2 * (k**3 - k)), rel=1e-12)
    assert 0 < result.kendall_w < 1


def test_friedman_drops_incomplete_blocks() -> None:
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(12, 3))
    full = _tidy(matrix, ["a", "b", "c"])
    damaged = full[~((full["image_id"] == "img003") & (full["method"] == "b"))].copy()
    damaged.loc[(damaged["image_id"] == "img007") & (damaged["method"] == "c"), "value"] = np.nan
    result = friedman(damaged)
    keep = [i for i in range(12) if i not in (3, 7)]
    expected = stats.friedmanchisquare(*matrix[keep].T)
    assert (result.n_blocks, result.n_blocks_dropped) == (10, 2)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    matrix_kept, dropped = complete_blocks(damaged)
    assert dropped == 2 and list(matrix_kept.index) == [f"img{i:03d}" for i in keep]


def test_friedman_rejects_bad_input() -> None:
    scores = _tidy(np.ones((4, 3)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="more than once"):
        friedman(pd.concat([scores, scores.iloc[:1]]))
    with pytest.raises(ValueError, match="at least 3 groups"):
        friedman(_tidy(np.ones((4, 2)), ["a", "b"]))
    with pytest.raises(ValueError, match="lack columns"):
        friedman(scores.rename(columns={"value": "score"}))


def test_holm_hand_worked() -> None:
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06.
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm_adjust(p), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    # Capped at 1 and monotone: 0.5*2 = 1.0, then max(1.0, 0.6) = 1.0.
    np.testing.assert_allclose(holm_adjust([0.6, 0.5]), [1.0, 1.0])
    np.testing.assert_allclose(holm_adjust([0.2]), [0.2])


def test_holm_nan_policy() -> None:
    """A NaN marks a test that could not run: refused by default; with 'omit' it stays NaN and the family is the
    other tests (three here: 0.005*3, 0.01*2, 0.04*1)."""
    with pytest.raises(ValueError, match="NaN"):
        holm_adjust([0.01, np.nan])
    adjusted = holm_adjust([0.01, np.nan, 0.04, 0.005], nan_policy="omit")
    np.testing.assert_allclose(adjusted, [0.02, np.nan, 0.04, 0.015], rtol=1e-12)
    assert np.isnan(holm_adjust([np.nan], nan_policy="omit")).all()
    with pytest.raises(ValueError, match="nan_policy"):
        holm_adjust([0.1], nan_policy="ignore")


def test_rank_biserial_hand_worked() -> None:
    # Non-zero d = 1, -2, 3, 4 -> ranks 1, 2, 3, 4; R+ = 8, R- = 2 -> (8 - 2) / 10.
    assert rank_biserial(np.array([1.0, -2.0, 3.0, 4.0, 0.0])) == pytest.approx(0.6)
    assert rank_biserial(np.array([-1.0, -2.0])) == -1.0
    assert rank_biserial(np.zeros(3)) == 0.0


def test_pairwise_wilcoxon_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    matrix = rng.normal(size=(18, 3)) + np.array([0.0, 0.8, 0.1])
    table = pairwise_wilcoxon(_tidy(matrix, ["x", "y", "z"]))
    assert list(table["group_a"]) == ["x", "x", "y"] and list(table["group_b"]) == ["y", "z", "z"]
    col = {"x": 0, "y": 1, "z": 2}
    raw = []
    for row in table.itertuples():
        diff = matrix[:, col[row.group_a]] - matrix[:, col[row.group_b]]
        expected = stats.wilcoxon(diff)
        raw.append(expected.pvalue)
        assert row.statistic == expected.statistic and row.p_raw == pytest.approx(expected.pvalue, rel=1e-12)
        assert row.median_difference == pytest.approx(np.median(diff))
        assert row.n_blocks == 18
    order = np.argsort(raw)
    holm_by_hand = np.maximum.accumulate([min(1.0, (3 - i) * raw[j]) for i, j in enumerate(order)])
    np.testing.assert_allclose(table["p_adjusted"].to_numpy()[order], holm_by_hand, rtol=1e-12)
    assert table.loc[0, "rank_biserial"] < 0  # x scores lower than y
    bonf = pairwise_wilcoxon(_tidy(matrix, ["x", "y", "z"]), correction="bonferroni")
    np.testing.assert_allclose(bonf["p_adjusted"], np.minimum(1, 3 * np.array(raw)), rtol=1e-12)


def test_pairwise_wilcoxon_identical_pair() -> None:
    matrix = np.column_stack([np.arange(6.0), np.arange(6.0), np.arange(6.0) + 1])
    table = pairwise_wilcoxon(_tidy(matrix, ["a", "b", "c"]), correction="none")
    first = table.iloc[0]
    assert (first.group_a, first.group_b) == ("a", "b")
    assert (first.statistic, first.p_raw, first.rank_biserial) == (0.0, 1.0, 0.0)
    assert table.iloc[1].rank_biserial == -1.0


def test_bootstrap_ci_matches_scipy() -> None:
    x = np.random.default_rng(5).gamma(2.0, size=40)
    est, low, high = bootstrap_ci(x, n_resamples=2000, seed=7)
    ref = stats.bootstrap((x,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(7))
    assert est == pytest.approx(x.mean())
    assert (low, high) == (ref.confidence_interval.low, ref.confidence_interval.high)
    assert low < est < high
    assert bootstrap_ci(x, n_resamples=2000, seed=7) == (est, low, high)  # seeded: reproducible
    assert bootstrap_ci(x, n_resamples=2000, seed=8) != (est, low, high)
    _, plow, phigh = bootstrap_ci(x, n_resamples=2000, seed=7, method="percentile")
    ref_p = stats.bootstrap((x,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(7))
    assert (plow, phigh) == (ref_p.confidence_interval.low, ref_p.confidence_interval.high)


def test_bootstrap_ci_degenerate() -> None:
    est, low, high = bootstrap_ci([3.5])
    assert est == 3.5 and math.isnan(low) and math.isnan(high)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    # BCa is undefined here (median of tied data); the percentile interval is returned.
    est, low, high = bootstrap_ci([1.0] * 7 + [2.0], statistic=np.median, n_resamples=500)
    assert (est, low, high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])


def test_summarise_values_and_determinism(tmp_path) -> None:
    rng = np.random.default_rng(6)
    rows = [
        {"model": model, "method": method, "image_id": i, "value": rng.normal(loc=len(method))}
        for model in ("m2", "m1")
        for method in ("saliency", "ig")
        for i in range(15)
    ]
    tidy = pd.DataFrame(rows)
    tidy.loc[3, "value"] = np.nan
    table = summarise(tidy, ["model", "method"], n_resamples=500)
    assert list(table.columns) == ["model", "method", "n", "n_missing", "mean", "median", "std", "ci_low", "ci_high"]
    assert list(zip(table["model"], table["method"])) == [
        ("m1", "ig"), ("m1", "saliency"), ("m2", "ig"), ("m2", "saliency")
    ]
    for row in table.itertuples():
        values = tidy[(tidy["model"] == row.model) & (tidy["method"] == row.method)]["value"].dropna()
        assert row.n == len(values) and row.n_missing == 15 - len(values)
        assert row.mean == pytest.approx(values.mean()) and row.median == pytest.approx(values.median())
        assert row.std == pytest.approx(values.std(ddof=1))
        _, low, high = bootstrap_ci(np.sort(values.to_numpy()), n_resamples=500, seed=0)
        assert (row.ci_low, row.ci_high) == (low, high)
    # row 3 of the input (m2, saliency) was set to NaN
    assert table["n"].tolist() == [15, 15, 15, 14] and table["n_missing"].tolist() == [0, 0, 0, 1]
    first = tmp_path / "a.csv"
    second = tmp_path / "b.csv"
    table.to_csv(first, index=False)
    shuffled = tidy.sample(frac=1.0, random_state=3)
    summarise(shuffled, ["model", "method"], n_resamples=500).to_csv(second, index=False)
    assert first.read_bytes() == second.read_bytes()


def test_two_level_bootstrap_keeps_the_between_cluster_variance() -> None:
    """Clusters (training seeds) shift every observation (image) of theirs: the two-level interval covers the true
    mean about as often as it claims, the images-only interval of the pooled data far less often."""
    rng = np.random.default_rng(8)
    covered_two_level, covered_pooled, runs = 0, 0, 60
    for r in range(runs):
        clusters = [rng.normal(size=24) + rng.normal(scale=1.0) for _ in range(8)]  # true mean 0
        _, low, high = two_level_bootstrap_ci(clusters, n_resamples=600, seed=r)
        covered_two_level += low <= 0.0 <= high
        _, low, high = bootstrap_ci(np.concatenate(clusters), n_resamples=600, seed=r, method="percentile")
        covered_pooled += low <= 0.0 <= high
    assert covered_two_level / runs >= 0.8
    assert covered_pooled / runs <= 0.6


def test_two_level_bootstrap_known_answers() -> None:
    sample = np.random.default_rng(1).normal(size=20)
    # one cluster: the images-only BCa interval
    assert two_level_bootstrap_ci([sample], n_resamples=500, seed=3) == bootstrap_ci(sample, n_resamples=500, seed=3)
    # the estimate is the mean of the cluster means; constant clusters equal to each other have no spread
    estimate, low, high = two_level_bootstrap_ci([np.full(5, 2.0), np.full(5, 2.0)], n_resamples=200)
    assert estimate == low == high == 2.0
    estimate, _, _ = two_level_bootstrap_ci([np.array([1.0, 3.0]), np.array([10.0, 10.0, 10.0])], n_resamples=200)
    assert estimate == pytest.approx(6.0)
    with pytest.raises(ValueError, match="NaN"):
        two_level_bootstrap_ci([np.array([1.0, np.nan])])
