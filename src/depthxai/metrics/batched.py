"""The depth metrics of :mod:`depthxai.metrics.depth` in PyTorch, for a batch of predictions against one
reference map in one pass (e.g. one prediction per perturbation fraction); the tests hold it equal to the NumPy
reference :func:`~depthxai.metrics.depth.compute_depth_metrics`."""

from __future__ import annotations

import torch

from depthxai.metrics.depth import DELTA_BASE


def batched_errors(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The metrics of :data:`~depthxai.metrics.depth.METRIC_NAMES` between each of ``B`` predictions and one
    reference map.

    Used to compare, at many perturbation fractions at once, perturbed predictions with the unperturbed
    prediction or with the ground truth. ``ref`` plays the ground truth's role in the formulas.

    Args:
        pred: ``(B, H, W)`` depths in metres (any float dtype, any device).
        ref: ``(H, W)`` reference depths in metres.
        mask: ``(H, W)`` bool, the pixels to evaluate (at least one).

    Returns:
        ``{name: tensor (B,)}`` in float64 for every name in :data:`~depthxai.metrics.depth.METRIC_NAMES`,
        on ``pred``'s device.
        Values are computed in float64 as :func:`compute_depth_metrics` does; no clipping is applied, so the
        log metrics and ``delta*`` are meaningful only where ``pred`` and ``ref`` are positive on the mask
        (use :func:`~depthxai.metrics.depth.clip_prediction` first, as the official eval does).
    """
    if pred.ndim != 3:
        raise ValueError(f"pred must be (B, H, W), got shape {tuple(pred.shape)}")
    if ref.shape != pred.shape[1:] or mask.shape != pred.shape[1:]:
        raise ValueError(
            f"ref and mask must be (H, W) = {tuple(pred.shape[1:])}, got {tuple(ref.shape)} and {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    mask = mask.to(pred.device)
    if not bool(mask.any()):
        raise ValueError("no valid pixel to evaluate (empty mask)")
    p = pred[:, mask].to(torch.float64)  # (B, N)
    r = ref.to(pred.device)[mask].to(torch.float64)  # (N,)

    ratio = torch.maximum(r / p, p / r)
    diff = r - p
    log_err = torch.log(p) - torch.log(r)
    mean_sq_log = (log_err**2).mean(dim=1)
    return {
        "abs_rel": (diff.abs() / r).mean(dim=1),
        "sq_rel": (diff**2 / r).mean(dim=1),
        "rmse": (diff**2).mean(dim=1).sqrt(),
        "rmse_log": mean_sq_log.sqrt(),
        "log10": (torch.log10(p) - torch.log10(r)).abs().mean(dim=1),
        "silog": (mean_sq_log - log_err.mean(dim=1) ** 2).clamp_min(0.0).sqrt() * 100.0,
        "delta1": (ratio < DELTA_BASE).to(torch.float64).mean(dim=1),
        "delta2": (ratio < DELTA_BASE**2).to(torch.float64).mean(dim=1),
        "delta3": (ratio < DELTA_BASE**3).to(torch.float64).mean(dim=1),
    }
