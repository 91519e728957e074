"""Gradient attributions through Captum: Saliency and Integrated Gradients.

References:
    Simonyan, Vedaldi, Zisserman, "Deep Inside Convolutional Networks: Visualising Image Classification
    Models and Saliency Maps", ICLR workshop 2014 (Saliency).
    Sundararajan, Taly, Yan, "Axiomatic Attribution for Deep Networks", ICML 2017 (Integrated Gradients).
    Sturmfels, Lundberg, Lee, "Visualizing the Impact of Feature Attribution Baselines", Distill 2020 (baselines).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import psutil
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import Saliency as CaptumSaliency
from torch import Tensor

from depthxai.attribution.base import AttributionMethod, AttributionResult, seeded_generator
from depthxai.attribution.targets import TargetModel
from depthxai.imageops import gaussian_blur
from depthxai.models.wrapper import DepthModel

IG_BASELINES = ("black", "mean", "blur", "noise")


class Saliency(AttributionMethod):
    """Gradient of the target with respect to the input pixels, signed by default.

    The signed gradient is the first-order explanation (its channel sum is what Infidelity's linear model
    predicts); the perturbation test ranks by ``|r|`` anyway, so ``abs`` changes only what is stored.

    Args:
        abs: return ``|d target / d x|`` (Captum's default) instead of the signed gradient; the maps are then
            unsigned and their Infidelity is reported as not comparable.
    """

    name = "saliency"

    def __init__(self, abs: bool = False) -> None:  # noqa: A002 - Captum's argument name
        self.abs = abs
        self.signed = not abs

    def attribute(self, model: DepthModel, images: Tensor, weights: Tensor,
                  seeds: Sequence[int] | None = None) -> AttributionResult:
        saliency = CaptumSaliency(TargetModel(model))
        inputs = images.detach().clone().requires_grad_(True)
        maps = saliency.attribute(inputs, abs=self.abs, additional_forward_args=(weights,))
        return AttributionResult(maps=maps.detach())


class IntegratedGradients(AttributionMethod):
    """Integrated Gradients from a baseline image to the input, through Captum.

    Args:
        n_steps: number of points on the path (Captum's ``n_steps``).
        method: quadrature rule (Captum's ``method``; ``gausslegendre`` converges fastest).
        baseline: ``black`` (all zeros), ``mean`` (the dataset's mean colour, ``mean_rgb``), ``blur`` (the image
            blurred with ``blur_sigma``) or ``noise`` (uniform noise in [0, 1], seeded per image).
        internal_batch_size: path points per forward/backward pass; ``"auto"`` picks it with
            :func:`auto_internal_batch_size` from the model, the input size and the device, once per process
            and input shape (:func:`cached_internal_batch_size`).
        mean_rgb: ``(3,)`` mean colour for the ``mean`` baseline.
        blur_sigma: Gaussian sigma in pixels for the ``blur`` baseline.

    The convergence delta (completeness error ``sum(attr) - (F(x) - F(baseline))``) is returned per image in
    ``extras["convergence_delta"]``.
    """

    name = "ig"
    signed = True

    def __init__(self, n_steps: int = 32, method: str = "gausslegendre", baseline: str = "black",
                 internal_batch_size: int | str = "auto", mean_rgb: Sequence[float] | None = None,
                 blur_sigma: float = 5.0) -> None:
        if baseline not in IG_BASELINES:
            raise ValueError(f"IG baseline must be one of {IG_BASELINES}, got {baseline!r}")
        if baseline == "mean" and mean_rgb is None:
            raise ValueError("IG baseline 'mean' needs mean_rgb")
        self.n_steps = n_steps
        self.method = method
        self.baseline = baseline
        self.internal_batch_size = internal_batch_size
        self.mean_rgb = tuple(mean_rgb) if mean_rgb is not None else None
        self.blur_sigma = blur_sigma
        self.stochastic = baseline == "noise"

    def baselines(self, images: Tensor, seeds: Sequence[int] | None) -> Tensor:
        """The ``(B, 3, H, W)`` baseline images for ``images``."""
        if self.baseline == "black":
            return torch.zeros_like(images)
        if self.baseline == "mean":
            assert self.mean_rgb is not None
            mean = torch.tensor(self.mean_rgb, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
            return mean.expand_as(images).clone()
        if self.baseline == "blur":
            return gaussian_blur(images, self.blur_sigma)
        if seeds is None or len(seeds) != images.shape[0]:
            raise ValueError("IG baseline 'noise' needs one seed per image")
        noise = [torch.rand(images.shape[1:], generator=seeded_generator(s), dtype=images.dtype) for s in seeds]
        return torch.stack(noise).to(images.device)

    def attribute(self, model: DepthModel, images: Tensor, weights: Tensor,
                  seeds: Sequence[int] | None = None) -> AttributionResult:
        target_model = TargetModel(model)
        batch = self.internal_batch_size
        if batch == "auto":
            batch = cached_internal_batch_size(model, images[:1], weights[:1], self.n_steps)
        baselines = self.baselines(images, seeds)
        maps = CaptumIG(target_model).attribute(
            images,
            baselines=baselines,
            additional_forward_args=(weights,),
            n_steps=self.n_steps,
            method=self.method,
            internal_batch_size=int(batch) * images.shape[0],
        ).detach()
        # Captum's return_convergence_delta runs the input and the baseline through the model as two passes;
        # one pass of both does the same (sum(attr) - (F(x) - F(baseline)), Captum's definition).
        with torch.no_grad():
            ends = target_model(torch.cat([images, baselines]), torch.cat([weights, weights]))
        n = images.shape[0]
        delta = maps.sum(dim=tuple(range(1, maps.dim()))) - (ends[:n] - ends[n:])
        return AttributionResult(maps=maps, extras={"convergence_delta": delta.to(torch.float32)})


def saved_activation_bytes(forward: torch.nn.Module, images: Tensor, weights: Tensor) -> int:
    """Bytes that autograd saves for the backward pass of one forward of ``images`` (measured, not guessed).

    Only the forward runs: what is saved for the backward is known once the forward is done, and dropping the
    graph frees it (no backward pass, no gradient is left on any parameter).
    """
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    probe = images.detach().clone().requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward(probe, weights)
    return total


#: Largest useful batch of path points on a CPU: beyond ~16 the per-sample cost rises again (cache effects;
#: measured on METER-XXS 192x256: batch 10 costs 1.04x the limit, batch 50 1.96x).
CPU_MAX_BATCH = 16


#: Autograd memory allowed for one pass on a CPU, whatever RAM is available, so that IG on one 480x640 image of
#: PixelFormer-Large stays within 8 GB: it saves 3.7 GiB per path point, so 1 point per pass (measured peak RSS
#: 4.6 GiB; 2 points: 7.6 GiB), where ``memory_fraction`` alone allows 2 points from 30 GiB of free RAM, 4 from 60.
CPU_MAX_AUTOGRAD_BYTES = 4 * 2**30


def auto_internal_batch_size(forward: torch.nn.Module, image: Tensor, weights: Tensor, n_steps: int,
                             memory_fraction: float = 0.25, max_bytes: int | None = CPU_MAX_AUTOGRAD_BYTES) -> int:
    """Path points per pass for IG on one image, bounded by memory and, on a CPU, by cache-friendliness.

    Measures the autograd memory of one sample (:func:`saved_activation_bytes`), allows ``memory_fraction`` of
    the free device memory (GPU) or of the available RAM (CPU), on a CPU at most ``max_bytes`` (None: no such
    cap), caps at :data:`CPU_MAX_BATCH` on a CPU, then evens the chunks out so that ``n_steps`` splits into
    equal passes (no short last pass). A single path point is always allowed, even above the budget.

    Returns:
        An integer in ``[1, n_steps]``.
    """
    per_sample = max(1, saved_activation_bytes(forward, image, weights))
    if image.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(image.device)
        cap = n_steps
    else:
        free = int(psutil.virtual_memory().available)
        cap = CPU_MAX_BATCH
    budget = free * memory_fraction
    if image.device.type != "cuda" and max_bytes is not None:
        budget = min(budget, max_bytes)
    by_memory = max(1, int(budget // per_sample))
    batch = max(1, min(n_steps, cap, by_memory))
    passes = math.ceil(n_steps / batch)
    return math.ceil(n_steps / passes)


#: ``auto`` internal batch sizes chosen so far, per depth model and (input shape, dtype, device, n_steps): the
#: probe of :func:`auto_internal_batch_size` costs a forward pass, so it runs once per process and input shape.
_AUTO_BATCHES: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[object, ...], int]] = weakref.WeakKeyDictionary()


def cached_internal_batch_size(model: DepthModel, image: Tensor, weights: Tensor, n_steps: int) -> int:
    """:func:`auto_internal_batch_size` for ``model`` on one image, remembered for this model and input shape."""
    key = (tuple(image.shape[1:]), image.dtype, str(image.device), n_steps)
    chosen = _AUTO_BATCHES.setdefault(model, {})
    if key not in chosen:
        chosen[key] = auto_internal_batch_size(TargetModel(model), image, weights, n_steps)
    return chosen[key]
