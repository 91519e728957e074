"""ROAD's noisy linear imputation against Quantus's implementation (the reference code of Rong et al. 2022)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthxai.attribution.base import seeded_generator
from depthxai.evaluation.imputation import linear_imputation, noisy_linear_imputation

quantus_perturb = pytest.importorskip("quantus.functions.perturb_func", reason="quantus is the reference here")


def _masks(shape: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    h, w = shape
    blocks = np.kron(rng.random((-(-h // 4), -(-w // 4))), np.ones((4, 4)))[:h, :w]
    border = np.zeros(shape, bool)
    border[0, :] = border[:, -1] = True
    return {"scattered 5%": rng.random(shape) < 0.05, "scattered 50%": rng.random(shape) < 0.5,
            "blocks 30%": blocks >= np.quantile(blocks, 0.7), "border": border}


@pytest.mark.parametrize("shape", [(12, 17), (32, 24)])
def test_equals_quantus_noisy_linear_imputation_without_noise(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((3, *shape))
    for name, mask in _masks(shape, rng).items():
        ours = linear_imputation(image, mask, (0.5, 0.5, 0.5))
        theirs = quantus_perturb.noisy_linear_imputation(image.copy(), np.flatnonzero(mask.ravel()), noise=0.0)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12, err_msg=name)
        assert np.array_equal(ours[:, ~mask], image[:, ~mask])  # kept pixels untouched


def test_groups_without_a_kept_neighbour_take_the_fallback() -> None:
    rng = np.random.default_rng(1)
    image = rng.random((3, 9, 9))
    everything = np.ones((9, 9), bool)
    np.testing.assert_array_equal(linear_imputation(image, everything, (0.1, 0.2, 0.3)),
                                  np.broadcast_to(np.array([0.1, 0.2, 0.3])[:, None, None], (3, 9, 9)))
    # a 7x7 removed block with its border kept: interpolated, and inside the kept pixels' range
    block = np.zeros((9, 9), bool)
    block[1:8, 1:8] = True
    filled = linear_imputation(image, block, (9.0, 9.0, 9.0))
    assert filled[:, block].max() <= image[:, ~block].max() and filled[:, block].min() >= image[:, ~block].min()
    assert linear_imputation(image, np.zeros((9, 9), bool), (0, 0, 0)).tolist() == image.tolist()


def test_noise_is_seeded_and_on_the_imputed_pixels_only() -> None:
    rng = np.random.default_rng(2)
    image = torch.from_numpy(rng.random((3, 20, 30))).float()
    removed = torch.from_numpy(rng.random((20, 30)) < 0.4)
    exact = torch.from_numpy(linear_imputation(image.double().numpy(), removed.numpy(), (0.5, 0.5, 0.5))).float()
    noisy = noisy_linear_imputation(image, removed, (0.5, 0.5, 0.5), 0.01, seeded_generator(7))
    again = noisy_linear_imputation(image, removed, (0.5, 0.5, 0.5), 0.01, seeded_generator(7))
    assert torch.equal(noisy, again) and noisy.dtype == image.dtype
    assert torch.equal(noisy[:, ~removed], image[:, ~removed])
    difference = (noisy - exact)[:, removed]
    assert float(difference.std()) == pytest.approx(0.01, rel=0.1) and abs(float(difference.mean())) < 0.002
