"""Attribution Fidelity on constructed maps, and Infidelity against a direct implementation of Yeh et al.'s formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from depthxai.attribution import Saliency, TargetModel, reduce_channels
from depthxai.evaluation.fidelity import attribution_fidelity
from depthxai.evaluation.infidelity import infidelity
from depthxai.imageops import area_pool
from depthxai.models.registry import ModelCard
from depthxai.models.wrapper import DepthModel

# ---------------------------------------------------------------------------------------------------- fidelity

DEPTH = torch.tensor([[1.0, 2.5, 4.0], [3.0, 0.5, 6.0]], dtype=torch.float64)  # a (2, 3) "native" prediction


def upsampled(native: Tensor, factor: int) -> Tensor:
    return native.repeat_interleave(factor, 0).repeat_interleave(factor, 1)


@pytest.mark.parametrize("measure", ["pearson", "spearman"])
def test_fidelity_of_maps_equal_to_the_depth_up_to_an_affine_map(measure: str) -> None:
    # relevance at the input resolution (4x the native grid), an affine map of the depth: 1 after pooling
    relevance = upsampled(3.0 * DEPTH + 2.0, 4)
    assert attribution_fidelity(relevance, DEPTH, measure) == pytest.approx(1.0, abs=1e-12)
    # the magnitude is what counts: a negated map is as faithful
    assert attribution_fidelity(-relevance, DEPTH, measure) == pytest.approx(1.0, abs=1e-12)
    # anti-correlated: large relevance where the depth is small
    assert attribution_fidelity(upsampled(10.0 - DEPTH, 4), DEPTH, measure) == pytest.approx(-1.0, abs=1e-12)


def test_fidelity_pools_to_the_comparison_resolution() -> None:
    # within every 2x2 block the relevance varies randomly, but its block mean is the depth: pooled, it IS the depth
    noise = torch.rand((4, 6), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    noise -= upsampled(noise.view(2, 2, 3, 2).mean(dim=(1, 3)), 2)  # zero mean per block
    relevance = upsampled(DEPTH, 2) + noise + 1.0
    assert bool((relevance > 0).all())
    assert attribution_fidelity(relevance, DEPTH, "pearson") == pytest.approx(1.0, abs=1e-12)
    assert attribution_fidelity(relevance, DEPTH, "l1") == pytest.approx(1.0, abs=1e-12)
    # sampling one pixel per block instead of pooling would not give 1
    assert attribution_fidelity(relevance[::2, ::2], DEPTH, "l1") < 0.99
    # comparing at the input resolution: the within-block variation now counts against the map
    at_input = attribution_fidelity(relevance, upsampled(DEPTH, 2), "pearson")
    a, d = relevance.numpy().ravel(), upsampled(DEPTH, 2).numpy().ravel()
    assert at_input == pytest.approx(np.corrcoef(a, d)[0, 1], abs=1e-12) and at_input < 0.999


def test_area_pool_with_non_divisible_sizes() -> None:
    x = torch.arange(25, dtype=torch.float64).view(1, 1, 5, 5)
    # adaptive windows of 5 -> 2: rows/columns [0, 3) and [2, 5)
    expected = torch.tensor([[x[0, 0, 0:3, 0:3].mean(), x[0, 0, 0:3, 2:5].mean()],
                             [x[0, 0, 2:5, 0:3].mean(), x[0, 0, 2:5, 2:5].mean()]], dtype=torch.float64)
    torch.testing.assert_close(area_pool(x, (2, 2))[0, 0], expected)
    assert area_pool(x, (5, 5)) is x
    # fidelity uses it: a relevance whose overlapping window means equal the depth scores 1
    depth = expected.clone()
    assert attribution_fidelity(x[0, 0], depth, "pearson") == pytest.approx(1.0, abs=1e-12)


def test_fidelity_l1_by_hand() -> None:
    relevance = torch.tensor([[0.0, 1.0], [2.0, 4.0]])
    # min-max: relevance -> [0, .25, .5, 1]
    same = torch.tensor([[1.0, 2.0], [3.0, 5.0]])  # -> [0, .25, .5, 1]
    assert attribution_fidelity(relevance, same, "l1") == pytest.approx(1.0)
    reverse = torch.tensor([[5.0, 3.0], [2.0, 1.0]])  # -> [1, .5, .25, 0]: |diff| = [1, .25, .25, 1]
    assert attribution_fidelity(relevance, reverse, "l1") == pytest.approx(1.0 - 0.625)
    other = torch.tensor([[2.0, 1.0], [1.0, 2.0]])  # -> [1, 0, 0, 1]: |diff| = [1, .25, .5, 0]
    assert attribution_fidelity(relevance, other, "l1") == pytest.approx(1.0 - 0.4375)
    # pearson and spearman of the same pair, computed directly
    a, d = np.array([0, 0.25, 0.5, 1]), np.array([1.0, 0, 0, 1])
    assert attribution_fidelity(relevance, other, "pearson") == pytest.approx(np.corrcoef(a, d)[0, 1])
    ranks_a, ranks_d = np.array([1, 2, 3, 4]), np.array([3.5, 1.5, 1.5, 3.5])
    assert attribution_fidelity(relevance, other, "spearman") == pytest.approx(np.corrcoef(ranks_a, ranks_d)[0, 1])


def test_fidelity_of_constant_maps_is_nan() -> None:
    for measure in ("pearson", "spearman", "l1"):
        assert math.isnan(attribution_fidelity(torch.full((4, 6), 0.3), DEPTH, measure))
        assert math.isnan(attribution_fidelity(upsampled(DEPTH, 2), torch.ones(2, 3), measure))
        assert math.isnan(attribution_fidelity(torch.full((4, 6), float("nan")), DEPTH, measure))
    with pytest.raises(ValueError, match="fidelity measure"):
        attribution_fidelity(upsampled(DEPTH, 2), DEPTH, "kendall")


# ---------------------------------------------------------------------------------------------------- infidelity

H, W = 6, 7


def toy_card() -> ModelCard:
    return ModelCard(name="toy_test_synthindoor", arch="toy", variant="test", dataset="synthindoor", input_size=(H, W),
                     imagenet_norm=False, output_unit_m=1.0, min_depth=1e-3, max_depth=100.0, builder="unused:unused")


class ConvTanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen))
            self.conv.bias.fill_(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return 2.0 + torch.tanh(self.conv(x))


class PixelLinear(nn.Module):
    """``depth_p = 1 + sum_c lin_c x_cp``."""

    def __init__(self, lin: tuple[float, float, float]) -> None:
        super().__init__()
        self.lin = nn.Parameter(torch.tensor(lin).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return 1.0 + (self.lin * x).sum(dim=1, keepdim=True)


def inputs(seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand((3, H, W), generator=gen)
    relevance = torch.randn((H, W), generator=gen)
    weights = torch.rand((1, H, W), generator=gen)
    return image, relevance, weights / weights.sum()


def direct_infidelity(model: DepthModel, image: Tensor, relevance: Tensor, weights: Tensor, n: int, std: float,
                      normalize: bool, seed: int, batch: int) -> float:
    """Yeh et al.: E[(I . Phi - (f(x) - f(x - I)))^2] with per-pixel noise shared by the channels, I . Phi summed over
    pixels; with normalize, Phi is first scaled by beta = E[(I . Phi) dF] / E[(I . Phi)^2]. The noise is drawn as the
    package documents it: N(0, std^2) per pixel from a CPU generator seeded with ``seed``, ``batch`` samples
    per draw."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.cat([torch.randn((min(batch, n - i), 1, H, W), generator=gen) * std for i in range(0, n, batch)])
    target = TargetModel(model)
    with torch.no_grad():
        f_x = target(image[None], weights[None]).double()
        f_perturbed = target(image[None] - noise, weights[None].expand(n, -1, -1, -1)).double()
    d_f = (f_x - f_perturbed).numpy()
    i_phi = (noise[:, 0].double() * relevance.double()).sum(dim=(1, 2)).numpy()
    beta = float((i_phi * d_f).sum() / (i_phi**2).sum()) if normalize else 1.0
    return float(np.mean((beta * i_phi - d_f) ** 2))


