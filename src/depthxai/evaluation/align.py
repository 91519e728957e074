"""Align relative depth predictions to ground truth before any metric.

A model whose card says ``output_kind: relative`` (:data:`depthxai.models.registry.OUTPUT_KINDS`) predicts depth
only up to an unknown scale (and, for affine-invariant inverse depth, shift). Its metrics are computed after one
of the two standard alignments, fitted per image on the valid ground-truth pixels:

* **median scaling** (Eigen et al., NeurIPS 2014; Zhou et al., CVPR 2017): for a depth-like prediction known up to
  scale, ``s = median(gt) / median(pred)``, aligned depth ``s * pred``.
* **least-squares scale and shift** (Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022,
  Eq. 4; the evaluation of MiDaS and Depth Anything): ``(s, t) = argmin sum_p (s * pred_p + t - target_p)^2`` in
  closed form. For inverse-depth (disparity) outputs the fit is done in disparity space (``target = 1 / gt``) and
  the aligned disparity is turned back into depth as MiDaS's evaluation does: disparities below
  ``1 / max_depth`` are raised to it, then ``depth = 1 / disparity``.

Arrays are ``(H, W)`` (one image); ``mask`` selects the pixels the fit uses (default: ``gt > 0`` and finite).
"""

from __future__ import annotations

import numpy as np

ALIGN_METHODS = ("median", "lstsq")
ALIGN_SPACES = ("disparity", "depth")


def _fit_mask(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred)
    if mask is not None:
        valid &= mask.astype(bool)
    if int(valid.sum()) < 2:
        raise ValueError("alignment needs at least two valid ground-truth pixels")
    return valid


def median_scale(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The median-scaling factor ``median(gt) / median(pred)`` over the valid pixels of a depth-like ``pred``."""
    valid = _fit_mask(pred, gt, mask)
    denominator = float(np.median(pred[valid].astype(np.float64)))
    if denominator <= 0:
        raise ValueError("median scaling needs a positive median prediction")
    return float(np.median(gt[valid].astype(np.float64))) / denominator


def scale_shift(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Least-squares ``(s, t)`` minimising ``sum (s * pred + t - target)^2`` over ``mask`` (closed form, float64).

    Solves the 2x2 normal equations of Ranftl et al. (TPAMI 2022, Eq. 4); ``mask`` default: finite pixels.

    Raises:
        ValueError: when the prediction is constant over the mask (the system is singular).
    """
    valid = np.isfinite(pred) & np.isfinite(target)
    if mask is not None:
        valid &= mask.astype(bool)
    x = pred[valid].astype(np.float64)
    y = target[valid].astype(np.float64)
    n = float(x.size)
    a00, a01, b0, b1 = float(x @ x), float(x.sum()), float(x @ y), float(y.sum())
    det = a00 * n - a01 * a01
    if x.size < 2 or det <= 1e-12 * max(a00 * n, 1e-300):
        raise ValueError("scale-and-shift alignment needs a prediction that varies over the valid pixels")
    return (n * b0 - a01 * b1) / det, (a00 * b1 - a01 * b0) / det


def align_to_ground_truth(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, method: str = "lstsq",
                          space: str = "disparity", max_depth: float | None = None) -> np.ndarray:
    """A relative prediction turned into metric depth aligned to ``gt``.

    Args:
        pred: ``(H, W)`` prediction: inverse depth if ``space == "disparity"``, depth up to scale (and shift) if
            ``"depth"``.
        gt: ``(H, W)`` ground-truth depth in metres (0 or non-finite = no measurement).
        mask: ``(H, W)`` bool, the pixels the fit may use (intersected with the valid ground truth).
        method: ``median`` (scale only; depth-like predictions) or ``lstsq`` (scale and shift).
        space: where the fit is done for ``lstsq``: ``disparity`` (fit to ``1 / gt``) or ``depth`` (fit to ``gt``).
        max_depth: for ``disparity``: aligned disparities below ``1 / max_depth`` are raised to it before inverting
            (MiDaS's evaluation); default: ``1 / max(gt)`` over the fitted pixels.

    Returns:
        ``(H, W)`` float64 depth in metres for every pixel (the fit is applied everywhere).
    """
    if method not in ALIGN_METHODS:
        raise ValueError(f"alignment method must be one of {ALIGN_METHODS}, got {method!r}")
    if space not in ALIGN_SPACES:
        raise ValueError(f"alignment space must be one of {ALIGN_SPACES}, got {space!r}")
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    valid = _fit_mask(pred, gt, mask)
    if method == "median":
        if space != "depth":
            raise ValueError("median scaling applies to depth-like predictions: use space='depth' (or method='lstsq')")
        return median_scale(pred, gt, valid) * pred
    if space == "depth":
        s, t = scale_shift(pred, gt, valid)
        return s * pred + t
    s, t = scale_shift(pred, 1.0 / np.where(valid, gt, 1.0), valid)
    disparity = s * pred + t
    floor = 1.0 / max_depth if max_depth is not None else float((1.0 / gt[valid]).min())
    return 1.0 / np.maximum(disparity, floor)
