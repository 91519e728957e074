"""Attention Rollout for PixelFormer (depthxai.attribution.rollout.swin) against independent dense constructions,
the real Swin / SAM modules, hand-computed cases; and Saliency / IG on a PixelFormer DepthModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from depthxai.attribution import AttentionRollout, TargetModel, TargetSpec, build_method, target_weights
from depthxai.attribution.rollout import discard_lowest, pool_relevance, upsample_relevance
from depthxai.attribution.rollout.swin import (
    pixelformer_rollout,
    propagate_window_attention,
    skip_attention_step,
    window_token_index,
)
from depthxai.models import build_model, get_card, load_depth_model
from depthxai.models.pixelformer.sam import SkipAttentionBlock
from depthxai.models.pixelformer.swin import PatchEmbed, PatchMerging, SwinBlock, shifted_window_mask
from depthxai.models.wrapper import DepthModel

NANO = "pixelformer_nano07_synthindoor"

# ------------------------------------------------------------------ independent dense constructions


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def token_windows(height: int, width: int, ws: int, shift: int) -> tuple[Tensor, Tensor]:
    """(window id, slot in window) of every real token, from the roll formula: after ``torch.roll(-shift)`` the
    token at (y, x) sits at ((y - shift) mod Hp, (x - shift) mod Wp); windows and slots are row-major."""
    hp, wp = ceil_div(height, ws) * ws, ceil_div(width, ws) * ws
    window = torch.empty(height * width, dtype=torch.int64)
    slot = torch.empty(height * width, dtype=torch.int64)
    for y in range(height):
        for x in range(width):
            ry, rx = (y - shift) % hp, (x - shift) % wp
            window[y * width + x] = (ry // ws) * (wp // ws) + rx // ws
            slot[y * width + x] = (ry % ws) * ws + rx % ws
    return window, slot


def dense_lift(window_attention: Tensor, height: int, width: int, ws: int, shift: int) -> tuple[Tensor, Tensor]:
    """The window attention ``(nW, N, N)`` as a dense ``(L, L)`` matrix over the real tokens (padded keys left
    out, not renormalised) and every real query's full row total (padded keys included)."""
    window, slot = token_windows(height, width, ws, shift)
    same_window = window[:, None] == window[None, :]
    entries = window_attention[window[:, None], slot[:, None], slot[None, :]]
    raw = torch.where(same_window, entries, torch.zeros((), dtype=entries.dtype))
    return raw, window_attention[window, slot].sum(-1)


def dense_self_step(raw: Tensor, total: Tensor, w: float) -> Tensor:
    """``w I + (1 - w) A`` (rows renormalised), A = the real keys' attention rescaled to the row's former total."""
    attention = raw * (total / raw.sum(-1))[:, None]
    mixed = w * torch.eye(raw.shape[0], dtype=raw.dtype) + (1 - w) * attention
    return mixed / mixed.sum(-1, keepdim=True)


def dense_cross_step(raw: Tensor, total: Tensor, w: float) -> tuple[Tensor, Tensor]:
    """(decoder share per token ``(L,)``, encoder matrix ``(L, L)``) of a SAM."""
    attention = raw * (total / raw.sum(-1))[:, None]
    norm = w + (1 - w) * attention.sum(-1)
    return w / norm, (1 - w) * attention / norm[:, None]


