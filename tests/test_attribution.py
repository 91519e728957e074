"""Targets, Saliency, Integrated Gradients and the random ranking against closed-form computations.

The models here are tiny stand-ins wrapped in a :class:`DepthModel` whose depth is a known function of the input
(a per-pixel polynomial of the colour), so gradients and path integrals are known analytically.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import Tensor, nn

from depthxai.attribution import (
    IntegratedGradients,
    RandomRanking,
    Saliency,
    TargetModel,
    TargetSpec,
    build_method,
    image_seed,
    reduce_channels,
    target_weights,
)
from depthxai.attribution import gradient as gradient_module
from depthxai.attribution.gradient import auto_internal_batch_size, saved_activation_bytes
from depthxai.attribution.rollout import AttentionRollout
from depthxai.errors import ConfigError
from depthxai.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelCard
from depthxai.models.wrapper import DepthModel

H, W = 6, 8


def toy_card(size: tuple[int, int] = (H, W), imagenet_norm: bool = False, unit: float = 1.0) -> ModelCard:
    return ModelCard(name="toy_test_synthindoor", arch="toy", variant="test", dataset="synthindoor", input_size=size,
                     imagenet_norm=imagenet_norm, output_unit_m=unit, min_depth=1e-3, max_depth=100.0,
                     builder="unused:unused")


class PixelPolynomial(nn.Module):
    """``depth_p = bias + sum_c (lin_c x_cp + quad_c x_cp^2)``: pointwise, so every pixel sees only itself."""

    def __init__(self, lin: tuple[float, float, float], quad: tuple[float, float, float], bias: float = 1.0) -> None:
        super().__init__()
        self.lin = nn.Parameter(torch.tensor(lin, dtype=torch.float64).view(1, 3, 1, 1))
        self.quad = nn.Parameter(torch.tensor(quad, dtype=torch.float64).view(1, 3, 1, 1))
        self.bias = bias

    def forward(self, x: Tensor) -> Tensor:
        return self.bias + (self.lin.to(x.dtype) * x + self.quad.to(x.dtype) * x**2).sum(dim=1, keepdim=True)


class SmallConvNet(nn.Module):
    """A nonlinear net with spatial mixing (3x3 conv, tanh, 1x1 conv, softplus), for batching invariances."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(7)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 1, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.softplus(self.conv2(torch.tanh(self.conv1(x)))) + 0.5


def poly_model(lin=(0.5, -1.0, 2.0), quad=(0.0, 0.0, 0.0), imagenet_norm=False, unit=1.0, dtype=torch.float64):
    return DepthModel(PixelPolynomial(lin, quad), toy_card(imagenet_norm=imagenet_norm, unit=unit)).to(dtype).eval()


def random_images(batch: int = 2, dtype: torch.dtype = torch.float64, seed: int = 3) -> Tensor:
    return torch.rand((batch, 3, H, W), generator=torch.Generator().manual_seed(seed), dtype=dtype)


def random_weights(batch: int = 2, dtype: torch.dtype = torch.float64, seed: int = 4) -> Tensor:
    w = torch.rand((batch, 1, H, W), generator=torch.Generator().manual_seed(seed), dtype=dtype) + 0.1
    return w / w.sum(dim=(1, 2, 3), keepdim=True)


def analytic_ig(x: Tensor, x0: Tensor, weights: Tensor, lin, quad, unit: float = 1.0) -> Tensor:
    """Integrated Gradients of ``sum_p w_p depth_p`` for :class:`PixelPolynomial`: the straight-line integral of
    ``w_p (lin_c + 2 quad_c x_cp(t))`` times ``(x - x0)`` is ``w_p (lin_c (x - x0) + quad_c (x^2 - x0^2))``."""
    lin_t = torch.tensor(lin, dtype=x.dtype).view(1, 3, 1, 1)
    quad_t = torch.tensor(quad, dtype=x.dtype).view(1, 3, 1, 1)
    return unit * weights * (lin_t * (x - x0) + quad_t * (x**2 - x0**2))


# ---------------------------------------------------------------------------------------------------- targets


