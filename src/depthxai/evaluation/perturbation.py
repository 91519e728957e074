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


def rmse_absrel(pred: Tensor, ref: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """RMSE and AbsRel of each of ``B`` predictions against one reference, over the masked pixels.

    The same quantities as ``rmse`` and ``abs_rel`` of :func:`~depthxai.evaluation.depth_metrics.batched_errors`
    (``ref`` in the ground truth's role), computed for speed: only the mask's bounding box is visited, the
    per-pixel terms are float32 and the sums float64 (per row, then over rows), which agrees with the float64
    formulas to ~1e-8 relative at a tenth of the cost (a perturbation curve at 480x640 is 4M pixels).

    Args:
        pred: ``(B, H, W)`` depths in metres (clipped to a positive range by the caller).
        ref: ``(H, W)`` reference depths, positive on the mask.
        mask: ``(H, W)`` bool, the pixels to score (at least one); ``None`` for all.

    Returns:
        ``(rmse, abs_rel)``, each ``(B,)`` float64.
    """
    if mask is not None:
        rows, cols = torch.nonzero(mask.any(dim=1)).flatten(), torch.nonzero(mask.any(dim=0)).flatten()
        if rows.numel() == 0:
            raise ValueError("no valid pixel to evaluate (empty mask)")
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        pred, ref, mask = pred[:, top:bottom, left:right], ref[top:bottom, left:right], mask[top:bottom, left:right]
        inverse_ref = torch.where(mask, 1.0 / ref, 0.0).to(pred.dtype)
        count = int(mask.sum())
    else:
        inverse_ref = (1.0 / ref).to(pred.dtype)
        count = ref.numel()

    def total(x: Tensor) -> Tensor:  # float32 within a row, float64 across rows
        return x.sum(dim=-1).to(torch.float64).sum(dim=-1)

    error = (pred - ref).abs_()
    abs_rel = total(error * inverse_ref) / count
    error.square_()
    if mask is not None:
        error.mul_(mask)
    return (total(error) / count).sqrt(), abs_rel


@torch.no_grad()
def perturbation_curves(model: DepthModel, image: Tensor, relevance: Tensor, config: PerturbationConfig,
                        mean_rgb: Sequence[float], seed: int, ground_truth: GroundTruth | None = None,
                        clean_native: Tensor | None = None) -> dict[str, np.ndarray]:
    """MoRF and LeRF curves of one image.

    All perturbed copies of the image go through the model together, in batches of ``config.batch_size``, and
    only the copies that differ: a fraction that removes no pixel reuses the clean prediction, and removing every
    pixel gives the same copy for MoRF and LeRF, which runs once. The batches hold one image's copies only, so an
    image's curves never depend on the other images of its shard.

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
    n_pixels = h * w
    fractions = list(config.fractions)
    n_f = len(fractions)
    counts = [int(round(f * n_pixels)) for f in fractions] * len(ORDERS)
    order = pixel_ranking(relevance, config.ranking)
    masks = torch.cat([deletion_masks(order, fractions, (h, w), most_relevant_first=(o == "morf")) for o in ORDERS])
    # source[i]: the row of the predictions [clean, perturbed...] that mask i gets
    source: list[int] = []
    perturbed: list[int] = []
    for i, count in enumerate(counts):
        if count == 0:
            source.append(0)
        elif count == n_pixels and i >= n_f and counts[i - n_f] == n_pixels:
            source.append(source[i - n_f])
        else:
            perturbed.append(i)
            source.append(len(perturbed))
    replacement = replacement_image(image, config, mean_rgb, seed)
    batch = torch.where(masks[perturbed][:, None], replacement[None], image[None])
    if clean_native is None:
        batch = torch.cat([image[None], batch])
    chunks = [model.native(batch[i : i + config.batch_size]) for i in range(0, batch.shape[0], config.batch_size)]
    if clean_native is not None:
        chunks.insert(0, clean_native.to(image.device))
    native = torch.cat(chunks)  # (1 + P, 1, h, w): the clean prediction, then the perturbed ones
    index = torch.tensor(source, device=native.device)

    # Predictions are clipped to the model's range, as the official evaluation does (AbsRel divides by them).
    lo, hi = model.card.min_depth, model.card.max_depth
    at_input = resize_depth(native, (h, w))[:, 0].clamp(lo, hi)
    curves = dict(zip(("depth_rmse", "depth_absrel"), rmse_absrel(at_input, at_input[0])))
    if ground_truth is not None:
        at_gt = resize_depth(native, tuple(ground_truth.depth.shape[-2:]))[:, 0].clamp(lo, hi)
        curves.update(zip(("gt_rmse", "gt_absrel"), rmse_absrel(at_gt, ground_truth.depth, ground_truth.mask)))
    out: dict[str, np.ndarray] = {}
    for k, order_name in enumerate(ORDERS):
        rows = index[k * n_f : (k + 1) * n_f]
        for metric, values in curves.items():
            out[f"{order_name}_{metric}"] = values[rows].detach().cpu().numpy()
    return out


def normalised_auc(values: np.ndarray, fractions: Sequence[float]) -> float:
    """Mean height of a curve over ``[f_min, f_max]``: ``trapz(values, fractions) / (f_max - f_min)``."""
    f = np.asarray(fractions, dtype=np.float64)
    return float(np.trapezoid(np.asarray(values, dtype=np.float64), f) / (f[-1] - f[0]))
