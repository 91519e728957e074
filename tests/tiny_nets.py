"""The tests' one tiny depth network, configured per use, and the model factory behind the ``tiny_model`` fixture.

Also the networks of the ``module:`` adapter and the Captum methods (importable as ``module:tiny_nets:<f>``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from depthxai.models.registry import ModelCard
from depthxai.models.wrapper import DepthModel

Activation = Literal["relu", "tanh", "none"]
_ACTIVATIONS: dict[str, type[nn.Module] | None] = {"relu": nn.ReLU, "tanh": nn.Tanh, "none": None}


class TinyDepthNet(nn.Module):
    """stem, activation, [average pool], body, activation, head, softplus: ``(B, 3, H, W)`` -> positive depth.

    * ``stem``: conv ``3 -> width`` (``kernel`` x ``kernel``, same padding), then ``stem_act``;
    * ``pool``: average pooling by this factor after the stem (1: none);
    * ``body``: ``body`` convs ``width -> width`` (3x3; the first strided by ``stride``) with an activation
      module between them, then ``body_act`` (none without a body);
    * ``head``: conv ``width -> 1`` (``head_kernel``, dilated by ``dilation``, same padding); ``head_kernel=None``:
      no head, the stem's single channel (``width=1``) is the depth;
    * ``out``: softplus, then ``scale * (offset + .)``.

    Every activation is its own module (DeepLift and Guided Backprop hook modules, and Captum refuses reused ones);
    absent parts (no pool, no body, no head, ``activation="none"``) are no modules at all (Captum's LRP has no rule
    for ``nn.Identity``). The modules that own parameters are, in forward order, ``stem``, ``body.0``, ``body.2``,
    ..., ``head``.
    The defaults: conv-ReLU, strided conv-ReLU, conv, softplus, ``(B, 1, H/2, W/2)``.
    """

    def __init__(self, width: int = 8, squeeze: bool = False, *, kernel: int = 3, activation: Activation = "relu",
                 pool: int = 1, body: int = 1, stride: int = 2, head_kernel: int | None = 3, dilation: int = 1,
                 offset: float = 0.0, scale: float = 1.0) -> None:
        super().__init__()
        if head_kernel is None and (width != 1 or body):
            raise ValueError("without a head the stem gives the depth: width=1 and body=0")
        act = _ACTIVATIONS[activation]
        self.stem = nn.Conv2d(3, width, kernel, padding=kernel // 2)
        self.stem_act: nn.Module | None = act() if act else None
        self.pool: nn.Module | None = nn.AvgPool2d(pool) if pool > 1 else None
        layers: list[nn.Module] = []
        for k in range(body):
            layers += [act()] if k and act else []
            layers.append(nn.Conv2d(width, width, 3, stride=stride if k == 0 else 1, padding=1))
        self.body: nn.Module | None = nn.Sequential(*layers) if body else None
        self.body_act: nn.Module | None = act() if body and act else None
        self.head: nn.Module | None = (nn.Conv2d(width, 1, head_kernel, padding=dilation * (head_kernel // 2),
                                                 dilation=dilation)
                                       if head_kernel is not None else None)
        self.out = nn.Softplus()
        self.offset, self.scale, self.squeeze = offset, scale, squeeze

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        for part in (self.stem_act, self.pool, self.body, self.body_act, self.head):
            if part is not None:
                h = part(h)
        depth: Tensor = self.out(h)
        if self.offset:
            depth = self.offset + depth
        if self.scale != 1.0:
            depth = self.scale * depth
        return depth[:, 0] if self.squeeze else depth


def build_tiny_depth_net(width: int = 8, squeeze: bool = False, seed: int = 0, init_std: float | None = None,
                         **layout: object) -> TinyDepthNet:
    """A seeded :class:`TinyDepthNet` (``layout``: its keyword options); ``squeeze`` returns ``(B, h, w)``.

    ``init_std=None``: PyTorch's default initialisation under ``torch.manual_seed(seed)``; a number: every parameter,
    in order, drawn from ``N(0, init_std^2)`` by a generator seeded with ``seed``. The global RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TinyDepthNet(width, squeeze, **layout)  # type: ignore[arg-type]
    if init_std is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * init_std)
    return net


def tiny_depth_model(input_size: tuple[int, int], *, imagenet_norm: bool = False, output_unit_m: float = 1.0,
                     **net: object) -> DepthModel:
    """A fresh :class:`DepthModel` (in eval mode) around :func:`build_tiny_depth_net` ``(**net)``.

    Its card: ``tiny_test_synthindoor``, input ``input_size``, depth range 1 mm to 10 m. This is the ``tiny_model``
    fixture; each test module passes the configuration its assertions were written for.
    """
    card = ModelCard(name="tiny_test_synthindoor", arch="tiny", variant="test", dataset="synthindoor",
                     input_size=input_size, imagenet_norm=imagenet_norm, output_unit_m=output_unit_m, min_depth=1e-3,
                     max_depth=10.0, builder="unused:unused")
    return DepthModel(build_tiny_depth_net(**net), card).eval()  # type: ignore[arg-type]


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