def test_target_weights_mean_near_far_on_a_permutation() -> None:
    values = torch.tensor([[7, 3, 12, 16], [1, 9, 14, 5], [10, 2, 15, 8], [4, 13, 6, 11]], dtype=torch.float32)
    depth = values.view(1, 1, 4, 4)
    mean = target_weights(TargetSpec("mean"), depth)
    assert mean.dtype == torch.float32 and mean.shape == (1, 1, 4, 4)
    assert torch.equal(mean, torch.full((1, 1, 4, 4), 1 / 16))
    # quantile 0.25 of 1..16 (linear interpolation) is 4.75 -> the four nearest pixels 1, 2, 3, 4
    near = target_weights(TargetSpec("near", quantile=0.25), depth)[0, 0]
    assert torch.equal(near, torch.where(values <= 4, 0.25, 0.0))
    # quantile 0.75 is 12.25 -> the four farthest pixels 13..16
    far = target_weights(TargetSpec("far", quantile=0.25), depth)[0, 0]
    assert torch.equal(far, torch.where(values >= 13, 0.25, 0.0))
    # quantile 0.5 -> 8.5: eight pixels each
    near_half = target_weights(TargetSpec("near", quantile=0.5), depth)[0, 0]
    assert torch.equal(near_half, torch.where(values <= 8, 0.125, 0.0))


def test_target_weights_quantile_ties_take_every_tied_pixel() -> None:
    # six pixels share the smallest depth: the 25% quantile (position 3.75 of 16) is that depth, so all six
    # are "at or below" it and share the weight; likewise three pixels tie at the largest depth.
    values = torch.tensor([[1, 1, 1, 2], [1, 1, 3, 4], [5, 1, 6, 7], [9, 9, 9, 8]], dtype=torch.float32)
    depth = values.view(1, 1, 4, 4)
    near = target_weights(TargetSpec("near", quantile=0.25), depth)[0, 0]
    assert torch.allclose(near, torch.where(values == 1, 1 / 6, 0.0), atol=0, rtol=1e-6)
    far = target_weights(TargetSpec("far", quantile=0.1), depth)[0, 0]  # quantile 0.9 -> position 13.5 -> 9
    assert torch.allclose(far, torch.where(values == 9, 1 / 3, 0.0), atol=0, rtol=1e-6)
    constant = target_weights(TargetSpec("near"), torch.full((1, 1, 3, 3), 2.0))
    assert torch.allclose(constant, torch.full((1, 1, 3, 3), 1 / 9))


def test_target_weights_box_and_batch() -> None:
    depth = torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(0)) + 1
    box = target_weights(TargetSpec("box", box=(0.25, 0.5, 0.75, 1.0)), depth)
    expected = torch.zeros(2, 1, 8, 8)
    expected[:, :, 2:6, 4:8] = 1 / 16
    assert torch.equal(box, expected)
    # a box smaller than a pixel still covers one pixel (the one at its top-left corner)
    tiny = target_weights(TargetSpec("box", box=(0.5, 0.5, 0.55, 0.55)), depth)
    expected = torch.zeros(2, 1, 8, 8)
    expected[:, :, 4, 4] = 1.0
    assert torch.equal(tiny, expected)
    # near masks are per image
    near = target_weights(TargetSpec("near", quantile=0.25), depth)
    for b in range(2):
        flat = depth[b].flatten()
        chosen = flat <= torch.quantile(flat.double(), 0.25).float()
        assert torch.allclose(near[b].flatten(), chosen.float() / chosen.sum())
        assert float(near[b].sum()) == pytest.approx(1.0, abs=1e-6)


