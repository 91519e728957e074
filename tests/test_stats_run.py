"""The statistics stage: summaries, Friedman and Holm-Wilcoxon tables on constructed scores, checked against
direct scipy calls; NaN handling, compared-method sets, derived MoRF-LeRF gaps, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from depthxai.fileio import write_csv_tables
from depthxai.stats.hypothesis import bootstrap_ci, two_level_bootstrap_ci
from depthxai.stats.run import (
    FRIEDMAN_COLUMNS,
    WILCOXON_COLUMNS,
    add_gap_metrics,
    metric_direction,
    paired_differences,
    read_statistics,
    run_statistics,
)

METHODS = ["ig", "random", "saliency"]
N_IMAGES = 12


def _scores(seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One dataset and model, 3 methods x 12 images, and the (images x methods) matrix of every metric.

    * ``morf_auc_depth_rmse``: saliency > ig > random on every image (offsets 2, 1, 0 on a shared base).
    * ``lerf_auc_depth_rmse``: independent noise, the same distribution for every method.
    * ``infidelity``: saliency lowest on every image (lower is better).
    * ``convergence_delta``: IG only.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(size=N_IMAGES)
    matrices = {
        "morf_auc_depth_rmse": np.column_stack([base + 1.0, base, base + 2.0]) + 0.01 * rng.normal(size=(N_IMAGES, 3)),
        "lerf_auc_depth_rmse": rng.normal(size=(N_IMAGES, 3)),
        # Small noise keeps the paired differences free of ties (tied differences make scipy's wilcoxon fall back
        # to a slow permutation test).
        "infidelity": np.column_stack([base + 5.0, base + 6.0, base + 4.0]) + 0.01 * rng.normal(size=(N_IMAGES, 3)),
    }
    rows = []
    for metric, matrix in matrices.items():
        for j, method in enumerate(METHODS):
            for i in range(N_IMAGES):
                rows.append(("synthindoor", "meter_xxs", method, f"{i:04d}", metric, float(matrix[i, j])))
    deltas = rng.normal(size=N_IMAGES)
    rows += [("synthindoor", "meter_xxs", "ig", f"{i:04d}", "convergence_delta", float(deltas[i]))
             for i in range(N_IMAGES)]
    table = pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value"])
    return table.sample(frac=1.0, random_state=seed).reset_index(drop=True), matrices


def _row(table: pd.DataFrame, **key: str) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for column, value in key.items():
        mask &= (table[column] == value).to_numpy()
    assert mask.sum() == 1, f"expected one row for {key}, got {mask.sum()}"
    return table[mask].iloc[0]


def test_friedman_and_wilcoxon_match_scipy_and_decide_right() -> None:
    scores, matrices = _scores()
    out = run_statistics(scores, alpha=0.05, n_resamples=200, seed=0)
    friedman, wilcoxon = out["friedman"], out["wilcoxon"]
    assert list(friedman.columns) == list(FRIEDMAN_COLUMNS) and list(wilcoxon.columns) == list(WILCOXON_COLUMNS)
    # convergence_delta exists for IG only: summarised, not tested.
    assert "convergence_delta" not in set(friedman["metric"]) | set(wilcoxon["metric"])
    assert set(friedman["metric"]) == {"morf_auc_depth_rmse", "lerf_auc_depth_rmse", "gap_auc_depth_rmse",
                                       "infidelity"}

    for metric in ("morf_auc_depth_rmse", "lerf_auc_depth_rmse", "infidelity"):
        matrix = matrices[metric]
        expected = stats.friedmanchisquare(*matrix.T)
        row = _row(friedman, metric=metric)
        assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
        assert row["p"] == pytest.approx(expected.pvalue, rel=1e-12)
        assert row["kendall_w"] == pytest.approx(expected.statistic / (N_IMAGES * 2), rel=1e-12)
        assert (row["k"], row["n_blocks"], row["n_blocks_dropped"], row["methods"]) == (3, 12, 0, "ig;random;saliency")
        assert row["significant"] == (expected.pvalue < 0.05)

    # Perfectly consistent ranking: chi2 = n (k - 1) = 24, W = 1, p = exp(-12).
    morf = _row(friedman, metric="morf_auc_depth_rmse")
    assert morf["statistic"] == pytest.approx(24.0) and morf["kendall_w"] == pytest.approx(1.0)
    assert morf["p"] == pytest.approx(np.exp(-12.0), rel=1e-9) and morf["significant"]
    assert not _row(friedman, metric="lerf_auc_depth_rmse")["significant"]  # pure noise at this seed

    for metric in ("morf_auc_depth_rmse", "lerf_auc_depth_rmse"):
        rows = wilcoxon[wilcoxon["metric"] == metric]
        assert list(zip(rows["method_a"], rows["method_b"])) == [("ig", "random"), ("ig", "saliency"),
                                                                 ("random", "saliency")]
        column = {m: j for j, m in enumerate(METHODS)}
        raw = []
        for pair in rows.itertuples():
            diff = matrices[metric][:, column[pair.method_a]] - matrices[metric][:, column[pair.method_b]]
            expected = stats.wilcoxon(diff)
            raw.append(expected.pvalue)
            assert pair.statistic == expected.statistic
            assert pair.p_raw == pytest.approx(expected.pvalue, rel=1e-12)
            assert pair.median_difference == pytest.approx(np.median(diff), rel=1e-12)
        order = np.argsort(raw)
        holm = np.maximum.accumulate([min(1.0, (3 - r) * raw[j]) for r, j in enumerate(order)])
        np.testing.assert_allclose(rows["p_adjusted"].to_numpy()[order], holm, rtol=1e-12)
        np.testing.assert_array_equal(rows["significant"].to_numpy(), rows["p_adjusted"].to_numpy() < 0.05)

    # The separated metric: every pair differs on every image -> exact p = 2 / 2^12, Holm x3 at most: significant.
    morf_pairs = wilcoxon[wilcoxon["metric"] == "morf_auc_depth_rmse"]
    assert morf_pairs["significant"].all()
    np.testing.assert_allclose(morf_pairs["p_raw"], 2.0 / 2**12, rtol=1e-12)
    np.testing.assert_allclose(morf_pairs["rank_biserial"], [1.0, -1.0, -1.0])  # ig > random, ig < saliency, ...
    assert list(morf_pairs["better"]) == ["ig", "saliency", "saliency"]  # MoRF: higher is better
    assert not wilcoxon.loc[wilcoxon["metric"] == "lerf_auc_depth_rmse", "significant"].any()
    # Lower is better for Infidelity: saliency (lowest) wins its pairs, ig beats random.
    infid = wilcoxon[wilcoxon["metric"] == "infidelity"]
    assert list(infid["better"]) == ["ig", "saliency", "saliency"]


def test_summary_matches_direct_computation() -> None:
    scores, matrices = _scores()
    summary = run_statistics(scores, n_resamples=300, seed=3, confidence=0.9)["summary"]
    assert list(summary.columns) == ["dataset", "model", "method", "metric", "n", "n_missing", "mean", "median", "std",
                                     "ci_low", "ci_high"]
    # 3 methods x 4 metrics (with the derived gap) + IG's convergence delta.
    assert len(summary) == 3 * 4 + 1
    assert _row(summary, method="ig", metric="convergence_delta")["n"] == N_IMAGES
    values = matrices["infidelity"][:, 2]
    row = _row(summary, method="saliency", metric="infidelity")
    mean, low, high = bootstrap_ci(np.sort(values), n_resamples=300, confidence=0.9, seed=3)
    assert (row["n"], row["n_missing"]) == (N_IMAGES, 0)
    assert row["mean"] == pytest.approx(values.mean(), rel=1e-12) and row["mean"] == pytest.approx(mean, rel=1e-12)
    assert row["median"] == pytest.approx(np.median(values), rel=1e-12)
    assert row["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))
    assert low < values.mean() < high
    gap = matrices["morf_auc_depth_rmse"][:, 0] - matrices["lerf_auc_depth_rmse"][:, 0]
    assert _row(summary, method="ig", metric="gap_auc_depth_rmse")["mean"] == pytest.approx(gap.mean(), rel=1e-12)


def test_nan_scores_drop_the_image_and_are_counted() -> None:
    scores, matrices = _scores()
    hole = (scores["method"] == "random") & (scores["image_id"] == "0003") & (scores["metric"] == "morf_auc_depth_rmse")
    scores.loc[hole, "value"] = np.nan
    out = run_statistics(scores, n_resamples=100)
    row = _row(out["friedman"], metric="morf_auc_depth_rmse")
    keep = [i for i in range(N_IMAGES) if i != 3]
    expected = stats.friedmanchisquare(*matrices["morf_auc_depth_rmse"][keep].T)
    assert (row["n_blocks"], row["n_blocks_dropped"]) == (11, 1)
    assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    pairs = out["wilcoxon"][out["wilcoxon"]["metric"] == "morf_auc_depth_rmse"]
    assert (pairs["n_blocks"] == 11).all() and (pairs["n_blocks_dropped"] == 1).all()
    summary = _row(out["summary"], method="random", metric="morf_auc_depth_rmse")
    assert (summary["n"], summary["n_missing"]) == (11, 1)
    # The derived gap of that image is NaN too, and counted as missing.
    assert _row(out["summary"], method="random", metric="gap_auc_depth_rmse")["n_missing"] == 1
    # Other metrics keep every image.
    assert _row(out["friedman"], metric="infidelity")["n_blocks"] == N_IMAGES


def test_method_without_scores_is_excluded_and_named() -> None:
    scores, matrices = _scores()
    scores.loc[(scores["method"] == "random") & (scores["metric"] == "infidelity"), "value"] = np.nan
    out = run_statistics(scores, n_resamples=100)
    row = _row(out["friedman"], metric="infidelity")
    assert (row["methods"], row["methods_excluded"], row["k"]) == ("ig;saliency", "random", 2)
    assert np.isnan(row["p"]) and not row["significant"] and "fewer than 3" in row["note"]
    pair = _row(out["wilcoxon"], metric="infidelity")
    diff = matrices["infidelity"][:, 0] - matrices["infidelity"][:, 2]
    assert (pair["method_a"], pair["method_b"], pair["n_blocks"]) == ("ig", "saliency", N_IMAGES)
    assert pair["p_adjusted"] == pytest.approx(stats.wilcoxon(diff).pvalue, rel=1e-12)  # one pair: no correction


def test_compared_methods_is_a_parameter() -> None:
    scores, matrices = _scores()
    out = run_statistics(scores, n_resamples=100, methods=["ig", "saliency"])
    assert set(out["friedman"]["k"]) == {2} and out["friedman"]["p"].isna().all()
    assert set(zip(out["wilcoxon"]["method_a"], out["wilcoxon"]["method_b"])) == {("ig", "saliency")}
    assert set(out["summary"]["method"]) == set(METHODS)  # the summary covers every method
    # Without the baseline, the Holm family is one pair: p_adjusted == p_raw.
    np.testing.assert_allclose(out["wilcoxon"]["p_adjusted"], out["wilcoxon"]["p_raw"])


def test_gap_metrics_are_morf_minus_lerf_per_image() -> None:
    scores, matrices = _scores()
    with_gaps = add_gap_metrics(scores)
    gaps = with_gaps[with_gaps["metric"] == "gap_auc_depth_rmse"].set_index(["method", "image_id"])["value"]
    assert len(gaps) == 3 * N_IMAGES
    expected = matrices["morf_auc_depth_rmse"][5, 2] - matrices["lerf_auc_depth_rmse"][5, 2]
    assert gaps[("saliency", "0005")] == pytest.approx(expected, rel=1e-12)
    assert len(add_gap_metrics(with_gaps)) == len(with_gaps)  # not derived twice
    assert metric_direction("gap_auc_depth_rmse") == "higher"


def test_metric_directions() -> None:
    assert metric_direction("morf_auc_gt_absrel_change") == "higher"
    assert metric_direction("lerf_auc_depth_rmse") == "lower"
    assert metric_direction("attribution_fidelity") == "higher"
    assert metric_direction("infidelity") == "lower" and metric_direction("infidelity_unsigned") == "lower"
    assert metric_direction("gap_auc_target_change@road") == "higher"
    assert metric_direction("delta1") == "higher" and metric_direction("abs_rel") == "lower"
    assert metric_direction("convergence_delta") is None


def test_deterministic_and_round_trip(tmp_path) -> None:
    scores, _ = _scores()
    first = run_statistics(scores, n_resamples=200, seed=1)
    second = run_statistics(scores.sample(frac=1.0, random_state=7), n_resamples=200, seed=1)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])
    paths_a = write_csv_tables(first, tmp_path / "a")
    paths_b = write_csv_tables(second, tmp_path / "b")
    assert [p.name for p in paths_a] == ["friedman.csv", "paired.csv", "summary.csv", "wilcoxon.csv"]
    for a, b in zip(paths_a, paths_b):
        assert a.read_bytes() == b.read_bytes()
    back = read_statistics(tmp_path / "a")
    assert list(back["wilcoxon"]["better"]) == list(first["wilcoxon"]["better"])
    np.testing.assert_allclose(back["friedman"]["p"], first["friedman"]["p"], rtol=1e-8)
    assert back["friedman"]["methods_excluded"].tolist() == [""] * len(back["friedman"])


def test_rejects_bad_input() -> None:
    scores, _ = _scores()
    with pytest.raises(ValueError, match="lacks columns"):
        run_statistics(scores.drop(columns="image_id"))
    with pytest.raises(ValueError, match="alpha"):
        run_statistics(scores, alpha=1.5)


def _gaps(shift: float, seed: int) -> pd.DataFrame:
    """Per-image gaps of ig, saliency and random_smooth, ig ahead of the baseline by ``shift``."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=N_IMAGES)
    rows = []
    for method, offset in (("ig", shift), ("saliency", 0.0), ("random_smooth", 0.0)):
        for i in range(N_IMAGES):
            rows.append(("d", "m", method, f"{i:04d}", "gap_auc_target_change", base[i] + offset + 0.1 * rng.normal()))
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value"])


