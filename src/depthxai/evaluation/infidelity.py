"""Infidelity (Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019), Captum's formula.

``INFD = E_I[(I^T Phi - (f(x) - f(x - I)))^2]`` with Gaussian perturbations ``I``. Our maps hold one relevance per
pixel, so the noise is drawn per pixel and shared by the colour channels (a pixel-level perturbation, matching
pixel-level relevance), and ``I^T Phi = sum_p I_p r_p``. With ``normalize=True`` (default) the map is first
rescaled by the least-squares optimal factor ``beta = E[(I^T Phi) dF] / E[(I^T Phi)^2]``, as Captum's
``normalize`` does, so methods whose maps live on different scales (|gradient| vs IG's path integral) are compared
fairly. Lower is better.

The computation is Captum's ``captum.metrics.infidelity`` (same perturbations, same chunks of ``max_batch``
samples, same formula incl. ``normalize``; tests/test_infidelity_peers.py checks the equality) without its
overheads: Captum runs the unperturbed input through the model again for every chunk, while the prediction stage
has already stored it (``clean_native``); the sums are accumulated in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from depthxai.attribution.base import seeded_generator
from depthxai.attribution.targets import TargetModel
from depthxai.models.wrapper import DepthModel, resize_depth


@torch.no_grad()
def infidelity(model: DepthModel, image: Tensor, relevance: Tensor, weights: Tensor, *, n_perturb_samples: int = 16,
               noise_std: float = 0.05, normalize: bool = True, seed: int = 0, max_batch: int = 16,
               clean_native: Tensor | None = None) -> float:
    """Infidelity of one pixel map for the scalar target ``sum(weights * depth)``.

    Args:
        model: depth model.
        image: ``(3, H, W)`` RGB in [0, 1].
        relevance: ``(H, W)`` per-pixel attribution.
        weights: ``(1, H, W)`` target weights.
        n_perturb_samples: Monte-Carlo samples of the perturbation.
        noise_std: standard deviation of the per-pixel Gaussian perturbation (RGB units).
        normalize: rescale the map optimally before scoring (Captum's ``normalize``).
        seed: seed of the perturbations (per image, so results do not depend on batching): ``max_batch`` samples
            ``N(0, noise_std^2)`` of shape ``(b, 1, H, W)`` per draw from a CPU generator, as Captum calls the
            perturbation function once per chunk.
        max_batch: perturbed copies per forward pass (Captum's ``max_examples_per_batch``).
        clean_native: ``(1, 1, h, w)`` unperturbed prediction at the network's resolution (metres), as stored by
            the prediction stage; computed if not given.

    Returns:
        The infidelity (float, >= 0).
    """
    target = TargetModel(model)
    generator = seeded_generator(seed)
    h, w = relevance.shape
    phi = relevance.to(torch.float64)
    if clean_native is None:
        f_clean = target(image[None], weights[None])
    else:
        f_clean = (resize_depth(clean_native.to(image.device), (h, w)) * weights[None]).sum(dim=(1, 2, 3))
    f_clean = f_clean.to(torch.float64)
    sums = torch.zeros(3, dtype=torch.float64, device=image.device)  # sum a^2, sum a*b, sum b^2 (Captum's terms)
    squared_error = torch.zeros((), dtype=torch.float64, device=image.device)
    for start in range(0, n_perturb_samples, max_batch):
        b = min(max_batch, n_perturb_samples - start)
        noise = (noise_std * torch.randn((b, 1, h, w), generator=generator, dtype=image.dtype)).to(image.device)
        f_perturbed = target(image[None] - noise, weights[None].expand(b, -1, -1, -1)).to(torch.float64)
        attr_dot_noise = (noise[:, 0].to(torch.float64) * phi).sum(dim=(1, 2))  # a = I^T Phi
        output_change = f_clean - f_perturbed  # b = f(x) - f(x - I)
        sums += torch.stack([attr_dot_noise.square().sum(), (attr_dot_noise * output_change).sum(),
                             output_change.square().sum()])
        squared_error += (attr_dot_noise - output_change).square().sum()
    if normalize:
        # Captum: beta = safe_div(sum ab, sum a^2) (0/1 when the map is 0), then sum (beta a - b)^2 expanded
        beta = sums[1] / sums[0] if bool(sums[0] != 0) else sums[1]
        total = beta * beta * sums[0] - 2 * beta * sums[1] + sums[2]
    else:
        total = squared_error
    return max(float(total / n_perturb_samples), 0.0)  # the expanded square can round to -1e-20
