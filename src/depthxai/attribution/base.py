"""The interface every attribution method implements, and the shared plumbing around it.

Like Captum's ``attribute(inputs, target, ...)``, every method here has the same call, so that the
workflow, the evaluation and the benchmarks treat them interchangeably::

    result = method.attribute(model, images, weights, seeds=seeds)

``model`` is a :class:`~depthxai.models.DepthModel` (RGB in [0, 1] -> metres), ``images`` the ``(B, 3, H, W)``
network inputs, ``weights`` the ``(B, 1, H, W)`` target weights of :func:`~depthxai.attribution.targets.target_weights`
and ``seeds`` one integer per image for methods with a random part (so an image's map does not depend on
which other images share its batch or shard).
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from depthxai.models.wrapper import DepthModel

CHANNEL_REDUCTIONS = ("sum", "abs_sum")


@dataclass
class AttributionResult:
    """What a method returns.

    Attributes:
        maps: ``(B, C, H, W)`` attributions at the input resolution; ``C = 3`` for input-gradient methods
            (one value per colour channel), ``C = 1`` for methods that score pixels (rollout, random).
        extras: per-image diagnostics, each ``(B,)`` (e.g. IG's ``convergence_delta``).
    """

    maps: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)


class AttributionMethod(abc.ABC):
    """Base class. Subclasses set ``name`` and implement :meth:`attribute`."""

    name: str = ""
    #: whether the maps depend on ``seeds`` (IG with a noise baseline, random ranking)
    stochastic: bool = False
    #: whether the maps carry a sign (the direction of a pixel's effect on the target: gradients, IG); unsigned
    #: maps (rollout, learned masks, |gradient|) rank pixels but are not first-order explanations, so their
    #: Infidelity is not comparable with that of signed maps
    signed: bool = False

    @abc.abstractmethod
    def attribute(self, model: DepthModel, images: Tensor, weights: Tensor,
                  seeds: Sequence[int] | None = None) -> AttributionResult:
        """Attribute the target ``sum(weights * depth)`` of each image to its input pixels.

        Args:
            model: depth model in eval mode.
            images: ``(B, 3, H, W)`` RGB in [0, 1] at the model's input size.
            weights: ``(B, 1, H, W)`` target weights (each image sums to 1).
            seeds: one seed per image, used by stochastic methods.

        Returns:
            An :class:`AttributionResult` with maps of shape ``(B, C, H, W)``.
        """


def reduce_channels(maps: Tensor, how: str = "sum") -> Tensor:
    """One relevance per pixel: ``(B, C, H, W)`` -> ``(B, H, W)``.

    ``sum`` keeps the sign (and IG's completeness: the pixel map still sums to the attribution total);
    ``abs_sum`` sums magnitudes (never cancels opposite channels).
    """
    if how == "sum":
        return maps.sum(dim=1)
    if how == "abs_sum":
        return maps.abs().sum(dim=1)
    raise ValueError(f"channel reduction must be one of {CHANNEL_REDUCTIONS}, got {how!r}")


def image_seed(base_seed: int, image_id: str, purpose: str) -> int:
    """A 63-bit seed derived from (base seed, image id, purpose); stable across runs, shards and platforms."""
    digest = hashlib.sha256(f"{base_seed}:{purpose}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator with ``seed`` (random draws are made on the CPU, then moved, so CPU and GPU agree)."""
    return torch.Generator(device="cpu").manual_seed(seed)
