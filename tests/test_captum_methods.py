"""Captum primary methods by name: each against an independent computation on a tiny conv depth net (autograd,
a hand-written guided backward, direct ablations, exact Shapley values by enumeration), their seeding, flags and
one-line errors; then every listed method on a tiny random Depth Anything (transformers)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_nets import TinyDepthNet, build_tiny_depth_net
from torch import Tensor

from depthxai.attribution import TargetModel, build_method
from depthxai.attribution.base import seeded_generator
from depthxai.attribution.captum_methods import CaptumMethod, available_methods, grid_mask
from depthxai.errors import ConfigError
from depthxai.models.adapters import make_card
from depthxai.models.wrapper import DepthModel

SIZE = (24, 32)
#: the methods issue 16 names, with small settings where the defaults would take long on Depth Anything
LISTED = {
    "captum:InputXGradient": {},
    "captum:GuidedBackprop": {},
    "captum:DeepLift": {},
    "captum:GradientShap": {"n_samples": 4},
    "captum:Occlusion": {"window_fraction": 0.25, "stride_fraction": 0.25},
    "captum:FeatureAblation": {"grid": [4, 4]},
    "captum:NoiseTunnel(IntegratedGradients)": {"nt_samples": 2, "n_steps": 4},
}


@pytest.fixture(scope="module")
def conv() -> DepthModel:
    card = make_card("module:tiny_nets:build_tiny_depth_net", "module", "tiny", "tiny_nets:build_tiny_depth_net", {},
                     {"input_size": SIZE, "mean": (0.4, 0.45, 0.5), "std": (0.25, 0.25, 0.25), "output_unit_m": 0.5})
    return DepthModel(build_tiny_depth_net(width=8, seed=1), card).eval()


def inputs(batch: int = 2, seed: int = 0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand((batch, 3, *SIZE), generator=gen)
    weights = torch.rand((batch, 1, *SIZE), generator=gen)
    return images, weights / weights.sum(dim=(1, 2, 3), keepdim=True)


def target(model: DepthModel, images: Tensor, weights: Tensor) -> Tensor:
    with torch.no_grad():
        return TargetModel(model)(images, weights)


def gradient(model: DepthModel, images: Tensor, weights: Tensor) -> Tensor:
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(TargetModel(model)(x, weights).sum(), x)
    return grad


# ---------------------------------------------------------------------------------------------- against autograd


def test_gradient_methods_match_autograd(conv: DepthModel) -> None:
    images, weights = inputs()
    grad = gradient(conv, images, weights)
    torch.testing.assert_close(build_method("captum:Saliency").attribute(conv, images, weights).maps, grad.abs())
    signed = build_method("captum:Saliency", {"abs": False}).attribute(conv, images, weights).maps
    torch.testing.assert_close(signed, grad)
    input_x_gradient = build_method("captum:InputXGradient").attribute(conv, images, weights).maps
    torch.testing.assert_close(input_x_gradient, images * grad)


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients (guided: and positive inputs; deconvnet: any input)."""

    @staticmethod
    def forward(ctx, x: Tensor, guided: bool) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.guided = guided
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        out = grad.clamp_min(0)
        return (out * (x > 0) if ctx.guided else out), None


def manual_modified_gradient(model: DepthModel, images: Tensor, weights: Tensor, guided: bool) -> Tensor:
    """Springenberg et al. (2015) guided backprop / Zeiler & Fergus (2014) deconvnet, written out by hand."""
    net: TinyDepthNet = model.net  # type: ignore[assignment]
    x = images.clone().requires_grad_(True)
    h = (x - model.mean) / model.std
    h = _GuidedReLU.apply(net.stem(h), guided)
    h = _GuidedReLU.apply(net.body(h), guided)
    depth = F.softplus(net.head(h)) * model.card.output_unit_m
    depth = F.interpolate(depth, size=SIZE, mode="bilinear", align_corners=False)
    (grad,) = torch.autograd.grad((depth * weights).sum(), x)
    return grad


@pytest.mark.filterwarnings("ignore:Setting backward hooks")
def test_guided_backprop_and_deconvolution_match_a_hand_written_backward(conv: DepthModel) -> None:
    images, weights = inputs()
    for name, guided in (("captum:GuidedBackprop", True), ("captum:Deconvolution", False)):
        maps = build_method(name).attribute(conv, images, weights).maps
        expected = manual_modified_gradient(conv, images, weights, guided)
        torch.testing.assert_close(maps, expected)
        assert not torch.allclose(expected, gradient(conv, images, weights))  # the rule matters on this net


