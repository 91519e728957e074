"""Our fast evaluation and attribution paths against their peers: the deletion curves against Quantus'
PixelFlipping, Infidelity and IG's convergence delta against Captum, the lean curve metrics against the full depth
metrics; and that nothing is computed twice (each perturbed copy once, the IG batch probe once per input shape)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients as CaptumIG
from captum.metrics import infidelity as captum_infidelity
from torch import Tensor, nn

from depthxai.attribution import IntegratedGradients, TargetModel
from depthxai.attribution import gradient as gradient_module
from depthxai.attribution.base import seeded_generator
from depthxai.evaluation.infidelity import infidelity
from depthxai.evaluation.perturbation import GroundTruth, PerturbationConfig, perturbation_curves, rmse_absrel
from depthxai.metrics.batched import batched_errors
from depthxai.models.registry import ModelCard
from depthxai.models.wrapper import DepthModel

H, W = 8, 9  # 72 pixels: Quantus' equal steps of 3 pixels (9 features) give the fractions k/24


class ConvPoolNet(nn.Module):
    """3x3 conv, tanh, 2x2 average pool, 1x1 conv, softplus: metres at half resolution (a real resize follows)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.head = nn.Conv2d(2, 1, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def forward(self, x: Tensor) -> Tensor:
        return 1.0 + F.softplus(self.head(F.avg_pool2d(torch.tanh(self.conv(x)), 2)))


def toy_model(max_depth: float = 10.0) -> DepthModel:
    card = ModelCard(name="toy_test_synthindoor", arch="toy", variant="test", dataset="synthindoor", input_size=(H, W),
                     imagenet_norm=False, output_unit_m=1.0, min_depth=1e-3, max_depth=max_depth,
                     builder="unused:unused")
    return DepthModel(ConvPoolNet(), card).eval()


def toy_inputs(n: int, seed: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand((n, 3, H, W), generator=gen)
    relevance = torch.randn((n, H, W), generator=gen)  # continuous: no ties, so every ranking agrees
    weights = torch.rand((n, 1, H, W), generator=gen)
    return images, relevance, weights / weights.sum(dim=(1, 2, 3), keepdim=True)


# ---------------------------------------------------------------------------------------------------- Quantus


class RmseToClean(nn.Module):
    """``(B, 3, H, W) -> (B, 1)``: RMSE of each clipped prediction against the clean prediction of its image."""

    def __init__(self, model: DepthModel, clean: Tensor) -> None:
        super().__init__()
        self.model, self.clean = model, clean

    def forward(self, x: Tensor) -> Tensor:
        depth = self.model(x)[:, 0].clamp(self.model.card.min_depth, self.model.card.max_depth).double()
        return (depth - self.clean.double()).square().mean(dim=(1, 2)).sqrt()[:, None]


@pytest.mark.parametrize("max_depth", [10.0, 1.6])  # 1.6: part of the prediction is clipped
def test_deletion_curves_equal_quantus_pixel_flipping(max_depth: float) -> None:
    import quantus  # a declared test dependency (pyproject's `test` extra): missing, the test fails rather than skips
    model = toy_model(max_depth)
    n = 3
    images, relevance, _ = toy_inputs(n)
    steps = 24
    config = PerturbationConfig(fractions=tuple(k / steps for k in range(steps + 1)), replacement="mean", batch_size=5)
    ours = [perturbation_curves(model, images[i], relevance[i], config, (0.0, 0.0, 0.0), seed=0) for i in range(n)]
    with torch.no_grad():
        clean = model(images)[:, 0].clamp(model.card.min_depth, max_depth)
    adapter = RmseToClean(model, clean).eval()
    # Quantus flips the features with the largest attribution first, in equal steps over the whole image: 9 features
    # (3 pixels x 3 channels, the map broadcast over them) per step; baseline 0 = our 'mean' replacement of colour 0.
    # Its default softmax over a (B, 1) output would make every value 1.0. LeRF: the reversed ranking.
    rankings = {"morf": relevance.abs(), "lerf": relevance.abs().amax() + 1.0 - relevance.abs()}
    for order, attribution in rankings.items():
        metric = quantus.PixelFlipping(features_in_step=3 * H * W // steps, abs=False, normalise=False,
                                       perturb_baseline=0.0, disable_warnings=True)
        theirs = np.asarray(metric(model=adapter, x_batch=images.numpy(), y_batch=np.zeros(n, dtype=int),
                                   a_batch=attribution[:, None].numpy(), softmax=False, batch_size=n,
                                   channel_first=True, device="cpu"))
        assert theirs.shape == (n, steps)
        for i in range(n):
            curve = ours[i][f"{order}_depth_rmse"]
            assert curve[0] == 0.0  # Quantus has no step 0: nothing removed
            np.testing.assert_allclose(curve[1:], theirs[i], rtol=2e-6, atol=1e-8, err_msg=f"{order} image {i}")
    for i in range(n):  # the curves are not trivially equal: the orders differ until everything is removed
        assert not np.allclose(ours[i]["morf_depth_rmse"][1:-1], ours[i]["lerf_depth_rmse"][1:-1])
        assert ours[i]["morf_depth_rmse"][-1] == ours[i]["lerf_depth_rmse"][-1]


# ---------------------------------------------------------------------------------------------------- Captum


def captum_reference_infidelity(model: DepthModel, image: Tensor, relevance: Tensor, weights: Tensor, n: int,
                                std: float, normalize: bool, seed: int, batch: int) -> float:
    """Captum's ``infidelity`` with per-pixel noise shared by the channels (drawn per chunk from a seeded CPU
    generator) and the pixel map spread over the 3 channels (``r / 3`` each, so ``I . Phi = sum_p I_p r_p``)."""
    generator = seeded_generator(seed)

    def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
        noise = std * torch.randn((inputs.shape[0], 1, H, W), generator=generator, dtype=inputs.dtype)
        noise = noise.expand_as(inputs)
        return noise, inputs - noise

    attribution = (relevance[None, None] / 3).expand(1, 3, H, W)
    with torch.no_grad():
        score = captum_infidelity(TargetModel(model), perturb, image[None], attribution,
                                  additional_forward_args=(weights[None],), n_perturb_samples=n,
                                  max_examples_per_batch=batch, normalize=normalize)
    return float(score[0])


@pytest.mark.parametrize(("normalize", "n", "batch"), [(True, 16, 16), (False, 16, 16), (True, 10, 4), (False, 7, 3)])
def test_infidelity_equals_captum(normalize: bool, n: int, batch: int) -> None:
    model = toy_model()
    images, relevance, weights = toy_inputs(2, seed=5)
    for i in range(2):
        expected = captum_reference_infidelity(model, images[i], relevance[i], weights[i], n, 0.1, normalize, 40 + i,
                                               batch)
        assert expected > 0
        computed = infidelity(model, images[i], relevance[i], weights[i], n_perturb_samples=n, noise_std=0.1,
                              normalize=normalize, seed=40 + i, max_batch=batch)
        assert computed == pytest.approx(expected, rel=2e-5)
        # the stored clean prediction (as the prediction stage writes it) gives the same score
        with torch.no_grad():
            native = model.native(images[i : i + 1])
        stored = infidelity(model, images[i], relevance[i], weights[i], n_perturb_samples=n, noise_std=0.1,
                            normalize=normalize, seed=40 + i, max_batch=batch, clean_native=native)
        assert stored == computed


def test_ig_convergence_delta_equals_captums() -> None:
    model = toy_model()
    images, _, weights = toy_inputs(2, seed=7)
    ours = IntegratedGradients(n_steps=3, method="riemann_left",
                               internal_batch_size=2).attribute(model, images, weights)
    maps, delta = CaptumIG(TargetModel(model)).attribute(images, baselines=torch.zeros_like(images),
                                                        additional_forward_args=(weights,), n_steps=3,
                                                        method="riemann_left", internal_batch_size=6,
                                                        return_convergence_delta=True)
    torch.testing.assert_close(ours.maps, maps, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.extras["convergence_delta"], delta.float(), rtol=0, atol=1e-6)
    assert float(delta.abs().min()) > 1e-3  # 3 left Riemann points on a non-linear net: a real delta


def test_auto_internal_batch_probe_runs_once_per_model_and_input_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    probe = gradient_module.saved_activation_bytes

    def counting(forward: nn.Module, image: Tensor, weights: Tensor) -> int:
        calls.append(tuple(image.shape))
        return probe(forward, image, weights)

    monkeypatch.setattr(gradient_module, "saved_activation_bytes", counting)
    model, other = toy_model(), toy_model()
    images, _, weights = toy_inputs(3, seed=2)
    ig = IntegratedGradients(n_steps=8, internal_batch_size="auto")
    first = ig.attribute(model, images[:1], weights[:1])
    for k in range(3):
        ig.attribute(model, images[k : k + 1], weights[k : k + 1])
    assert calls == [(1, 3, H, W)]
    ig.attribute(model, images[:2], weights[:2])  # a batch of images: the probe is per image, already known
    assert len(calls) == 1
    ig.attribute(other, images[:1], weights[:1])  # another model: probed anew
    assert len(calls) == 2
    small = F.interpolate(images[:1], size=(6, 6))
    ig.attribute(model, small, torch.full((1, 1, 6, 6), 1 / 36))  # another input shape: probed anew
    assert calls[-1] == (1, 3, 6, 6) and len(calls) == 3
    # the cached choice gives the same maps as the explicit batch size it stands for
    chosen = gradient_module.cached_internal_batch_size(model, images[:1], weights[:1], 8)
    explicit = IntegratedGradients(n_steps=8, internal_batch_size=chosen).attribute(model, images[:1], weights[:1])
    torch.testing.assert_close(first.maps, explicit.maps, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------- our shortcuts


def test_rmse_absrel_equals_the_full_depth_metrics() -> None:
    gen = torch.Generator().manual_seed(3)
    pred = torch.rand((5, 30, 40), generator=gen) * 4 + 0.5
    ref = torch.rand((30, 40), generator=gen) * 4 + 0.5
    mask = torch.zeros((30, 40), dtype=torch.bool)
    mask[4:25, 7:33] = torch.rand((21, 26), generator=gen) > 0.2
    ref_with_holes = torch.where(mask, ref, 0.0)  # no ground truth outside the mask: must not matter
    for m, r in ((mask, ref_with_holes), (None, ref)):
        rmse, abs_rel = rmse_absrel(pred, r, m)
        full = batched_errors(pred, ref, mask if m is not None else torch.ones_like(mask))
        assert rmse.dtype == abs_rel.dtype == torch.float64 and rmse.shape == (5,)
        torch.testing.assert_close(rmse, full["rmse"], rtol=1e-7, atol=0)
        torch.testing.assert_close(abs_rel, full["abs_rel"], rtol=1e-7, atol=0)
    with pytest.raises(ValueError, match="empty mask"):
        rmse_absrel(pred, ref, torch.zeros_like(mask))


class CountingModel(nn.Module):
    """Counts the images that go through the wrapped network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.images = net, 0

    def forward(self, x: Tensor) -> Tensor:
        self.images += x.shape[0]
        return self.net(x)


def test_each_distinct_perturbed_copy_runs_once() -> None:
    base = toy_model()
    counting = CountingModel(base.net)
    model = DepthModel(counting, base.card).eval()
    images, relevance, _ = toy_inputs(1, seed=4)
    fractions = (0.0, 0.25, 0.5, 1.0)  # 0: the clean prediction; 1.0: the same copy for MoRF and LeRF
    config = PerturbationConfig(fractions=fractions, replacement="mean", batch_size=3)
    with torch.no_grad():
        native = model.native(images)
    gen = torch.Generator().manual_seed(8)
    truth = GroundTruth(depth=torch.rand((16, 18), generator=gen) + 1, mask=torch.rand((16, 18), generator=gen) > 0.3)
    counting.images = 0
    curves = perturbation_curves(model, images[0], relevance[0], config, (0.3, 0.3, 0.3), 0, truth, clean_native=native)
    assert counting.images == 2 * 2 + 1  # 0.25 and 0.5 per order, 1.0 once
    counting.images = 0
    computed = perturbation_curves(model, images[0], relevance[0], config, (0.3, 0.3, 0.3), 0, truth)
    assert counting.images == 2 * 2 + 1 + 1  # and the clean prediction when it is not given
    for key in curves:  # other batch compositions: equal up to float32 rounding of the convolutions
        np.testing.assert_allclose(curves[key], computed[key], rtol=1e-6, atol=1e-9)
    # every curve against a one-copy-at-a-time computation
    for order in ("morf", "lerf"):
        for k, fraction in enumerate(fractions):
            ranked = torch.sort(relevance[0].abs().flatten(), descending=True, stable=True).indices
            ranked = ranked if order == "morf" else ranked.flip(0)
            removed = torch.zeros(H * W, dtype=torch.bool)
            removed[ranked[: round(fraction * H * W)]] = True
            copy = torch.where(removed.view(1, H, W), torch.full((3, 1, 1), 0.3), images[0])
            with torch.no_grad():
                depth = model(copy[None], out_size=(16, 18))[0, 0].clamp(1e-3, 10.0).double()
            gt = truth.depth.double()[truth.mask]
            expected = float(torch.sqrt(((depth[truth.mask] - gt) ** 2).mean()))
            assert curves[f"{order}_gt_rmse"][k] == pytest.approx(expected, rel=1e-6)
