"""Attention Rollout over ViT encoders: a two-layer example computed by hand, an independent loop-by-loop
re-computation (CLS and register tokens, a patch grid that leaves pixels uncropped), the dispatch through
:class:`AttentionRollout`, and a tiny random Depth Anything (DINOv2) against its own attention."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from depthxai.attribution import AttentionRollout, TargetSpec, target_weights
from depthxai.attribution.rollout.vit import readout_vector, spread_to_pixels, vit_rollout_relevance
from depthxai.models.adapters import TokenLayout, make_card
from depthxai.models.adapters.module import ModuleDepthNet
from depthxai.models.wrapper import DepthModel

# Two layers, two heads, three tokens [CLS, patch 0, patch 1] (rows: queries; every row sums to 1).
LAYER1 = torch.tensor([
    [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]],
    [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]],
], dtype=torch.float64)
LAYER2 = torch.tensor([
    [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]],
    [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
], dtype=torch.float64)
#: one CLS token, a 1x2 grid of 2x2 patches: a 2x4 image
HAND = TokenLayout(prefix=1, grid=(1, 2), patch=(2, 2))
#: target weights: 1/4 on the left patch (columns 0-1), 3/4 on the right one
HAND_WEIGHTS = torch.tensor([[[[0.1, 0.05, 0.2, 0.1], [0.05, 0.05, 0.25, 0.2]]]], dtype=torch.float64)


def test_two_layers_by_hand() -> None:
    # mean over heads, then 0.5 I + 0.5 A:
    #   layer 1 -> [[.75, .125, .125], [0, 1, 0], [.125, .125, .75]]
    #   layer 2 -> [[.75, .25, 0], [.25, .75, 0], [0, .25, .75]]
    #   R = layer2 @ layer1 = [[.5625, .34375, .09375], [.1875, .78125, .03125], [.09375, .34375, .5625]]
    # readout [0, 1/4, 3/4] (CLS gets none): r = 1/4 R[1] + 3/4 R[2] = [.1171875, .453125, .4296875]
    # the CLS column (.1171875) is dropped: patches 29/64 and 55/128, renormalised -> 58/113 and 55/113,
    # each shared by its 4 pixels
    maps = vit_rollout_relevance([LAYER1[None], LAYER2[None]], HAND, HAND_WEIGHTS, AttentionRollout())
    left, right = Fraction(58, 113) / 4, Fraction(55, 113) / 4
    expected = torch.tensor([[float(left)] * 2 + [float(right)] * 2] * 2, dtype=torch.float64)
    torch.testing.assert_close(maps[0, 0], expected, rtol=1e-15, atol=0)
    # attention that never leaves a token: the relevance is the target pooled per patch
    eye = torch.eye(3, dtype=torch.float64).expand(1, 2, 3, 3)
    identity = vit_rollout_relevance([eye, eye], HAND, HAND_WEIGHTS, AttentionRollout())
    torch.testing.assert_close(identity[0, 0], torch.tensor([[1 / 16] * 2 + [3 / 16] * 2] * 2, dtype=torch.float64))


def test_readout_and_spread_by_hand() -> None:
    weights = torch.arange(50, dtype=torch.float64).view(1, 5, 10)
    # 5 rows onto 2: row i -> floor(2 i / 5) = 0, 0, 0, 1, 1; 10 columns onto 3: 0,0,0,0,1,1,1,2,2,2
    rows, cols = [0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    expected = torch.zeros(2, 3, dtype=torch.float64)
    for i in range(5):
        for j in range(10):
            expected[rows[i], cols[j]] += weights[0, i, j]
    torch.testing.assert_close(readout_vector(weights, (2, 3))[0], expected.flatten())
    # 2x3 patches of 2x3 pixels in a 5x10 image: the last row and column are cropped (relevance 0)
    relevance = torch.arange(1.0, 7.0, dtype=torch.float64)[None]
    spread = spread_to_pixels(relevance, TokenLayout(2, (2, 3), (2, 3)), (5, 10))
    assert spread.shape == (1, 5, 10) and float(spread.sum()) == pytest.approx(21.0)
    assert bool((spread[0, 4] == 0).all()) and bool((spread[0, :, 9] == 0).all())
    torch.testing.assert_close(spread[0, :2, 3:6], torch.full((2, 3), 2 / 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not fit"):
        spread_to_pixels(torch.ones(1, 6), TokenLayout(0, (2, 3), (3, 3)), (5, 10))


def independent_rollout(attentions: list[np.ndarray], layout: TokenLayout, weights: np.ndarray, fusion: str,
                        residual: float) -> np.ndarray:
    """Loop by loop: per image, fuse heads, mix with the identity, renormalise rows, multiply, read out, drop the
    prefix, renormalise, share each patch among its pixels."""
    (gh, gw), (ph, pw), p = layout.grid, layout.patch, layout.prefix
    batch, height, width = weights.shape
    out = np.zeros((batch, height, width))
    for b in range(batch):
        rolled = np.eye(layout.n_tokens)
        for attention in attentions:
            fused = attention[b].mean(axis=0) if fusion == "mean" else attention[b].max(axis=0)
            mixed = residual * np.eye(layout.n_tokens) + (1 - residual) * fused
            mixed = mixed / mixed.sum(axis=1, keepdims=True)
            rolled = mixed @ rolled
        readout = np.zeros(layout.n_tokens)
        for i in range(height):
            for j in range(width):
                readout[p + (i * gh // height) * gw + j * gw // width] += weights[b, i, j]
        tokens = (readout @ rolled)[p:]
        tokens = tokens / tokens.sum()
        for t, value in enumerate(tokens):
            r, c = divmod(t, gw)
            out[b, r * ph : (r + 1) * ph, c * pw : (c + 1) * pw] = value / (ph * pw)
    return out


@pytest.mark.parametrize(("fusion", "residual"), [("mean", 0.5), ("max", 0.3)])
def test_registers_and_cropped_pixels_against_a_loop(fusion: str, residual: float) -> None:
    layout = TokenLayout(prefix=2, grid=(2, 3), patch=(2, 3))  # CLS + one register; 5x10 leaves a row and a column
    gen = torch.Generator().manual_seed(3)
    attentions = [torch.softmax(4 * torch.randn((2, 3, 8, 8), generator=gen, dtype=torch.float64), dim=-1)
                  for _ in range(3)]
    weights = torch.rand((2, 1, 5, 10), generator=gen, dtype=torch.float64)
    weights = weights / weights.sum(dim=(1, 2, 3), keepdim=True)
    maps = vit_rollout_relevance(attentions, layout, weights, AttentionRollout(fusion, residual_weight=residual))
    expected = independent_rollout([a.numpy() for a in attentions], layout, weights[:, 0].numpy(), fusion, residual)
    np.testing.assert_allclose(maps[:, 0].numpy(), expected, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(maps.sum(dim=(1, 2, 3)), torch.ones(2, dtype=torch.float64))


class FakeViT(nn.Module):
    """A depth net that exposes fixed attention (the hand example), recording the pixels it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x.mean(dim=1, keepdim=True)

    def attentions(self, pixel_values: Tensor) -> tuple[list[Tensor], TokenLayout]:
        self.seen.append(pixel_values)
        b = pixel_values.shape[0]
        return [LAYER1.expand(b, -1, -1, -1), LAYER2.expand(b, -1, -1, -1)], HAND


