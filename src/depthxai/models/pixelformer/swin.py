"""Swin Transformer encoder as used by PixelFormer (Liu et al., ICCV 2021; Agarwal & Arora, WACV 2023).

This is the detection/segmentation flavour of Swin that PixelFormer ships (four stages, a LayerNorm on each
stage output, arbitrary input sizes by zero padding), re-written from the facts of the official code
(``pixelformer/networks/swin_transformer.py`` @ ``bb0ae9f``). Details that matter for numerical parity and
that differ from timm's Swin:

* a block first applies ``norm1``, then zero-pads the token map on the bottom/right to a multiple of the
  window, *then* rolls it by ``-shift`` (cyclic shift); the window never shrinks when a map is smaller than
  the window (a 6x8 map is padded to 7x14);
* the shifted-window mask is built on the padded map of every stage and uses ``-100`` for forbidden pairs;
* patch merging pads odd maps on the bottom/right and concatenates the four sub-grids in the order
  (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col).

The helpers here (window partition, relative position index, the MLP, stochastic depth and the
relative-position-biased window attention core) are shared with the Skip Attention Module in ``sam.py``.
Every softmax over attention logits is an ``nn.Softmax(dim=-1)`` submodule named ``softmax`` so that
Attention Rollout can hook the attention probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Value added to the logits of token pairs that belong to different regions of a shifted window.
SHIFT_MASK_VALUE = -100.0


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Cut a channels-last map into non-overlapping square windows.

    Args:
        x: ``(B, H, W, C)`` with ``H`` and ``W`` multiples of ``window_size``.

    Returns:
        ``(B * H/ws * W/ws, ws, ws, C)``; windows are ordered batch first, then row-major over the window grid.
    """
    b, h, w, c = x.shape
    grid = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return grid.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, c)


