"""Attention Rollout for METER (our definition; its paper and code define no rollout).

* **Readout.** METER has no CLS token. The explained scalar is ``sum_p w_p depth_p`` (see
  :mod:`depthxai.attribution.targets`); the depth pixel ``p`` lies over one token of the last MobileViT block
  (1/32 resolution), so the readout relevance of a token is the target weight mass above it (sum pooling). For
  the default target (mean depth) this is the average over all output tokens.
* **Token sets.** Each MobileViT block unfolds its ``h x w`` feature map into ``P = 4`` groups of tokens (one per
  pixel offset in a 2x2 patch, :func:`depthxai.models.meter.to_tokens`); tokens attend only within their group,
  so a block's attention is a block-diagonal ``(h w) x (h w)`` matrix over its feature pixels, applied here group by
  group (never materialised densely).
* **Between blocks.** The strided convolutions between blocks halve the resolution: the relevance of a coarse
  pixel is shared equally by its 2x2 children (:func:`~.common.upsample_relevance`, mass preserving); from the first
  block (1/8) to the input, each token pixel spreads over its 8x8 input pixels the same way.
* The convolutional paths around the attention (MobileViT's local branch and fusion conv, the decoder's skip
  connections) are treated as part of the identity, as rollout does for residual connections.

The result is one non-negative relevance per input pixel, ``(B, 1, H, W)``, normalised to sum to 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from depthxai.attribution.rollout.common import AttentionRollout, pool_relevance, upsample_relevance, with_residual
from depthxai.models.wrapper import DepthModel


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
