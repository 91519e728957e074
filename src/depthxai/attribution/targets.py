"""Scalar targets: what an attribution explains is one number computed from the predicted depth map.

A target is a fixed, per-image weighting of the depth map, ``t(x) = sum_p w_p * depth(x)_p`` with
``sum_p w_p = 1``. The weights are computed once from the *unperturbed* prediction (e.g. the nearest 25% of
pixels) and then held fixed, so that perturbing or interpolating the input changes the depth inside the
region but never the region itself. Methods receive the weights as an additional forward argument, which
Captum expands alongside the inputs (IG steps, infidelity samples).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from depthxai.errors import ConfigError

TARGET_KINDS = ("mean", "near", "far", "box")


@dataclass(frozen=True)
class TargetSpec:
    """Which scalar of the depth map to explain.

    Attributes:
        kind: ``mean`` (mean predicted depth over the image), ``near`` / ``far`` (mean over the pixels at or
            below / at or above the ``quantile`` / ``1 - quantile`` quantile of the prediction), ``box``
            (mean inside ``box`` = [top, left, bottom, right] as fractions of the frame).
        quantile: share of pixels in the near / far region.
        box: region for ``kind='box'``.
    """

    kind: str = "mean"
    quantile: float = 0.25
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ConfigError(f"config key attribution.target.kind: {self.kind!r} is not one of {TARGET_KINDS}")
        if self.kind == "box":
            if self.box is None:
                raise ConfigError("config key attribution.target.box: required when kind is 'box'")
            top, left, bottom, right = self.box
            if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
                raise ConfigError(f"config key attribution.target.box: {self.box} is not [top, left, bottom, right] "
                                  "with 0 <= top < bottom <= 1 and 0 <= left < right <= 1")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TargetSpec:
        box = cfg.get("box")
        return cls(kind=cfg.get("kind", "mean"), quantile=float(cfg.get("quantile", 0.25)),
                   box=tuple(box) if box is not None else None)

    def describe(self) -> str:
        if self.kind == "mean":
            return "mean predicted depth"
        if self.kind in ("near", "far"):
            return f"mean depth of the {self.kind}est {self.quantile:.0%} of pixels"
        return f"mean depth inside box {self.box}"


def target_weights(spec: TargetSpec, depth: Tensor) -> Tensor:
    """Per-pixel target weights from an unperturbed prediction.

    Args:
        spec: the target.
        depth: ``(B, 1, H, W)`` predicted depth (metres).

    Returns:
        ``(B, 1, H, W)`` float32 weights, non-negative, summing to 1 over each image.
    """
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"expected depth of shape (B, 1, H, W), got {tuple(depth.shape)}")
    b, _, h, w = depth.shape
    if spec.kind == "mean":
        mask = torch.ones_like(depth)
    elif spec.kind in ("near", "far"):
        flat = depth.reshape(b, -1)
        q = spec.quantile if spec.kind == "near" else 1.0 - spec.quantile
        thresh = torch.quantile(flat.double(), q, dim=1).to(depth.dtype).view(b, 1, 1, 1)
        mask = (depth <= thresh) if spec.kind == "near" else (depth >= thresh)
        mask = mask.to(depth.dtype)
    else:
        assert spec.box is not None
        top, left, bottom, right = spec.box
        r0, r1 = int(round(top * h)), max(int(round(bottom * h)), int(round(top * h)) + 1)
        c0, c1 = int(round(left * w)), max(int(round(right * w)), int(round(left * w)) + 1)
        mask = torch.zeros_like(depth)
        mask[:, :, r0:r1, c0:c1] = 1.0
    return (mask / mask.sum(dim=(1, 2, 3), keepdim=True)).to(torch.float32).detach()


class TargetModel(nn.Module):
    """``forward(rgb01, weights) -> (B,)``: the weighted mean of the predicted depth, the scalar to explain.

    Args:
        depth_model: maps ``(B, 3, H, W)`` RGB in [0, 1] to ``(B, 1, H, W)`` metres (a :class:`DepthModel`).
    """

    def __init__(self, depth_model: nn.Module) -> None:
        super().__init__()
        self.depth_model = depth_model

    def forward(self, rgb01: Tensor, weights: Tensor) -> Tensor:
        depth = self.depth_model(rgb01)
        if weights.shape[0] != depth.shape[0]:
            raise ValueError(f"weights batch {weights.shape[0]} != input batch {depth.shape[0]}")
        out: Tensor = (depth * weights).sum(dim=(1, 2, 3))
        return out