@pytest.mark.filterwarnings("ignore:Setting forward, backward hooks")
def test_deeplift_and_integrated_gradients_are_complete(conv: DepthModel) -> None:
    images, weights = inputs()
    difference = target(conv, images, weights) - target(conv, torch.zeros_like(images), weights)
    deeplift = build_method("captum:DeepLift").attribute(conv, images, weights)
    # the Rescale rule sums exactly to F(x) - F(baseline) (Shrikumar et al., 2017)
    torch.testing.assert_close(deeplift.maps.sum(dim=(1, 2, 3)), difference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(deeplift.extras["convergence_delta"], torch.zeros(2), rtol=0, atol=1e-5)
    ig = build_method("captum:IntegratedGradients").attribute(conv, images, weights)
    delta = ig.extras["convergence_delta"]
    torch.testing.assert_close(ig.maps.sum(dim=(1, 2, 3)) - difference, delta, rtol=1e-4, atol=1e-6)
    assert float(delta.abs().max()) < 1e-2 * float(difference.abs().min())


# ---------------------------------------------------------------------------------------------- perturbation


def ablated(model: DepthModel, image: Tensor, weights: Tensor, region: Tensor) -> float:
    """The target with the pixels of ``region`` (H, W bool) set to black."""
    return float(target(model, image * ~region, weights)[0])


def test_occlusion_and_feature_ablation_against_direct_ablations(conv: DepthModel) -> None:
    images, weights = inputs(1)
    clean = float(target(conv, images, weights)[0])
    # default windows: 1/8 of each side (ceil), stride 1/16 (floor), the three channels together
    occlusion = CaptumMethod("captum:Occlusion")
    kwargs = occlusion._input_kwargs(images, None)
    assert (kwargs["sliding_window_shapes"], kwargs["strides"]) == ((3, 3, 4), (3, 1, 2))
    # non-overlapping 6x8 windows: every pixel's value is the target's drop when its window is blacked out
    maps = CaptumMethod("captum:Occlusion", {"window_fraction": 0.25, "stride_fraction": 0.25}).attribute(
        conv, images, weights).maps[0]
    ablation = CaptumMethod("captum:FeatureAblation", {"grid": [3, 4]}).attribute(conv, images, weights).maps[0]
    for top, left in itertools.product(range(0, 24, 6), range(0, 32, 8)):
        region = torch.zeros(SIZE, dtype=torch.bool)
        region[top : top + 6, left : left + 8] = True
        expected = clean - ablated(conv, images, weights, region)
        torch.testing.assert_close(maps[:, region], torch.full((3, 48), expected), rtol=1e-4, atol=1e-7)
    for row, col in itertools.product(range(3), range(4)):  # grid [3, 4]: 8x8 cells
        region = torch.zeros(SIZE, dtype=torch.bool)
        region[8 * row : 8 * row + 8, 8 * col : 8 * col + 8] = True
        expected = clean - ablated(conv, images, weights, region)
        torch.testing.assert_close(ablation[:, region], torch.full((3, 64), expected), rtol=1e-4, atol=1e-7)


def test_grid_mask_by_hand() -> None:
    mask = grid_mask((5, 4), (2, 2), torch.device("cpu"))[0, 0]
    assert mask.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


def test_shapley_values_match_enumeration(conv: DepthModel) -> None:
    images, weights = inputs(1)
    cells = [grid_mask(SIZE, (2, 2), torch.device("cpu"))[0, 0] == k for k in range(4)]

    values: dict[tuple[int, ...], float] = {}

    def value(players: tuple[int, ...]) -> float:  # absent players (cells) take the black baseline
        if players not in values:
            absent = torch.ones(SIZE, dtype=torch.bool)
            for k in players:
                absent &= ~cells[k]
            values[players] = ablated(conv, images, weights, absent)
        return values[players]

    exact = []
    for k in range(4):
        others = [j for j in range(4) if j != k]
        total = 0.0
        for size in range(4):
            for subset in itertools.combinations(others, size):
                share = math.factorial(size) * math.factorial(3 - size) / math.factorial(4)
                total += share * (value(tuple(sorted((*subset, k)))) - value(subset))
        exact.append(total)
    maps = build_method("captum:ShapleyValues").attribute(conv, images, weights).maps[0]  # default grid 2x2
    got = [float(maps[0][cells[k]][0]) for k in range(4)]
    assert got == pytest.approx(exact, rel=1e-4, abs=1e-7)
    # sampled Shapley values are efficient for every sampled order: they sum to F(x) - F(baseline) exactly
    sampled = build_method("captum:ShapleyValueSampling", {"grid": [2, 2], "n_samples": 3}).attribute(
        conv, images, weights, seeds=[7]).maps[0]
    assert sum(float(sampled[0][cells[k]][0]) for k in range(4)) == pytest.approx(value((0, 1, 2, 3)) - value(()),
                                                                                    rel=1e-4)


# ---------------------------------------------------------------------------------------------- seeding and flags


@pytest.mark.filterwarnings("ignore:Setting forward, backward hooks")
@pytest.mark.parametrize(("name", "params"), [
    ("captum:GradientShap", {"n_samples": 4}), ("captum:NoiseTunnel(Saliency)", {"nt_samples": 3}),
    ("captum:KernelShap", {"n_samples": 12, "grid": [2, 2]}), ("captum:Lime", {"n_samples": 12, "grid": [2, 2]}),
    ("captum:DeepLiftShap", {"n_noise_baselines": 2})])
def test_stochastic_methods_are_seeded_per_image(conv: DepthModel, name: str, params: dict[str, object]) -> None:
    images, weights = inputs()
    method = build_method(name, params)
    assert method.stochastic  # type: ignore[attr-defined]
    state = torch.get_rng_state()
    first = method.attribute(conv, images, weights, seeds=[5, 6]).maps
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is untouched
    assert bool(torch.isfinite(first).all()) and first.shape == (2, 3, *SIZE)
    torch.testing.assert_close(method.attribute(conv, images, weights, seeds=[5, 6]).maps, first, rtol=0, atol=0)
    alone = method.attribute(conv, images[1:], weights[1:], seeds=[6]).maps  # independent of the batch
    torch.testing.assert_close(alone[0], first[1], rtol=1e-5, atol=1e-8)
    other = method.attribute(conv, images, weights, seeds=[8, 6]).maps
    assert not torch.allclose(other[0], first[0])
    with pytest.raises(ValueError, match="one seed per image"):
        method.attribute(conv, images, weights)


def test_baselines_black_and_noise_come_from_the_image_seed(conv: DepthModel) -> None:
    images, _ = inputs(1)
    baselines = CaptumMethod("captum:GradientShap", {"n_noise_baselines": 3})._baselines(images, 11)
    assert baselines.shape == (4, 3, *SIZE) and not bool(baselines[0].any())
    torch.testing.assert_close(baselines[1:], torch.rand((3, 3, *SIZE), generator=seeded_generator(11)))
    grey = CaptumMethod("captum:IntegratedGradients", {"baselines": 0.5})
    assert not grey.stochastic and bool((grey._baselines(images, None) == 0.5).all())
    assert CaptumMethod("captum:IntegratedGradients", {"baselines": "noise"}).stochastic


def test_noise_tunnel_routes_arguments_to_the_inner_method(conv: DepthModel) -> None:
    images, weights = inputs()
    # no noise and one sample: SmoothGrad over IG is IG with the inner method's own arguments (n_steps)
    tunnel = build_method("captum:NoiseTunnel(IntegratedGradients)", {"stdevs": 0.0, "nt_samples": 1, "n_steps": 8})
    plain = build_method("captum:IntegratedGradients", {"n_steps": 8})
    torch.testing.assert_close(tunnel.attribute(conv, images, weights, seeds=[1, 2]).maps,
                               plain.attribute(conv, images, weights).maps)
    noisy = build_method("captum:NoiseTunnel(IntegratedGradients)", {"n_steps": 8, "nt_samples": 2})
    assert not torch.allclose(noisy.attribute(conv, images, weights, seeds=[1, 2]).maps,
                              plain.attribute(conv, images, weights).maps)


def test_signed_and_stochastic_flags() -> None:
    flags = {name: (m.signed, m.stochastic) for name, m in (
        (n, CaptumMethod(n, p)) for n, p in [
            ("captum:Saliency", {}), ("captum:IntegratedGradients", {}), ("captum:InputXGradient", {}),
            ("captum:GuidedBackprop", {}), ("captum:DeepLift", {}), ("captum:GradientShap", {}),
            ("captum:Occlusion", {}), ("captum:FeatureAblation", {}), ("captum:NoiseTunnel(IntegratedGradients)", {}),
        ])}
    assert flags == {
        "captum:Saliency": (False, False), "captum:IntegratedGradients": (True, False),
        "captum:InputXGradient": (True, False), "captum:GuidedBackprop": (True, False),
        "captum:DeepLift": (True, False), "captum:GradientShap": (True, True), "captum:Occlusion": (True, False),
        "captum:FeatureAblation": (True, False), "captum:NoiseTunnel(IntegratedGradients)": (True, True)}
    assert CaptumMethod("captum:Saliency", {"abs": False}).signed
    assert not CaptumMethod("captum:NoiseTunnel(IntegratedGradients)", {"nt_type": "smoothgrad_sq"}).signed
    assert not CaptumMethod("captum:NoiseTunnel(Saliency)", {"nt_type": "vargrad"}).signed


# ---------------------------------------------------------------------------------------------- errors


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_errors_name_the_method_and_the_argument(conv: DepthModel) -> None:
    with pytest.raises(ConfigError, match="no primary method 'Smoothgrad'") as exc:
        build_method("captum:Smoothgrad")
    assert all(name in one_line(exc) for name in ("captum:Occlusion", "captum:NoiseTunnel(<"))
    assert "captum:Occlusion" in available_methods() and "captum:FeaturePermutation" not in available_methods()
    with pytest.raises(ConfigError, match="captum:GuidedGradCam: missing argument 'layer'") as exc:
        build_method("captum:GuidedGradCam")
    one_line(exc)
    with pytest.raises(ConfigError, match="unknown argument.* n_step; accepted: .*n_steps") as exc:
        build_method("captum:IntegratedGradients", {"n_step": 3})
    one_line(exc)
    with pytest.raises(ConfigError, match="additional_forward_args are set by depthxai"):
        build_method("captum:Saliency", {"additional_forward_args": ()})
    with pytest.raises(ConfigError, match="baseline distribution"):
        build_method("captum:IntegratedGradients", {"baselines": "black+noise"})
    with pytest.raises(ConfigError, match="depend on its batch"):
        build_method("captum:FeaturePermutation")
    with pytest.raises(ConfigError, match=r"spell it captum:NoiseTunnel\(<Method>\)"):
        build_method("captum:NoiseTunnel")
    with pytest.raises(ConfigError, match="only NoiseTunnel wraps"):
        build_method("captum:Saliency(InputXGradient)")
    with pytest.raises(ConfigError, match="captum:<Method>"):
        build_method("smoothgrad")
    images, weights = inputs(1)
    with pytest.raises(ConfigError, match="captum:LRP cannot explain model .*Softplus") as exc:  # no LRP rule
        build_method("captum:LRP").attribute(conv, images, weights)
    one_line(exc)
    with pytest.raises(ConfigError, match="has no submodule 'net.conv9'"):
        build_method("captum:GuidedGradCam", {"layer": "net.conv9"}).attribute(conv, images, weights)


@pytest.mark.filterwarnings("ignore:Setting backward hooks")
def test_guided_gradcam_with_a_layer_path(conv: DepthModel) -> None:
    images, weights = inputs()
    maps = build_method("captum:GuidedGradCam", {"layer": "net.body.0"}).attribute(conv, images, weights).maps
    assert maps.shape == (2, 3, *SIZE) and bool(torch.isfinite(maps).all()) and float(maps.abs().sum()) > 0


# ---------------------------------------------------------------------------------------------- Depth Anything


@pytest.fixture(scope="module")
def depth_anything(tmp_path_factory: pytest.TempPathFactory) -> DepthModel:
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from hf_fixtures import save_tiny_depth_anything

    from depthxai.models.adapters import load_any_depth_model

    folder: Path = save_tiny_depth_anything(tmp_path_factory.mktemp("hf") / "da")
    return load_any_depth_model(f"hf:{folder}")


@pytest.mark.filterwarnings("ignore:Setting backward hooks", "ignore:Setting forward, backward hooks")
@pytest.mark.parametrize("name", sorted(LISTED))
def test_every_listed_method_on_tiny_depth_anything(depth_anything: DepthModel, conv: DepthModel, name: str) -> None:
    method = build_method(name, LISTED[name])
    for model in (depth_anything, conv):
        h, w = model.card.input_size
        images = torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(2))
        weights = torch.full((1, 1, h, w), 1.0 / (h * w))
        maps = method.attribute(model, images, weights, seeds=[3]).maps
        assert maps.shape == (1, 3, h, w) and bool(torch.isfinite(maps).all()), name
        assert float(maps.abs().sum()) > 0, name
