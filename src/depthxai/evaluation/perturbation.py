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


def _descending_keys(relevance: Tensor, ranking: str) -> Tensor:
    """Integer sort keys of the pixels: ascending keys = descending score, equal scores = equal keys.

    Sorting integers is a radix sort in PyTorch (linear time, stable), many times faster than a stable sort of
    floats, and gives the same order: the bit pattern of a non-negative IEEE float, read as a signed integer,
    orders like the float; flipping the magnitude bits of a negative one puts the negatives below, in order;
    adding 0.0 first makes -0.0 and +0.0 equal, and NaN ranks first, as :func:`torch.sort` ranks it.

    Args:
        relevance: ``(H, W)`` floating point.
        ranking: ``abs`` (by magnitude) or ``signed`` (by value).

    Returns:
        ``(H*W,)`` int32 (int64 for float64 maps).
    """
    score = relevance.abs() if ranking == "abs" else relevance
    score = score.reshape(-1)
    if score.dtype not in (torch.float32, torch.float64):
        score = score.to(torch.float32)  # float16 / bfloat16 are exact in float32
    score = score + 0.0
    bits = score.view(torch.int32 if score.dtype == torch.float32 else torch.int64)
    magnitude_bits = torch.iinfo(bits.dtype).max
    keys = torch.where(bits < 0, bits ^ magnitude_bits, bits)
    keys = torch.where(torch.isnan(score), magnitude_bits, keys)
    return torch.bitwise_not(keys)  # ~k = -k - 1: reverses the order and never overflows


def pixel_ranking(relevance: Tensor, ranking: str = "abs") -> Tensor:
    """Flat pixel indices from most to least relevant; ties keep the raster order (stable, deterministic).

    Args:
        relevance: ``(H, W)``.
        ranking: ``abs`` ranks by magnitude, ``signed`` by value.

    Returns:
        ``(H*W,)`` int64.
    """
    return torch.sort(_descending_keys(relevance, ranking), stable=True).indices


def removal_ranks(relevance: Tensor, ranking: str = "abs") -> Tensor:
    """Position of every pixel in the MoRF removal order (0 = removed first), the inverse of :func:`pixel_ranking`.

    MoRF at ``k`` removed pixels removes the pixels with ``rank < k``; LeRF removes those with
    ``rank >= H*W - k``.

    Args:
        relevance: ``(H, W)``.
        ranking: ``abs`` or ``signed``.

    Returns:
        ``(H*W,)`` int32.
    """
    return _ranks_of_order(pixel_ranking(relevance, ranking))


def _ranks_of_order(order: Tensor) -> Tensor:
    """``rank[order[i]] = i``: ``(N,)`` int64 permutation -> ``(N,)`` int32."""
    n = order.numel()
    positions = torch.arange(n, dtype=torch.int32, device=order.device)
    return torch.empty(n, dtype=torch.int32, device=order.device).scatter_(0, order, positions)


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
    counts = [round(f * n) for f in fractions]
    ranks = _ranks_of_order(order)
    return _removed(ranks, [(most_relevant_first, k) for k in counts]).reshape(len(fractions), *shape)


def _removed(ranks: Tensor, copies: Sequence[tuple[bool, int]]) -> Tensor:
    """``(P, N)`` bool: the pixels that copy ``j = (most_relevant_first, count)`` removes, in one comparison.

    A pixel's position in its copy's removal order is its rank (MoRF) or ``N - 1 - rank`` (LeRF); the copy
    removes the pixels whose position is below its count.
    """
    n = ranks.numel()
    positions = torch.stack([ranks, (n - 1) - ranks])  # (2, N): MoRF, LeRF
    which = torch.tensor([0 if morf else 1 for morf, _ in copies], device=ranks.device)
    counts = torch.tensor([k for _, k in copies], dtype=torch.int32, device=ranks.device)
    return positions[which] < counts[:, None]


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


