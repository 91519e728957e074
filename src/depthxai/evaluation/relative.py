"""Relative depth models in the evaluation: where their output is turned into metres, and where it is not.

A model whose card says ``output_kind: relative`` (Depth Anything's relative checkpoints, MiDaS-style DPT, a user's
module) predicts affine-invariant inverse depth: a scale and a shift (in disparity, or in depth for
``space: depth``) are unknown. The evaluation decides per quantity (config ``evaluation.alignment``,
:class:`AlignmentSpec`; default least squares in disparity space, as MiDaS and Depth Anything are evaluated):

* **Compared with metres** (the accuracy table, the ``depth_*`` and ``gt_*`` perturbation curves, Attribution
  Fidelity): the image's clean prediction is aligned to its ground truth once, on the pixels the metrics use
  (:func:`fit_alignment`, the formulas of :mod:`depthxai.evaluation.align`), and that fixed map
  (:class:`DepthAlignment`) turns the clean and every perturbed prediction of the image into metres, which are then
  clipped to the dataset's depth range as a metric prediction is clipped to its model's. A perturbation therefore
  counts with the change it makes to the aligned depth, as it would for a metric model; refitting per copy would
  absorb a global change of the prediction into the fit. An image without valid ground truth cannot be aligned: it
  gets only the scale-free rows (below), and a warning.
* **Scale-free, on the raw output** (what the maps explain): the explained scalar ``sum(w * output)`` and its
  relative change (``target_change``, the primary curve), the target weights, Infidelity (normalised), and every
  check of the science stage (randomisation, mosaics, object shift), which has no ground truth for a randomised
  model or a mosaic; its Attribution Fidelity rows correlate the maps with the raw (inverse-depth) output, so
  their sign is opposite to a correlation with depth for such a model. The ``near``/``far`` targets rank pixels by
  the output's value, so on inverse depth they select the opposite ends: the workflow refuses them for relative
  models (:func:`check_target`).

Metric models are never aligned: for them nothing here runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from depthxai.errors import ConfigError
from depthxai.evaluation.align import (
    ALIGN_METHODS,
    ALIGN_SPACES,
    align_to_ground_truth,
    median_scale,
    scale_shift,
)


@dataclass(frozen=True)
class AlignmentSpec:
    """The config's ``evaluation.alignment``: ``method`` ``lstsq`` or ``median``, ``space`` ``disparity`` or
    ``depth`` (median scaling needs ``depth``)."""

    method: str = "lstsq"
    space: str = "disparity"

    def __post_init__(self) -> None:
        if self.method not in ALIGN_METHODS or self.space not in ALIGN_SPACES:
            raise ConfigError(f"config key evaluation.alignment: method must be one of {ALIGN_METHODS} and space one "
                              f"of {ALIGN_SPACES}, got {self.method!r}, {self.space!r}")
        if self.method == "median" and self.space != "depth":
            raise ConfigError("config key evaluation.alignment.space: median scaling applies to depth-like "
                              "predictions; set space: depth (or method: lstsq)")

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> AlignmentSpec:
        section = dict(section or {})
        return cls(method=str(section.get("method", "lstsq")), space=str(section.get("space", "disparity")))

    def aligner(self) -> Any:
        """The ``align`` argument of :func:`depthxai.models.predict.iter_predictions`:
        :func:`~depthxai.evaluation.align.align_to_ground_truth` with this method and space."""

        def align(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, max_depth: float) -> np.ndarray:
            return align_to_ground_truth(pred, gt, mask, method=self.method, space=self.space, max_depth=max_depth)

        return align


@dataclass(frozen=True)
class DepthAlignment:
    """A fitted per-image map from a relative model's raw output to metres, applied pointwise.

    Attributes:
        scale, shift: ``s``, ``t`` of the fit (``t = 0`` for median scaling).
        space: ``disparity``: metres ``1 / max(s * output + t, floor)``; ``depth``: ``s * output + t``.
        floor: the smallest aligned disparity, ``1 / max_depth`` of the dataset (disparity space only).
        clip: ``(min_depth, max_depth)`` of the dataset: the range aligned predictions are clipped to where metrics
            are computed (as the accuracy protocol clips every prediction).
    """

    scale: float
    shift: float
    space: str
    floor: float
    clip: tuple[float, float]

    def apply(self, output: Tensor) -> Tensor:
        """Metres for a raw output tensor of any shape (not clipped; see :attr:`clip`)."""
        aligned = output * self.scale + self.shift
        if self.space == "disparity":
            return 1.0 / aligned.clamp(min=self.floor)
        return aligned


def fit_alignment(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, spec: AlignmentSpec, min_depth: float,
                  max_depth: float) -> DepthAlignment:
    """Fit :class:`DepthAlignment` of one image as :func:`~depthxai.evaluation.align.align_to_ground_truth` does.

    Args:
        pred: ``(H, W)`` raw relative output at the ground truth's resolution.
        gt: ``(H, W)`` ground-truth depth in metres.
        mask: ``(H, W)`` bool, the pixels to fit (the evaluation mask); intersected with finite, positive values.
        spec: method and space.
        min_depth, max_depth: the dataset's depth range (``max_depth`` gives the disparity floor).

    Raises:
        ValueError: fewer than two valid pixels, or a prediction that does not vary over them.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    valid = np.asarray(mask, dtype=bool) & np.isfinite(gt) & (gt > 0) & np.isfinite(pred)
    if int(valid.sum()) < 2:
        raise ValueError("alignment needs at least two valid ground-truth pixels")
    clip = (float(min_depth), float(max_depth))
    if spec.method == "median":
        return DepthAlignment(median_scale(pred, gt, valid), 0.0, "depth", 0.0, clip)
    if spec.space == "depth":
        s, t = scale_shift(pred, gt, valid)
        return DepthAlignment(s, t, "depth", 0.0, clip)
    s, t = scale_shift(pred, 1.0 / np.where(valid, gt, 1.0), valid)
    return DepthAlignment(s, t, "disparity", 1.0 / float(max_depth), clip)


def check_target(card: Any, target: Any) -> None:
    """Refuse the ``near``/``far`` targets for a relative model (they rank pixels by the output's value, which on
    inverse depth selects the opposite end), naming the config key and the model.

    Args:
        card: the model's :class:`~depthxai.models.registry.ModelCard`.
        target: a :class:`~depthxai.attribution.targets.TargetSpec`.
    """
    if getattr(card, "output_kind", "metric") == "relative" and target.kind in ("near", "far"):
        raise ConfigError(f"config key attribution.target.kind: {target.kind!r} ranks pixels by the predicted depth, "
                          f"but model {card.name!r} predicts relative inverse depth, where it would select the "
                          "opposite end; use mean or box for relative models")


def relative_output(card: Any) -> bool:
    """Whether a model card's output is relative (aligned before any comparison with metres)."""
    return getattr(card, "output_kind", "metric") == "relative"


__all__ = ["AlignmentSpec", "DepthAlignment", "check_target", "fit_alignment", "relative_output"]
