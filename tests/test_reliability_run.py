"""The reliability stage's tables: alpha, Spearman, cross-metric and test-retest ICC from tidy scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from depthxai.fileio import write_csv_tables
from depthxai.stats.reliability_run import ICC_COLUMNS, reliability_tables

METHODS = ("ig", "random", "saliency")


def _scores(seed: int = 0, n: int = 10) -> pd.DataFrame:
    """MoRF: every image ranks saliency > ig > random (perfect agreement); LeRF: independent noise per method."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    rows = []
    for i in range(n):
        for _, method in enumerate(METHODS):
            offset = {"random": 0.0, "ig": 1.0, "saliency": 2.0}[method]
            morf = difficulty[i] * 0.1 + offset
            rows.append(("nyu", "meter_xxs_nyu", method, f"img{i}", "morf_auc_depth_rmse", morf))
            rows.append(("nyu", "meter_xxs_nyu", method, f"img{i}", "lerf_auc_depth_rmse", rng.normal()))
        rows.append(("nyu", "meter_xxs_nyu", "ig", f"img{i}", "convergence_delta", rng.normal()))
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value"])


def test_alpha_spearman_and_cross_metric_tables() -> None:
    scores = _scores()
    tables = reliability_tables(scores)
    assert set(tables) == {"alpha", "spearman", "cross_metric", "icc"}
    assert set(tables["alpha"]["methods_set"]) == {"explanations", "all"}
    # the explanation methods exclude the random* baselines by default: ig and saliency here
    explained = tables["alpha"][tables["alpha"]["methods_set"] == "explanations"]
    assert set(explained["n_methods"]) == {2}
    alpha = tables["alpha"][tables["alpha"]["methods_set"] == "all"].set_index("metric")["alpha"]
    assert set(alpha.index) == {"morf_auc_depth_rmse", "lerf_auc_depth_rmse", "gap_auc_depth_rmse"}  # no delta
    assert alpha["morf_auc_depth_rmse"] == pytest.approx(1.0)  # every image ranks the methods identically
    assert abs(alpha["lerf_auc_depth_rmse"]) < 0.3
    spearman = tables["spearman"][tables["spearman"]["methods_set"] == "all"]
    assert (set(tables["spearman"][tables["spearman"]["methods_set"] == "explanations"]["method_a"])
            == {"ig", "saliency"})
    morf = spearman[spearman["metric"] == "morf_auc_depth_rmse"].pivot(index="method_a", columns="method_b",
                                                                       values="spearman")
    assert np.allclose(np.diag(morf.to_numpy()), 1.0)
    # the same per-image difficulty drives every method's MoRF: rank correlation 1
    assert morf.loc["ig", "saliency"] == pytest.approx(1.0)
    lerf = scores[scores["metric"] == "lerf_auc_depth_rmse"].pivot(index="image_id", columns="method", values="value")
    row = spearman[(spearman["metric"] == "lerf_auc_depth_rmse") & (spearman["method_a"] == "ig")
                   & (spearman["method_b"] == "random")]
    assert float(row["spearman"].iloc[0]) == pytest.approx(stats.spearmanr(lerf["ig"], lerf["random"]).statistic)
    gap = tables["cross_metric"]
    assert set(gap["metric_a"]) == {"morf_auc_depth_rmse", "lerf_auc_depth_rmse", "gap_auc_depth_rmse"}
    assert list(tables["icc"].columns) == ICC_COLUMNS and tables["icc"].empty


