"""Perturbation curves: remove the most (MoRF) or least (LeRF) relevant pixels first and watch the depth change.

For one image, pixels are ranked by relevance (``|r|`` by default, or the signed ``r``), and for every fraction
``f`` the first (MoRF) or last (LeRF) ``round(f * H * W)`` pixels of the ranking are replaced (dataset-mean
colour, a blurred copy, or seeded noise). All perturbed copies of an image go through the model together in
batches. For each, the change of the prediction is measured against the unperturbed prediction (RMSE and
AbsRel, at the input resolution over all pixels) and, where ground truth exists, the error against it
(AbsRel and RMSE on the dataset's evaluation mask). A faithful map makes the MoRF curve rise fast and the LeRF
curve stay flat; the random ranking (method ``random``) is the reference between them.

The area under a curve is the normalised trapezoid ``AUC = trapz(y, f) / (f_max - f_min)``: the mean height of
the curve, in the curve's unit (metres for RMSE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from depthxai.attribution.base import seeded_generator
from depthxai.evaluation.depth_metrics import batched_errors
from depthxai.imageops import gaussian_blur
from depthxai.models.wrapper import DepthModel, resize_depth

ORDERS = ("morf", "lerf")
RANKINGS = ("abs", "signed")
REPLACEMENTS = ("mean", "blur", "noise")


@dataclass(frozen=True)
class PerturbationConfig:
    """Settings of the perturbation test (config section ``evaluation``)."""

    fractions: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
    ranking: str = "abs"
    replacement: str = "mean"
    blur_sigma: float = 5.0
    noise_std: float = 0.2
    batch_size: int = 16

    def __post_init__(self) -> None:
        if list(self.fractions) != sorted(self.fractions) or not 0.0 <= self.fractions[0] or self.fractions[-1] > 1.0:
            raise ValueError(f"fractions must be increasing within [0, 1], got {self.fractions}")
        if self.ranking not in RANKINGS:
            raise ValueError(f"ranking must be one of {RANKINGS}, got {self.ranking!r}")
        if self.replacement not in REPLACEMENTS:
            raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {self.replacement!r}")


def pixel_ranking(relevance: Tensor, ranking: str = "abs") -> Tensor:
    """Flat pixel indices from most to least relevant; ties keep the raster order (stable, deterministic).

    Args:
        relevance: ``(H, W)``.
        ranking: ``abs`` ranks by magnitude, ``signed`` by value.

    Returns:
        ``(H*W,)`` int64.
    """
    score = relevance.abs() if ranking == "abs" else relevance
    return torch.sort(score.reshape(-1), descending=True, stable=True).indices


def deletion_masks(order: Tensor, fractions: Sequence[float], shape: tuple[int, int], most_relevant_first: bool) -> Tensor:
    """Boolean masks of the removed pixels for each fraction.

    Args:
        order: ``(H*W,)`` ranking, most relevant first (:func:`pixel_ranking`).
        fractions: shares of pixels to remove.
        shape: ``(H, W)``.
        most_relevant_first: MoRF (``True``) takes the head of the ranking, LeRF the tail.

    Returns:
        ``(F, H, W)`` bool; mask ``i`` removes ``round(fractions[i] * H * W)`` pixels and contains mask ``i - 1``.
    """
    n = shape[0] * shape[1]
    ranked = order if most_relevant_first else order.flip(0)
    # position of each pixel in the removal order; pixel p is removed at fraction f iff rank[p] < k(f)
    rank = torch.empty(n, dtype=torch.int64, device=order.device)
    rank[ranked] = torch.arange(n, device=order.device)
    counts = torch.tensor([int(round(f * n)) for f in fractions], device=order.device)
    return (rank[None, :] < counts[:, None]).reshape(len(fractions), *shape)


def replacement_image(image: Tensor, config: PerturbationConfig, mean_rgb: Sequence[float], seed: int) -> Tensor:
    """What removed pixels become: ``(3, H, W)`` -> ``(3, H, W)`` in [0, 1].

    ``mean``: the dataset's mean colour; ``blur``: the image blurred with ``blur_sigma`` (removes detail, keeps
    colour); ``noise``: the image plus seeded Gaussian noise of ``noise_std``, clipped to [0, 1].
    """
    if config.replacement == "mean":
        return torch.tensor(list(mean_rgb), dtype=image.dtype, device=image.device).view(3, 1, 1).expand_as(image)
    if config.replacement == "blur":
        return gaussian_blur(image[None], config.blur_sigma)[0]
    noise = torch.randn(image.shape, generator=seeded_generator(seed), dtype=image.dtype).to(image.device)
    return (image + config.noise_std * noise).clamp(0.0, 1.0)


@dataclass
class GroundTruth:
    """Ground truth in the model's view: ``depth (H', W')`` metres and ``mask (H', W')`` bool of evaluated pixels."""

    depth: Tensor
    mask: Tensor