@pytest.mark.parametrize(("normalize", "n", "batch"), [(False, 16, 16), (True, 16, 16), (False, 10, 4), (True, 10, 4)])
def test_infidelity_equals_the_direct_formula(normalize: bool, n: int, batch: int) -> None:
    model = DepthModel(ConvTanh(), toy_card()).eval()
    image, relevance, weights = inputs()
    score = infidelity(model, image, relevance, weights, n_perturb_samples=n, noise_std=0.1, normalize=normalize,
                       seed=21, max_batch=batch)
    expected = direct_infidelity(model, image, relevance, weights, n, 0.1, normalize, 21, batch)
    assert isinstance(score, float) and score > 0
    assert score == pytest.approx(expected, rel=1e-4)
    # seeded: same seed same score, another seed another one
    again = infidelity(model, image, relevance, weights, n_perturb_samples=n, noise_std=0.1, normalize=normalize,
                       seed=21, max_batch=batch)
    assert again == score
    other = infidelity(model, image, relevance, weights, n_perturb_samples=n, noise_std=0.1, normalize=normalize,
                       seed=22, max_batch=batch)
    assert other != score


def test_infidelity_of_a_perfect_attribution_of_a_linear_model_is_zero() -> None:
    # depth linear in the colour, noise shared by the channels of a pixel: f(x) - f(x - I) = sum_p I_p w_p sum_c lin_c,
    # so the channel-summed gradient (signed saliency, channel reduction 'sum') is exact for every I.
    model = DepthModel(PixelLinear((0.5, -1.5, 2.0)), toy_card()).eval()
    image, _, weights = inputs(1)
    maps = Saliency(abs=False).attribute(model, image[None], weights[None]).maps
    relevance = reduce_channels(maps, "sum")[0]
    torch.testing.assert_close(relevance, weights[0] * 1.0, rtol=1e-5, atol=1e-9)  # sum_c lin_c = 1
    raw = infidelity(model, image, relevance, weights, n_perturb_samples=16, noise_std=0.05, normalize=False, seed=0)
    scale = direct_infidelity(model, image, torch.zeros_like(relevance), weights, 16, 0.05, False, 0, 16)  # E[dF^2]
    assert scale > 0 and raw < 1e-6 * scale
    # a wrongly scaled map is penalised without normalisation and forgiven with it
    assert infidelity(model, image, 3 * relevance, weights, normalize=False) > 0.5 * scale
    normalised = infidelity(model, image, 3 * relevance, weights, normalize=True)
    assert normalised < 1e-6 * scale
    # a map on another region is not
    assert infidelity(model, image, relevance.flip(0, 1), weights, normalize=True) > 1e-3 * scale


