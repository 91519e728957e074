"""Standard monocular-depth accuracy metrics, as the official BTS / PixelFormer evaluation computes them.

The evaluation protocol (``pixelformer/eval.py`` and ``pixelformer/utils.py:compute_errors`` of
ashutosh1807/PixelFormer, the same as BTS) is, per image:

1. clip the prediction to ``[min_depth, max_depth]`` (NaN becomes ``min_depth``);
2. keep the pixels whose ground truth lies strictly inside ``(min_depth, max_depth)`` and, for NYU, inside
   the Eigen crop (rows 45:471, cols 41:601 of the 480x640 frame) or, for KITTI, inside the Garg crop
   (a fixed fraction of the frame);
3. on those pixels, in float64:

   ====================  ==================================================================
   ``abs_rel``           mean(|gt - pred| / gt)
   ``sq_rel``            mean((gt - pred)^2 / gt)
   ``rmse``              sqrt(mean((gt - pred)^2))                      (metres)
   ``rmse_log``          sqrt(mean((ln gt - ln pred)^2))
   ``log10``             mean(|log10 pred - log10 gt|)
   ``silog``             100 * sqrt(mean(e^2) - mean(e)^2),  e = ln pred - ln gt
   ``delta1..3``         fraction of pixels with max(gt/pred, pred/gt) < 1.25, 1.25^2, 1.25^3
   ====================  ==================================================================

Dataset-level numbers are the mean of the per-image metrics (as the official eval averages them).

Two implementations of the formulas exist on purpose: :func:`compute_depth_metrics` (NumPy, here) is the
reference evaluation of one image; :func:`depthxai.metrics.batched.batched_errors` (PyTorch) compares a whole
batch of predictions (e.g. one per perturbation fraction) with one reference map in a single pass. The tests hold
them equal. This module needs NumPy alone: the statistics read the metric names here and run without PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np

from depthxai.data.io import EVAL_CROPS, DatasetInfo

if TYPE_CHECKING:  # a tensor is clipped through its own methods: no PyTorch import at run time
    import torch

METRIC_NAMES: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
    "delta1",
    "delta2",
    "delta3",
)
"""Metric keys, in the order tables report them. Lower is better except for ``delta1..3``."""

HIGHER_IS_BETTER: dict[str, bool] = {name: name.startswith("delta") for name in METRIC_NAMES}

# Eigen et al. (NIPS 2014) crop for NYU Depth v2; defined in pixels for the 480x640 frame only.
EIGEN_FRAME = (480, 640)
EIGEN_ROWS = (45, 471)
EIGEN_COLS = (41, 601)
# Garg et al. (ECCV 2016) crop for KITTI, as fractions of (H, W): top, bottom, left, right.
GARG_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)

DELTA_BASE = 1.25


@dataclass(frozen=True)
class EvalProtocol:
    """How a dataset's predictions are scored: valid ground-truth range (metres, exclusive) and crop.

    Use :meth:`from_info` to take the protocol from a prepared dataset's ``dataset.json``.
    """

    min_depth: float
    max_depth: float
    crop: str = "none"

    def __post_init__(self) -> None:
        if self.crop not in EVAL_CROPS:
            raise ValueError(f"evaluation crop must be one of {EVAL_CROPS}, got {self.crop!r}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(
                f"evaluation depth range must satisfy 0 < min_depth < max_depth, got "
                f"min_depth={self.min_depth}, max_depth={self.max_depth}"
            )

    @classmethod
    def from_info(cls, info: DatasetInfo) -> EvalProtocol:
        return cls(min_depth=float(info.min_depth), max_depth=float(info.max_depth), crop=info.eval_crop)


def crop_mask(height: int, width: int, crop: str) -> np.ndarray:
    """Boolean ``(height, width)`` mask of the evaluation crop ``"none"``, ``"eigen"`` or ``"garg"``.

    Raises:
        ValueError: for an unknown crop, or ``"eigen"`` on a frame that is not 480x640 (the Eigen crop is
            defined in pixels of the NYU frame; resample predictions and ground truth to 480x640 first).
    """
    mask = np.zeros((height, width), dtype=bool)
    if crop == "none":
        mask[:] = True
    elif crop == "eigen":
        if (height, width) != EIGEN_FRAME:
            raise ValueError(
                f"the Eigen crop is defined only for {EIGEN_FRAME[0]}x{EIGEN_FRAME[1]} NYU frames, got "
                f"{height}x{width}; evaluate at the ground truth's full resolution or set the dataset's "
                "eval_crop to 'none'"
            )
        mask[EIGEN_ROWS[0] : EIGEN_ROWS[1], EIGEN_COLS[0] : EIGEN_COLS[1]] = True
    elif crop == "garg":
        top, bottom, left, right = GARG_FRACTIONS
        # int() truncation, as the official code does (375x1242 -> rows 153:371, cols 44:1197).
        mask[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    else:
        raise ValueError(f"evaluation crop must be one of {EVAL_CROPS}, got {crop!r}")
    return mask


def eval_mask(gt: np.ndarray, min_depth: float, max_depth: float, crop: str) -> np.ndarray:
    """Pixels that count: ``min_depth < gt < max_depth`` (metres) inside the crop; bool, shape of ``gt``.

    ``gt`` is ``(H, W)`` ground truth in metres with 0 (or anything out of range, NaN included) = invalid.
    """
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"ground truth must be a (H, W) depth map, got shape {gt.shape}")
    with np.errstate(invalid="ignore"):
        in_range = (gt > min_depth) & (gt < max_depth)
    return in_range & crop_mask(gt.shape[0], gt.shape[1], crop)


@overload
def clip_prediction(pred: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray: ...
@overload
def clip_prediction(pred: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor: ...
def clip_prediction(pred: np.ndarray | torch.Tensor, min_depth: float, max_depth: float) -> np.ndarray | torch.Tensor:
    """Clip a prediction to ``[min_depth, max_depth]`` as the official eval does, in a new array/tensor.

    A floating input keeps its dtype (the official eval clips the float32 prediction before casting), an integer
    input becomes float64.

    Raises:
        ValueError: the prediction holds NaN or inf. The official code clips NaN to the minimum depth, which turns a
            broken model into believable AbsRel and RMSE; here it is an error (the prediction stage names the image).
    """
    if not isinstance(pred, np.ndarray) and type(pred).__module__.startswith("torch"):
        if not bool(pred.isfinite().all()):
            raise ValueError("the prediction holds NaN or inf values")
        out = pred if pred.is_floating_point() else pred.double()
        return out.clamp(min_depth, max_depth)
    arr = np.asarray(pred)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("the prediction holds NaN or inf values")
    return np.clip(arr, min_depth, max_depth)


def compute_depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """The nine metrics of :data:`METRIC_NAMES` for one image, in float64 on the pixels of ``mask``.

    Args:
        pred: predicted depth, metres, any shape (already clipped, see :func:`clip_prediction`).
        gt: ground-truth depth, metres, same shape.
        mask: boolean, same shape; ``None`` uses every pixel.

    Returns:
        ``{name: value}`` for every name in :data:`METRIC_NAMES` (``rmse`` in metres, ``silog`` x100,
        ``delta*`` as fractions in [0, 1]).

    Raises:
        ValueError: shapes differ, the mask selects no pixel, or a selected value is not positive and finite
            (the log metrics need positive depths: clip the prediction and mask the ground truth first).

    ``silog`` differs from the official formula only where the official one returns NaN: rounding can make
    ``mean(e^2) - mean(e)^2`` slightly negative when ``e`` is constant (e.g. ``pred = 2 * gt``); it is
    clamped at 0 here.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}; "
                         "resize the prediction to the ground truth's resolution first")
    if mask is None:
        mask = np.ones(gt.shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != gt.shape:
        raise ValueError(f"mask must be boolean with shape {gt.shape}, got {mask.dtype} {mask.shape}")
    p = pred[mask].astype(np.float64)
    g = gt[mask].astype(np.float64)
    if p.size == 0:
        raise ValueError("no valid pixel to evaluate (empty mask): check the ground truth and the depth range")
    for name, values in (("prediction", p), ("ground truth", g)):
        if not (np.all(np.isfinite(values)) and np.all(values > 0)):
            raise ValueError(f"{name} has non-positive or non-finite values on the evaluated pixels; "
                             "clip the prediction (clip_prediction) and mask the ground truth (eval_mask)")

    ratio = np.maximum(g / p, p / g)
    diff = g - p
    log_err = np.log(p) - np.log(g)
    mean_sq_log = np.mean(log_err**2)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / g)),
        "sq_rel": float(np.mean(diff**2 / g)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(mean_sq_log)),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "silog": float(np.sqrt(max(mean_sq_log - np.mean(log_err) ** 2, 0.0)) * 100.0),
        "delta1": float(np.mean(ratio < DELTA_BASE)),
        "delta2": float(np.mean(ratio < DELTA_BASE**2)),
        "delta3": float(np.mean(ratio < DELTA_BASE**3)),
    }


def evaluate_depth(pred: np.ndarray, gt: np.ndarray, protocol: EvalProtocol | DatasetInfo) -> dict[str, float]:
    """Score one prediction against its ground truth with the official protocol: clip, mask, compute.

    Args:
        pred: ``(H, W)`` predicted depth in metres at the ground truth's resolution.
        gt: ``(H, W)`` ground-truth depth in metres (0 = invalid), e.g. from :func:`depthxai.data.io.read_depth`.
        protocol: the depth range and crop, or a :class:`DatasetInfo` to take them from.

    Returns:
        ``{name: value}`` for every name in :data:`METRIC_NAMES`.
    """
    if isinstance(protocol, DatasetInfo):
        protocol = EvalProtocol.from_info(protocol)
    gt = np.asarray(gt)
    mask = eval_mask(gt, protocol.min_depth, protocol.max_depth, protocol.crop)
    clipped = clip_prediction(np.asarray(pred), protocol.min_depth, protocol.max_depth)
    return compute_depth_metrics(clipped, gt, mask)
