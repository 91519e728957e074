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
        for j, method in enumerate(METHODS):
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
    alpha = tables["alpha"].set_index("metric")["alpha"]
    assert set(alpha.index) == {"morf_auc_depth_rmse", "lerf_auc_depth_rmse", "gap_auc_depth_rmse"}  # no delta
    assert alpha["morf_auc_depth_rmse"] == pytest.approx(1.0)  # every image ranks the methods identically
    assert abs(alpha["lerf_auc_depth_rmse"]) < 0.3
    spearman = tables["spearman"]
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
    for repeat in (0, 1, 2):
        noise = rng.normal(size=8)
        for i in range(8):
            # saliency: the same score in every repeat (ICC 1); random: pure noise (ICC about 0)
            rows.append(("nyu", "m", "saliency", f"img{i}", "infidelity", truth[i], repeat))
            rows.append(("nyu", "m", "random", f"img{i}", "infidelity", noise[i], repeat))
    retest = pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value", "repeat"])
    scores = retest[retest["repeat"] == 0].drop(columns="repeat")
    tables = reliability_tables(scores, retest)
    icc = tables["icc"].set_index("method")
    assert icc.loc["saliency", "icc2_1"] == pytest.approx(1.0)
    assert icc.loc["random", "icc2_1"] < 0.5
    assert int(icc.loc["saliency", "n_repeats"]) == 3 and int(icc.loc["saliency", "n_targets"]) == 8
    # ICC(3,1) by the Shrout & Fleiss formula, computed here from the raw matrix
    y = retest[retest["method"] == "random"].pivot(index="image_id", columns="repeat", values="value").to_numpy()
    n, k = y.shape
    grand = y.mean()
    bms = k * ((y.mean(1) - grand) ** 2).sum() / (n - 1)
    ems = (((y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + grand) ** 2).sum()) / ((n - 1) * (k - 1))
    assert icc.loc["random", "icc3_1"] == pytest.approx((bms - ems) / (bms + (k - 1) * ems))
    paths = write_csv_tables(tables, tmp_path)
    assert [p.name for p in paths] == ["alpha.csv", "cross_metric.csv", "icc.csv", "spearman.csv"]
    assert pd.read_csv(tmp_path / "icc.csv").shape == tables["icc"].shape
