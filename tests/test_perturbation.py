"""Perturbation curves: rankings, deletion masks, replacements and whole curves against hand computations with a
model whose depth is a known pointwise function of the colour (depth = 1 + mean colour of the pixel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import Tensor, nn

from depthxai.evaluation.perturbation import (
    GroundTruth,
    PerturbationConfig,
    deletion_masks,
    normalised_auc,
    perturbation_curves,
    pixel_ranking,
    replacement_image,
)
from depthxai.imageops import gaussian_blur, gaussian_kernel1d
from depthxai.models.registry import ModelCard
from depthxai.models.wrapper import DepthModel

H, W = 4, 5
MEAN_RGB = (0.2, 0.4, 0.9)  # replaced pixels get depth 1 + 0.5


class OnePlusMeanColour(nn.Module):
    """``depth_p = 1 + mean_c x_cp`` (metres, at the input resolution)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        return 1.0 + self.scale * x.mean(dim=1, keepdim=True)


def pointwise_model(max_depth: float = 10.0) -> DepthModel:
    card = ModelCard(name="toy_test_synthindoor", arch="toy", variant="test", dataset="synthindoor", input_size=(H, W),
                     imagenet_norm=False, output_unit_m=1.0, min_depth=1e-3, max_depth=max_depth, builder="unused:unused")
    return DepthModel(OnePlusMeanColour(), card).eval()


def example(seed: int = 0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand((3, H, W), generator=gen)
    relevance = torch.randn((H, W), generator=gen)
    return image, relevance


def test_pixel_ranking_by_hand() -> None:
    relevance = torch.tensor([[0.1, -0.5, 0.3], [0.5, 0.0, 0.3]])
    assert pixel_ranking(relevance, "abs").tolist() == [1, 3, 2, 5, 0, 4]  # ties keep raster order
    assert pixel_ranking(relevance, "signed").tolist() == [3, 2, 5, 0, 4, 1]
    assert pixel_ranking(torch.zeros(2, 3)).tolist() == [0, 1, 2, 3, 4, 5]
    assert pixel_ranking(relevance).dtype == torch.int64


def test_deletion_masks_by_hand() -> None:
    order = torch.tensor([5, 2, 7, 0, 1, 6, 3, 4])
    fractions = [0.0, 0.25, 0.5, 0.75, 1.0]
    morf = deletion_masks(order, fractions, (2, 4), most_relevant_first=True)
    lerf = deletion_masks(order, fractions, (2, 4), most_relevant_first=False)
    assert morf.shape == (5, 2, 4) and morf.dtype == torch.bool
    for i, k in enumerate([0, 2, 4, 6, 8]):
        expected = torch.zeros(8, dtype=torch.bool)
        expected[order[:k]] = True
        assert torch.equal(morf[i].flatten(), expected)
        expected = torch.zeros(8, dtype=torch.bool)
        expected[order[8 - k :]] = True
        assert torch.equal(lerf[i].flatten(), expected)
    for masks in (morf, lerf):
        assert bool((masks[:-1] <= masks[1:]).all())  # nested


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.1, 0.3, 0.33, 0.5, 0.97])
def test_deletion_masks_remove_round_f_n_pixels(fraction: float) -> None:
    order = pixel_ranking(torch.randn(7, 9, generator=torch.Generator().manual_seed(2)))
    for morf in (True, False):
        mask = deletion_masks(order, [fraction], (7, 9), most_relevant_first=morf)[0]
        k = round(fraction * 63)
        assert int(mask.sum()) == k
        chosen = order[:k] if morf else order.flip(0)[:k]
        assert bool(mask.flatten()[chosen].all())