def window_merge(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`.

    Args:
        windows: ``(B * nW, ws, ws, C)``.
        height, width: the (padded) map size the windows tile.

    Returns:
        ``(B, height, width, C)``.
    """
    rows, cols = height // window_size, width // window_size
    batch = windows.shape[0] // (rows * cols)
    grid = windows.view(batch, rows, cols, window_size, window_size, -1)
    return grid.permute(0, 1, 3, 2, 4, 5).contiguous().view(batch, height, width, -1)


def relative_position_index(window_size: tuple[int, int]) -> Tensor:
    """Index into the relative-position bias table for every (query, key) pair of a window.

    For tokens ``i = (yi, xi)`` and ``j = (yj, xj)`` (row-major inside the window) the index is
    ``(yi - yj + Wh - 1) * (2 * Ww - 1) + (xi - xj + Ww - 1)``, so the table has ``(2Wh-1)(2Ww-1)`` rows.

    Returns:
        int64 ``(Wh*Ww, Wh*Ww)``.
    """
    wh, ww = window_size
    ys, xs = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy = ys[:, None] - ys[None, :] + (wh - 1)
    dx = xs[:, None] - xs[None, :] + (ww - 1)
    return dy * (2 * ww - 1) + dx


def pad_to_windows(x: Tensor, window_size: int) -> tuple[Tensor, int, int]:
    """Zero-pad a ``(B, H, W, C)`` map on the bottom and right to multiples of ``window_size``.

    Returns:
        The padded map and the number of padded rows (bottom) and columns (right).
    """
    _, h, w, _ = x.shape
    pad_bottom = (window_size - h % window_size) % window_size
    pad_right = (window_size - w % window_size) % window_size
    if pad_bottom or pad_right:
        x = F.pad(x, (0, 0, 0, pad_right, 0, pad_bottom))
    return x, pad_bottom, pad_right


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole residual branch per sample with probability ``drop_prob``
    and rescale the kept ones by ``1 / (1 - drop_prob)``; identity in eval mode."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask_shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = x.new_empty(mask_shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def make_drop_path(drop_prob: float) -> nn.Module:
    """``DropPath`` for a positive rate, else ``nn.Identity`` (both parameter-free, as upstream)."""
    return DropPath(drop_prob) if drop_prob > 0.0 else nn.Identity()


class Mlp(nn.Module):
    """Token-wise feed-forward network ``fc2(drop(GELU(fc1(x))))``; ``(..., C) -> (..., C_out)``."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class RelativeWindowAttention(nn.Module):
    """Shared core of window attention with a learned relative-position bias per head.

    Holds ``relative_position_bias_table`` (``((2Wh-1)(2Ww-1), heads)``), the persistent int64 buffer
    ``relative_position_index`` (``(Wh*Ww, Wh*Ww)``) and the ``softmax`` submodule. Subclasses add the
    projections and call :meth:`attend`.

    Args:
        dim: channels of the tokens (all heads together).
        window_size: (Wh, Ww).
        num_heads: attention heads; ``dim`` must be divisible by it.
        attn_drop: dropout on the attention probabilities.
    """

    relative_position_index: Tensor  # (Wh*Ww, Wh*Ww) int64 buffer

    def __init__(self, dim: int, window_size: tuple[int, int], num_heads: int, attn_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.dim = dim
        self.window_size = (window_size[0], window_size[1])
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        n_offsets = (2 * self.window_size[0] - 1) * (2 * self.window_size[1] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(n_offsets, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(self.window_size))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.attn_drop = nn.Dropout(attn_drop)
        self.softmax = nn.Softmax(dim=-1)

    def relative_position_bias(self) -> Tensor:
        """``(heads, N, N)`` bias added to the logits, ``N = Wh * Ww``."""
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1).contiguous()

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Scaled dot-product attention inside each window.

        Args:
            q, k, v: ``(B*nW, heads, N, head_dim)``.
            mask: ``(nW, N, N)`` additive mask (0 or -100) for shifted windows, or None.

        Returns:
            ``(B*nW, N, heads*head_dim)``, heads concatenated along channels.
        """
        n_windows_total, heads, n, _ = q.shape
        logits = (q * self.scale) @ k.transpose(-2, -1)
        logits = logits + self.relative_position_bias().unsqueeze(0)
        if mask is not None:
            n_windows = mask.shape[0]
            logits = logits.view(-1, n_windows, heads, n, n) + mask[None, :, None]
            logits = logits.view(-1, heads, n, n)
        probs = self.attn_drop(self.softmax(logits))
        return (probs @ v).transpose(1, 2).reshape(n_windows_total, n, -1)


class WindowSelfAttention(RelativeWindowAttention):
    """Window multi-head self-attention (W-MSA / SW-MSA): ``qkv`` then ``proj``; ``(B*nW, N, C) -> same``."""

    def __init__(self, dim: int, window_size: tuple[int, int], num_heads: int, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__(dim, window_size, num_heads, attn_drop)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = self.attend(qkv[0], qkv[1], qkv[2], mask)
        return self.proj_drop(self.proj(out))


def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int,
                        device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Additive attention mask for shifted windows on a padded ``height x width`` map.

    After the cyclic shift by ``-shift_size`` each axis splits into three bands, ``[0, L-ws)``,
    ``[L-ws, L-shift)`` and ``[L-shift, L)``; tokens of a window may only attend to tokens of the same
    (row band, column band) region.

    Returns:
        ``(nW, ws*ws, ws*ws)`` with 0 for allowed and ``SHIFT_MASK_VALUE`` for forbidden pairs.
    """

    def bands(length: int) -> Tensor:
        label = torch.zeros(length, device=device, dtype=dtype)
        label[max(length - window_size, 0):] = 1
        label[length - shift_size:] = 2
        return label

    region = (3 * bands(height)[:, None] + bands(width)[None, :]).view(1, height, width, 1)
    region = window_partition(region, window_size).reshape(-1, window_size * window_size)
    differs = (region[:, None, :] - region[:, :, None]) != 0
    return torch.zeros(differs.shape, device=device, dtype=dtype).masked_fill(differs, SHIFT_MASK_VALUE)


class SwinBlock(nn.Module):
    """One Swin block: ``x + WMSA(norm1(x))`` then ``x + MLP(norm2(x))`` on ``(B, H*W, C)`` tokens.

    Attributes kept for Attention Rollout: ``window_size``, ``shift_size`` (0 for even blocks, ws//2 for odd),
    and after each forward ``input_resolution`` (H, W) and ``padded_resolution`` (Hp, Wp) of the map that was
    cut into windows. The attention probabilities that ``attn.softmax`` sees are ``(B*nW, heads, ws², ws²)``
    over windows of the padded map *after* the roll by ``-shift_size`` on both axes. Padding tokens (zeros,
    inserted after ``norm1``) are not masked out, as upstream: real tokens may attend to them.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0, mlp_ratio: float = 4.0,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size {shift_size} must lie in [0, window_size={window_size})")
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowSelfAttention(dim, (window_size, window_size), num_heads, attn_drop, drop)
        self.drop_path = make_drop_path(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.input_resolution: tuple[int, int] | None = None
        self.padded_resolution: tuple[int, int] | None = None

    def forward(self, x: Tensor, height: int, width: int, shift_mask: Tensor | None) -> Tensor:
        """Args: x ``(B, H*W, C)``; ``shift_mask`` from :func:`shifted_window_mask` (used only if shifted)."""
        b, n, c = x.shape
        if n != height * width:
            raise ValueError(f"SwinBlock got {n} tokens for a {height}x{width} map")
        ws, shift = self.window_size, self.shift_size
        grid, pad_bottom, pad_right = pad_to_windows(self.norm1(x).view(b, height, width, c), ws)
        hp, wp = grid.shape[1], grid.shape[2]
        self.input_resolution, self.padded_resolution = (height, width), (hp, wp)
        if shift:
            grid = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(grid, ws).view(-1, ws * ws, c)
        windows = self.attn(windows, mask=shift_mask if shift else None)
        grid = window_merge(windows.view(-1, ws, ws, c), ws, hp, wp)
        if shift:
            grid = torch.roll(grid, shifts=(shift, shift), dims=(1, 2))
        if pad_bottom or pad_right:
            grid = grid[:, :height, :width, :].contiguous()
        x = x + self.drop_path(grid.view(b, height * width, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Halve the token grid and double the channels: ``(B, H*W, C) -> (B, ceil(H/2)*ceil(W/2), 2C)``.

    Odd maps are zero-padded on the bottom/right; the 2x2 neighbours are concatenated as
    (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col), then LayerNorm(4C) and a
    bias-free linear reduction to 2C.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        b, _, c = x.shape
        grid = x.view(b, height, width, c)
        if height % 2 or width % 2:
            grid = F.pad(grid, (0, 0, 0, width % 2, 0, height % 2))
        quads = [grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]]
        merged = torch.cat(quads, dim=-1).view(b, -1, 4 * c)
        return self.reduction(self.norm(merged))


class SwinStage(nn.Module):
    """A stage of ``depth`` blocks alternating plain and shifted windows, optionally followed by patch merging.

    ``forward(x, H, W)`` returns ``(stage_output (B, H*W, C), next_tokens, next_H, next_W)``; without
    downsampling the next tokens are the stage output itself.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 drop: float, attn_drop: float, drop_path: Sequence[float], downsample: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.depth = depth
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else self.shift_size, mlp_ratio, drop,
                      attn_drop, drop_path[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, int, int]:
        ws = self.window_size
        padded_h, padded_w = -(-height // ws) * ws, -(-width // ws) * ws
        mask = shifted_window_mask(padded_h, padded_w, ws, self.shift_size, x.device, x.dtype)
        for block in self.blocks:
            x = block(x, height, width, mask)
        if self.downsample is None:
            return x, x, height, width
        return x, self.downsample(x, height, width), (height + 1) // 2, (width + 1) // 2


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution then LayerNorm: ``(B, 3, H, W) -> (B, C, ceil(H/p), ceil(W/p))``.

    The image is zero-padded on the right/bottom to a multiple of the patch size.
    """

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        p = self.patch_size
        h, w = x.shape[-2:]
        if h % p or w % p:
            x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.proj(x)
        b, c, hh, ww = x.shape
        tokens = self.norm(x.flatten(2).transpose(1, 2))
        return tokens.transpose(1, 2).reshape(b, c, hh, ww)


class SwinBackbone(nn.Module):
    """Four-stage Swin encoder returning the LayerNorm-ed output of every stage.

    Args:
        embed_dim: channels of stage 1 (stage i has ``embed_dim * 2**i``).
        depths, num_heads: blocks and heads per stage.
        window_size: attention window (tokens per side).
        mlp_ratio: MLP hidden width / channels.
        drop_rate, attn_drop_rate: dropout on activations / attention probabilities (0 upstream).
        drop_path_rate: stochastic depth, rising linearly from 0 to this rate over all blocks.
        patch_size: patch embedding stride (4).

    ``forward(x (B, 3, H, W))`` returns four maps ``(B, embed_dim * 2**i, ~H / 2**(i+2), ~W / 2**(i+2))``.
    """

    def __init__(self, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int = 7, mlp_ratio: float = 4.0,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.2,
                 patch_size: int = 4) -> None:
        super().__init__()
        self.num_layers = len(depths)
        self.embed_dim = embed_dim
        self.window_size = window_size
        self.num_features = [embed_dim * 2**i for i in range(self.num_layers)]
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.pos_drop = nn.Dropout(drop_rate)
        # Plain floats; computed on the CPU so that building under a meta device also works.
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            self.layers.append(SwinStage(self.num_features[i], depth, num_heads[i], window_size, mlp_ratio,
                                         drop_rate, attn_drop_rate, rates[first:first + depth],
                                         downsample=i < self.num_layers - 1))
        for i, channels in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(channels))
        self.apply(_init_swin_weights)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = self.patch_embed(x)
        height, width = x.shape[-2:]
        tokens = self.pos_drop(x.flatten(2).transpose(1, 2))
        outs = []
        for i, stage in enumerate(self.layers):
            out, tokens, next_h, next_w = stage(tokens, height, width)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(-1, height, width, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
            height, width = next_h, next_w
        return tuple(outs)


def _init_swin_weights(module: nn.Module) -> None:
    # Upstream initialises the encoder (pretrained=None) with truncated normal linears and unit LayerNorms.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