def test_target_spec_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="attribution.target.kind"):
        TargetSpec("median")
    with pytest.raises(ConfigError, match="attribution.target.box"):
        TargetSpec("box")
    with pytest.raises(ConfigError, match="attribution.target.box"):
        TargetSpec("box", box=(0.5, 0.0, 0.4, 1.0))
    spec = TargetSpec.from_config({"kind": "box", "box": [0, 0, 0.5, 0.5]})
    assert spec == TargetSpec("box", 0.25, (0, 0, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        target_weights(TargetSpec(), torch.ones(1, 4, 4))


def test_target_model_is_the_weighted_mean() -> None:
    model = poly_model(lin=(0.2, 0.3, -0.1), quad=(1.0, 0.0, 0.5), unit=0.01)
    x, weights = random_images(), random_weights()
    xn = x.numpy()
    depth = 0.01 * (1 + 0.2 * xn[:, 0] + 0.3 * xn[:, 1] - 0.1 * xn[:, 2] + xn[:, 0] ** 2 + 0.5 * xn[:, 2] ** 2)
    expected = (depth * weights.numpy()[:, 0]).sum(axis=(1, 2))
    out = TargetModel(model)(x, weights)
    assert out.shape == (2,)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="weights batch"):
        TargetModel(model)(x, weights[:1])


# ---------------------------------------------------------------------------------------------------- saliency


def test_saliency_equals_the_analytic_gradient() -> None:
    lin, quad = (0.5, -1.0, 2.0), (1.5, -0.5, 0.25)
    model = poly_model(lin, quad, unit=0.1)
    x, weights = random_images(), random_weights()
    lin_t, quad_t = torch.tensor(lin).view(1, 3, 1, 1).double(), torch.tensor(quad).view(1, 3, 1, 1).double()
    gradient = 0.1 * weights * (lin_t + 2 * quad_t * x)
    signed = Saliency(abs=False).attribute(model, x, weights).maps
    assert signed.shape == (2, 3, H, W)
    torch.testing.assert_close(signed, gradient, rtol=1e-12, atol=1e-15)
    assert Saliency().signed and not Saliency(abs=True).signed  # signed by default: Infidelity needs the sign
    torch.testing.assert_close(Saliency().attribute(model, x, weights).maps, gradient, rtol=1e-12, atol=1e-15)
    absolute = Saliency(abs=True).attribute(model, x, weights).maps
    torch.testing.assert_close(absolute, gradient.abs(), rtol=1e-12, atol=1e-15)
    assert bool((gradient < 0).any())  # the abs matters in this case


def test_saliency_goes_through_the_imagenet_normalisation() -> None:
    # depth = lin . ((x - mean) / std): the gradient with respect to the plain RGB is lin_c / std_c per pixel
    lin = (0.5, -1.0, 2.0)
    model = poly_model(lin, imagenet_norm=True, unit=0.01, dtype=torch.float32)
    x, weights = random_images(1, torch.float32), random_weights(1, torch.float32)
    maps = Saliency(abs=False).attribute(model, x, weights).maps
    expected = 0.01 * weights * (torch.tensor(lin) / torch.tensor(IMAGENET_STD)).view(1, 3, 1, 1)
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-9)
    # the normalisation's mean shifts the depth but not the gradient
    depth = model(x)
    manual = 1 + ((x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
                  * torch.tensor(lin).view(1, 3, 1, 1)).sum(1, keepdim=True)
    torch.testing.assert_close(depth, 0.01 * manual, rtol=1e-5, atol=1e-7)


def test_saliency_of_a_box_target_vanishes_outside_the_box() -> None:
    model = poly_model(quad=(1.0, 1.0, 1.0))
    x = random_images(1)
    weights = target_weights(TargetSpec("box", box=(0.0, 0.5, 0.5, 1.0)), torch.ones(1, 1, H, W)).double()
    maps = Saliency(abs=True).attribute(model, x, weights).maps[0]
    inside = torch.zeros(H, W, dtype=torch.bool)
    inside[0:3, 4:8] = True
    assert bool((maps[:, ~inside] == 0).all())
    assert bool((maps[:, inside] > 0).all())


# ---------------------------------------------------------------------------------------------------- IG


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle", "riemann_left"])
def test_ig_of_a_linear_model_is_input_minus_baseline_times_gradient(method: str) -> None:
    lin = (0.5, -1.0, 2.0)
    model = poly_model(lin, unit=0.01)
    x, weights = random_images(), random_weights()
    ig = IntegratedGradients(n_steps=5, method=method, baseline="mean", mean_rgb=(0.4, 0.5, 0.6),
                             internal_batch_size=5)
    result = ig.attribute(model, x, weights)
    x0 = torch.tensor([0.4, 0.5, 0.6], dtype=x.dtype).view(1, 3, 1, 1).expand_as(x)
    # Captum's step sizes and alphas are float32 numbers: agreement to ~1e-7 relative, not to float64 precision
    torch.testing.assert_close(result.maps, analytic_ig(x, x0, weights, lin, (0, 0, 0), 0.01), rtol=1e-6, atol=1e-12)
    assert result.extras["convergence_delta"].shape == (2,)
    assert float(result.extras["convergence_delta"].abs().max()) < 1e-7


def noise_baseline(seed: int, dtype: torch.dtype) -> Tensor:
    return torch.rand((3, H, W), generator=torch.Generator().manual_seed(seed), dtype=dtype)


def expected_baseline(name: str, x: Tensor, seeds: list[int]) -> Tensor:
    """The four baselines, computed independently of the package."""
    if name == "black":
        return torch.zeros_like(x)
    if name == "mean":
        return torch.tensor([0.3, 0.6, 0.9], dtype=x.dtype).view(1, 3, 1, 1).expand_as(x)
    if name == "blur":
        # scipy's 'mirror' is torch's 'reflect'; truncate=3 gives the same radius ceil(3 sigma) for sigma = 1
        blurred = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, 1.0, 1.0), mode="mirror", truncate=3.0)
        return torch.from_numpy(blurred)
    return torch.stack([noise_baseline(s, x.dtype) for s in seeds])