def expected_curves(image: Tensor, relevance: Tensor, fractions: list[float], ground_truth: tuple[np.ndarray, np.ndarray],
                    max_depth: float = 10.0) -> dict[str, np.ndarray]:
    """The curves computed by hand in numpy for :class:`OnePlusMeanColour` and the ``mean`` replacement."""
    x = image.double().numpy()
    clean = np.clip(1.0 + x.mean(axis=0), 1e-3, max_depth).ravel()
    replaced = np.clip(1.0 + np.mean(MEAN_RGB), 1e-3, max_depth)
    order = np.argsort(-np.abs(relevance.double().numpy().ravel()), kind="stable")
    gt, mask = ground_truth[0].ravel().astype(np.float64), ground_truth[1].ravel()
    out: dict[str, list[float]] = {}
    for name, ranked in (("morf", order), ("lerf", order[::-1])):
        for f in fractions:
            perturbed = clean.copy()
            perturbed[ranked[: round(f * H * W)]] = replaced
            out.setdefault(f"{name}_depth_rmse", []).append(np.sqrt(np.mean((perturbed - clean) ** 2)))
            out.setdefault(f"{name}_depth_absrel", []).append(np.mean(np.abs(clean - perturbed) / clean))
            out.setdefault(f"{name}_gt_absrel", []).append(np.mean(np.abs(gt[mask] - perturbed[mask]) / gt[mask]))
            out.setdefault(f"{name}_gt_rmse", []).append(np.sqrt(np.mean((gt[mask] - perturbed[mask]) ** 2)))
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.mark.parametrize("max_depth", [10.0, 1.45])
def test_perturbation_curves_by_hand(max_depth: float) -> None:
    image, relevance = example()
    gen = torch.Generator().manual_seed(9)
    gt = torch.rand((H, W), generator=gen) * 2 + 1
    mask = torch.rand((H, W), generator=gen) > 0.3
    fractions = (0.0, 0.1, 0.25, 0.5, 1.0)
    config = PerturbationConfig(fractions=fractions, replacement="mean", batch_size=4)
    curves = perturbation_curves(pointwise_model(max_depth), image, relevance, config, MEAN_RGB, seed=0,
                                 ground_truth=GroundTruth(depth=gt, mask=mask))
    expected = expected_curves(image, relevance, list(fractions), (gt.numpy(), mask.numpy()), max_depth)
    assert sorted(curves) == sorted(expected)
    for key, values in curves.items():
        assert values.dtype == np.float64 and values.shape == (len(fractions),)
        np.testing.assert_allclose(values, expected[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for order in ("morf", "lerf"):  # nothing removed -> exactly no change
        assert curves[f"{order}_depth_rmse"][0] == 0.0 and curves[f"{order}_depth_absrel"][0] == 0.0
    # everything removed: MoRF and LeRF agree
    np.testing.assert_allclose(curves["morf_depth_rmse"][-1], curves["lerf_depth_rmse"][-1], rtol=1e-12)
    assert curves["morf_depth_rmse"][1] != curves["lerf_depth_rmse"][1]


def test_perturbation_curves_do_not_depend_on_batching_or_the_clean_prediction_source() -> None:
    image, relevance = example(1)
    model = pointwise_model()
    results = []
    for batch_size in (1, 3, 16):
        config = PerturbationConfig(fractions=(0.0, 0.05, 0.2, 0.5), replacement="noise", batch_size=batch_size)
        results.append(perturbation_curves(model, image, relevance, config, MEAN_RGB, seed=4))
    clean = model.native(image[None]).detach()
    config = PerturbationConfig(fractions=(0.0, 0.05, 0.2, 0.5), replacement="noise", batch_size=2)
    results.append(perturbation_curves(model, image, relevance, config, MEAN_RGB, seed=4, clean_native=clean))
    for other in results[1:]:
        assert sorted(other) == ["lerf_depth_absrel", "lerf_depth_rmse", "morf_depth_absrel", "morf_depth_rmse"]
        for key in other:
            np.testing.assert_array_equal(other[key], results[0][key])
    # another seed draws other noise, hence other curves
    other_seed = perturbation_curves(model, image, relevance, config, MEAN_RGB, seed=5)
    assert not np.array_equal(other_seed["morf_depth_rmse"], results[0]["morf_depth_rmse"])


def test_signed_ranking_removes_the_most_positive_first() -> None:
    image, _ = example(2)
    relevance = torch.zeros(H, W)
    relevance[0, 0], relevance[1, 1] = 5.0, -9.0
    config = PerturbationConfig(fractions=(0.0, 0.05), ranking="signed")  # one pixel of 20
    curves = perturbation_curves(pointwise_model(), image, relevance, config, MEAN_RGB, seed=0)
    depth = 1.0 + image.double().mean(0)
    change = abs(float(depth[0, 0]) - 1.5)
    assert curves["morf_depth_rmse"][1] == pytest.approx(change / np.sqrt(H * W), abs=1e-7)
    abs_curves = perturbation_curves(pointwise_model(), image, relevance, PerturbationConfig(fractions=(0.0, 0.05)),
                                     MEAN_RGB, seed=0)
    change = abs(float(depth[1, 1]) - 1.5)
    assert abs_curves["morf_depth_rmse"][1] == pytest.approx(change / np.sqrt(H * W), abs=1e-7)


def test_replacements() -> None:
    gen = torch.Generator().manual_seed(3)
    image = torch.rand((3, 8, 8), generator=gen, dtype=torch.float64)
    mean = replacement_image(image, PerturbationConfig(replacement="mean"), MEAN_RGB, seed=0)
    torch.testing.assert_close(mean, torch.tensor(MEAN_RGB, dtype=torch.float64).view(3, 1, 1).expand(3, 8, 8))
    # blur: scipy's 'mirror' is torch's 'reflect' (radius 3 < 8); a radius >= the size falls back to 'nearest'
    blurred = replacement_image(image, PerturbationConfig(replacement="blur", blur_sigma=1.0), MEAN_RGB, seed=0)
    expected = ndimage.gaussian_filter(image.numpy(), sigma=(0, 1.0, 1.0), mode="mirror", truncate=3.0)
    np.testing.assert_allclose(blurred.numpy(), expected, rtol=1e-12, atol=1e-14)
    wide = replacement_image(image, PerturbationConfig(replacement="blur", blur_sigma=3.0), MEAN_RGB, seed=0)
    expected = ndimage.gaussian_filter(image.numpy(), sigma=(0, 3.0, 3.0), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(wide.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert gaussian_kernel1d(1.0).shape == (7,) and float(gaussian_kernel1d(0.2).sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(image[None], 0.0)
    # noise: the image plus N(0, std^2) drawn from the seed, clipped to [0, 1]
    config = PerturbationConfig(replacement="noise", noise_std=0.2)
    noisy = replacement_image(image, config, MEAN_RGB, seed=17)
    draw = torch.randn((3, 8, 8), generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    torch.testing.assert_close(noisy, (image + 0.2 * draw).clamp(0, 1))
    assert torch.equal(noisy, replacement_image(image, config, MEAN_RGB, seed=17))
    assert not torch.equal(noisy, replacement_image(image, config, MEAN_RGB, seed=18))
    grey = torch.full((3, 64, 64), 0.5, dtype=torch.float64)
    spread = replacement_image(grey, PerturbationConfig(replacement="noise", noise_std=0.05), MEAN_RGB, seed=1) - 0.5
    assert float(spread.std()) == pytest.approx(0.05, rel=0.05) and abs(float(spread.mean())) < 0.005


def test_normalised_auc() -> None:
    fractions = [0.0, 0.1, 0.3, 0.5]
    line = [2.0 + 3.0 * f for f in fractions]
    assert normalised_auc(np.asarray(line), fractions) == pytest.approx(2.0 + 3.0 * 0.25, rel=1e-12)
    assert normalised_auc(np.asarray(line[1:]), fractions[1:]) == pytest.approx(2.0 + 3.0 * 0.3, rel=1e-12)
    # trapezoids on a kink: (0 + 1) / 2 * 0.5 + (1 + 1) / 2 * 0.5 over a width of 1
    assert normalised_auc(np.asarray([0.0, 1.0, 1.0]), [0.0, 0.5, 1.0]) == pytest.approx(0.75, rel=1e-12)


def test_perturbation_config_validation() -> None:
    with pytest.raises(ValueError, match="increasing"):
        PerturbationConfig(fractions=(0.0, 0.5, 0.2))
    with pytest.raises(ValueError, match="increasing"):
        PerturbationConfig(fractions=(0.0, 1.5))
    with pytest.raises(ValueError, match="ranking"):
        PerturbationConfig(ranking="random")
    with pytest.raises(ValueError, match="replacement"):
        PerturbationConfig(replacement="zeros")


def test_fractions_that_remove_no_pixel_give_zero_curves() -> None:
    # 1% of 20 pixels rounds to 0: nothing to run through the model, with or without a stored clean prediction
    image, relevance = example()
    model = pointwise_model()
    config = PerturbationConfig(fractions=(0.0, 0.01))
    stored = model.native(image[None]).detach()
    for clean in (None, stored):
        curves = perturbation_curves(model, image, relevance, config, MEAN_RGB, seed=0, clean_native=clean)
        assert all(np.array_equal(v, [0.0, 0.0]) for v in curves.values())