def test_paired_differences_against_the_baseline() -> None:
    scores = _gaps(0.5, seed=2)
    table = paired_differences(scores, n_resamples=300, seed=4).set_index("method")
    assert set(table.index) == {"ig", "saliency"} and (table["baseline"] == "random_smooth").all()
    wide = scores.pivot(index="image_id", columns="method", values="value")
    difference = np.sort((wide["ig"] - wide["random_smooth"]).to_numpy())
    expected = bootstrap_ci(difference, n_resamples=300, seed=4)
    assert table.loc["ig", ["mean_difference", "ci_low", "ci_high"]].tolist() == pytest.approx(list(expected))
    assert table.loc["ig", "ci_method"] == "BCa over images" and int(table.loc["ig", "n_seeds"]) == 1
    assert table.loc["ig", "ci_low"] > 0 > table.loc["saliency", "ci_low"]  # the shifted method is above the baseline
    # training-seed repeats: one more cluster per repeat, a two-level bootstrap
    repeat = _gaps(0.3, seed=9).assign(factor="training_seed", repeat=1)
    analysis = _gaps(5.0, seed=10).assign(factor="analysis_seed", repeat=1)  # ignored: not a training seed
    morf_lerf = pd.concat([repeat.assign(metric="morf_auc_target_change"),
                           repeat.assign(metric="lerf_auc_target_change", value=0.0), analysis])
    two = paired_differences(scores, retest=morf_lerf, n_resamples=300, seed=4).set_index("method")
    assert int(two.loc["ig", "n_seeds"]) == 2 and two.loc["ig", "ci_method"].startswith("two-level bootstrap")
    wide_r = repeat.pivot(index="image_id", columns="method", values="value")
    clusters = [difference, np.sort((wide_r["ig"] - wide_r["random_smooth"]).to_numpy())]
    assert two.loc["ig", ["mean_difference", "ci_low", "ci_high"]].tolist() == pytest.approx(
        list(two_level_bootstrap_ci(clusters, n_resamples=300, seed=4)))
    assert two.loc["ig", "mean_difference"] == pytest.approx(0.5 * (clusters[0].mean() + clusters[1].mean()))