class ReferenceMap:
    """One reference depth map, prepared once for scoring many predictions against it by RMSE and AbsRel.

    The same quantities as ``rmse`` and ``abs_rel`` of :func:`~depthxai.evaluation.depth_metrics.batched_errors`
    (the reference in the ground truth's role), computed for speed: only the mask's bounding box is visited,
    ``1 / ref`` (0 off the mask), the mask and its pixel count are computed once, the per-pixel terms are float32
    and the sums float64 (per row, then over rows), which agrees with the float64 formulas to ~1e-8 relative at a
    tenth of the cost (a perturbation curve at 480x640 is 4M pixels).

    Args:
        ref: ``(H, W)`` reference depths in metres, positive on the mask.
        mask: ``(H, W)`` bool, the pixels to score (at least one); ``None`` for all.
        dtype: float dtype of the per-pixel terms (that of the predictions to score).
    """

    def __init__(self, ref: Tensor, mask: Tensor | None = None, dtype: torch.dtype = torch.float32) -> None:
        self.shape = tuple(ref.shape)
        if mask is None:
            self.box = (slice(None), slice(None))
            self.ref = ref
            self.inverse_ref = (1.0 / ref).to(dtype)
            self.weight: Tensor | None = None
            self.count = ref.numel()
            return
        rows, cols = torch.nonzero(mask.any(dim=1)).flatten(), torch.nonzero(mask.any(dim=0)).flatten()
        if rows.numel() == 0:
            raise ValueError("no valid pixel to evaluate (empty mask)")
        self.box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        mask, self.ref = mask[self.box], ref[self.box]
        self.inverse_ref = torch.where(mask, 1.0 / self.ref, 0.0).to(dtype)
        self.weight = mask.to(dtype)
        self.count = int(mask.sum())

    def rmse_absrel(self, pred: Tensor, clip: tuple[float, float] | None = None,
                    in_place: bool = False) -> tuple[Tensor, Tensor]:
        """RMSE and AbsRel of each of ``B`` predictions.

        Args:
            pred: ``(B, H, W)`` depths in metres.
            clip: ``(lo, hi)`` to clip the predictions to first (the official evaluation's clipping), or ``None``.
            in_place: overwrite ``pred`` (inside the box) with intermediate values instead of allocating a copy.

        Returns:
            ``(rmse, abs_rel)``, each ``(B,)`` float64.
        """
        error = pred[(slice(None), *self.box)]
        if not in_place:
            error = error.clone()
        if clip is not None:
            error.clamp_(*clip)
        error.sub_(self.ref).abs_()
        if self.weight is not None:
            error.mul_(self.weight)  # off the mask: 0 in both sums

        def total(x: Tensor) -> Tensor:  # float32 within a row, float64 across rows
            return x.sum(dim=-1).to(torch.float64).sum(dim=-1)

        abs_rel = total(error * self.inverse_ref) / self.count
        return (total(error.square_()) / self.count).sqrt(), abs_rel


