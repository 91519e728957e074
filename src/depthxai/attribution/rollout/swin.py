"""Attention Rollout for PixelFormer: Swin window self-attention and the Skip Attention Modules' cross-attention.

No paper defines rollout for PixelFormer (Agarwal & Arora, WACV 2023); this is our definition, built from the
same pieces as METER's (:mod:`depthxai.attribution.rollout`): a readout from the target weights, head-fused
attention with the residual modelled as ``Â = w I + (1 - w) A`` (``w = method.residual_weight``), relevance
propagated as ``r_in = r_out @ Â``, mass-preserving maps between grids, a non-negative result summing to 1.

**Window attention lifted to the token grid.** A block at resolution ``(h, w)`` (Swin block or Skip Attention
block) zero-pads its token map on the bottom/right to ``(hp, wp)``, multiples of the window ``ws``; a shifted
Swin block then rolls the padded map by ``-shift`` on both axes (the token at ``(y, x)`` moves to
``((y - shift) mod hp, (x - shift) mod wp)``), cuts it into ``ws x ws`` windows (row-major over the window grid,
row-major inside a window) and attends inside each window. Its head-fused attention (``method.prepare``: head
fusion, then discarding the weakest links, as for METER) is a block-diagonal matrix over the windows of the
rolled padded grid; undoing the roll (a permutation of token indices) lifts it onto the ``hp x wp`` grid. The
padded tokens are not input tokens, so they are dropped as keys (columns) and as queries (rows): each real
query row keeps its total and shares the mass it had on padded keys among its real keys in proportion (as if
the padding had been masked out of the softmax); padded query rows carry no relevance and become identity
rows, so that they stay well defined. Then ``Â = w I + (1 - w) A`` with rows renormalised
(:func:`~depthxai.attribution.rollout.with_residual`). The dense ``(h w) x (h w)`` matrix is never built: a
relevance vector is gathered into windows by window index, multiplied by each window's ``N x N`` matrix
(``N = ws²``, batched) and scattered back (:func:`propagate_window_attention`).

**Readout.** The explained scalar is ``sum_p w_p depth_p``. The depth map is the DispHead's (3x3 conv, bin
softmax) output at 1/4 resolution, upsampled x4: depth pixel ``p`` lies above one token of sam1's output, and
a token's readout relevance is the target weight mass above it (sum pooling to the 1/4 grid).

**The decoder path (sam1 at 1/4 up to sam4 at 1/32).** Each SAM's output token is its query (the decoder map
that entered the SAM, through the inner residual and the outer ``out + e' + q'`` sum) plus the window
cross-attention over the encoder map of that scale (keys/values). Going backwards, a SAM's output relevance
``r`` splits per token into

* ``w / n`` of it to the same token of the incoming decoder map (identity, the residual-like path), and
* ``(1 - w) / n`` of it times the lifted cross-attention row to the encoder tokens of that scale,

with ``n = w + (1 - w) * rowsum(A)`` (``n = 1`` unless links were discarded): exactly the two parts of
``r @ (w I + (1 - w) A)`` when the query and key token sets are told apart (:func:`skip_attention_step`). The
SAM's outer ``+ e'`` (the encoder map added at the same position) gets no share of its own: relevance reaches
the same-position encoder token through the cross-attention, as rollout ignores the non-attention paths.

Between SAMs the decoder map goes up by ``PixelShuffle(2)``: output channel ``c`` at ``(2i + a, 2j + b)``
(``a, b`` in ``{0, 1}``) is input channel ``4c + 2a + b`` at ``(i, j)``. The four queries
``(2i..2i+1, 2j..2j+1)`` of sam_k are thus made from the single token ``(i, j)`` of sam_(k+1)'s output, so
backwards that token receives the sum of its four children's relevance
(:func:`~depthxai.attribution.rollout.pool_relevance`). The queries of sam4 are the PSP head's output on the
deepest encoder map: the head is treated as identity-like (token ``(i, j)`` of ``q4`` passes its relevance to
token ``(i, j)`` of ``e4``), as are the 3x3 convolutions that bring the maps to the SAM widths and the
DispHead conv. The PSP head's pyramid pooling does mix globally (pooling to 1, 2, 3, 6 cells) and the Bin
Center Predictor reads the global mean of ``q4``; like the MLPs and norms, these non-attention paths are not
modelled.

**The encoder path.** ``e_s`` (s = 1..4) is the output of Swin stage ``s``; the relevance a SAM gives to
``e_s`` flows back through that stage's blocks (last to first, each ``r @ Â``), then through the patch merging
that made the stage's input from the previous stage's output: a merged token ``(i, j)`` concatenates the 2x2
tokens ``(2i + a, 2j + b)``, so backwards its relevance is shared equally by those of its children that exist
(at odd sizes the zero padding holds no child;
:func:`~depthxai.attribution.rollout.upsample_relevance`); there it is added to the relevance the previous
SAM gave to that stage's output. Since every step is linear, this accumulation equals summing the pixel maps
of the four scales. Finally the patch embedding (one token per 4x4 pixels) spreads each stage-1 token's
relevance equally over its 4x4 pixels.

Every map is mass preserving and non-negative, so the result sums to the target weight mass (1); it is
renormalised to 1 per image. Memory: only the head-fused window attentions are kept (``(B, nW, N, N)`` per
block, float64), captured with forward hooks on the ``attn.softmax`` submodules during one no-grad forward.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depthxai.attribution.rollout.common import AttentionRollout, pool_relevance, upsample_relevance, with_residual
from depthxai.models.pixelformer.sam import SkipAttentionBlock
from depthxai.models.pixelformer.swin import SwinBlock, SwinStage, window_partition
from depthxai.models.wrapper import DepthModel


def window_token_index(height: int, width: int, window_size: int, shift_size: int = 0,
                       device: torch.device | None = None) -> Tensor:
    """Which token of an ``height x width`` map every window slot holds, in the layout of the Swin blocks.

    The map is padded on the bottom/right to multiples of ``window_size``, rolled by ``-shift_size`` on both
    axes and cut into windows by :func:`~depthxai.models.pixelformer.swin.window_partition`, as
    :class:`~depthxai.models.pixelformer.swin.SwinBlock` does with its features.

    Returns:
        int64 ``(nW, ws*ws)``: the flat index ``y * width + x`` of the token in each slot, or ``height * width``
        (the padding sentinel) for a padded slot.
    """
    ws = window_size
    padded_h, padded_w = -(-height // ws) * ws, -(-width // ws) * ws
    index = torch.full((padded_h, padded_w), height * width, dtype=torch.int64, device=device)
    index[:height, :width] = torch.arange(height * width, device=device).view(height, width)
    if shift_size:
        index = torch.roll(index, shifts=(-shift_size, -shift_size), dims=(0, 1))
    return window_partition(index.view(1, padded_h, padded_w, 1), ws).view(-1, ws * ws)


def gather_windows(relevance: Tensor, index: Tensor) -> Tensor:
    """``(B, L)`` token values -> ``(B, nW, N)`` per window slot (0 on padded slots); ``index`` from
    :func:`window_token_index`."""
    with_sentinel = F.pad(relevance, (0, 1))
    return with_sentinel[:, index]


def scatter_windows(values: Tensor, index: Tensor, length: int) -> Tensor:
    """Inverse of :func:`gather_windows`: ``(B, nW, N)`` -> ``(B, length)``, values on padded slots dropped."""
    batch = values.shape[0]
    out = values.new_zeros(batch, length + 1)
    out.scatter_add_(1, index.reshape(1, -1).expand(batch, -1), values.reshape(batch, -1))
    return out[:, :length]


def drop_padded_tokens(attention: Tensor, index: Tensor, length: int) -> Tensor:
    """Remove the padded tokens from window attention.

    Args:
        attention: ``(B, nW, N, N)`` non-negative head-fused window attention (rows = queries).
        index: ``(nW, N)`` from :func:`window_token_index`; slots with ``index == length`` are padding.
        length: number of real tokens ``h * w``.

    Returns:
        ``(B, nW, N, N)``: padded key columns zeroed and every real query row rescaled to its former total (the
        mass on padded keys is shared among the real keys in proportion); padded query rows, and rows with no
        mass left on real keys, are identity rows.
    """
    real = index < length
    kept = attention * real[None, :, None, :]
    total = attention.sum(dim=-1, keepdim=True)
    kept_total = kept.sum(dim=-1, keepdim=True)
    rescaled = kept * (total / kept_total.clamp_min(torch.finfo(attention.dtype).tiny))
    dead = (~real)[None, :, :, None] | (kept_total <= 0)
    eye = torch.eye(attention.shape[-1], dtype=attention.dtype, device=attention.device)
    return torch.where(dead, eye.expand_as(attention), rescaled)


def propagate_window_attention(relevance: Tensor, attention: Tensor, window_size: int, shift_size: int,
                               residual_weight: float) -> Tensor:
    """One rollout step through a window self-attention block: ``r_in = r_out @ Â`` on the token grid.

    ``Â`` is the block's window attention lifted to the ``h x w`` grid (block diagonal over windows, roll
    undone, padding dropped by :func:`drop_padded_tokens`) mixed with the identity,
    ``w I + (1 - w) A`` (rows renormalised). Applied window by window, never built densely.

    Args:
        relevance: ``(B, h, w)`` relevance of the block's output tokens.
        attention: ``(B, nW, N, N)`` head-fused attention over the windows of the padded, rolled map.
        window_size, shift_size: of the block.
        residual_weight: ``w``.

    Returns:
        ``(B, h, w)`` relevance of the block's input tokens (same total).
    """
    batch, height, width = relevance.shape
    index = window_token_index(height, width, window_size, shift_size, relevance.device)
    _check_windows(attention, index, batch)
    lifted = with_residual(drop_padded_tokens(attention, index, height * width), residual_weight)
    windows = gather_windows(relevance.reshape(batch, -1), index)
    moved = (windows.unsqueeze(-2) @ lifted).squeeze(-2)
    return scatter_windows(moved, index, height * width).view(batch, height, width)


def skip_attention_step(relevance: Tensor, attention: Tensor, window_size: int,
                        residual_weight: float) -> tuple[Tensor, Tensor]:
    """One rollout step back through a Skip Attention block (window cross-attention, no shift).

    A query token's relevance ``r`` goes ``w / n * r`` to the same token of the decoder (query) map and
    ``(1 - w) / n * r * A_row`` to the encoder (key) tokens of its window, ``n = w + (1 - w) * rowsum(A)``:
    the query and key parts of ``r @ (w I + (1 - w) A)``. Padded keys are dropped as in
    :func:`drop_padded_tokens`.

    Args:
        relevance: ``(B, h, w)`` relevance of the SAM's output tokens.
        attention: ``(B, nW, N, N)`` head-fused cross-attention (rows = decoder queries, columns = encoder keys).
        window_size: of the block.
        residual_weight: ``w``.

    Returns:
        ``(to_decoder, to_encoder)``, both ``(B, h, w)``, summing to the input's total.
    """
    batch, height, width = relevance.shape
    length = height * width
    index = window_token_index(height, width, window_size, 0, relevance.device)
    _check_windows(attention, index, batch)
    keys = drop_padded_tokens(attention, index, length)
    norm = (residual_weight + (1.0 - residual_weight) * keys.sum(dim=-1)).clamp_min(torch.finfo(keys.dtype).tiny)
    windows = gather_windows(relevance.reshape(batch, -1), index) / norm
    to_decoder = scatter_windows(residual_weight * windows, index, length)
    to_encoder = scatter_windows((1.0 - residual_weight) * (windows.unsqueeze(-2) @ keys).squeeze(-2), index, length)
    return to_decoder.view(batch, height, width), to_encoder.view(batch, height, width)


def _check_windows(attention: Tensor, index: Tensor, batch: int) -> None:
    expected = (batch, index.shape[0], index.shape[1], index.shape[1])
    if tuple(attention.shape) != expected:
        raise ValueError(f"window attention of shape {tuple(attention.shape)} does not fit the window layout "
                         f"(expected {expected})")


def _input_resolution(block: SwinBlock | SkipAttentionBlock) -> tuple[int, int]:
    """The ``(H, W)`` token grid of ``block``'s last forward."""
    assert block.input_resolution is not None, "read after a forward"
    return block.input_resolution


