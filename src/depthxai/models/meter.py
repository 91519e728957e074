"""METER: a MobileViT encoder with a light transposed-convolution decoder for monocular depth.

Re-implementation of Papa et al., "METER: a mobile vision transformer architecture for monocular depth
estimation" (IEEE TCSVT 2023), after the official ``lorenzopapa5/METER`` ``architecture.py``. The module
attribute names and their registration order mirror the official ones, so that ``state_dict()`` has the
official keys in the official order and the released checkpoints load strictly (manifests:
``shared/reference/meter/state_dict_{xxs,xs,s}.tsv``). The forward pass performs the same operations in the
same order as the official one, so the outputs agree to float32 summation noise.

Network (stride = resolution relative to the input, rounded up for odd sizes):

- stem, stride 2: ``encoder.conv1`` (3x3 stride 2 + 1x1, BN, ReLU) -> skip 0 (returned, unused by the decoder);
- stride 4: ``encoder.mv2.0``, ``mv2.1`` (stride 2) -> skip 1, joined by ``decoder.ups_block_3``;
- stride 8: ``mv2.2``, ``mv2.3``, ``mv2.4`` (stride 2) -> skip 2 (``ups_block_2``), then MobileViT ``mvit.0``;
- stride 16: ``mv2.5`` (stride 2) -> skip 3 (``ups_block_1``), then MobileViT ``mvit.1``;
- stride 32: ``mv2.6`` (stride 2), MobileViT ``mvit.2``, ``conv2`` (1x1) -> bottleneck;
- decoder: ``conv2d_in`` (1x1), three x2 upsampling blocks with the skips above, ``conv2d_out`` (3x3, 1 channel).

The output is at 1/4 of the input resolution, in the checkpoint's native unit (the NYU checkpoint: cm,
the KITTI checkpoint: dm; see :mod:`depthxai.models.registry`). Every activation is a ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Attention heads and the width of each head in every MobileViT transformer (fixed in the official code).
ATTENTION_HEADS = 4
HEAD_DIM = 8
#: (ph, pw): pixel offsets per patch; the tokens of one offset attend to each other (MobileViT unfolding).
PATCH_SIZE = (2, 2)
#: Resolution of the three MobileViT blocks relative to the network input.
MOBILEVIT_STRIDES = (8, 16, 32)
#: Hidden width of each block's MLP as a multiple of its transformer width (official: dims[0]*2, dims[i]*4).
MLP_RATIOS = (2, 4, 4)
#: Transformer layers per MobileViT block (official ``L = [1, 1, 1]``).
TRANSFORMER_DEPTH = 1


@dataclass(frozen=True)
class MeterConfig:
    """Widths of one METER variant, as listed in the official ``mobilevit_{xxs,xs,s}`` and ``decoder``.

    Attributes:
        channels: the 11 official encoder widths ``channels[0..10]`` (indices as in the official lists:
            stem ``0``, MV2 in/out pairs ``(0,1) (1,2) (2,3) (2,3) (3,4) (5,6) (7,8)``, MobileViT blocks ``5, 7, 9``,
            bottleneck ``9 -> 10``).
        transformer_dims: token width of the three MobileViT transformers.
        expansion: MV2 inverted-residual expansion factor (2 for xxs, the default 4 for xs and s).
        decoder_widths: output channels of ``conv2d_in`` and of the three upsampling blocks.
    """

    channels: tuple[int, ...]
    transformer_dims: tuple[int, int, int]
    expansion: int
    decoder_widths: tuple[int, int, int, int]


VARIANTS: dict[str, MeterConfig] = {
    "xxs": MeterConfig(channels=(16, 16, 24, 24, 48, 48, 64, 64, 80, 80, 160), transformer_dims=(64, 80, 96),
                       expansion=2, decoder_widths=(64, 32, 16, 8)),
    "xs": MeterConfig(channels=(16, 32, 48, 48, 64, 64, 80, 80, 96, 96, 192), transformer_dims=(96, 120, 144),
                      expansion=4, decoder_widths=(128, 64, 32, 16)),
    "s": MeterConfig(channels=(16, 32, 64, 64, 96, 96, 128, 128, 160, 160, 320), transformer_dims=(144, 192, 240),
                     expansion=4, decoder_widths=(128, 64, 32, 16)),
}


# --------------------------------------------------------------------------------------------------------------
# Input sizes
# --------------------------------------------------------------------------------------------------------------


def _downsampled(size: int, stride: int) -> int:
    """Feature size at ``stride``: every stride-2 layer is a 3x3 conv with padding 1, i.e. ``ceil(n / 2)``."""
    return -(-size // stride)


def input_size_problems(height: int, width: int) -> list[str]:
    """Why METER cannot take an ``height x width`` input (empty list: it can).

    Two constraints, both from the official code:
    * each MobileViT block (at 1/8, 1/16, 1/32) folds its feature map into 2x2 patches, so H and W must be
      even there;
    * the decoder doubles the 1/32 features three times and concatenates the 1/16, 1/8, 1/4 skips; a skip
      one or two columns narrower is zero-padded (left first, then right) but heights must match exactly.
    Together: ``H mod 64`` in {0, 61, 62, 63} and ``W mod 64`` in {0, 57, ..., 63}.
    """
    problems = []
    if height < 1 or width < 1:
        return [f"the size must be positive, got {height}x{width}"]
    for stride in MOBILEVIT_STRIDES:
        fh, fw = _downsampled(height, stride), _downsampled(width, stride)
        if fh % 2 or fw % 2:
            problems.append(f"the MobileViT block at 1/{stride} would see {fh}x{fw} (needs even height and width)")
    for skip_stride in (16, 8, 4):
        up_h, up_w = 2 * _downsampled(height, 2 * skip_stride), 2 * _downsampled(width, 2 * skip_stride)
        skip_h, skip_w = _downsampled(height, skip_stride), _downsampled(width, skip_stride)
        if up_h != skip_h or not 0 <= up_w - skip_w <= 2:
            problems.append(
                f"the decoder would join an upsampled {up_h}x{up_w} map with the {skip_h}x{skip_w} skip at "
                f"1/{skip_stride} (heights must be equal, the skip at most 2 columns narrower)"
            )
    return problems


def _nearest_valid(size: int, valid_residues: set[int]) -> int:
    """The closest positive size whose remainder mod 64 is valid (the smaller one on a tie)."""
    candidates = [s for s in range(max(1, size - 64), size + 65) if s % 64 in valid_residues]
    return min(candidates, key=lambda s: (abs(s - size), s))


def check_input_size(height: int, width: int) -> None:
    """Raise a ``ValueError`` that names the valid sizes if METER cannot take an ``height x width`` input.

    Valid: ``H mod 64`` in {0, 61, 62, 63} and ``W mod 64`` in {0, 57, ..., 63}; e.g. 192x256 (NYU), 192x636
    (KITTI), 128x448, any multiple of 64.
    """
    problems = input_size_problems(height, width)
    if problems:
        near_h = _nearest_valid(height, {0, 61, 62, 63})
        near_w = _nearest_valid(width, {0, *range(57, 64)})
        raise ValueError(
            f"METER cannot take an input of {height}x{width}: " + "; ".join(problems) + ". "
            "Valid sizes have H mod 64 in {0, 61, 62, 63} and W mod 64 in {0, 57..63} (each MobileViT block at "
            "1/8, 1/16, 1/32 then sees even dims and the decoder's skips line up), e.g. any multiple of 64, "
            f"192x256 or 192x636; the nearest valid size is {near_h}x{near_w}. Resize the input to a valid size "
            "(the model card's input_size is one)."
        )


# --------------------------------------------------------------------------------------------------------------
# MobileViT token layout
# --------------------------------------------------------------------------------------------------------------


def to_tokens(feature_map: Tensor, patch_size: tuple[int, int] = PATCH_SIZE) -> Tensor:
    """Unfold a feature map into MobileViT tokens (official ``'b d (h ph) (w pw) -> b (ph pw) (h w) d'``).

    Args:
        feature_map: ``(B, D, H, W)`` with ``H % ph == 0`` and ``W % pw == 0``.
        patch_size: ``(ph, pw)``.

    Returns:
        ``(B, ph*pw, (H/ph)*(W/pw), D)``: token ``(p, n)`` with ``p = pi*pw + pj``, ``n = hi*(W/pw) + wi`` is
        the pixel at row ``hi*ph + pi``, column ``wi*pw + pj``.
    """
    batch, dim, height, width = feature_map.shape
    ph, pw = patch_size
    grid = feature_map.reshape(batch, dim, height // ph, ph, width // pw, pw)  # b d hi pi wi pj
    grid = grid.permute(0, 3, 5, 2, 4, 1)  # b pi pj hi wi d
    return grid.reshape(batch, ph * pw, (height // ph) * (width // pw), dim)


def from_tokens(tokens: Tensor, height: int, width: int, patch_size: tuple[int, int] = PATCH_SIZE) -> Tensor:
    """Fold MobileViT tokens back into a feature map, the exact inverse of :func:`to_tokens`.

    Args:
        tokens: ``(B, ph*pw, (H/ph)*(W/pw), D)``.
        height, width: ``H, W`` of the feature map.

    Returns:
        ``(B, D, H, W)``.
    """
    batch, _, _, dim = tokens.shape
    ph, pw = patch_size
    grid = tokens.reshape(batch, ph, pw, height // ph, width // pw, dim)  # b pi pj hi wi d
    grid = grid.permute(0, 5, 3, 1, 4, 2)  # b d hi pi wi pj
    return grid.reshape(batch, dim, height, width)


# --------------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------------


class Conv3x3Pointwise(nn.Module):
    """A full 3x3 convolution (padding 1) followed by a 1x1 convolution, both without bias.

    The official code calls this ``SeparableConv2d``, but its first conv has ``groups=1`` (not depthwise); the
    attribute names ``depthwise`` / ``pointwise`` are kept for the checkpoint layout.

    Shapes: ``(B, in_channels, H, W)`` -> ``(B, out_channels, ceil(H/stride), ceil(W/stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.pointwise = nn.Conv2d(out_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


def conv3x3_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """``Conv3x3Pointwise`` -> BatchNorm -> ReLU (official ``conv_nxn_bn``)."""
    return nn.Sequential(Conv3x3Pointwise(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels), nn.ReLU())


def conv1x1_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv (no bias) -> BatchNorm -> ReLU (official ``conv_1x1_bn``)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())


class InvertedResidual(nn.Module):
    """MobileNetV2 block (official ``MV2Block``): 1x1 expand, 3x3 depthwise (stride), 1x1 project.

    ``conv`` = [1x1, BN, ReLU, depthwise 3x3, BN, ReLU, 1x1, BN]; the input is added back when the stride is 1
    and the width is unchanged. Shapes: ``(B, in_channels, H, W)`` -> ``(B, out_channels, ceil(H/s), ceil(W/s))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        if expansion < 2:
            # The official expansion-1 branch (no expand conv) has another key layout; no METER variant uses it.
            raise ValueError(f"InvertedResidual expansion must be >= 2 (METER uses 2 or 4), got {expansion}")
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class PreNorm(nn.Module):
    """LayerNorm over the token width, then ``fn``: ``(..., dim)`` -> ``fn``'s output."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    """Token MLP ``dim -> hidden -> dim`` with ReLU: ``(..., dim)`` -> ``(..., dim)``.

    The official dropouts (p = 0) sit at ``net.2`` and ``net.4``; they are identities here, kept only so that
    the linear layers stay at ``net.0`` and ``net.3`` as in the checkpoints.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.ReLU(), nn.Identity(), nn.Linear(hidden_dim, dim),
                                 nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head self-attention within each pixel-offset group of tokens.

    ``attend`` is the softmax module on its own, so that a forward hook sees the attention probabilities
    ``(B, P, heads, N, N)`` (rows: queries, columns: keys; each row sums to 1), as Attention Rollout needs.

    Shapes: ``(B, P, N, dim)`` -> ``(B, P, N, dim)``.
    """

    def __init__(self, dim: int, heads: int = ATTENTION_HEADS, head_dim: int = HEAD_DIM) -> None:
        super().__init__()
        inner_dim = heads * head_dim
        self.heads = heads
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.attend = nn.Softmax(dim=-1)
        self.to_qkv = nn.Linear(dim, 3 * inner_dim, bias=False)
        # Sequential (index 0) for the checkpoint key ``to_out.0``; the official dropout after it has p = 0.
        self.to_out = nn.Sequential(nn.Linear(inner_dim, dim), nn.Identity())

    def forward(self, tokens: Tensor) -> Tensor:
        batch, groups, n_tokens, _ = tokens.shape

        def split_heads(t: Tensor) -> Tensor:  # (B, P, N, heads*head_dim) -> (B, P, heads, N, head_dim)
            return t.reshape(batch, groups, n_tokens, self.heads, self.head_dim).transpose(2, 3)

        query, key, value = (split_heads(t) for t in self.to_qkv(tokens).chunk(3, dim=-1))
        # Scale after the product, as the official code does (same rounding).
        scores = torch.matmul(query, key.transpose(-1, -2)) * self.scale
        probs = self.attend(scores)
        mixed = torch.matmul(probs, value)  # (B, P, heads, N, head_dim)
        mixed = mixed.transpose(2, 3).reshape(batch, groups, n_tokens, self.heads * self.head_dim)
        return self.to_out(mixed)


class Transformer(nn.Module):
    """Pre-norm transformer: per layer ``x = attn(x) + x; x = mlp(x) + x``. Shapes: ``(B, P, N, dim)`` kept."""

    def __init__(self, dim: int, depth: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNorm(dim, Attention(dim)), PreNorm(dim, FeedForward(dim, mlp_dim))]) for _ in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            attention, feed_forward = cast(nn.ModuleList, layer)  # (PreNorm(Attention), PreNorm(FeedForward))
            x = attention(x) + x
            x = feed_forward(x) + x
        return x


class MobileViTBlock(nn.Module):
    """MobileViT block: local convs, a transformer over unfolded patches, and a conv fusion with the input.

    ``conv1`` (3x3+1x1, BN, ReLU, C->C) and ``conv2`` (1x1, C->dim) give the local features; these are unfolded
    into ``ph*pw`` groups of tokens, run through the transformer, folded back, projected by ``conv3``
    (1x1, dim->C), concatenated in front of the block input (channels ``[global, input]``) and fused by
    ``conv4`` (3x3+1x1, 2C->C).

    Token-to-pixel mapping (official ``'b d (h ph) (w pw) -> b (ph pw) (h w) d'``, see :func:`to_tokens`): for a
    block input of ``H x W`` pixels (the feature map at 1/``stride`` of the network input, ``stride`` = 8, 16,
    32), the attention probabilities ``(B, P, heads, N, N)`` have ``P = ph*pw`` pixel-offset groups and
    ``N = (H/ph) * (W/pw)`` tokens; token ``(p, n)`` with ``p = pi*pw + pj`` and ``n = hi*(W/pw) + wi`` is the
    feature pixel at row ``hi*ph + pi``, column ``wi*pw + pj`` of the block's input feature map (the convs
    before the transformer keep the resolution). Tokens attend only within their group ``p``: group ``p``
    is the sub-grid of pixels with the same offset ``(pi, pj)`` inside their ``ph x pw`` patch.

    Args:
        channels: C, the width of the block's input and output.
        dim: token width of the transformer.
        mlp_dim: hidden width of the transformer MLP.
        stride: resolution of the block's input relative to the network input (for attribution only).
        patch_size: ``(ph, pw)``.

    Shapes: ``(B, C, H, W)`` -> ``(B, C, H, W)``, ``H % ph == 0`` and ``W % pw == 0``.
    """

    def __init__(self, channels: int, dim: int, mlp_dim: int, stride: int,
                 patch_size: tuple[int, int] = PATCH_SIZE, depth: int = TRANSFORMER_DEPTH) -> None:
        super().__init__()
        self.patch_size = (int(patch_size[0]), int(patch_size[1]))
        self.stride = stride
        self.conv1 = conv3x3_bn_relu(channels, channels)
        self.conv2 = conv1x1_bn_relu(channels, dim)
        self.transformer = Transformer(dim, depth, mlp_dim)
        self.conv3 = conv1x1_bn_relu(dim, channels)
        self.conv4 = conv3x3_bn_relu(2 * channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        local = self.conv2(self.conv1(x))
        _, _, height, width = local.shape
        ph, pw = self.patch_size
        if height % ph or width % pw:
            raise ValueError(
                f"MobileViT block at 1/{self.stride} got a {height}x{width} feature map; it needs H divisible by {ph} "
                f"and W by {pw} (see depthxai.models.meter.check_input_size for valid network input sizes)"
            )
        tokens = self.transformer(to_tokens(local, self.patch_size))
        global_features = self.conv3(from_tokens(tokens, height, width, self.patch_size))
        return self.conv4(torch.cat((global_features, x), dim=1))


# --------------------------------------------------------------------------------------------------------------
# Encoder, decoder, model
# --------------------------------------------------------------------------------------------------------------


class MeterEncoder(nn.Module):
    """MobileViT encoder (official ``MobileViT``): ``conv1``, ``mv2.0..6``, ``mvit.0..2``, ``conv2``.

    Forward: ``(B, 3, H, W)`` -> ``(bottleneck, skips)`` with ``bottleneck`` ``(B, channels[10], H/32, W/32)`` and
    ``skips`` = [stem output (1/2, ``channels[0]``), ``mv2.1`` output (1/4, ``channels[2]``), ``mv2.4`` output
    (1/8, ``channels[4]``), ``mv2.5`` output (1/16, ``channels[6]``)] (sizes rounded up).
    """

    def __init__(self, config: MeterConfig) -> None:
        super().__init__()
        ch, expansion = config.channels, config.expansion
        self.conv1 = conv3x3_bn_relu(3, ch[0], stride=2)
        # (in, out, stride) with the official channel indices; mv2.3 is built from (channels[2], channels[3]).
        mv2_specs = [(ch[0], ch[1], 1), (ch[1], ch[2], 2), (ch[2], ch[3], 1), (ch[2], ch[3], 1), (ch[3], ch[4], 2),
                     (ch[5], ch[6], 2), (ch[7], ch[8], 2)]
        self.mv2 = nn.ModuleList(InvertedResidual(i, o, s, expansion) for i, o, s in mv2_specs)
        self.mvit = nn.ModuleList(
            MobileViTBlock(channels, dim, dim * ratio, stride)
            for channels, dim, ratio, stride in zip((ch[5], ch[7], ch[9]), config.transformer_dims, MLP_RATIOS,
                                                    MOBILEVIT_STRIDES)
        )
        self.conv2 = conv1x1_bn_relu(ch[9], ch[10])

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        stem = self.conv1(x)
        x = self.mv2[0](stem)
        quarter = self.mv2[1](x)
        x = self.mv2[3](self.mv2[2](quarter))
        eighth = self.mv2[4](x)
        x = self.mvit[0](eighth)
        sixteenth = self.mv2[5](x)
        x = self.mvit[1](sixteenth)
        x = self.mvit[2](self.mv2[6](x))
        return self.conv2(x), [stem, quarter, eighth, sixteenth]


class UpsampleBlock(nn.Module):
    """x2 transposed conv, concatenation with an encoder skip, ``Conv3x3Pointwise`` + ReLU (``UpSample_layer``).

    The transposed conv (3x3, stride 2, padding 1, output padding 1, no bias, no activation) doubles H and W.
    When the skip is narrower (an odd width upstream, e.g. 159 columns at 1/4 for a 636-wide KITTI input), it
    is zero-padded by one column on the left and, if still narrower, one on the right, as in the official code.

    Shapes: ``x (B, in_channels, h, w)``, ``skip (B, skip_channels, 2h, 2w - {0, 1, 2})`` ->
    ``(B, out_channels, 2h, 2w)``.
    """

    def __init__(self, in_channels: int, out_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.conv2d_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1,
                                                   output_padding=1, bias=False)
        self.end_up_layer = nn.Sequential(Conv3x3Pointwise(out_channels + skip_channels, out_channels), nn.ReLU())

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        upsampled = self.conv2d_transpose(x)
        if upsampled.shape[-1] != skip.shape[-1]:
            skip = F.pad(skip, (1, 0))
        if upsampled.shape[-1] != skip.shape[-1]:
            skip = F.pad(skip, (0, 1))
        return self.end_up_layer(torch.cat((upsampled, skip), dim=1))


class MeterDecoder(nn.Module):
    """``conv2d_in`` (1x1), ``ups_block_1..3`` with the 1/16, 1/8, 1/4 skips, ``conv2d_out`` (3x3 -> 1 channel).

    Neither ``conv2d_in`` nor ``conv2d_out`` has a bias or an activation. Forward: bottleneck
    ``(B, channels[10], h, w)`` and the encoder's skip list -> ``(B, 1, 8h, 8w)`` (1/4 of the network input).
    """

    def __init__(self, config: MeterConfig) -> None:
        super().__init__()
        ch, widths = config.channels, config.decoder_widths
        self.conv2d_in = nn.Conv2d(ch[10], widths[0], kernel_size=1, bias=False)
        self.ups_block_1 = UpsampleBlock(widths[0], widths[1], skip_channels=ch[6])
        self.ups_block_2 = UpsampleBlock(widths[1], widths[2], skip_channels=ch[4])
        self.ups_block_3 = UpsampleBlock(widths[2], widths[3], skip_channels=ch[2])
        self.conv2d_out = nn.Conv2d(widths[3], 1, kernel_size=3, padding=1, bias=False)

    def forward(self, bottleneck: Tensor, skips: list[Tensor]) -> Tensor:
        x = self.conv2d_in(bottleneck)
        x = self.ups_block_1(x, skips[3])
        x = self.ups_block_2(x, skips[2])
        x = self.ups_block_3(x, skips[1])
        return self.conv2d_out(x)


class Meter(nn.Module):
    """METER depth network (official ``build_METER_model``).

    Forward: ``(B, 3, H, W)`` preprocessed RGB (see the model card) -> ``(B, 1, ceil(H/4), 2*ceil(W/8))`` depth in the
    checkpoint's native unit. ``H x W`` must pass :func:`check_input_size` (else ``ValueError``).
    """

    def __init__(self, variant: str = "xxs") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown METER variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.variant = variant
        config = VARIANTS[variant]
        self.encoder = MeterEncoder(config)
        self.decoder = MeterDecoder(config)

    def forward(self, x: Tensor) -> Tensor:
        check_input_size(int(x.shape[-2]), int(x.shape[-1]))
        bottleneck, skips = self.encoder(x)
        return self.decoder(bottleneck, skips)


def build_meter(variant: str = "xxs") -> nn.Module:
    """Build METER ``xxs`` (713,464 parameters), ``xs`` (1,449,760) or ``s`` (3,295,168), random weights.

    Raises:
        ValueError: for an unknown variant, naming the choices.
    """
    return Meter(variant)


# --------------------------------------------------------------------------------------------------------------
# Attention sites for Attention Rollout
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionSite:
    """One attention softmax of METER, for hooking by Attention Rollout.

    Attributes:
        name: qualified module name of the softmax within the model passed to :func:`attention_layers`
            (e.g. ``encoder.mvit.0.transformer.layers.0.0.fn.attend``).
        softmax: the ``nn.Softmax`` module; its output is ``(B, P, heads, N, N)``.
        stride: resolution of the MobileViT block's input feature map relative to the network input (8, 16, 32).
        patch_size: ``(ph, pw)``; ``P = ph*pw``, and token ``(p, n)`` maps to a feature pixel as documented in
            :class:`MobileViTBlock`.
        block_index: the MobileViT block (0, 1, 2 = ``encoder.mvit.<i>``).
        layer_index: the transformer layer within that block (always 0 in the official variants).
    """

    name: str
    softmax: nn.Module
    stride: int
    patch_size: tuple[int, int]
    block_index: int
    layer_index: int


def attention_layers(model: nn.Module) -> list[AttentionSite]:
    """Every attention softmax in ``model`` (a :class:`Meter` or a module wrapping one), from input to output.

    Raises:
        ValueError: if ``model`` holds no MobileViT block.
    """
    sites: list[AttentionSite] = []
    blocks = [(name, module) for name, module in model.named_modules() if isinstance(module, MobileViTBlock)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} contains no MobileViT block; attention sites exist only in METER")
    for block_index, (block_name, block) in enumerate(blocks):
        prefix = f"{block_name}." if block_name else ""
        for layer_index, layer in enumerate(block.transformer.layers):
            attention = cast(Attention, cast(nn.ModuleList, layer)[0].fn)  # layer: (PreNorm(Attention), ...)
            sites.append(AttentionSite(
                name=f"{prefix}transformer.layers.{layer_index}.0.fn.attend",
                softmax=attention.attend,
                stride=block.stride,
                patch_size=block.patch_size,
                block_index=block_index,
                layer_index=layer_index,
            ))
    return sites
