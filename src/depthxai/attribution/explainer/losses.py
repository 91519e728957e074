"""The loss terms of the explainer's training, each per image, and their default weights.

With ``x`` the image, ``m`` the mask, ``r`` the replacement image (the dataset's mean colour or a blurred copy)
and ``d(.)`` the frozen model's depth, :func:`~depthxai.attribution.explainer.training.train_explainer`
minimises the weighted sum of:

* preservation: ``d(m x + (1 - m) r)`` should equal ``d(x)``: the target-weighted log-L1 error, a whole-image
  log-L1 error and a gradient-matching term on the log-depth difference (Hu et al.);
* complement: ``d((1 - m) x + m r)`` should differ from ``d(x)`` on the target region: the target-weighted hinge
  ``relu(margin - |log d_c - log d|)``, bounded by the margin so that it cannot explode;
* area: the mask's mean should lie in ``[a_min, a_max]`` (linear penalty outside);
* total variation of the mask (smooth masks);
* binarity ``mean(4 m (1 - m))``, so that a mask selects pixels instead of dimming the whole image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOSS_TERMS = ("preserve", "preserve_whole", "preserve_gradient", "complement", "area", "tv", "binary")
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "preserve": 1.0, "preserve_whole": 0.25, "preserve_gradient": 0.5, "complement": 2.0, "area": 4.0, "tv": 0.5,
    "binary": 0.5,
}


def log_depth(depth_m: Tensor, floor_m: float) -> Tensor:
    """``log`` of the depth read through a smooth floor ``softplus(d / floor) * floor`` (equal to ``d`` above a
    few ``floor_m``, positive below), so that the log and its gradient exist for any raw output.

    Far below the floor ``log softplus(z) = z`` to float precision; that branch is taken explicitly because
    ``softplus`` underflows to 0 there (``z < -20``).
    """
    z = depth_m / floor_m
    log_softplus = torch.where(z > -20.0, torch.log(F.softplus(z.clamp_min(-20.0))), z)
    return log_softplus + math.log(floor_m)


def preservation_terms(log_masked: Tensor, log_clean: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Errors of the prediction on the masked input, per image.

    Args:
        log_masked, log_clean: ``(B, 1, H, W)`` log depth on the masked and the clean input.
        weights: ``(B, 1, H, W)`` target weights, summing to 1 per image.

    Returns:
        ``(target, whole, gradient)``, each ``(B,)``: ``sum(w |e|)``, ``mean(|e|)`` and
        ``mean(|e[:, 1:] - e[:, :-1]|) + mean(|e[1:, :] - e[:-1, :]|)`` with ``e = log_masked - log_clean`` (the
        last is the difference of the log-depth gradients, Hu et al. 2019).
    """
    err = log_masked - log_clean
    target = (weights * err.abs()).sum(dim=(1, 2, 3))
    whole = err.abs().mean(dim=(1, 2, 3))
    gradient = ((err[..., :, 1:] - err[..., :, :-1]).abs().mean(dim=(1, 2, 3))
                + (err[..., 1:, :] - err[..., :-1, :]).abs().mean(dim=(1, 2, 3)))
    return target, whole, gradient


def complement_term(log_complement: Tensor, log_clean: Tensor, weights: Tensor, margin: float) -> Tensor:
    """``sum(w * relu(margin - |log_complement - log_clean|))`` per image ``(B,)``, in ``[0, margin]``: zero once
    removing the mask's pixels changes the target region's log depth by at least ``margin`` everywhere."""
    change = (log_complement - log_clean).abs()
    return (weights * F.relu(margin - change)).sum(dim=(1, 2, 3))


def area_penalty(mask: Tensor, area_range: tuple[float, float]) -> Tensor:
    """``relu(a_min - a) + relu(a - a_max)`` with ``a`` the mean of each mask ``(B, 1, H, W)``; ``(B,)``."""
    a_min, a_max = area_range
    area = mask.mean(dim=(1, 2, 3))
    return F.relu(a_min - area) + F.relu(area - a_max)


def total_variation(mask: Tensor) -> Tensor:
    """Anisotropic total variation per image ``(B,)``: mean absolute difference of horizontal neighbours plus
    that of vertical neighbours (a 0/1 checkerboard scores 2, a constant 0)."""
    return ((mask[..., :, 1:] - mask[..., :, :-1]).abs().mean(dim=(1, 2, 3))
            + (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean(dim=(1, 2, 3)))


def binary_penalty(mask: Tensor) -> Tensor:
    """``mean(4 m (1 - m))`` per image ``(B,)``, in [0, 1]: zero for a 0/1 mask, one for a uniform 0.5.

    Without it a soft mask can keep every pixel a little (a uniform 0.3 mask is a contrast reduction, which a
    depth network largely ignores) and so preserve the depth without selecting anything.
    """
    return (4.0 * mask * (1.0 - mask)).mean(dim=(1, 2, 3))