@torch.no_grad()
def pixelformer_rollout(model: DepthModel, images: Tensor, weights: Tensor, method: AttentionRollout) -> Tensor:
    """Rollout relevance of PixelFormer's input pixels for the target ``weights`` (definition: module docstring).

    Args:
        model: a PixelFormer :class:`DepthModel`.
        images: ``(B, 3, H, W)`` RGB in [0, 1], ``H`` and ``W`` multiples of 32.
        weights: ``(B, 1, H, W)`` target weights.
        method: the rollout settings (``head_fusion``, ``discard_ratio``, ``residual_weight``).

    Returns:
        ``(B, 1, H, W)`` non-negative relevance summing to 1 per image, in ``images.dtype``.
    """
    from depthxai.models.pixelformer import PixelFormer

    net = model.net
    if not isinstance(net, PixelFormer):
        raise TypeError(f"pixelformer_rollout needs a PixelFormer DepthModel, got {type(net).__name__}")
    batch, _, height, width = images.shape
    # ModuleList items are typed nn.Module: each stage holds SwinBlocks
    stages = [[cast(SwinBlock, block) for block in cast(SwinStage, stage).blocks] for stage in net.backbone.layers]
    sam_blocks = [sam.sam_block for sam in net.sams]  # sam1..sam4

    captured: dict[nn.Module, Tensor] = {}

    def capture(block: nn.Module):
        def hook(_module: nn.Module, _inputs: tuple[Tensor, ...], probs: Tensor) -> None:
            # fuse heads right away: only (B, nW, N, N) per block is kept
            fused = method.prepare(probs.detach().to(torch.float64))
            captured[block] = fused.reshape(batch, -1, *fused.shape[-2:])
        return hook

    blocks = [block for stage in stages for block in stage] + sam_blocks
    handles = [block.attn.softmax.register_forward_hook(capture(block)) for block in blocks]
    try:
        model(images)
    finally:
        for handle in handles:
            handle.remove()

    w = method.residual_weight
    relevance = pool_relevance(weights[:, 0].to(torch.float64), _input_resolution(sam_blocks[0]))
    to_encoder: list[Tensor] = []
    for level, sam_block in enumerate(sam_blocks):
        to_decoder, to_skip = skip_attention_step(relevance, captured[sam_block], sam_block.window_size, w)
        to_encoder.append(to_skip)
        if level + 1 < len(sam_blocks):  # back through PixelShuffle(2): a token gets its 2x2 children's sum
            relevance = pool_relevance(to_decoder, _input_resolution(sam_blocks[level + 1]))
        else:  # sam4's queries are the PSP head's output on e4, treated as identity
            to_encoder[-1] = to_encoder[-1] + to_decoder

    relevance = to_encoder[-1]
    for stage_index in range(len(stages) - 1, -1, -1):
        for block in reversed(stages[stage_index]):
            if block.input_resolution != tuple(relevance.shape[-2:]):
                raise RuntimeError(f"stage {stage_index + 1} ran at {block.input_resolution}, but the relevance "
                                   f"is on a {tuple(relevance.shape[-2:])} grid")
            relevance = propagate_window_attention(relevance, captured[block], block.window_size,
                                                   block.shift_size, w)
        if stage_index > 0:  # back through patch merging: a merged token is shared by its 2x2 children
            relevance = upsample_relevance(relevance, _input_resolution(stages[stage_index - 1][0]))
            relevance = relevance + to_encoder[stage_index - 1]
    relevance = upsample_relevance(relevance, (height, width))  # patch embedding: 4x4 pixels per token
    relevance = relevance / relevance.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30)
    return relevance[:, None].to(images.dtype)
