"""Small image operations shared by baselines and perturbations (torch, batched, differentiable)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel1d(sigma: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised 1-D Gaussian of radius ``ceil(3 sigma)``, shape ``(2r+1,)``."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect padding.

    Args:
        images: ``(B, C, H, W)``.
        sigma: standard deviation in pixels (> 0).

    Returns:
        ``(B, C, H, W)``, same dtype.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    b, c, h, w = images.shape
    k = gaussian_kernel1d(sigma, images.dtype).to(images.device)
    r = k.numel() // 2
    # Reflect padding needs pad < size; clamp the radius for tiny images by padding in replicate mode then.
    mode = "reflect" if r < min(h, w) else "replicate"
    x = images.reshape(b * c, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def area_pool(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Average-pool ``(B, C, H, W)`` maps to ``size`` (adaptive average pooling: exact area means when the sizes
    divide)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.adaptive_avg_pool2d(maps, size)