def test_icc_from_a_retest_table(tmp_path) -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=8)
    rows = []
    for factor in ("analysis_seed", "training_seed"):
        for repeat in (0, 1, 2):
            noise = rng.normal(size=8)
            for i in range(8):
                # saliency: the same score in every analysis-seed repeat (ICC 1), a small per-image perturbation
                # across training seeds; random: pure noise (ICC about 0)
                wobble = 0.0 if factor == "analysis_seed" or repeat == 0 else 0.3 * noise[i]
                rows.append(("nyu", "m", "saliency", f"img{i}", "infidelity", truth[i] + wobble, factor, repeat))
                rows.append(("nyu", "m", "random", f"img{i}", "infidelity", noise[i], factor, repeat))
    retest = pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value", "factor",
                                         "repeat"])
    # repeat 0 is the main run, shared by both factors
    scores = retest[(retest["repeat"] == 0) & (retest["factor"] == "analysis_seed")].drop(columns=["factor", "repeat"])
    tables = reliability_tables(scores, retest)
    icc = tables["icc"].set_index(["method", "factor"])
    assert len(icc) == 4
    assert icc.loc[("saliency", "analysis_seed"), "icc2_1"] == pytest.approx(1.0)
    assert 0.5 < icc.loc[("saliency", "training_seed"), "icc2_1"] < 1.0
    assert icc.loc[("random", "analysis_seed"), "icc2_1"] < 0.5
    assert int(icc.loc[("saliency", "analysis_seed"), "n_repeats"]) == 3
    assert int(icc.loc[("saliency", "analysis_seed"), "n_targets"]) == 8
    # ICC(3,1) by the Shrout & Fleiss formula, computed here from the raw matrix of each factor
    for factor in ("analysis_seed", "training_seed"):
        for method in ("saliency", "random"):
            frame = retest[(retest["method"] == method) & (retest["factor"] == factor)]
            y = frame.pivot(index="image_id", columns="repeat", values="value").to_numpy()
            n, k = y.shape
            grand = y.mean()
            bms = k * ((y.mean(1) - grand) ** 2).sum() / (n - 1)
            ems = (((y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + grand) ** 2).sum()) / ((n - 1) * (k - 1))
            if method == "saliency" and factor == "analysis_seed":
                continue  # ems = 0: ICC(3,1) = 1 exactly, checked above through ICC(2,1)
            assert icc.loc[(method, factor), "icc3_1"] == pytest.approx((bms - ems) / (bms + (k - 1) * ems))
    paths = write_csv_tables(tables, tmp_path)
    assert [p.name for p in paths] == ["alpha.csv", "cross_metric.csv", "icc.csv", "spearman.csv"]
    assert pd.read_csv(tmp_path / "icc.csv").shape == tables["icc"].shape


def test_reliability_table_has_one_icc_column_per_factor() -> None:
    from depthxai.report.science import reliability_table

    alpha = pd.DataFrame({"dataset": ["d", "d"], "model": ["m", "m"], "metric": ["infidelity", "fidelity"],
                          "alpha": [0.4, 0.9], "n_images": [8, 8]})
    icc = pd.DataFrame({"dataset": "d", "model": "m", "metric": ["infidelity"] * 3 + ["fidelity"] * 3 + ["infidelity"],
                        "method": ["ig", "random", "saliency"] * 2 + ["ig"],
                        "factor": ["analysis_seed"] * 6 + ["training_seed"],
                        "icc2_1": [0.9, 0.1, 0.5, 1.0, 0.2, 0.8, 0.3]})
    table = reliability_table(alpha, icc).set_index("metric")
    assert table.loc["infidelity", "icc_analysis_seed_mean"] == pytest.approx(0.5)  # median of 0.9, 0.1, 0.5
    assert table.loc["fidelity", "icc_analysis_seed_mean"] == pytest.approx(0.8)
    assert table.loc["infidelity", "icc_training_seed_mean"] == pytest.approx(0.3)
    assert np.isnan(table.loc["fidelity", "icc_training_seed_mean"])  # that factor did not score this metric
    assert table.loc["fidelity", "alpha_mean"] == pytest.approx(0.9)
    assert "icc_analysis_seed_mean" not in reliability_table(alpha, icc.iloc[:0]).columns


def _indistinguishable(baseline_first: bool, rng: np.random.Generator, n_images: int = 32) -> pd.DataFrame:
    """4 methods with the same score distribution on every image, and optionally a baseline always scored lowest."""
    rows = []
    for i in range(n_images):
        for method in ("saliency", "ig", "rollout", "explainer"):
            rows.append(("d", "m", method, f"img{i}", "gap_auc_target_change", rng.normal()))
        if baseline_first:
            rows.append(("d", "m", "random_smooth", f"img{i}", "gap_auc_target_change", -10.0 + rng.normal()))
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value"])


def test_alpha_over_the_explanation_methods_is_not_inflated_by_a_baseline() -> None:
    """The simulation of the issue: 4 indistinguishable methods over 32 images give alpha about 0; a baseline that
    every image ranks first raises the all-methods alpha to about 0.5, while the explanations' alpha stays at 0."""
    rng = np.random.default_rng(5)
    plain, inflated, explanations = [], [], []
    for _ in range(20):
        tables = reliability_tables(_indistinguishable(False, rng), derive_gaps=False,
                                    methods=["saliency", "ig", "rollout", "explainer"])
        plain.append(float(tables["alpha"].query("methods_set == 'all'")["alpha"].iloc[0]))
        tables = reliability_tables(_indistinguishable(True, rng), derive_gaps=False,
                                    methods=["saliency", "ig", "rollout", "explainer"])
        inflated.append(float(tables["alpha"].query("methods_set == 'all'")["alpha"].iloc[0]))
        explanations.append(float(tables["alpha"].query("methods_set == 'explanations'")["alpha"].iloc[0]))
    assert abs(np.mean(plain)) < 0.05
    assert abs(np.mean(explanations)) < 0.05
    assert 0.4 < np.mean(inflated) < 0.6
