"""How the explainer's masks are applied: the targets drawn during training, the replacement image, the two
composites of image and replacement (the mask's pixels kept, or removed), and random masks with a mask's values
(the baselines of the evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from depthxai.attribution.explainer.config import ExplainerConfig
from depthxai.attribution.targets import TargetSpec
from depthxai.imageops import gaussian_blur

#: Random baselines of the test-split evaluation: the explainer's own mask values re-assigned to random places,
#: ranked by i.i.d. pixel noise (``pixels``) or by smooth noise with blobs of about 1/8 of the frame (``blobs``).
RANDOM_BASELINES = ("pixels", "blobs")


def sample_target(kind: str, quantile: float, gen: torch.Generator) -> TargetSpec:
    """A target of ``kind``; a ``box`` gets a random box of 15-50 % of the frame's height and width."""
    if kind != "box":
        return TargetSpec(kind=kind, quantile=quantile)
    top, left = (0.5 * torch.rand(2, generator=gen)).tolist()
    height, width = (0.15 + 0.35 * torch.rand(2, generator=gen)).tolist()
    return TargetSpec(kind="box", quantile=quantile, box=(top, left, min(1.0, top + height), min(1.0, left + width)))


def replacement_images(images: Tensor, config: ExplainerConfig, mean_rgb: Sequence[float]) -> Tensor:
    """What removed pixels become, ``(B, 3, H, W)``: the mean colour or a blurred copy (:class:`ExplainerConfig`)."""
    if config.replacement == "blur":
        return gaussian_blur(images, config.blur_sigma)
    return torch.tensor(list(mean_rgb), dtype=images.dtype, device=images.device).view(1, 3, 1, 1).expand_as(images)


def compose(images: Tensor, replacement: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(kept, removed)``: ``m x + (1 - m) r`` (only the mask's pixels kept) and ``(1 - m) x + m r`` (they are
    removed)."""
    return mask * images + (1 - mask) * replacement, (1 - mask) * images + mask * replacement


def random_masks_like(mask: Tensor, kind: str, gen: torch.Generator) -> Tensor:
    """The values of each mask ``(B, 1, H, W)`` moved to random places: same histogram, hence same area.

    Pixels are ranked by a random field (``pixels``: i.i.d. uniform noise; ``blobs``: uniform noise on an 8x8 grid
    upsampled bicubically to the frame, i.e. spatially coherent blobs like a real mask's) and the k-th ranked pixel
    gets the mask's k-th largest value.
    """
    b, _, h, w = mask.shape
    if kind == "pixels":
        field_ = torch.rand((b, 1, h, w), generator=gen)
    elif kind == "blobs":
        coarse = torch.rand((b, 1, 8, 8), generator=gen)
        field_ = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
        field_ = field_ + 1e-4 * torch.rand((b, 1, h, w), generator=gen)  # break ties
    else:
        raise ValueError(f"random mask kind must be one of {RANDOM_BASELINES}, got {kind!r}")
    flat_values = mask.reshape(b, -1).sort(dim=1, descending=True).values
    order = field_.to(mask.device).reshape(b, -1).argsort(dim=1, descending=True)
    out = torch.empty_like(flat_values).scatter_(1, order, flat_values)
    return out.view_as(mask)