@pytest.mark.parametrize("baseline", ["black", "mean", "blur", "noise"])
def test_ig_of_a_quadratic_model_is_analytic_and_complete(baseline: str) -> None:
    lin, quad = (0.5, -1.0, 2.0), (1.5, -0.5, 0.75)
    model = poly_model(lin, quad)
    x, weights = random_images(), random_weights()
    seeds = [11, 12]
    ig = IntegratedGradients(n_steps=32, baseline=baseline, mean_rgb=(0.3, 0.6, 0.9), blur_sigma=1.0,
                             internal_batch_size=8)
    x0 = expected_baseline(baseline, x, seeds)
    torch.testing.assert_close(ig.baselines(x, seeds), x0, rtol=1e-12, atol=1e-12)
    result = ig.attribute(model, x, weights, seeds=seeds)
    torch.testing.assert_close(result.maps, analytic_ig(x, x0, weights, lin, quad), rtol=1e-6, atol=1e-12)
    # completeness: the attributions add up to F(x) - F(x0), and the reported delta is that difference
    target = TargetModel(model)
    gap = (target(x, weights) - target(x0, weights)).detach()
    totals = result.maps.sum(dim=(1, 2, 3))
    torch.testing.assert_close(totals, gap, rtol=1e-6, atol=1e-12)
    delta = result.extras["convergence_delta"]
    assert delta.dtype == torch.float32 and float(delta.abs().max()) < 1e-6
    torch.testing.assert_close(delta.double(), totals - gap, rtol=0, atol=1e-9)


def test_ig_noise_baseline_is_seeded_per_image() -> None:
    ig = IntegratedGradients(baseline="noise")
    assert ig.stochastic and not IntegratedGradients(baseline="black").stochastic
    x = random_images(2, torch.float32)
    a = ig.baselines(x, [1, 2])
    assert torch.equal(a, ig.baselines(x, [1, 2]))
    assert torch.equal(a[1], ig.baselines(x[1:], [2])[0])  # independent of the other images
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[0], ig.baselines(x[:1], [3])[0])
    assert float(a.min()) >= 0.0 and float(a.max()) < 1.0
    with pytest.raises(ValueError, match="one seed per image"):
        ig.baselines(x, [1])