def parent_index(fine: tuple[int, int], coarse: tuple[int, int]) -> Tensor:
    """For every fine cell (row-major), its coarse parent under ceil-downsampling by the integer factors."""
    fh, fw = ceil_div(fine[0], coarse[0]), ceil_div(fine[1], coarse[1])
    return torch.tensor([(y // fh) * coarse[1] + x // fw for y in range(fine[0]) for x in range(fine[1])])


def dense_pool(fine: tuple[int, int], coarse: tuple[int, int]) -> Tensor:
    """``(L_fine, L_coarse)``: a fine cell's relevance goes to its parent."""
    matrix = torch.zeros(fine[0] * fine[1], coarse[0] * coarse[1], dtype=torch.float64)
    matrix[torch.arange(matrix.shape[0]), parent_index(fine, coarse)] = 1.0
    return matrix


def dense_spread(coarse: tuple[int, int], fine: tuple[int, int]) -> Tensor:
    """``(L_coarse, L_fine)``: a coarse cell's relevance is shared equally by its children."""
    matrix = dense_pool(fine, coarse).T.contiguous()
    return matrix / matrix.sum(-1, keepdim=True)


def capture_attention(model: nn.Module, run) -> dict[nn.Module, Tensor]:  # type: ignore[no-untyped-def]
    """Softmax outputs of every Swin / Skip Attention block during ``run()``, keyed by the block."""
    seen: dict[nn.Module, Tensor] = {}
    blocks = [m for m in model.modules() if isinstance(m, (SwinBlock, SkipAttentionBlock))]
    handles = [b.attn.softmax.register_forward_hook(lambda _m, _i, out, b=b: seen.__setitem__(b, out.detach()))
               for b in blocks]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return seen


def make_linear_value_path(block: nn.Module) -> None:
    """Values = normalised input tokens, output projection = identity, MLP = 0: the block's output minus its
    input is then exactly (lifted attention) @ (normalised tokens). Queries and keys stay random."""
    attn = block.attn
    dim = attn.dim
    with torch.no_grad():
        if hasattr(attn, "qkv"):  # self-attention: qkv = [q; k; v]
            attn.qkv.weight[2 * dim:] = torch.eye(dim)
            attn.qkv.bias[2 * dim:] = 0
        else:  # cross-attention: kv = [k; v]
            attn.kv.weight[dim:] = torch.eye(dim)
            attn.kv.bias[dim:] = 0
        attn.proj.weight.copy_(torch.eye(dim))
        attn.proj.bias.zero_()
        block.mlp.fc2.weight.zero_()
        block.mlp.fc2.bias.zero_()
        attn.relative_position_bias_table.normal_(0, 1.0)


# ------------------------------------------------------------------ one window block, lifted


@pytest.mark.parametrize(("height", "width", "ws", "shift"), [(6, 10, 3, 0), (6, 10, 3, 1), (5, 8, 3, 0),
                                                              (5, 8, 3, 1), (2, 3, 7, 3)])
def test_window_block_lifting_equals_dense_matrix(height: int, width: int, ws: int, shift: int) -> None:
    dim = 64  # >= tokens, so the check below pins the dense matrix down
    block = SwinBlock(dim, num_heads=1, window_size=ws, shift_size=shift).double().eval()
    make_linear_value_path(block)
    x = torch.randn(1, height * width, dim, dtype=torch.float64)
    hp, wp = ceil_div(height, ws) * ws, ceil_div(width, ws) * ws
    mask = shifted_window_mask(hp, wp, ws, shift, dtype=torch.float64) if shift else None
    seen = capture_attention(block, lambda: block(x, height, width, mask))
    out = block(x, height, width, mask)
    assert block.padded_resolution == (hp, wp)
    probs = seen[block][:, 0]  # (nW, N, N)

    # The independent dense lifting reproduces what the block computed: out - x = A_lifted @ norm1(x).
    raw, total = dense_lift(probs, height, width, ws, shift)
    torch.testing.assert_close(out[0] - x[0], raw @ block.norm1(x[0]), rtol=0, atol=1e-12)
    if (hp, wp) != (height, width) and not shift:
        # unshifted, real queries attend to the padding (shifted, the mask may keep the padding apart)
        assert (total - raw.sum(-1)).max() > 1e-3

    # The window-wise rollout step equals r @ dense, for plain attention and with discarded links.
    r = torch.rand(3, height, width, dtype=torch.float64)
    for attention in (probs, discard_lowest(probs, 0.4)):
        raw, total = dense_lift(attention, height, width, ws, shift)
        for w in (0.0, 0.5, 0.8):
            got = propagate_window_attention(r, attention[None].expand(3, -1, -1, -1), ws, shift, w)
            expected = r.reshape(3, -1) @ dense_self_step(raw, total, w)
            torch.testing.assert_close(got.reshape(3, -1), expected, rtol=0, atol=1e-10)
            torch.testing.assert_close(got.sum((1, 2)), r.sum((1, 2)), rtol=0, atol=1e-12)


def test_window_token_index_layout() -> None:
    # 5x8 grid, window 3, shift 1: padded to 6x9, rolled up/left by one; window 0 holds rows 1..3, cols 1..3.
    index = window_token_index(5, 8, 3, 1)
    assert index.shape == (6, 9)
    assert index[0].tolist() == [9, 10, 11, 17, 18, 19, 25, 26, 27]
    # the last window wraps: rows 4, pad, 0 and columns pad, 0 ... (rolled col 8 = original col 0)
    sentinel = 40
    assert index[5].tolist() == [39, sentinel, 32, sentinel, sentinel, sentinel, 7, sentinel, 0]
    assert sorted(i for i in index.flatten().tolist() if i < sentinel) == list(range(40))


def test_skip_attention_block_lifting_matches_module() -> None:
    # The SAM block's window layout (padding, no shift), checked against the module itself.
    height, width, ws, dim = 5, 8, 3, 48
    block = SkipAttentionBlock(dim, num_heads=1, window_size=ws).double().eval()
    make_linear_value_path(block)
    queries = torch.randn(1, height * width, dim, dtype=torch.float64)
    skip = torch.randn(1, height * width, dim, dtype=torch.float64)
    seen = capture_attention(block, lambda: block(queries, skip, height, width))
    out = block(queries, skip, height, width)
    raw, total = dense_lift(seen[block][:, 0], height, width, ws, 0)
    torch.testing.assert_close(out[0] - queries[0], raw @ block.normv(skip[0]), rtol=0, atol=1e-12)

    r = torch.rand(2, height, width, dtype=torch.float64)
    to_decoder, to_encoder = skip_attention_step(r, seen[block][:, 0][None].expand(2, -1, -1, -1), ws, 0.3)
    share, keys = dense_cross_step(raw, total, 0.3)
    torch.testing.assert_close(to_decoder.reshape(2, -1), r.reshape(2, -1) * share, rtol=0, atol=1e-12)
    torch.testing.assert_close(to_encoder.reshape(2, -1), r.reshape(2, -1) @ keys, rtol=0, atol=1e-12)


def test_skip_attention_step_by_hand() -> None:
    # 2x3 grid, window 2 -> padded 2x4: window 0 = tokens (0,0) (0,1) (1,0) (1,1); window 1 = (0,2) pad (1,2) pad.
    a0 = torch.tensor([[0.5, 0.5, 0.0, 0.0],
                       [0.0, 0.5, 0.0, 0.0],  # a row that lost half its mass to discarding: n = 0.75
                       [0.25, 0.25, 0.25, 0.25],
                       [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    a1 = torch.tensor([[0.5, 0.25, 0.25, 0.0],  # 0.25 on a padded key -> (2/3, 1/3) on tokens (0,2), (1,2)
                       [0.0, 0.0, 0.0, 0.0],  # padded query rows: anything, even empty
                       [0.0, 0.5, 0.5, 0.0],  # -> all on (1,2)
                       [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    relevance = torch.tensor([[[0.1, 0.2, 0.3], [0.1, 0.1, 0.2]]], dtype=torch.float64)
    to_decoder, to_encoder = skip_attention_step(relevance, torch.stack([a0, a1])[None], 2, 0.5)
    expected_decoder = [[0.05, 2 / 15, 0.15], [0.05, 0.05, 0.1]]
    expected_encoder = [[0.0375, 0.025 + 0.0125 + 1 / 15, 0.1], [0.0125, 0.0625, 0.15]]
    torch.testing.assert_close(to_decoder[0], torch.tensor(expected_decoder, dtype=torch.float64))
    torch.testing.assert_close(to_encoder[0], torch.tensor(expected_encoder, dtype=torch.float64))
    assert float(to_decoder.sum() + to_encoder.sum()) == pytest.approx(1.0, abs=1e-15)
    # w = 1: everything to the decoder.
    only_decoder, nothing = skip_attention_step(relevance, torch.stack([a0, a1])[None], 2, 1.0)
    torch.testing.assert_close(only_decoder, relevance)
    assert float(nothing.abs().max()) == 0.0


# ------------------------------------------------------------------ maps between grids


def test_patch_merging_children_from_module() -> None:
    height, width, channels = 5, 7, 2  # odd: the last row / column of coarse tokens have fewer real children
    merge = PatchMerging(channels).double()
    jac = torch.autograd.functional.jacobian(lambda x: merge(x, height, width),
                                             torch.randn(1, height * width, channels, dtype=torch.float64))
    depends = jac[0].abs().sum((1, 2, 4)) > 0  # (coarse tokens, fine tokens)
    coarse = (3, 4)
    assert depends.shape == (12, 35)
    for c in range(12):
        one_hot = torch.zeros(1, *coarse, dtype=torch.float64)
        one_hot.view(-1)[c] = 1.0
        spread = upsample_relevance(one_hot, (height, width)).reshape(-1)
        children = depends[c]
        assert torch.equal(spread > 0, children)
        torch.testing.assert_close(spread[children], torch.full((int(children.sum()),), 1 / int(children.sum()),
                                                               dtype=torch.float64))
    # e.g. the corner token (2, 3) has a single real child (4, 6); token (0, 0) has (0,0) (0,1) (1,0) (1,1).
    assert depends[11].nonzero().flatten().tolist() == [34]
    assert depends[0].nonzero().flatten().tolist() == [0, 1, 7, 8]


def test_patch_embedding_children_from_module() -> None:
    height, width = 10, 13  # padded to 12x16 by the embedding: 3x4 tokens
    embed = PatchEmbed(4, 3, 8).double()
    mix = torch.randn(1, 8, 1, 1, dtype=torch.float64)  # a generic combination of the channels: one row per token
    jac = torch.autograd.functional.jacobian(lambda x: (embed(x) * mix).sum(1),
                                             torch.randn(1, 3, height, width, dtype=torch.float64))
    depends = jac[0, :, :, 0].abs().sum(2).reshape(12, height * width) > 0
    for c in range(12):
        one_hot = torch.zeros(1, 3, 4, dtype=torch.float64)
        one_hot.view(-1)[c] = 1.0
        spread = upsample_relevance(one_hot, (height, width)).reshape(-1)
        assert torch.equal(spread > 0, depends[c])
        torch.testing.assert_close(spread[depends[c]], torch.full((int(depends[c].sum()),), 1 / int(depends[c].sum()),
                                                                  dtype=torch.float64))
    assert int(depends[0].sum()) == 16 and int(depends[11].sum()) == 2 * 1  # rows 8-9, column 12


def test_pixel_shuffle_parent_is_pooled() -> None:
    coarse, fine = (2, 3), (4, 6)
    shuffle = nn.PixelShuffle(2)
    for c in range(6):
        # a coarse token with all channels on lights up exactly the fine tokens made from it
        source = torch.zeros(1, 8, *coarse, dtype=torch.float64)
        source.view(1, 8, -1)[..., c] = 1.0
        children = (shuffle(source)[0].abs().sum(0) > 0).reshape(-1)
        assert int(children.sum()) == 4
        for f in children.nonzero().flatten().tolist():
            one_hot = torch.zeros(1, *fine, dtype=torch.float64)
            one_hot.view(-1)[f] = 1.0
            pooled = pool_relevance(one_hot, coarse).reshape(-1)
            assert pooled.nonzero().flatten().tolist() == [c] and float(pooled[c]) == 1.0
    r = torch.rand(2, *fine, dtype=torch.float64)
    torch.testing.assert_close(pool_relevance(r, coarse).sum((1, 2)), r.sum((1, 2)), rtol=0, atol=1e-14)
    assert float(pool_relevance(r, coarse)[1, 1, 2]) == pytest.approx(float(r[1, 2:4, 4:6].sum()), abs=1e-15)


# ------------------------------------------------------------------ end to end on nano07


@pytest.fixture(scope="module")
def nano_model() -> DepthModel:
    torch.manual_seed(0)
    return DepthModel(build_model(NANO), get_card(NANO)).eval()


def dense_pixelformer_rollout(model: DepthModel, images: Tensor, weights: Tensor, method: AttentionRollout) -> Tensor:
    """The definition of the module docstring, with every map a dense matrix over the real tokens."""
    net = model.net
    seen = capture_attention(net, lambda: model(images))
    height, width = images.shape[-2:]
    grids = [(ceil_div(height, 4 * 2**s), ceil_div(width, 4 * 2**s)) for s in range(4)]
    w = method.residual_weight
    results = []
    for b in range(images.shape[0]):
        def fused(block: nn.Module, b: int = b) -> Tensor:
            probs = seen[block].to(torch.float64)
            n_windows = probs.shape[0] // images.shape[0]
            return method.prepare(probs[b * n_windows:(b + 1) * n_windows])

        r = weights[b, 0].to(torch.float64).reshape(-1) @ dense_pool((height, width), grids[0])
        to_encoder = []
        for level, sam in enumerate(net.sams):
            block = sam.sam_block
            share, keys = dense_cross_step(*dense_lift(fused(block), *grids[level], block.window_size, 0), w)
            to_encoder.append(r @ keys)
            if level < 3:
                r = (r * share) @ dense_pool(grids[level], grids[level + 1])
            else:
                to_encoder[3] = to_encoder[3] + r * share
        r = to_encoder[3]
        for s in (3, 2, 1, 0):
            for block in reversed(list(net.backbone.layers[s].blocks)):
                r = r @ dense_self_step(*dense_lift(fused(block), *grids[s], block.window_size, block.shift_size), w)
            if s > 0:
                r = r @ dense_spread(grids[s], grids[s - 1]) + to_encoder[s - 1]
        r = r @ dense_spread(grids[0], (height, width))
        results.append((r / r.sum()).reshape(1, height, width))
    return torch.stack(results)


@pytest.mark.parametrize(("fusion", "discard", "w"), [("mean", 0.0, 0.5), ("max", 0.3, 0.25)])
def test_nano_rollout_equals_dense_recomputation(nano_model: DepthModel, fusion: str, discard: float,
                                                 w: float) -> None:
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        depth = nano_model(images)
    weights = target_weights(TargetSpec(kind="near", quantile=0.3), depth)
    method = AttentionRollout(head_fusion=fusion, discard_ratio=discard, residual_weight=w)
    maps = pixelformer_rollout(nano_model, images, weights, method)
    assert maps.shape == (2, 1, 64, 96) and maps.dtype == torch.float32
    assert float(maps.min()) >= 0.0
    torch.testing.assert_close(maps.double().sum((1, 2, 3)), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-6)
    expected = dense_pixelformer_rollout(nano_model, images, weights, method)
    assert float((maps.double() - expected).abs().max() / expected.abs().max()) < 1e-6
    assert float(maps.std()) > 0.1 * float(maps.mean())  # not a flat map


def box_weights(height: int, width: int, box: tuple[int, int, int, int], batch: int = 1) -> Tensor:
    top, left, bottom, right = box
    weights = torch.zeros(batch, 1, height, width)
    weights[..., top:bottom, left:right] = 1.0 / ((bottom - top) * (right - left))
    return weights


def test_identity_attention_keeps_relevance_under_the_box(nano_model: DepthModel,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Every attention forced to the identity: relevance of scale s stays on the cells of scale s under the box.
    for module in nano_model.modules():
        if isinstance(module, nn.Softmax):
            monkeypatch.setattr(module, "forward", lambda logits: torch.eye(logits.shape[-1]).expand_as(logits))
    height, width = 64, 96
    box = (4, 36, 24, 60)  # rows 4..23, columns 36..59: aligned to the 1/4 grid only
    weights = box_weights(height, width, box)
    w = 0.5
    maps = pixelformer_rollout(nano_model, torch.rand(1, 3, height, width), weights,
                               AttentionRollout(residual_weight=w))
    # By hand: sam_s keeps (1 - w) w^(s-1) on its encoder scale, sam4 also the PSP path's w^4; each scale's share is
    # the box mass pooled to that grid and spread back evenly over the pixels.
    shares = [(1 - w), (1 - w) * w, (1 - w) * w**2, (1 - w) * w**3 + w**4]
    expected = sum(share * upsample_relevance(pool_relevance(weights[:, 0].double(), (height // 2**(s + 2),
                                                                                        width // 2**(s + 2))),
                                              (height, width))
                   for s, share in enumerate(shares))
    torch.testing.assert_close(maps[:, 0].double(), expected, rtol=1e-6, atol=1e-9)
    # Inside the box: at least the sam1 share, spread evenly over the box's pixels.
    top, left, bottom, right = box
    assert float(maps[0, 0, top:bottom, left:right].min()) >= (1 - w) / 480 - 1e-7
    # Outside the 32-pixel cells the box touches (rows 0..31, columns 32..63): nothing.
    outside = maps.clone()
    outside[..., 0:32, 32:64] = 0
    assert float(outside.abs().max()) == 0.0


def test_residual_weight_one_is_the_box_at_the_coarsest_scale(nano_model: DepthModel) -> None:
    # w = 1 ignores every attention: all relevance reaches e4 through the decoder and the PSP path.
    height, width = 64, 96
    box = (32, 32, 64, 64)  # one 32x32 cell of the 1/32 grid
    maps = pixelformer_rollout(nano_model, torch.rand(1, 3, height, width), box_weights(height, width, box),
                               AttentionRollout(residual_weight=1.0))
    expected = box_weights(height, width, box)
    torch.testing.assert_close(maps, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_attention_rollout_attribute_on_nano07_synthindoor() -> None:
    model = load_depth_model(NANO)
    height, width = model.card.input_size
    images = torch.rand(1, 3, height, width)
    with torch.no_grad():
        depth = model(images)
    weights = target_weights(TargetSpec(kind="box", box=(0.25, 0.5, 0.5, 0.75)), depth)
    result = AttentionRollout().attribute(model, images, weights)
    maps = result.maps
    assert maps.shape == (1, 1, height, width) and torch.isfinite(maps).all()
    assert float(maps.min()) >= 0.0
    torch.testing.assert_close(maps.sum((1, 2, 3)), torch.ones(1), rtol=0, atol=1e-5)
    # windowed attention with the residual keeps most relevance near the box (48 rows x 64 columns)
    inside = maps[:, 0, 48:96, 128:192]
    assert float(inside.mean()) > 5 * float(maps.mean())
    # and build_method gives the same thing
    again = build_method("rollout").attribute(model, images, weights).maps
    torch.testing.assert_close(again, maps, rtol=0, atol=0)


# ------------------------------------------------------------------ gradient methods on PixelFormer


@pytest.mark.slow
def test_saliency_and_ig_run_on_pixelformer(nano_model: DepthModel) -> None:
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        depth = nano_model(images)
    weights = target_weights(TargetSpec(kind="near"), depth)
    target = TargetModel(nano_model)

    # the default Saliency is the signed gradient; abs=True is Captum's |gradient|
    saliency = build_method("saliency").attribute(nano_model, images, weights).maps
    unsigned = build_method("saliency", {"abs": True}).attribute(nano_model, images, weights).maps
    probe = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(target(probe, weights).sum(), probe)
    assert saliency.shape == (1, 3, 64, 96) and float(grad.abs().sum()) > 0
    torch.testing.assert_close(saliency, grad, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(unsigned, grad.abs(), rtol=1e-5, atol=1e-9)

    # IG with 4 Gauss-Legendre points from the black baseline, recomputed here from the path gradients
    result = build_method("ig", {"n_steps": 4}).attribute(nano_model, images, weights)
    nodes, node_weights = np.polynomial.legendre.leggauss(4)
    alphas = torch.tensor((nodes + 1) / 2, dtype=torch.float32).view(4, 1, 1, 1)
    path = (alphas * images).requires_grad_(True)  # baseline 0 + alpha * (x - 0)
    (path_grads,) = torch.autograd.grad(target(path, weights.expand(4, -1, -1, -1)).sum(), path)
    expected = images * (torch.tensor(node_weights / 2, dtype=torch.float32).view(4, 1, 1, 1) * path_grads).sum(0)
    assert result.maps.shape == (1, 3, 64, 96) and float(expected.abs().sum()) > 0
    torch.testing.assert_close(result.maps, expected, rtol=1e-4, atol=1e-7)
    # the reported convergence delta is the completeness error sum(attr) - (F(x) - F(baseline)); with random
    # weights the nano net is far from linear along the path, so 4 points do not make it small
    with torch.no_grad():
        gap = float(target(images, weights) - target(torch.zeros_like(images), weights))
    total = float(result.maps.sum())
    assert float(result.extras["convergence_delta"][0]) == pytest.approx(total - gap, abs=1e-5)


def test_auto_batch_is_capped_for_the_8gb_bound(monkeypatch: pytest.MonkeyPatch, nano_model: DepthModel) -> None:
    # PixelFormer-Large at 480x640 saves 3.7 GiB per IG path point (measured); on a 64 GiB machine a quarter of the
    # RAM would allow 4 points per pass (~14 GiB), the default CPU cap of 4 GiB allows 1 (peak RSS 4.6 GiB).
    from types import SimpleNamespace

    from depthxai.attribution import gradient as gradient_module

    per_sample = 3_996_602_544
    monkeypatch.setattr(gradient_module, "saved_activation_bytes", lambda *_args: per_sample)
    monkeypatch.setattr(gradient_module.psutil, "virtual_memory", lambda: SimpleNamespace(available=64 * 2**30))
    target = TargetModel(nano_model)
    image, weights = torch.rand(1, 3, 64, 96), torch.full((1, 1, 64, 96), 1 / (64 * 96))
    assert gradient_module.auto_internal_batch_size(target, image, weights, 32, max_bytes=None) == 4
    assert gradient_module.auto_internal_batch_size(target, image, weights, 32) == 1
    assert gradient_module.CPU_MAX_AUTOGRAD_BYTES == 4 * 2**30
    # a larger explicit budget is honoured: 3 points fit into 12 GiB -> 11 passes of ceil(32 / 11) = 3
    assert gradient_module.auto_internal_batch_size(target, image, weights, 32, max_bytes=12 * 2**30) == 3
