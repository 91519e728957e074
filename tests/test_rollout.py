"""Attention Rollout: the building blocks on hand-computed examples, and METER's rollout against an independent
dense re-computation (block-diagonal attention matrices and explicit replication matrices)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from depthxai.attribution.rollout import (
    AttentionRollout,
    discard_lowest,
    fuse_heads,
    pool_relevance,
    rollout_matrix,
    upsample_relevance,
    with_residual,
)
from depthxai.attribution.rollout.meter import meter_rollout
from depthxai.attribution.targets import TargetSpec, target_weights
from depthxai.models import build_model, get_card
from depthxai.models.wrapper import DepthModel

# Two layers, two heads, three tokens (rows: queries, columns: keys; every row sums to 1).
LAYER1 = torch.tensor([
    [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]],
    [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]],
], dtype=torch.float64)
LAYER2 = torch.tensor([
    [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]],
    [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
], dtype=torch.float64)


def test_head_fusion_by_hand() -> None:
    torch.testing.assert_close(fuse_heads(LAYER1, "mean"), torch.tensor(
        [[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(fuse_heads(LAYER1, "max"), torch.tensor(
        [[0.5, 0.5, 0.5], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(fuse_heads(LAYER1, "min"), torch.tensor(
        [[0.5, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]], dtype=torch.float64))
    with pytest.raises(ValueError, match="head fusion"):
        fuse_heads(LAYER1, "median")


def test_rollout_of_two_layers_by_hand() -> None:
    # mean fusion, then 0.5 I + 0.5 A (rows already sum to 1):
    #   layer 1 -> [[.75, .125, .125], [0, 1, 0], [.125, .125, .75]]
    #   layer 2 -> [[.75, .25, 0], [.25, .75, 0], [0, .25, .75]]
    # rollout = layer2_hat @ layer1_hat
    expected = torch.tensor([
        [0.5625, 0.34375, 0.09375],
        [0.1875, 0.78125, 0.03125],
        [0.09375, 0.34375, 0.5625],
    ], dtype=torch.float64)
    fused = [fuse_heads(LAYER1), fuse_heads(LAYER2)]
    torch.testing.assert_close(rollout_matrix(fused, 0.5), expected, rtol=0, atol=1e-15)
    # relevance 1 on output token 0 only flows back to row 0
    torch.testing.assert_close(torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64) @ rollout_matrix(fused),
                               expected[:1])
    # one layer is just its residual-mixed matrix; none is an error
    torch.testing.assert_close(rollout_matrix(fused[:1], 0.5), torch.tensor(
        [[0.75, 0.125, 0.125], [0.0, 1.0, 0.0], [0.125, 0.125, 0.75]], dtype=torch.float64))
    with pytest.raises(ValueError, match="at least one"):
        rollout_matrix([])
    # residual weight 1 gives the identity, 0 the plain product of attentions
    torch.testing.assert_close(rollout_matrix(fused, 1.0), torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(rollout_matrix(fused, 0.0), fused[1] @ fused[0])


def test_with_residual_renormalises_rows() -> None:
    # max fusion leaves rows summing to 1.5: 0.5 I + 0.5 max -> rows 1.25, 1, 1.25 -> divided by them
    mixed = with_residual(fuse_heads(LAYER1, "max"), 0.5)
    torch.testing.assert_close(mixed, torch.tensor(
        [[0.6, 0.2, 0.2], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]], dtype=torch.float64))
    # min fusion: 0.5 I + 0.5 min = diag(.75, 1, .75) -> the identity
    torch.testing.assert_close(with_residual(fuse_heads(LAYER1, "min"), 0.5), torch.eye(3, dtype=torch.float64))
    # residual weight 0.3 on a row-stochastic matrix needs no renormalisation
    torch.testing.assert_close(with_residual(fuse_heads(LAYER2), 0.3),
                               0.3 * torch.eye(3, dtype=torch.float64) + 0.7 * fuse_heads(LAYER2))


def test_discard_lowest_by_hand() -> None:
    fused = fuse_heads(LAYER1)  # [[.5, .25, .25], [0, 1, 0], [.25, .25, .5]]
    # ratio 0.34 of 3 columns -> the single smallest off-diagonal entry of each row; ties: the first one
    kept = discard_lowest(fused, 0.34)
    torch.testing.assert_close(kept, torch.tensor(
        [[0.5, 0.0, 0.25], [0.0, 1.0, 0.0], [0.0, 0.25, 0.5]], dtype=torch.float64))
    # then the residual: rows [.75, 0, .125] / .875 and [0, .125, .75] / .875
    torch.testing.assert_close(with_residual(kept, 0.5), torch.tensor(
        [[6 / 7, 0.0, 1 / 7], [0.0, 1.0, 0.0], [0.0, 1 / 7, 6 / 7]], dtype=torch.float64))
    assert torch.equal(discard_lowest(fused, 0.0), fused)
    assert torch.equal(discard_lowest(fused, 0.3), fused)  # floor(0.3 * 3) = 0 entries
    # the diagonal survives even where it is the smallest entry of its row (floor(0.5 * 4) = 2 others go)
    row = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    assert torch.equal(discard_lowest(row, 0.5), torch.tensor([[0.1, 0.0, 0.0, 0.4]], dtype=torch.float64))
    # ties among many equal entries: the first ones, in every row and batch element alike
    flat = torch.full((2, 6, 6), 0.1, dtype=torch.float64) + 0.4 * torch.eye(6, dtype=torch.float64)
    dropped = discard_lowest(flat, 0.5) == 0  # three per row
    for q in range(6):
        expected = [k for k in range(6) if k != q][:3]
        assert torch.nonzero(dropped[0, q]).flatten().tolist() == expected
    assert torch.equal(dropped[0], dropped[1])


def test_attention_rollout_prepare_fuses_then_discards() -> None:
    method = AttentionRollout(head_fusion="mean", discard_ratio=0.34)
    torch.testing.assert_close(method.prepare(LAYER1[None]), discard_lowest(fuse_heads(LAYER1), 0.34)[None])
    with pytest.raises(ValueError, match="head fusion"):
        AttentionRollout(head_fusion="sum")
    with pytest.raises(ValueError, match="discard_ratio"):
        AttentionRollout(discard_ratio=1.0)


# ---------------------------------------------------------------------------------------------------- grids


def children_matrix(coarse: int, fine: int) -> np.ndarray:
    """(coarse, fine) 0/1 matrix: fine index j belongs to coarse cell j // ceil(fine / coarse)."""
    factor = -(-fine // coarse)
    m = np.zeros((coarse, fine))
    for j in range(fine):
        m[j // factor, j] = 1.0
    return m


def test_pool_relevance_by_hand() -> None:
    pooled = pool_relevance(torch.ones(1, 5, 5, dtype=torch.float64), (3, 3))
    torch.testing.assert_close(pooled[0], torch.tensor([[4, 4, 2], [4, 4, 2], [2, 2, 1]], dtype=torch.float64))
    x = torch.arange(24, dtype=torch.float64).view(1, 4, 6)
    torch.testing.assert_close(pool_relevance(x, (2, 3))[0], torch.tensor(
        [[0 + 1 + 6 + 7, 2 + 3 + 8 + 9, 4 + 5 + 10 + 11], [12 + 13 + 18 + 19, 14 + 15 + 20 + 21, 16 + 17 + 22 + 23]],
        dtype=torch.float64))


@pytest.mark.parametrize(("coarse", "fine"), [((2, 3), (4, 6)), ((3, 3), (5, 5)), ((2, 4), (3, 7)),
                                              ((4, 6), (128, 192)), ((3, 2), (9, 3))])
def test_upsample_and_pool_preserve_mass_and_are_adjoint(coarse: tuple[int, int], fine: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(1)
    r = torch.rand((2, *coarse), generator=gen, dtype=torch.float64)
    x = torch.rand((2, *fine), generator=gen, dtype=torch.float64)
    up = upsample_relevance(r, fine)
    assert up.shape == (2, *fine)
    torch.testing.assert_close(up.sum(dim=(1, 2)), r.sum(dim=(1, 2)), rtol=1e-13, atol=0)
    torch.testing.assert_close(pool_relevance(x, coarse).sum(dim=(1, 2)), x.sum(dim=(1, 2)), rtol=1e-13, atol=0)
    torch.testing.assert_close(pool_relevance(up, coarse), r, rtol=1e-13, atol=0)  # pooling undoes upsampling
    # explicit matrices: pool = Ch x Cw summation, upsample = its transpose divided by the number of children
    ch, cw = children_matrix(coarse[0], fine[0]), children_matrix(coarse[1], fine[1])
    n_children = np.outer(ch.sum(1), cw.sum(1))
    for b in range(2):
        np.testing.assert_allclose(pool_relevance(x, coarse)[b].numpy(), ch @ x[b].numpy() @ cw.T, rtol=1e-13)
        np.testing.assert_allclose(up[b].numpy(), ch.T @ (r[b].numpy() / n_children) @ cw, rtol=1e-13)
        # adjoint: <pool x, r> = <x, upsample(n_children * r)>
        lhs = float((pool_relevance(x, coarse)[b] * r[b]).sum())
        rhs = float((x[b] * upsample_relevance((r * torch.from_numpy(n_children))[b : b + 1], fine)[0]).sum())
        assert lhs == pytest.approx(rhs, rel=1e-13)


def test_upsample_exact_factor_by_hand_and_invalid_grid() -> None:
    r = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=torch.float64)
    torch.testing.assert_close(upsample_relevance(r, (4, 4))[0], torch.tensor(
        [[0.25, 0.25, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 1.0, 1.0], [0.75, 0.75, 1.0, 1.0]],
        dtype=torch.float64))
    # 2x2 -> 3x3: the last row and column have one child per cell, so they keep their whole value there
    torch.testing.assert_close(upsample_relevance(r, (3, 3))[0], torch.tensor(
        [[0.25, 0.25, 1.0], [0.25, 0.25, 1.0], [1.5, 1.5, 4.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="ceil-downsampled"):
        upsample_relevance(torch.ones(1, 4, 4), (5, 5))  # factor 2 leaves the 4th coarse row without children


# ---------------------------------------------------------------------------------------------------- METER

INPUT = (128, 192)
#: METER's MobileViT grids for a 128x192 input (strides 8, 16, 32)
GRIDS = ((16, 24), (8, 12), (4, 6))


@pytest.fixture(scope="module")
def meter() -> DepthModel:
    torch.manual_seed(0)
    net = build_model("meter_xxs_nyu")
    # random BatchNorm statistics and larger query/key weights, so that the attention is far from uniform
    with torch.no_grad():
        for name, module in net.named_modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
            if name.endswith("to_qkv"):
                module.weight.mul_(6.0)
    return DepthModel(net, get_card("meter_xxs_nyu")).eval()


def meter_inputs() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(5)
    images = torch.rand((2, 3, *INPUT), generator=gen)
    depth = torch.rand((2, 1, *INPUT), generator=gen) + 1
    weights = torch.cat([target_weights(TargetSpec("near", 0.3), depth[:1]),
                         target_weights(TargetSpec("box", box=(0.1, 0.55, 0.4, 0.9)), depth[1:])])
    return images, weights


def captured_attention(model: DepthModel, images: Tensor) -> list[Tensor]:
    """The softmax outputs of METER's three transformers, found by type, in forward order: (B, 4, heads, N, N)."""
    out: list[Tensor] = []
    softmaxes = [m for m in model.net.modules() if isinstance(m, nn.Softmax)]
    assert len(softmaxes) == 3
    handles = [m.register_forward_hook(lambda _m, _i, o: out.append(o.detach().double())) for m in softmaxes]
    with torch.no_grad():
        model(images)
    for h in handles:
        h.remove()
    return out


def dense_block_matrix(attention: np.ndarray, grid: tuple[int, int], head_fusion: str, residual: float) -> np.ndarray:
    """(n, n) pixel-to-pixel matrix of one MobileViT block over its gh*gw feature pixels (row-major), block diagonal
    in the four 2x2-offset groups: token (p, i) is the pixel at row 2*(i // (gw/2)) + p // 2,
    column 2*(i % (gw/2)) + p % 2."""
    gh, gw = grid
    fused = {"mean": attention.mean(axis=1), "max": attention.max(axis=1)}[head_fusion]  # (4, N, N)
    n_tokens = fused.shape[-1]
    mixed = residual * np.eye(n_tokens) + (1 - residual) * fused
    mixed /= mixed.sum(axis=-1, keepdims=True)
    dense = np.zeros((gh * gw, gh * gw))
    for p in range(4):
        pi, pj = divmod(p, 2)
        pixels = [(2 * (i // (gw // 2)) + pi) * gw + 2 * (i % (gw // 2)) + pj for i in range(n_tokens)]
        dense[np.ix_(pixels, pixels)] = mixed[p]
    return dense


def replication_matrix(coarse: tuple[int, int], factor: int) -> np.ndarray:
    """(h*w, h*f*w*f): coarse pixel -> its f x f children, each getting 1/f^2."""
    return np.kron(children_matrix(coarse[0], coarse[0] * factor),
                   children_matrix(coarse[1], coarse[1] * factor)) / factor**2


def independent_rollout(model: DepthModel, images: Tensor, weights: Tensor, head_fusion: str,
                        residual: float) -> np.ndarray:
    attention = captured_attention(model, images)
    out = []
    for b in range(images.shape[0]):
        relevance = weights[b, 0].double().numpy().ravel()
        # readout: sum the target weights per token
        relevance = relevance @ (replication_matrix(GRIDS[2], 32).T * 32**2)
        for block in (2, 1, 0):
            relevance = relevance @ dense_block_matrix(attention[block][b].numpy(), GRIDS[block], head_fusion, residual)
            relevance = relevance @ replication_matrix(GRIDS[block], 2 if block > 0 else 8)
        out.append((relevance / relevance.sum()).reshape(INPUT))
    return np.stack(out)


@pytest.mark.parametrize(("head_fusion", "residual"), [("mean", 0.5), ("max", 0.3)])
def test_meter_rollout_matches_a_dense_recomputation(meter: DepthModel, head_fusion: str, residual: float) -> None:
    images, weights = meter_inputs()
    method = AttentionRollout(head_fusion=head_fusion, residual_weight=residual)
    maps = method.attribute(meter, images, weights).maps
    assert maps.shape == (2, 1, *INPUT) and maps.dtype == torch.float32
    assert bool((maps >= 0).all())
    torch.testing.assert_close(maps.sum(dim=(1, 2, 3)), torch.ones(2), rtol=0, atol=1e-6)
    expected = independent_rollout(meter, images, weights, head_fusion, residual)
    np.testing.assert_allclose(maps[:, 0].double().numpy(), expected, rtol=1e-5, atol=1e-9)
    # the attention matters: the maps move well away from those without attention (residual weight 1)
    without = AttentionRollout(residual_weight=1.0).attribute(meter, images, weights).maps
    assert float((maps - without).abs().sum(dim=(1, 2, 3)).min()) > 0.05
    # hooks are removed afterwards, and each image's map is independent of its batch
    assert all(not m._forward_hooks for m in meter.net.modules() if isinstance(m, nn.Softmax))
    alone = method.attribute(meter, images[1:], weights[1:]).maps
    torch.testing.assert_close(alone[0], maps[1], rtol=1e-5, atol=1e-10)


def test_meter_rollout_without_attention_stays_under_the_box(meter: DepthModel) -> None:
    images, _ = meter_inputs()
    images = images[:1]
    identity = AttentionRollout(residual_weight=1.0)
    # a box aligned with the 32x32 token cells of the last block: the relevance is the target itself
    aligned = target_weights(TargetSpec("box", box=(0.0, 0.0, 0.5, 1 / 3)), torch.ones(1, 1, *INPUT))
    maps = identity.attribute(meter, images, aligned).maps
    torch.testing.assert_close(maps, aligned, rtol=1e-5, atol=1e-10)
    # an unaligned box in a corner (rows 0:26, columns 0:38): relevance stays in the two 32x32 cells the box
    # touches, with the box's share of each (32/38 and 6/38 of its columns) spread evenly over the cell
    corner = target_weights(TargetSpec("box", box=(0.0, 0.0, 0.2, 0.2)), torch.ones(1, 1, *INPUT))
    assert int((corner > 0).sum()) == 26 * 38
    maps = identity.attribute(meter, images, corner).maps[0, 0]
    cells = torch.zeros(INPUT, dtype=torch.bool)
    cells[:32, :64] = True
    assert bool((maps[~cells] == 0).all())
    torch.testing.assert_close(maps[:32, :32], torch.full((32, 32), 32 / 38 / 1024), rtol=1e-5, atol=0)
    torch.testing.assert_close(maps[:32, 32:64], torch.full((32, 32), 6 / 38 / 1024), rtol=1e-5, atol=0)
    # with attention, relevance leaves the box's cells
    spread = AttentionRollout().attribute(meter, images, corner).maps[0, 0]
    assert float(spread[~cells].sum()) > 0.1


def test_meter_rollout_with_attention_forced_to_identity(meter: DepthModel, monkeypatch: pytest.MonkeyPatch) -> None:
    # attention that attends to itself only (whatever the residual weight) keeps the relevance under the box too
    images, _ = meter_inputs()
    corner = target_weights(TargetSpec("box", box=(0.75, 2 / 3, 1.0, 1.0)), torch.ones(1, 1, *INPUT))  # 2 token cells

    def self_attention(_self: AttentionRollout, attention: Tensor) -> Tensor:
        n = attention.shape[-1]
        return torch.eye(n, dtype=attention.dtype).expand(*attention.shape[:-3], n, n)

    monkeypatch.setattr(AttentionRollout, "prepare", self_attention)
    maps = meter_rollout(meter, images[:1], corner, AttentionRollout(residual_weight=0.2))
    torch.testing.assert_close(maps, corner, rtol=1e-5, atol=1e-10)