def test_ig_completeness_on_a_nonlinear_net() -> None:
    model = DepthModel(SmallConvNet(), toy_card()).eval()
    x, weights = random_images(2, torch.float32), random_weights(2, torch.float32)
    result = IntegratedGradients(n_steps=32, internal_batch_size=32).attribute(model, x, weights)
    target = TargetModel(model)
    gap = (target(x, weights) - target(torch.zeros_like(x), weights)).detach()
    totals = result.maps.sum(dim=(1, 2, 3))
    assert float(gap.abs().min()) > 1e-2  # a real path, not a trivial one
    torch.testing.assert_close(totals, gap, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(result.extras["convergence_delta"], totals - gap, rtol=0, atol=1e-5)


def test_ig_internal_batch_size_does_not_change_the_result() -> None:
    model = DepthModel(SmallConvNet(), toy_card()).eval()
    x, weights = random_images(2, torch.float32), random_weights(2, torch.float32)
    results = {batch: IntegratedGradients(n_steps=32, internal_batch_size=batch).attribute(model, x, weights)
               for batch in (1, 5, "auto", 32)}
    reference = results[32]
    for batch, result in results.items():
        torch.testing.assert_close(result.maps, reference.maps, rtol=1e-5, atol=1e-7, msg=f"batch {batch}")
        torch.testing.assert_close(result.extras["convergence_delta"], reference.extras["convergence_delta"],
                                   rtol=0, atol=1e-6)
    # and an image's maps do not depend on the other images of the call
    alone = IntegratedGradients(n_steps=32, internal_batch_size=5).attribute(model, x[1:], weights[1:])
    torch.testing.assert_close(alone.maps[0], reference.maps[1], rtol=1e-5, atol=1e-7)


def test_auto_internal_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    model = DepthModel(SmallConvNet(), toy_card()).eval()
    target = TargetModel(model)
    image, weights = random_images(1, torch.float32), random_weights(1, torch.float32)
    per_sample = saved_activation_bytes(target, image, weights)
    # at least the input and the conv activations are saved; no parameter gradient is left behind
    assert per_sample >= image.numel() * 4
    assert all(p.grad is None for p in model.parameters())

    def with_available(n_bytes: int) -> None:
        monkeypatch.setattr(gradient_module.psutil, "virtual_memory", lambda: SimpleNamespace(available=n_bytes))

    with_available(10**12)  # plenty: the CPU cap of 16 rules; 32 steps -> 2 passes of 16
    assert auto_internal_batch_size(target, image, weights, 32) == gradient_module.CPU_MAX_BATCH == 16
    assert auto_internal_batch_size(target, image, weights, 20) == 10  # 2 even passes, not 16 + 4
    assert auto_internal_batch_size(target, image, weights, 7) == 7
    with_available(per_sample * 5 * 4)  # a quarter of it fits 5 samples -> 7 passes of ceil(32 / 7) = 5
    assert auto_internal_batch_size(target, image, weights, 32) == 5
    with_available(per_sample * 3)  # less than one sample fits -> 1
    assert auto_internal_batch_size(target, image, weights, 32) == 1
    with_available(10**12)  # plenty of RAM, but an absolute CPU budget of 3 samples -> 11 passes of 3
    assert auto_internal_batch_size(target, image, weights, 32, max_bytes=per_sample * 3) == 3
    assert auto_internal_batch_size(target, image, weights, 32, max_bytes=None) == 16
    for available in (per_sample * 2, per_sample * 9 * 4, per_sample * 13 * 4, 10**12):
        with_available(available)
        for n_steps in (1, 3, 17, 32, 50):
            batch = auto_internal_batch_size(target, image, weights, n_steps)
            passes = -(-n_steps // batch)
            assert 1 <= batch <= min(n_steps, 16)
            assert batch * passes >= n_steps and (batch - 1) * passes < n_steps  # passes as even as possible


# ---------------------------------------------------------------------------------------------------- random


def test_random_ranking_is_seeded_per_image() -> None:
    method = RandomRanking()
    x, weights = random_images(3, torch.float32), random_weights(3, torch.float32)
    maps = method.attribute(None, x, weights, seeds=[5, 6, 7]).maps  # type: ignore[arg-type]
    assert maps.shape == (3, 1, H, W)
    # uniform in [-1, 1]: signed (the Infidelity reference), and ranked by |r| a uniformly random order
    assert torch.equal(maps[1, 0], 2 * torch.rand((1, H, W), generator=torch.Generator().manual_seed(6))[0] - 1)
    assert method.signed and float(maps.min()) < 0 < float(maps.max())
    again = method.attribute(None, x[[2, 1]], weights[[2, 1]], seeds=[7, 6]).maps  # type: ignore[arg-type]
    assert torch.equal(again[0], maps[2]) and torch.equal(again[1], maps[1])
    assert not torch.equal(maps[0], maps[1])
    with pytest.raises(ValueError, match="one seed per image"):
        method.attribute(None, x, weights)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- plumbing


def test_reduce_channels_and_image_seed() -> None:
    maps = torch.tensor([[[[1.0]], [[-2.0]], [[0.5]]]])  # (1, 3, 1, 1)
    assert float(reduce_channels(maps, "sum")) == -0.5
    assert float(reduce_channels(maps, "abs_sum")) == 3.5
    with pytest.raises(ValueError, match="channel reduction"):
        reduce_channels(maps, "max")
    seed = image_seed(0, "00001", "ig")
    assert seed == image_seed(0, "00001", "ig") and 0 <= seed < 2**63
    assert len({seed, image_seed(1, "00001", "ig"), image_seed(0, "00002", "ig"),
                image_seed(0, "00001", "random")}) == 4


def test_build_method() -> None:
    assert isinstance(build_method("saliency", {"abs": False}), Saliency)
    ig = build_method("ig", {"n_steps": 8, "baseline": "mean"}, mean_rgb=[0.1, 0.2, 0.3])
    assert isinstance(ig, IntegratedGradients) and ig.n_steps == 8 and ig.mean_rgb == (0.1, 0.2, 0.3)
    rollout = build_method("rollout", {"head_fusion": "max", "discard_ratio": 0.5})
    assert isinstance(rollout, AttentionRollout) and rollout.head_fusion == "max"
    assert isinstance(build_method("random", {}), RandomRanking)
    with pytest.raises(ConfigError, match="methods.lime"):
        build_method("lime")
    with pytest.raises(ValueError, match="mean_rgb"):
        build_method("ig", {"baseline": "mean"})
    with pytest.raises(ValueError, match="baseline"):
        build_method("ig", {"baseline": "white"})
