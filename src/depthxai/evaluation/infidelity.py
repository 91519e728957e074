"""Infidelity (Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019), via Captum.

``INFD = E_I[(I^T Phi - (f(x) - f(x - I)))^2]`` with Gaussian perturbations ``I``. Our maps hold one relevance per
pixel, so the noise is drawn per pixel and shared by the colour channels (a pixel-level perturbation, matching
pixel-level relevance), and ``I^T Phi = sum_p I_p r_p``: Captum sums over the channels too, so ``Phi`` is the pixel
map broadcast over the ``C = 3`` channels divided by ``C`` (a plain broadcast would count every pixel 3 times).
With ``normalize=True`` (default) Captum rescales each map by the least-squares optimal factor first, so methods
whose maps live on different scales (|gradient| vs IG's path integral) are compared fairly. Lower is better.
"""

from __future__ import annotations

import torch
from captum.metrics import infidelity as captum_infidelity
from torch import Tensor

from depthxai.attribution.base import seeded_generator
from depthxai.attribution.targets import TargetModel
from depthxai.models.wrapper import DepthModel


@torch.no_grad()
def infidelity(model: DepthModel, image: Tensor, relevance: Tensor, weights: Tensor, *, n_perturb_samples: int = 16,
               noise_std: float = 0.05, normalize: bool = True, seed: int = 0, max_batch: int = 16) -> float:
    """Captum's infidelity of one pixel map for the scalar target ``sum(weights * depth)``.

    Args:
        model: depth model.
        image: ``(3, H, W)`` RGB in [0, 1].
        relevance: ``(H, W)`` per-pixel attribution.
        weights: ``(1, H, W)`` target weights.
        n_perturb_samples: Monte-Carlo samples of the perturbation.
        noise_std: standard deviation of the per-pixel Gaussian perturbation (RGB units).
        normalize: rescale the map optimally before scoring (Captum's ``normalize``).
        seed: seed of the perturbations (per image, so results do not depend on batching).
        max_batch: perturbed copies per forward pass.

    Returns:
        The infidelity (float64, >= 0).
    """
    generator = seeded_generator(seed)

    def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = inputs.shape
        noise = (noise_std * torch.randn((b, 1, h, w), generator=generator, dtype=inputs.dtype)).to(inputs.device)
        noise = noise.expand_as(inputs)
        return noise, inputs - noise

    channels = image.shape[0]
    # divided by C: Captum sums Phi * I over the channels as well, and I is shared by them (see the module docstring)
    attribution = (relevance[None, None] / channels).expand(1, channels, *relevance.shape).to(image.dtype)
    score = captum_infidelity(
        TargetModel(model),
        perturb,
        image[None],
        attribution,
        additional_forward_args=(weights[None],),
        n_perturb_samples=n_perturb_samples,
        max_examples_per_batch=max_batch,
        normalize=normalize,
    )
    return float(score[0])
