"""Attention Rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020): the steps every
architecture shares, and the method that picks the architecture's rollout from the model card.

Rollout follows relevance from the output tokens back through every attention layer: with the head-fused
attention ``A`` of a layer (rows = queries, columns = keys, rows sum to 1) and the residual connection
modelled as ``Â = w I + (1 - w) A`` (rows renormalised; ``w = 0.5`` in the paper), relevance on the layer's
output tokens ``r_out`` becomes ``r_in = r_out @ Â`` on its input tokens. The shared steps are head fusion
(:func:`fuse_heads`), discarding the weakest links (:func:`discard_lowest`), the residual (:func:`with_residual`),
and moving relevance between grids (:func:`upsample_relevance`, :func:`pool_relevance`). Each architecture has a
module of its own (:mod:`.meter`, :mod:`.swin` for PixelFormer, :mod:`.vit` for ViT encoders of adapted models),
found through :data:`ROLLOUT_BY_ARCH` from ``model.card.arch``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from depthxai.attribution.base import AttributionMethod, AttributionResult
from depthxai.errors import ConfigError
from depthxai.models.wrapper import DepthModel

HEAD_FUSIONS = ("mean", "max", "min")


def fuse_heads(attention: Tensor, how: str = "mean") -> Tensor:
    """Fuse the head dimension: ``(..., heads, N, M)`` -> ``(..., N, M)`` by mean, max or min."""
    if how == "mean":
        return attention.mean(dim=-3)
    if how == "max":
        return attention.amax(dim=-3)
    if how == "min":
        return attention.amin(dim=-3)
    raise ValueError(f"head fusion must be one of {HEAD_FUSIONS}, got {how!r}")


def discard_lowest(attention: Tensor, ratio: float) -> Tensor:
    """Zero the ``floor(ratio * M)`` smallest entries of every row of ``(..., N, M)`` (ties: the first ones).

    The diagonal is never discarded, so a row cannot become empty. Rows are not renormalised here.
    """
    if ratio <= 0:
        return attention
    n, m = attention.shape[-2:]
    k = int(ratio * m)
    if k == 0:
        return attention
    eye = torch.eye(n, m, dtype=torch.bool, device=attention.device)
    ranked = attention.masked_fill(eye, float("inf"))  # protect the diagonal from being among the smallest
    # A stable ascending sort (not topk, whose choice among equal values is unspecified) drops the first of ties.
    lowest = torch.sort(ranked, dim=-1, stable=True).indices[..., :k]
    drop = torch.zeros_like(attention, dtype=torch.bool)
    drop.scatter_(-1, lowest, True)
    return attention.masked_fill(drop & ~eye, 0.0)


def with_residual(attention: Tensor, residual_weight: float = 0.5) -> Tensor:
    """``w I + (1 - w) A`` with rows renormalised to sum to 1; ``(..., N, N)`` -> ``(..., N, N)``."""
    n = attention.shape[-1]
    eye = torch.eye(n, dtype=attention.dtype, device=attention.device)
    mixed = residual_weight * eye + (1.0 - residual_weight) * attention
    return mixed / mixed.sum(dim=-1, keepdim=True)


def rollout_matrix(attentions: Sequence[Tensor], residual_weight: float = 0.5) -> Tensor:
    """The rolled-out matrix ``Â_L ... Â_2 Â_1`` of a chain of head-fused layers on one token set.

    Args:
        attentions: ``(..., N, N)`` per layer, from the input side to the output side.

    Returns:
        ``(..., N, N)``: row ``q`` is the relevance of every input token for output token ``q``.
    """
    result: Tensor | None = None
    for attention in attentions:
        step = with_residual(attention, residual_weight)
        result = step if result is None else step @ result
    if result is None:
        raise ValueError("rollout needs at least one attention layer")
    return result


def upsample_relevance(relevance: Tensor, size: tuple[int, int]) -> Tensor:
    """Spread relevance from a coarse grid onto a finer one, preserving mass.

    Args:
        relevance: ``(B, h, w)``.
        size: ``(H, W)`` with ``H <= h * f`` and ``W <= w * g`` for the integer factors ``f = ceil(H / h)``,
            ``g = ceil(W / w)`` (the coarse grid is the ceil-downsampled fine grid).

    Returns:
        ``(B, H, W)``: every coarse cell's value is shared equally by its children inside ``(H, W)`` (``f x g`` of
        them, fewer in the last row / column when the sizes do not divide), so the total is preserved exactly and
        :func:`pool_relevance` of the result gives ``relevance`` back.

    Raises:
        ValueError: if some coarse cell has no child inside ``(H, W)`` (``(h, w)`` is not the ceil grid of ``size``).
    """
    h, w = relevance.shape[-2:]
    fh, fw = -(-size[0] // h), -(-size[1] // w)
    # children of coarse row i (column j) inside the fine grid: fh (fw), except at a cropped border
    rows = (size[0] - fh * torch.arange(h, device=relevance.device)).clamp(0, fh)
    cols = (size[1] - fw * torch.arange(w, device=relevance.device)).clamp(0, fw)
    children = (rows[:, None] * cols[None, :]).to(relevance.dtype)
    if bool((children == 0).any()):
        raise ValueError(f"a {h}x{w} grid is not the ceil-downsampled grid of {size[0]}x{size[1]}")
    fine = (relevance / children).repeat_interleave(fh, dim=-2).repeat_interleave(fw, dim=-1)
    return fine[..., : size[0], : size[1]]


def pool_relevance(weights: Tensor, size: tuple[int, int]) -> Tensor:
    """Sum fine-grid weights into a coarse grid (the inverse direction of :func:`upsample_relevance`).

    Args:
        weights: ``(B, H, W)``.
        size: ``(h, w)``, the ceil-downsampled grid.

    Returns:
        ``(B, h, w)`` with the same total per image.
    """
    big_h, big_w = weights.shape[-2:]
    fh, fw = -(-big_h // size[0]), -(-big_w // size[1])
    padded = F.pad(weights, (0, size[1] * fw - big_w, 0, size[0] * fh - big_h))
    return padded.reshape(*weights.shape[:-2], size[0], fh, size[1], fw).sum(dim=(-3, -1))


#: ``model.card.arch`` -> ``(module, function)`` of its rollout; a function takes ``(model, images, weights, method)``
#: and returns ``(B, 1, H, W)`` relevance. Imported when used: each module imports what its architecture needs.
ROLLOUT_BY_ARCH: dict[str, tuple[str, str]] = {
    "meter": ("depthxai.attribution.rollout.meter", "meter_rollout"),
    "pixelformer": ("depthxai.attribution.rollout.swin", "pixelformer_rollout"),
    "hf": ("depthxai.attribution.rollout.vit", "vit_rollout"),  # ViT encoders of adapted models
    "module": ("depthxai.attribution.rollout.vit", "vit_rollout"),
}


class AttentionRollout(AttributionMethod):
    """Attention Rollout of any architecture in :data:`ROLLOUT_BY_ARCH` (METER, PixelFormer, ViT encoders).

    Args:
        head_fusion: ``mean``, ``max`` or ``min`` over heads.
        discard_ratio: share of the weakest attention links per row to drop before rollout (0 keeps all).
        residual_weight: ``w`` of the identity in ``w I + (1 - w) A``.

    Returns maps of shape ``(B, 1, H, W)``: non-negative, summing to 1 per image.
    """

    name = "rollout"

    def __init__(self, head_fusion: str = "mean", discard_ratio: float = 0.0, residual_weight: float = 0.5) -> None:
        if head_fusion not in HEAD_FUSIONS:
            raise ValueError(f"head fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
        if not 0.0 <= discard_ratio < 1.0:
            raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
        self.head_fusion = head_fusion
        self.discard_ratio = discard_ratio
        self.residual_weight = residual_weight

    def prepare(self, attention: Tensor) -> Tensor:
        """Head fusion, then discarding: ``(..., heads, N, M)`` -> ``(..., N, M)``."""
        return discard_lowest(fuse_heads(attention, self.head_fusion), self.discard_ratio)

    def attribute(self, model: DepthModel, images: Tensor, weights: Tensor,
                  seeds: Sequence[int] | None = None) -> AttributionResult:
        arch = model.card.arch
        if arch not in ROLLOUT_BY_ARCH:
            raise ConfigError(f"model {model.card.name!r}: no attention rollout for architecture {arch!r} (rollout "
                              f"reads the attention of {', '.join(sorted(ROLLOUT_BY_ARCH))} models)")
        module, function = ROLLOUT_BY_ARCH[arch]
        rollout = getattr(importlib.import_module(module), function)
        return AttributionResult(maps=rollout(model, images, weights, self))