@torch.no_grad()
def perturbation_curves(model: DepthModel, image: Tensor, relevance: Tensor, config: PerturbationConfig,
                        mean_rgb: Sequence[float], seed: int, ground_truth: GroundTruth | None = None,
                        clean_native: Tensor | None = None) -> dict[str, np.ndarray]:
    """MoRF and LeRF curves of one image.

    Args:
        model: depth model.
        image: ``(3, H, W)`` RGB in [0, 1] (the network input).
        relevance: ``(H, W)`` per-pixel relevance at the same resolution.
        config: perturbation settings.
        mean_rgb: ``(3,)`` dataset mean colour (for ``replacement='mean'``).
        seed: seed of the ``noise`` replacement (per image).
        ground_truth: optional ground truth in the model's view (any resolution; predictions are resized to it).
        clean_native: ``(1, 1, h, w)`` unperturbed prediction at the network's output resolution (metres), as
            stored by the prediction stage; computed if not given.

    Returns:
        ``{"<order>_<metric>": (F,) float64}`` for orders ``morf``, ``lerf`` and metrics ``depth_rmse``,
        ``depth_absrel`` (against the unperturbed prediction) and, with ground truth, ``gt_absrel``, ``gt_rmse``.
        Index ``i`` belongs to ``config.fractions[i]``.
    """
    h, w = image.shape[-2:]
    fractions = list(config.fractions)
    order = pixel_ranking(relevance, config.ranking)
    masks = torch.cat([deletion_masks(order, fractions, (h, w), most_relevant_first=(o == "morf")) for o in ORDERS])
    replacement = replacement_image(image, config, mean_rgb, seed)
    # Masks that remove nothing (fraction 0) reuse the clean prediction instead of running the model again.
    perturbed_index = torch.nonzero(masks.flatten(1).any(dim=1)).flatten()
    batch = torch.where(masks[perturbed_index][:, None], replacement[None], image[None])
    if clean_native is None:
        batch = torch.cat([image[None], batch])
    chunks = [model.native(batch[i : i + config.batch_size]) for i in range(0, batch.shape[0], config.batch_size)]
    # no chunk at all when every fraction removes 0 pixels (tiny images) and the clean prediction was given
    native = torch.cat(chunks) if chunks else clean_native[:0]  # type: ignore[index]
    if clean_native is None:
        clean_native, native = native[:1], native[1:]

    def at_size(size: tuple[int, int]) -> Tensor:
        depth = resize_depth(clean_native, size)[:, 0].repeat(masks.shape[0], 1, 1)
        depth[perturbed_index] = resize_depth(native, size)[:, 0]
        return depth

    # Predictions are clipped to the model's range, as the official evaluation does (AbsRel divides by them).
    lo, hi = model.card.min_depth, model.card.max_depth
    at_input = at_size((h, w)).clamp(lo, hi)
    clean = resize_depth(clean_native, (h, w))[0, 0].clamp(lo, hi)
    errors = batched_errors(at_input, clean, torch.ones((h, w), dtype=torch.bool, device=image.device))
    curves = {"depth_rmse": errors["rmse"], "depth_absrel": errors["abs_rel"]}
    if ground_truth is not None:
        at_gt = at_size(tuple(ground_truth.depth.shape[-2:])).clamp(lo, hi)
        gt_errors = batched_errors(at_gt, ground_truth.depth, ground_truth.mask)
        curves.update(gt_absrel=gt_errors["abs_rel"], gt_rmse=gt_errors["rmse"])
    n_f = len(fractions)
    out: dict[str, np.ndarray] = {}
    for k, order_name in enumerate(ORDERS):
        for metric, values in curves.items():
            out[f"{order_name}_{metric}"] = values[k * n_f : (k + 1) * n_f].detach().cpu().to(torch.float64).numpy()
    return out


def normalised_auc(values: np.ndarray, fractions: Sequence[float]) -> float:
    """Mean height of a curve over ``[f_min, f_max]``: ``trapz(values, fractions) / (f_max - f_min)``."""
    f = np.asarray(fractions, dtype=np.float64)
    return float(np.trapezoid(np.asarray(values, dtype=np.float64), f) / (f[-1] - f[0]))
