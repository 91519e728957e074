"""The attribution method of a trained explainer: :class:`Explainer`, whose relevance map is the mask of an
:class:`~depthxai.attribution.explainer.network.ExplainerNet` (one forward pass of the small net).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from depthxai.attribution.base import AttributionMethod, AttributionResult
from depthxai.attribution.explainer.network import ExplainerNet, width_of_state
from depthxai.models.checkpoint import load_weights, read_state_dict
from depthxai.models.wrapper import DepthModel


class Explainer(AttributionMethod):
    """Attribution by a trained :class:`ExplainerNet`: the relevance map is its mask, ``(B, 1, H, W)`` in [0, 1].

    One forward pass of the small net per batch; the depth model is not run (the mask was trained against it).

    Args:
        weights: path of the state dict written by :func:`train_explainer`.
        width: the net's width; ``None`` reads it from the state dict.
        net: or a trained net in memory (:func:`fit_explainer`), instead of ``weights``.
    """

    name = "explainer"

    def __init__(self, weights: str | Path | None = None, width: int | None = None,
                 net: ExplainerNet | None = None) -> None:
        if (weights is None) == (net is None):
            raise ValueError("the explainer needs exactly one of weights (a file) and net (a trained ExplainerNet)")
        if net is None:
            self.weights: Path | None = Path(weights)  # type: ignore[arg-type]
            state_width = width_of_state(read_state_dict(self.weights)) if width is None else int(width)
            net = ExplainerNet(width=state_width)
            load_weights(net, self.weights)  # strict; leaves eval mode
        else:
            self.weights = None
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def attribute(self, model: DepthModel, images: Tensor, weights: Tensor,
                  seeds: Sequence[int] | None = None) -> AttributionResult:
        self.net.to(images.device)
        return AttributionResult(maps=self.net(images, weights).detach())
