"""Attention Rollout over a ViT encoder for a dense depth target (DINOv2 in Depth Anything, ViT in DPT, BEiT in Zoe).

The classic rollout of Abnar & Zuidema ("Quantifying Attention Flow in Transformers", ACL 2020), with the
building blocks of :mod:`depthxai.attribution.rollout`, read out for the target ``sum_p w_p depth_p``:

1. **Attention.** Every encoder layer's attention ``(B, heads, N, N)`` (rows: queries, summing to 1) over
   ``N = prefix + gh * gw`` tokens: the prefix tokens (CLS, then DINOv2's register tokens, if any) and the patch
   tokens of the ``gh x gw`` grid, row-major. The network exposes them with ``attentions(pixel_values)``
   (:meth:`depthxai.models.adapters.hf.HFDepthNet.attentions`), which also gives the
   :class:`~depthxai.models.adapters.base.TokenLayout`.
2. **Per layer.** Heads fused (mean / max / min), the weakest links of each row discarded (``discard_ratio``),
   the residual modelled as ``Â = w I + (1 - w) A`` (``w = 0.5``) with rows renormalised.
3. **Rollout.** ``R = Â_L ... Â_2 Â_1``; row ``q`` is the relevance of every input token for output token ``q``.
4. **Readout.** The depth decoder (DPT-style) builds the depth map from the patch tokens, laid out on the patch
   grid over the whole image: output pixel ``(i, j)`` of an ``H x W`` map lies over patch ``(floor(i gh / H),
   floor(j gw / W))``. The target weights summed per patch give the readout vector ``v`` over patch tokens; prefix
   tokens get 0 (no depth pixel lies over them; DPT's ``project``/``add`` readout, which mixes the CLS token into
   every patch feature, is not followed).
5. **Relevance of the input tokens** ``r = [0, v] R``. The input-side prefix tokens are learned constants (CLS and
   register embeddings), not image patches: the relevance that reaches them is **removed**, and the patch
   relevance renormalised to sum to 1. Relevance that flows *through* a prefix token between layers (patch -> CLS
   at layer ``l`` -> patch at layer ``l - 1``) is kept: the matrix product accounts for it.
6. **Pixels.** Each patch's relevance is shared equally by its ``ph x pw`` pixels (nearest upsampling). Pixels
   beyond the patch grid (``H mod ph`` bottom rows, ``W mod pw`` right columns, cropped by the patch embedding
   and never seen) get 0.

The result is ``(B, 1, H, W)``, non-negative, summing to 1 per image. A model whose attention cannot be read (no
``attentions`` method, e.g. METER's convolutions outside its transformers; GLPN's reduced keys; Depth Pro's tiled
encoders) is refused with a :class:`~depthxai.errors.ConfigError` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from depthxai.errors import ConfigError
from depthxai.models.adapters.base import TokenLayout
from depthxai.models.wrapper import DepthModel

if TYPE_CHECKING:
    from depthxai.attribution.rollout.common import AttentionRollout


def position_matrix(fine: int, coarse: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """``(coarse, fine)`` 0/1 matrix: fine index ``i`` lies over coarse cell ``floor(i * coarse / fine)``."""
    owner = torch.arange(fine) * coarse // fine
    return (owner[None, :] == torch.arange(coarse)[:, None]).to(dtype)


def readout_vector(weights: Tensor, grid: tuple[int, int]) -> Tensor:
    """Target weights ``(B, H, W)`` summed per patch by position (step 4): ``(B, gh * gw)``, same total per image."""
    rows = position_matrix(weights.shape[-2], grid[0], weights.dtype).to(weights.device)
    cols = position_matrix(weights.shape[-1], grid[1], weights.dtype).to(weights.device)
    return (rows @ weights @ cols.T).flatten(1)


def spread_to_pixels(relevance: Tensor, layout: TokenLayout, size: tuple[int, int]) -> Tensor:
    """Patch relevance ``(B, gh * gw)`` shared equally by each patch's pixels (step 6): ``(B, H, W)``."""
    (gh, gw), (ph, pw) = layout.grid, layout.patch
    if gh * ph > size[0] or gw * pw > size[1]:
        raise ValueError(f"a {gh}x{gw} grid of {ph}x{pw} patches does not fit in {size[0]}x{size[1]} pixels")
    cells = relevance.reshape(-1, gh, gw) / (ph * pw)
    pixels = cells.repeat_interleave(ph, dim=-2).repeat_interleave(pw, dim=-1)
    return torch.nn.functional.pad(pixels, (0, size[1] - gw * pw, 0, size[0] - gh * ph))


def vit_rollout_relevance(attentions: Sequence[Tensor], layout: TokenLayout, weights: Tensor,
                          method: AttentionRollout) -> Tensor:
    """Steps 2-6 on captured attention.

    Args:
        attentions: ``(B, heads, N, N)`` per layer, input side first.
        layout: the token layout (``N == layout.n_tokens``).
        weights: ``(B, 1, H, W)`` target weights.
        method: the rollout settings (head fusion, discard ratio, residual weight).

    Returns:
        ``(B, 1, H, W)`` float64, non-negative, summing to 1 per image.
    """
    from depthxai.attribution.rollout import rollout_matrix

    fused = [method.prepare(a.to(torch.float64)) for a in attentions]
    rolled = rollout_matrix(fused, method.residual_weight)  # (B, N, N)
    readout = readout_vector(weights[:, 0].to(torch.float64), layout.grid)
    readout = torch.cat([readout.new_zeros(readout.shape[0], layout.prefix), readout], dim=1)
    tokens = (readout[:, None, :] @ rolled)[:, 0, layout.prefix :]  # prefix columns dropped (step 5)
    tokens = tokens / tokens.sum(dim=1, keepdim=True).clamp_min(1e-300)
    return spread_to_pixels(tokens, layout, tuple(weights.shape[-2:]))[:, None]  # type: ignore[arg-type]


@torch.no_grad()
def vit_rollout(model: DepthModel, images: Tensor, weights: Tensor, method: AttentionRollout) -> Tensor:
    """Rollout relevance ``(B, 1, H, W)`` (float, summing to 1) of ``images`` for the target ``weights``.

    Raises:
        ConfigError: naming the model, if its network has no ``attentions`` method or returns attention it cannot
            read.
    """
    source = getattr(model.net, "attentions", None)
    if not callable(source):
        raise ConfigError(f"model {model.card.name!r} ({model.card.arch}): attention rollout cannot read its "
                          "attention (the network has no attentions(pixel_values) method)")
    mean, std = torch.as_tensor(model.mean), torch.as_tensor(model.std)  # buffers (typed as Module attributes)
    pixel_values = (images - mean) / std if model.card.imagenet_norm else images
    attentions, layout = source(pixel_values)
    return vit_rollout_relevance(attentions, layout, weights, method).to(images.dtype)