def rmse_absrel(pred: Tensor, ref: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """RMSE and AbsRel of each of ``B`` predictions against one reference, over the masked pixels
    (:class:`ReferenceMap`, prepared for one use).

    Args:
        pred: ``(B, H, W)`` depths in metres (clipped to a positive range by the caller).
        ref: ``(H, W)`` reference depths, positive on the mask.
        mask: ``(H, W)`` bool, the pixels to score (at least one); ``None`` for all.

    Returns:
        ``(rmse, abs_rel)``, each ``(B,)`` float64.
    """
    return ReferenceMap(ref, mask, pred.dtype).rmse_absrel(pred)


#: Elements of the resized predictions scored at once: a few maps, so that the resize and the error terms of a
#: block stay in the CPU's cache instead of streaming 4M-pixel batches (480x640) through memory several times.
SCORING_BLOCK_ELEMENTS = 2**19


def _score_at(native: Tensor, size: tuple[int, int], reference: ReferenceMap,
              clip: tuple[float, float]) -> tuple[Tensor, Tensor]:
    """RMSE and AbsRel against ``reference`` of ``native (B, 1, h, w)`` resized to ``size``, block by block."""
    per_map = size[0] * size[1]
    block = max(1, SCORING_BLOCK_ELEMENTS // per_map)
    rmse, abs_rel = [], []
    for rows in native.split(block):
        resized = resize_depth(rows, size)
        scores = reference.rmse_absrel(resized[:, 0], clip, in_place=resized is not rows)  # never the caller's maps
        rmse.append(scores[0])
        abs_rel.append(scores[1])
    return torch.cat(rmse), torch.cat(abs_rel)


@torch.no_grad()
def perturbation_curves(model: DepthModel, image: Tensor, relevance: Tensor, config: PerturbationConfig,
                        mean_rgb: Sequence[float], seed: int, ground_truth: GroundTruth | None = None,
                        clean_native: Tensor | None = None) -> dict[str, np.ndarray]:
    """MoRF and LeRF curves of one image.

    All perturbed copies of the image go through the model together, in batches of ``config.batch_size``, and
    only the copies that differ: a fraction that removes no pixel reuses the clean prediction, and removing every
    pixel gives the same copy for MoRF and LeRF, which runs once. The batches hold one image's copies only, so an
    image's curves never depend on the other images of its shard. Besides the forward passes, the cost is one
    integer sort of the pixels, one comparison for all masks, one selection for all copies and, per block of
    predictions, one resize and a few passes over the scored pixels.

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
    counts = [round(f * n_pixels) for f in config.fractions]
    # source[order][i]: the row of the predictions [clean, perturbed...] that fraction i of the order gets
    source: dict[str, list[int]] = {}
    copies: list[tuple[bool, int]] = []
    for order_name in ORDERS:
        rows: list[int] = []
        for i, count in enumerate(counts):
            if count == 0:
                rows.append(0)
            elif count == n_pixels and order_name != ORDERS[0]:
                rows.append(source[ORDERS[0]][i])  # everything removed: the same copy for both orders
            else:
                copies.append((order_name == "morf", count))
                rows.append(len(copies))
        source[order_name] = rows

    chunks: list[Tensor] = [] if clean_native is None else [clean_native.to(image.device)]
    if copies:
        removed = _removed(removal_ranks(relevance, config.ranking), copies).view(len(copies), 1, h, w)
        batch = torch.where(removed, replacement_image(image, config, mean_rgb, seed), image)
    else:
        batch = image.new_empty((0, *image.shape))
    if clean_native is None:
        batch = torch.cat([image[None], batch])
    chunks += [model.native(batch[i : i + config.batch_size]) for i in range(0, batch.shape[0], config.batch_size)]
    native = torch.cat(chunks)  # (1 + P, 1, h, w): the clean prediction, then the perturbed ones

    # Predictions are clipped to the model's range, as the official evaluation does (AbsRel divides by them).
    clip = (model.card.min_depth, model.card.max_depth)
    clean = resize_depth(native[:1], (h, w))[0, 0].clamp(*clip)
    clean_reference = ReferenceMap(clean, dtype=native.dtype)
    curves = dict(zip(("depth_rmse", "depth_absrel"), _score_at(native, (h, w), clean_reference, clip)))
    if ground_truth is not None:
        gt_reference = ReferenceMap(ground_truth.depth, ground_truth.mask, native.dtype)
        curves.update(zip(("gt_rmse", "gt_absrel"),
                          _score_at(native, tuple(ground_truth.depth.shape[-2:]), gt_reference, clip)))
    table = torch.stack(list(curves.values())).cpu().numpy()  # (metrics, 1 + P) float64
    return {f"{order_name}_{metric}": table[m, source[order_name]]
            for order_name in ORDERS for m, metric in enumerate(curves)}


def normalised_auc(values: np.ndarray, fractions: Sequence[float]) -> float:
    """Mean height of a curve over ``[f_min, f_max]``: ``trapz(values, fractions) / (f_max - f_min)``."""
    f = np.asarray(fractions, dtype=np.float64)
    return float(np.trapezoid(np.asarray(values, dtype=np.float64), f) / (f[-1] - f[0]))