class SignedPixelLinear(nn.Module):
    """``depth_p = 5 + s_p sum_c lin_c x_cp`` with a sign ``s_p`` that alternates over the pixels."""

    def __init__(self, lin: tuple[float, float, float]) -> None:
        super().__init__()
        self.lin = nn.Parameter(torch.tensor(lin).view(1, 3, 1, 1))
        sign = torch.ones(1, 1, H, W)
        sign[..., ::2, :] = -1.0
        self.register_buffer("sign", sign)

    def forward(self, x: Tensor) -> Tensor:
        return 5.0 + self.sign * (self.lin * x).sum(dim=1, keepdim=True)


def test_infidelity_needs_the_signed_map() -> None:
    """The issue's known answer: on a linear model, Infidelity of the signed gradient is 0, of |gradient| it is not,
    even after the optimal rescaling; |gradient| then scores like an unrelated map."""
    model = DepthModel(SignedPixelLinear((0.5, 1.5, 2.0)), toy_card()).eval()
    image, _, weights = inputs(2)
    signed = reduce_channels(Saliency().attribute(model, image[None], weights[None]).maps, "sum")[0]
    unsigned = reduce_channels(Saliency(abs=True).attribute(model, image[None], weights[None]).maps, "sum")[0]
    assert bool((signed < 0).any()) and bool((unsigned >= 0).all())
    scale = direct_infidelity(model, image, torch.zeros_like(signed), weights, 16, 0.05, False, 0, 16)
    assert infidelity(model, image, signed, weights, normalize=True) < 1e-6 * scale
    magnitude = infidelity(model, image, unsigned, weights, normalize=True)
    assert magnitude > 0.2 * scale
    unrelated = infidelity(model, image, torch.rand(H, W, generator=torch.Generator().manual_seed(1)), weights,
                           normalize=True)
    assert 0.2 < magnitude / unrelated < 5  # no better than noise, by the order of magnitude
