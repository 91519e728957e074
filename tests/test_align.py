"""Aligning relative predictions to ground truth: known answers, and the least-squares fit against numpy's solver."""

from __future__ import annotations

import numpy as np
import pytest

from depthxai.evaluation.align import align_to_ground_truth, median_scale, scale_shift


def test_median_scale_by_hand() -> None:
    pred = np.array([[1.0, 2.0, 4.0], [8.0, 0.5, 3.0]])
    gt = np.array([[3.0, 0.0, 12.0], [24.0, 1.5, np.nan]])  # 0 and NaN: no measurement
    # valid pixels: pred 1, 4, 8, 0.5 (median 2.5) and gt 3, 12, 24, 1.5 (median 7.5): s = 3
    assert median_scale(pred, gt) == pytest.approx(3.0)
    np.testing.assert_allclose(align_to_ground_truth(pred, gt, method="median", space="depth"), 3 * pred)
    mask = np.array([[True, True, True], [False, False, False]])  # pred 1, 4 (median 2.5), gt 3, 12 (7.5)
    assert median_scale(pred, gt, mask) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="space='depth'"):
        align_to_ground_truth(pred, gt, method="median")


def test_scale_and_shift_in_disparity_space_recovers_a_known_affine_map() -> None:
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 10.0, size=(12, 16))
    gt[0, :4] = 0.0  # missing ground truth
    disparity = 1.0 / np.where(gt > 0, gt, 1.0)
    pred = (disparity - 0.05) / 4.0  # a relative prediction: disparity = 4 * pred + 0.05
    valid = gt > 0
    s, t = scale_shift(pred, disparity, valid)
    assert (s, t) == pytest.approx((4.0, 0.05), rel=1e-9)
    aligned = align_to_ground_truth(pred, gt)
    np.testing.assert_allclose(aligned[valid], gt[valid], rtol=1e-9)
    # depth space: a depth-like prediction with scale 2 and shift -1
    s, t = scale_shift((gt + 1.0) / 2.0, gt, valid)
    assert (s, t) == pytest.approx((2.0, -1.0), rel=1e-9)


def test_scale_and_shift_equals_numpy_least_squares_with_noise() -> None:
    rng = np.random.default_rng(1)
    pred = rng.uniform(0.0, 1.0, size=(20, 30))
    target = 3.0 * pred + 0.2 + rng.normal(0.0, 0.1, size=pred.shape)
    mask = rng.uniform(size=pred.shape) > 0.3
    design = np.stack([pred[mask], np.ones(int(mask.sum()))], axis=1)
    expected, *_ = np.linalg.lstsq(design, target[mask], rcond=None)
    assert scale_shift(pred, target, mask) == pytest.approx(tuple(expected), rel=1e-10)


def test_disparities_below_the_cap_are_raised_as_midas_does() -> None:
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    pred = np.array([[1.0, 0.5], [0.25, -0.5]])  # the last pixel's fit would be a negative disparity
    valid = np.array([[True, True], [True, False]])
    s, t = scale_shift(pred, 1.0 / gt, valid)
    assert (s, t) == pytest.approx((1.0, 0.0))
    aligned = align_to_ground_truth(pred, gt, mask=valid, max_depth=10.0)
    np.testing.assert_allclose(aligned, [[1.0, 2.0], [4.0, 10.0]])  # raised to 1 / max_depth
    np.testing.assert_allclose(align_to_ground_truth(pred, gt, mask=valid)[1, 1], 4.0)  # default cap: max(gt) fitted
    with pytest.raises(ValueError, match="varies"):
        scale_shift(np.ones((3, 3)), np.arange(9.0).reshape(3, 3))
    with pytest.raises(ValueError, match="two valid"):
        align_to_ground_truth(pred, np.zeros((2, 2)))
