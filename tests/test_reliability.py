"""Reliability of XAI metrics: Krippendorff's alpha (hand-worked coincidence matrices), Spearman
inter-method / cross-metric correlations, and ICCs against Shrout & Fleiss (1979)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from depthxai.stats.reliability import (
    cross_metric_reliability,
    icc,
    inter_method_reliability,
    inter_rater_reliability,
    ordinal_alpha,
    rank_within_rows,
    retest_reliability,
)

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)


def _scores(per_image: dict[str, dict[str, float]], metric: str = "fidelity") -> pd.DataFrame:
    """Tidy scores {image: {method: value}} for one dataset/model/metric."""
    return pd.DataFrame(
        [
            {"dataset": "nyu", "model": "meter", "method": m, "image_id": img, "metric": metric, "value": v}
            for img, by_method in per_image.items()
            for m, v in by_method.items()
        ]
    )


def test_alpha_two_raters_hand_worked() -> None:
    # Raters (rows) = images, units (columns) = methods. Ranks: image 1 -> 1 2 3, image 2 -> 1 3 2.
    # Coincidences (each unit has 2 values, weight 1/(2-1)): o11 = 2, o23 = o32 = 2; n1 = n2 = n3 = 2, n = 6.
    # Ordinal distances d(c,k) = (sum_{g=c..k} n_g - (n_c + n_k)/2)^2: d12 = d23 = 4, d13 = 16.
    # D_o = o23 d23 + o32 d32 = 16; D_e = sum_{c != k} n_c n_k d_ck = 2 (4*4 + 4*4 + 4*16) = 192.
    # alpha = 1 - (n - 1) D_o / D_e = 1 - 5 * 16 / 192 = 7/12.
    assert ordinal_alpha(np.array([[1, 2, 3], [1, 3, 2]])) == pytest.approx(7 / 12, rel=1e-12)
    # The wrong orientation (methods as raters) is a different number: the test can tell them apart.
    assert ordinal_alpha(np.array([[1, 2, 3], [1, 3, 2]]).T) == pytest.approx(-0.25, rel=1e-12)

    # The same data through the tidy API: ascending ranks are 3 2 1 and 3 1 2 (the mirror image of the above).
    scores = _scores({"img1": {"a": 0.9, "b": 0.5, "c": 0.1}, "img2": {"a": 0.9, "b": 0.1, "c": 0.5}})
    table = inter_rater_reliability(scores)
    assert table.loc[0, "alpha"] == pytest.approx(7 / 12, rel=1e-12)
    assert (table.loc[0, "n_images"], table.loc[0, "n_methods"], table.loc[0, "n_images_dropped"]) == (2, 3, 0)


def test_alpha_with_tied_scores_hand_worked() -> None:
    # Image 1 scores (0.5, 0.5, 0.1) -> average ranks (2.5, 2.5, 1); image 2 (0.9, 0.1, 0.5) -> (3, 1, 2).
    # Values 1, 2, 2.5, 3 with n = 2, 1, 2, 1 (n = 6). Pairs: unit a (2.5, 3), b (2.5, 1), c (1, 2).
    # d(1,2) = (3 - 1.5)^2 = 2.25, d(1,2.5) = (5 - 2)^2 = 9, d(1,3) = (6 - 1.5)^2 = 20.25,
    # d(2,2.5) = (3 - 1.5)^2 = 2.25, d(2,3) = (4 - 1)^2 = 9, d(2.5,3) = (3 - 1.5)^2 = 2.25.
    # D_o = 2 (2.25 + 9 + 2.25) = 27; D_e = 2 (2*2.25 + 4*9 + 2*20.25 + 2*2.25 + 9 + 2*2.25) = 198.
    # alpha = 1 - 5 * 27 / 198 = 7/22.
    scores = _scores({"img1": {"a": 0.5, "b": 0.5, "c": 0.1}, "img2": {"a": 0.9, "b": 0.1, "c": 0.5}})
    ranks = rank_within_rows(scores.pivot(index="image_id", columns="method", values="value"))
    np.testing.assert_array_equal(ranks.to_numpy(), [[2.5, 2.5, 1.0], [3.0, 1.0, 2.0]])
    assert inter_rater_reliability(scores).loc[0, "alpha"] == pytest.approx(7 / 22, rel=1e-12)


def test_alpha_is_orientation_free_and_perfect_when_consistent() -> None:
    rng = np.random.default_rng(0)
    per_image = {f"i{n:02d}": {m: float(rng.normal(loc=j)) for j, m in enumerate("abcd")} for n in range(12)}
    scores = _scores(per_image)
    alpha = inter_rater_reliability(scores).loc[0, "alpha"]
    flipped = scores.assign(value=-scores["value"])
    assert inter_rater_reliability(flipped).loc[0, "alpha"] == pytest.approx(alpha, rel=1e-12)
    assert 0 < alpha < 1
    consistent = _scores({f"i{n}": {"a": n + 0.0, "b": n + 1.0, "c": n + 5.0} for n in range(5)})
    assert inter_rater_reliability(consistent).loc[0, "alpha"] == pytest.approx(1.0)
    all_tied = _scores({f"i{n}": {"a": 1.0, "b": 1.0} for n in range(3)})
    assert math.isnan(inter_rater_reliability(all_tied).loc[0, "alpha"])


def test_inter_rater_groups_and_drops() -> None:
    good = _scores({f"i{n}": {"a": n + 0.0, "b": n + 1.0, "c": n + 2.0} for n in range(4)}, metric="m2")
    mixed = _scores({"i0": {"a": 1.0, "b": 2.0, "c": 3.0}, "i1": {"a": 1.0, "b": 3.0, "c": 2.0},
                     "i2": {"a": 5.0, "b": 6.0}}, metric="m1")
    table = inter_rater_reliability(pd.concat([good, mixed]))
    assert table["metric"].tolist() == ["m1", "m2"]
    assert table["alpha"].tolist() == pytest.approx([7 / 12, 1.0])
    assert table["n_images_dropped"].tolist() == [1, 0]  # i2 lacks method c


def test_inter_method_spearman() -> None:
    per_image = {f"i{n}": {"a": [1, 2, 3, 4][n], "b": [10, 20, 30, 40][n], "c": [4, 3, 2, 1][n], "d": [1, 3, 2, 4][n]}
                 for n in range(4)}
    table = inter_method_reliability(_scores(per_image))
    matrix = table.pivot(index="method_a", columns="method_b", values="spearman")
    assert list(matrix.index) == list("abcd") and list(matrix.columns) == list("abcd")
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix.to_numpy(), matrix.to_numpy().T)
    assert matrix.loc["a", "b"] == pytest.approx(1.0)
    assert matrix.loc["a", "c"] == pytest.approx(-1.0)
    # a vs d: squared rank differences 0 + 1 + 1 + 0 = 2 -> rho = 1 - 6*2 / (4 * (16 - 1)) = 0.8.
    assert matrix.loc["a", "d"] == pytest.approx(0.8)
    assert set(table["n_images"]) == {4}


def test_cross_metric_spearman() -> None:
    rows = []
    for n, (fid, auc) in enumerate([(0.1, 5.0), (0.4, 3.0), (0.2, 4.0), (0.3, 1.0), (0.5, 2.0)]):
        common = {"dataset": "nyu", "model": "meter", "method": "ig", "image_id": f"i{n}"}
        rows += [{**common, "metric": "fidelity", "value": fid}, {**common, "metric": "auc", "value": auc}]
    table = cross_metric_reliability(pd.DataFrame(rows))
    assert table[["metric_a", "metric_b"]].values.tolist() == [
        ["auc", "auc"], ["auc", "fidelity"], ["fidelity", "auc"], ["fidelity", "fidelity"]
    ]
    # ranks fidelity 1 4 2 3 5, auc 5 3 4 1 2: sum d^2 = 16 + 1 + 4 + 4 + 9 = 34 -> rho = 1 - 6*34/120 = -0.7.
    assert table.loc[1, "spearman"] == pytest.approx(-0.7)
    assert table.loc[1, "n_images"] == 5


def test_icc_shrout_fleiss() -> None:
    result = icc(SHROUT_FLEISS)
    # Published: BMS 11.24, JMS 32.49, EMS 1.02; ICC(2,1) .29, ICC(3,1) .71, ICC(2,4) .62, ICC(3,4) .91.
    assert (result.ms_targets, result.ms_judges, result.ms_error) == pytest.approx((11.24, 32.49, 1.02), abs=0.005)
    assert result.icc2_1 == pytest.approx(0.29, abs=0.005)
    assert result.icc3_1 == pytest.approx(0.71, abs=0.005)
    assert result.icc2_k == pytest.approx(0.62, abs=0.005)
    assert result.icc3_k == pytest.approx(0.91, abs=0.005)
    # Exact values from the mean squares (BMS = 1349/120, JMS = 2339/72, EMS = 367/360).
    bms, jms, ems = 1349 / 120, 2339 / 72, 367 / 360
    assert result.icc2_1 == pytest.approx((bms - ems) / (bms + 3 * ems + 4 * (jms - ems) / 6), rel=1e-12)
    assert result.icc3_1 == pytest.approx((bms - ems) / (bms + 3 * ems), rel=1e-12)


def test_icc_properties() -> None:
    targets = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    identical = np.column_stack([targets] * 3)
    assert (icc(identical).icc2_1, icc(identical).icc3_1) == pytest.approx((1.0, 1.0))
    # A constant offset per repetition: consistency (3,1) stays 1, absolute agreement (2,1) drops.
    shifted = identical + np.array([0.0, 1.0, 2.0])
    assert icc(shifted).icc3_1 == pytest.approx(1.0)
    assert icc(shifted).icc2_1 < 0.95
    assert math.isnan(icc(np.ones((4, 3))).icc2_1)
    with pytest.raises(ValueError, match="2 targets"):
        icc(np.ones((1, 3)))


def test_retest_reliability_from_tidy() -> None:
    rows = [
        {"dataset": "nyu", "model": "meter", "metric": "fidelity", "method": "ig", "image_id": f"t{t}", "repeat": j,
         "value": SHROUT_FLEISS[t, j]}
        for t in range(6)
        for j in range(4)
    ]
    rows.append({"dataset": "nyu", "model": "meter", "metric": "fidelity", "method": "ig", "image_id": "t9",
                 "repeat": 0, "value": 3.0})  # one repetition only: dropped
    rows += [{"dataset": "nyu", "model": "meter", "metric": "fidelity", "method": "another", "image_id": "t0",
              "repeat": j, "value": 1.0} for j in range(2)]  # a single image: ICC undefined
    table = retest_reliability(pd.DataFrame(rows).iloc[::-1])
    assert table["method"].tolist() == ["another", "ig"]
    ig = table.iloc[1]
    expected = icc(SHROUT_FLEISS)
    assert (ig.icc2_1, ig.icc3_1, ig.icc2_k, ig.icc3_k) == pytest.approx(
        (expected.icc2_1, expected.icc3_1, expected.icc2_k, expected.icc3_k), rel=1e-12
    )
    assert (ig.n_targets, ig.n_repeats, ig.n_targets_dropped) == (6, 4, 1)
    assert math.isnan(table.iloc[0].icc2_1) and table.iloc[0].n_targets == 1
