"""Skip Attention Module (SAM) of PixelFormer (Agarwal & Arora, WACV 2023, Sec. 3.2).

The decoder's queries attend to the encoder's skip features inside non-overlapping windows (no shift, no
mask): queries come from the decoder map, keys and values from the encoder map at the same resolution.
Facts (layer names, op order, the residual sums) follow ``pixelformer/networks/SAM.py`` @ ``bb0ae9f``.
"""

from __future__ import annotations

from torch import Tensor, nn

from depthxai.models.pixelformer.swin import (
    Mlp,
    RelativeWindowAttention,
    make_drop_path,
    pad_to_windows,
    window_merge,
    window_partition,
)


class WindowCrossAttention(RelativeWindowAttention):
    """Window cross-attention: queries ``q(x)``, keys/values ``kv(skip)``, then ``proj``.

    ``forward(x, skip)`` with both ``(B*nW, N, C)`` returns ``(B*nW, N, C)``. The attention probabilities
    (``softmax`` submodule) are ``(B*nW, heads, N_query, N_key)``.
    """

    def __init__(self, dim: int, window_size: tuple[int, int], num_heads: int, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__(dim, window_size, num_heads, attn_drop)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        b, n, c = x.shape
        head_dim = c // self.num_heads
        q = self.q(x).view(b, n, self.num_heads, head_dim).transpose(1, 2)
        kv = self.kv(skip).reshape(b, n, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        out = self.attend(q, kv[0], kv[1], mask=None)
        return self.proj_drop(self.proj(out))


class SkipAttentionBlock(nn.Module):
    """``q + CrossAttn(norm1(q), normv(skip))`` then ``+ MLP(norm2(.))`` on ``(B, H*W, C)`` tokens.

    Attributes for Attention Rollout: ``window_size``, ``shift_size`` (always 0), and after each forward
    ``input_resolution`` (H, W) and ``padded_resolution`` (Hp, Wp) of the windowed map (zero padding on the
    bottom/right, inserted after the norms). Padded key tokens are not masked out, as upstream.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, mlp_ratio: float = 4.0, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = 0
        self.norm1 = nn.LayerNorm(dim)
        self.normv = nn.LayerNorm(dim)
        self.attn = WindowCrossAttention(dim, (window_size, window_size), num_heads, attn_drop, drop)
        self.drop_path = make_drop_path(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.input_resolution: tuple[int, int] | None = None
        self.padded_resolution: tuple[int, int] | None = None

    def forward(self, x: Tensor, skip: Tensor, height: int, width: int) -> Tensor:
        """Args: x (queries) and skip (keys/values), both ``(B, H*W, C)``. Returns ``(B, H*W, C)``."""
        b, n, c = x.shape
        if n != height * width or skip.shape != x.shape:
            raise ValueError(f"SkipAttentionBlock: queries {tuple(x.shape)} and skip {tuple(skip.shape)} do not "
                             f"both cover a {height}x{width} map with {c} channels")
        ws = self.window_size
        queries, pad_bottom, pad_right = pad_to_windows(self.norm1(x).view(b, height, width, c), ws)
        keys, _, _ = pad_to_windows(self.normv(skip).view(b, height, width, c), ws)
        hp, wp = queries.shape[1], queries.shape[2]
        self.input_resolution, self.padded_resolution = (height, width), (hp, wp)
        out = self.attn(window_partition(queries, ws).view(-1, ws * ws, c),
                        window_partition(keys, ws).view(-1, ws * ws, c))
        grid = window_merge(out.view(-1, ws, ws, c), ws, hp, wp)
        if pad_bottom or pad_right:
            grid = grid[:, :height, :width, :].contiguous()
        x = x + self.drop_path(grid.view(b, height * width, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SkipAttentionModule(nn.Module):
    """One SAM stage: bring encoder skip ``e`` and decoder queries ``q`` to ``embed_dim`` channels (3x3 convs,
    only where the widths differ), cross-attend, LayerNorm, and sum ``out + e' + q'``.

    Args:
        input_dim: channels of the encoder skip map.
        embed_dim: working (and output) channels.
        query_dim: channels of the decoder query map.
        window_size: attention window (7 upstream, whatever the encoder's window).
        num_heads: attention heads.

    ``forward(e (B, input_dim, H, W), q (B, query_dim, H, W)) -> (B, embed_dim, H, W)``.

    Note: upstream also defines a 3x3 conv ``proj`` that its forward never calls; it is kept (unused) so that
    the state dict matches the official checkpoints.
    """

    def __init__(self, input_dim: int, embed_dim: int, query_dim: int, window_size: int = 7,
                 num_heads: int = 4) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.proj_e = nn.Conv2d(input_dim, embed_dim, 3, padding=1) if input_dim != embed_dim else None
        self.proj_q = nn.Conv2d(query_dim, embed_dim, 3, padding=1) if query_dim != embed_dim else None
        self.proj = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.sam_block = SkipAttentionBlock(embed_dim, num_heads, window_size)
        self.norm_sam = nn.LayerNorm(embed_dim)

    def forward(self, e: Tensor, q: Tensor) -> Tensor:
        if self.proj_q is not None:
            q = self.proj_q(q)
        if self.proj_e is not None:
            e = self.proj_e(e)
        if e.shape != q.shape:
            raise ValueError(f"SkipAttentionModule: skip map {tuple(e.shape)} and query map {tuple(q.shape)} differ "
                             "after projection; the input height and width must be multiples of 32")
        b, c, height, width = q.shape
        out = self.sam_block(q.flatten(2).transpose(1, 2), e.flatten(2).transpose(1, 2), height, width)
        out = self.norm_sam(out).view(b, height, width, c).permute(0, 3, 1, 2).contiguous()
        return out + e + q

