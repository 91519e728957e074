"""Tiny depth networks for the ``module:`` adapter and the Captum methods (importable as ``module:tiny_nets:<f>``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TinyDepthNet(nn.Module):
    """conv-ReLU, strided conv-ReLU, conv, softplus: ``(B, 3, H, W)`` -> positive ``(B, 1, H/2, W/2)``.

    Every ReLU is its own module (DeepLift and Guided Backprop hook modules, and Captum refuses reused ones).
    """

    def __init__(self, width: int = 8, squeeze: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(width, 1, 3, padding=1)
        self.out = nn.Softplus()
        self.squeeze = squeeze

    def forward(self, x: Tensor) -> Tensor:
        depth: Tensor = self.out(self.conv3(self.relu2(self.conv2(self.relu1(self.conv1(x))))))
        return depth[:, 0] if self.squeeze else depth


def build_tiny_depth_net(width: int = 8, squeeze: bool = False, seed: int = 0) -> TinyDepthNet:
    """A seeded :class:`TinyDepthNet`; ``squeeze`` returns ``(B, h, w)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyDepthNet(width, squeeze)


class WrongShapeNet(nn.Module):
    """Returns three channels: not a depth map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv(x)
        return out


def build_wrong_shape_net() -> WrongShapeNet:
    return WrongShapeNet()


def not_a_module() -> str:
    return "depth"