def test_attention_rollout_dispatches_to_a_module_with_attention() -> None:
    card = make_card("module:fake:vit", "module", "vit", "fake:vit", {},
                     {"input_size": (2, 4), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    fake = FakeViT()
    model = DepthModel(ModuleDepthNet(fake, card.name), card).eval()
    images = torch.rand(1, 3, 2, 4)
    maps = AttentionRollout().attribute(model, images, HAND_WEIGHTS.float()).maps
    assert maps.dtype == torch.float32 and maps.shape == (1, 1, 2, 4)
    torch.testing.assert_close(maps[0, 0, 0], torch.tensor([58 / 452, 58 / 452, 55 / 452, 55 / 452]))
    torch.testing.assert_close(fake.seen[0], (images - 0.5) / 0.25)  # the network's own (normalised) input


# ---------------------------------------------------------------------------------------------- Depth Anything


@pytest.fixture(scope="module")
def depth_anything(tmp_path_factory: pytest.TempPathFactory) -> DepthModel:
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from hf_fixtures import save_tiny_depth_anything

    from depthxai.models.adapters import load_any_depth_model

    folder: Path = save_tiny_depth_anything(tmp_path_factory.mktemp("hf") / "da")
    return load_any_depth_model(f"hf:{folder}")


def captured_attention(model: DepthModel, images: Tensor) -> list[np.ndarray]:
    """DINOv2's attention read directly from transformers (eager set by hand on the backbone's config)."""
    backbone_config = model.net.model.backbone.config
    saved = backbone_config._attn_implementation
    backbone_config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            out = model.net.model(pixel_values=(images - model.mean) / model.std, output_attentions=True)
    finally:
        backbone_config._attn_implementation = saved
    return [a.double().numpy() for a in out.attentions]


def test_depth_anything_rollout_matches_its_own_attention(depth_anything: DepthModel) -> None:
    model = depth_anything
    gen = torch.Generator().manual_seed(8)
    images = torch.rand((2, 3, 56, 56), generator=gen)
    depth = torch.rand((2, 1, 56, 56), generator=gen) + 1
    weights = torch.cat([target_weights(TargetSpec("near", 0.3), depth[:1]),
                         target_weights(TargetSpec("box", box=(0.1, 0.5, 0.45, 0.9)), depth[1:])])
    attention = captured_attention(model, images)
    assert len(attention) == 2 and attention[0].shape == (2, 2, 17, 17)  # CLS + 4x4 patches of 14 pixels
    assert float(np.abs(attention[-1] - 1 / 17).max()) > 0.2  # far from uniform: the test can tell
    saved = model.net.model.backbone.config._attn_implementation
    maps = AttentionRollout(residual_weight=0.5).attribute(model, images, weights).maps
    assert model.net.model.backbone.config._attn_implementation == saved  # eager only for the rollout pass
    assert maps.shape == (2, 1, 56, 56) and maps.dtype == torch.float32 and bool((maps >= 0).all())
    torch.testing.assert_close(maps.sum(dim=(1, 2, 3)), torch.ones(2), rtol=0, atol=1e-6)
    layout = TokenLayout(1, (4, 4), (14, 14))
    expected = independent_rollout(attention, layout, weights[:, 0].double().numpy(), "mean", 0.5)
    np.testing.assert_allclose(maps[:, 0].double().numpy(), expected, rtol=1e-5, atol=1e-9)
    alone = AttentionRollout().attribute(model, images[1:], weights[1:]).maps
    torch.testing.assert_close(alone[0], maps[1], rtol=1e-5, atol=1e-9)
    # without attention (residual weight 1) a box on whole patches is its own relevance; with it, it spreads
    box = target_weights(TargetSpec("box", box=(0.0, 0.25, 0.5, 0.75)), torch.ones(1, 1, 56, 56))  # 2x2 patches
    torch.testing.assert_close(AttentionRollout(residual_weight=1.0).attribute(model, images[:1], box).maps, box)
    spread = AttentionRollout().attribute(model, images[:1], box).maps
    assert float(spread[box == 0].sum()) > 0.05
