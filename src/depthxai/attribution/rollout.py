"""Attention Rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020) for depth models.

Rollout follows relevance from the output tokens back through every attention layer: with the head-fused
attention ``A`` of a layer (rows = queries, columns = keys, rows sum to 1) and the residual connection
modelled as ``Â = w I + (1 - w) A`` (rows renormalised; ``w = 0.5`` in the paper), relevance on the layer's
output tokens ``r_out`` becomes ``r_in = r_out @ Â`` on its input tokens. The building blocks here
(:func:`fuse_heads`, :func:`discard_lowest`, :func:`with_residual`, :func:`upsample_relevance`,
:func:`pool_relevance`) are shared by every model; :func:`meter_rollout` applies them to METER.

METER (our definition; its paper and code define no rollout):

* **Readout.** METER has no CLS token. The explained scalar is ``sum_p w_p depth_p`` (see
  :mod:`depthxai.attribution.targets`); the depth pixel ``p`` lies over one token of the last MobileViT block
  (1/32 resolution), so the readout relevance of a token is the target weight mass above it (sum pooling). For
  the default target (mean depth) this is the average over all output tokens.
* **Token sets.** Each MobileViT block unfolds its ``h x w`` feature map into ``P = 4`` groups of tokens (one per
  pixel offset in a 2x2 patch, :func:`depthxai.models.meter.to_tokens`); tokens attend only within their group,
  so a block's attention is a block-diagonal ``(h w) x (h w)`` matrix over its feature pixels, applied here group by
  group (never materialised densely).
* **Between blocks.** The strided convolutions between blocks halve the resolution: the relevance of a coarse
  pixel is shared equally by its 2x2 children (:func:`upsample_relevance`, mass preserving); from the first
  block (1/8) to the input, each token pixel spreads over its 8x8 input pixels the same way.
* The convolutional paths around the attention (MobileViT's local branch and fusion conv, the decoder's skip
  connections) are treated as part of the identity, as rollout does for residual connections.

The result is one non-negative relevance per input pixel, ``(B, 1, H, W)``, normalised to sum to 1.
"""

from __future__ import annotations

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


class AttentionRollout(AttributionMethod):
    """Attention Rollout for METER, PixelFormer (:mod:`depthxai.attribution.rollout_swin`) and ViT encoders of adapted
    models (:mod:`depthxai.attribution.rollout_vit`).

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
        if arch == "meter":
            maps = meter_rollout(model, images, weights, self)
        elif arch == "pixelformer":
            from depthxai.attribution.rollout_swin import pixelformer_rollout

            maps = pixelformer_rollout(model, images, weights, self)
        elif arch in ("hf", "module"):  # ViT encoders of adapted models (depthxai.models.adapters)
            from depthxai.attribution.rollout_vit import vit_rollout

            maps = vit_rollout(model, images, weights, self)
        else:
            raise ConfigError(f"model {model.card.name!r}: no attention rollout for architecture {arch!r}")
        return AttributionResult(maps=maps)


@torch.no_grad()
def meter_rollout(model: DepthModel, images: Tensor, weights: Tensor, method: AttentionRollout) -> Tensor:
    """Rollout relevance of METER's input pixels for the target ``weights``.

    Args:
        model: a METER :class:`DepthModel`.
        images: ``(B, 3, H, W)`` RGB in [0, 1].
        weights: ``(B, 1, H, W)`` target weights.
        method: the rollout settings.

    Returns:
        ``(B, 1, H, W)`` non-negative relevance summing to 1 per image.
    """
    from depthxai.models.meter import attention_layers, from_tokens, to_tokens

    sites = attention_layers(model.net)
    captured: dict[str, Tensor] = {}
    handles = [
        site.softmax.register_forward_hook(lambda _m, _i, out, key=site.name: captured.__setitem__(key, out.detach()))
        for site in sites
    ]
    try:
        model(images)
    finally:
        for handle in handles:
            handle.remove()

    height, width = images.shape[-2:]
    blocks: dict[int, list] = {}
    for site in sites:
        blocks.setdefault(site.block_index, []).append(site)
    ordered = [blocks[i] for i in sorted(blocks)]

    def grid(stride: int) -> tuple[int, int]:
        return -(-height // stride), -(-width // stride)

    relevance = pool_relevance(weights[:, 0].to(torch.float64), grid(ordered[-1][0].stride))
    for position in range(len(ordered) - 1, -1, -1):
        block_sites = ordered[position]
        gh, gw = grid(block_sites[0].stride)
        patch = block_sites[0].patch_size
        tokens = to_tokens(relevance[:, None], patch)[..., 0]  # (B, P, N)
        for site in reversed(block_sites):
            attention = method.prepare(captured[site.name].to(torch.float64))  # (B, P, N, N)
            tokens = (tokens[..., None, :] @ with_residual(attention, method.residual_weight))[..., 0, :]
        relevance = from_tokens(tokens[..., None], gh, gw, patch)[:, 0]
        target_size = grid(ordered[position - 1][0].stride) if position > 0 else (height, width)
        relevance = upsample_relevance(relevance, target_size)
    relevance = relevance / relevance.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30)
    return relevance[:, None].to(images.dtype)
