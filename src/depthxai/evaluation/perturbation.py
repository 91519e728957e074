"""Perturbation curves: remove the most (MoRF) or least (LeRF) relevant pixels first and watch the depth change.

For one image, the removal *units* (pixels, or square patches: region perturbation, Samek et al., IEEE TNNLS 2017)
are ranked by relevance (``|r|`` by default, or the signed ``r``; a patch scores the summed relevance of its pixels),
and for every fraction ``f`` the first (MoRF) or last (LeRF) ``round(f * n_units)`` units of the ranking are
replaced: by the dataset-mean colour, a blurred copy, seeded noise, or ROAD's noisy linear imputation
(:mod:`depthxai.evaluation.imputation`). Units of equal relevance are ordered by a seeded random permutation of the
image (``tie_seed``), never by their position: a stable sort would remove ties top rows first (MoRF) and bottom rows
first (LeRF), so a map with ties (rollout's constant blocks, zero gradients, saturated masks) would be scored on the
scene's layout (ceiling vs floor) instead of on its relevance.

All perturbed copies of an image go through the model together in batches. For each copy the change is measured
against the unperturbed prediction:

* ``target_change``: ``|t(x~) - t(x)| / t(x)`` of the *explained* scalar ``t = sum(w * depth)``, with the target
  weights ``w`` of the unperturbed prediction held fixed (:mod:`depthxai.attribution.targets`), i.e. the quantity
  the maps explain; scale-free, so that datasets and models of different depth ranges compare. The primary curve.
* ``depth_rmse``, ``depth_absrel``: RMSE and AbsRel of the whole predicted map (input resolution, all pixels,
  predictions clipped to the model's range), whatever the target; secondary.
* with ground truth, ``gt_absrel`` and ``gt_rmse``: the error against it on the dataset's evaluation mask.

For a relative model the ``depth_*`` and ``gt_*`` curves score the predictions in metres: the image's alignment to
its ground truth (``alignment``, fitted once on the clean prediction: :mod:`depthxai.evaluation.relative`) is
applied to every copy, which is then clipped to the dataset's depth range; ``target_change`` stays on the raw output.

A faithful map makes the MoRF curve rise fast and the LeRF curve stay flat; the random rankings (methods ``random``
and ``random_smooth``) are the reference between them.

The area under a curve is the normalised trapezoid ``AUC = trapz(y, f) / (f_max - f_min)``: the mean height of
the curve, in the curve's unit (metres for RMSE, a fraction of the target for ``target_change``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from depthxai.attribution.base import seeded_generator
from depthxai.evaluation.imputation import noisy_linear_imputation
from depthxai.imageops import gaussian_blur
from depthxai.models.wrapper import DepthModel, resize_depth

if TYPE_CHECKING:
    from depthxai.evaluation.relative import DepthAlignment

ORDERS = ("morf", "lerf")
RANKINGS = ("abs", "signed")
REPLACEMENTS = ("mean", "blur", "noise", "road")
UNITS = ("pixel", "patch")


@dataclass(frozen=True)
class PerturbationConfig:
    """One removal scheme of the perturbation test (config ``evaluation``: shared keys, and one entry of
    ``evaluation.schemes``).

    Attributes:
        fractions: shares of the units to remove, increasing, in [0, 1].
        ranking: ``abs`` (by ``|r|``) or ``signed`` (by ``r``).
        replacement: ``mean`` (dataset mean colour), ``blur`` (Gaussian blur of ``blur_sigma``), ``noise`` (the
            pixel plus Gaussian noise of ``noise_std``, clipped) or ``road`` (noisy linear imputation from the kept
            neighbours, noise ``road_noise_std``).
        unit: ``pixel`` or ``patch`` (non-overlapping ``patch_size`` squares at the network's input resolution).
        name: the scheme's name (suffix of its metric names, see :func:`scheme_suffix`).
        batch_size: perturbed copies per forward pass.
    """

    fractions: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
    ranking: str = "abs"
    replacement: str = "mean"
    blur_sigma: float = 5.0
    noise_std: float = 0.2
    road_noise_std: float = 0.01
    unit: str = "pixel"
    patch_size: int = 8
    name: str = "pixel"
    batch_size: int = 16

    def __post_init__(self) -> None:
        if list(self.fractions) != sorted(self.fractions) or not 0.0 <= self.fractions[0] or self.fractions[-1] > 1.0:
            raise ValueError(f"fractions must be increasing within [0, 1], got {self.fractions}")
        if self.ranking not in RANKINGS:
            raise ValueError(f"ranking must be one of {RANKINGS}, got {self.ranking!r}")
        if self.replacement not in REPLACEMENTS:
            raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {self.replacement!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")


def scheme_suffix(scheme_index: int, name: str) -> str:
    """The suffix of a removal scheme's metric names: none for the primary (first) scheme, ``@<name>`` otherwise
    (``morf_auc_target_change`` and ``morf_auc_target_change@road``)."""
    return "" if scheme_index == 0 else f"@{name}"


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


def pixel_ranking(relevance: Tensor, ranking: str = "abs", tie_seed: int | None = None) -> Tensor:
    """Flat pixel indices from most to least relevant.

    Args:
        relevance: ``(H, W)``.
        ranking: ``abs`` ranks by magnitude, ``signed`` by value.
        tie_seed: pixels of equal score are ordered by a random permutation drawn with this seed (unbiased:
            every order of a tie is equally likely, and the same seed gives the same order); ``None`` keeps the
            raster order of ties (a stable sort; only for comparisons with implementations that do so).

    Returns:
        ``(H*W,)`` int64.
    """
    keys = _descending_keys(relevance, ranking)
    if tie_seed is None:
        return torch.sort(keys, stable=True).indices
    shuffle = torch.randperm(keys.numel(), generator=seeded_generator(tie_seed)).to(keys.device)
    return shuffle[torch.sort(keys[shuffle], stable=True).indices]


def removal_ranks(relevance: Tensor, ranking: str = "abs", tie_seed: int | None = None) -> Tensor:
    """Position of every pixel in the MoRF removal order (0 = removed first), the inverse of :func:`pixel_ranking`.

    MoRF at ``k`` removed pixels removes the pixels with ``rank < k``; LeRF removes those with
    ``rank >= H*W - k``.

    Args:
        relevance: ``(H, W)``.
        ranking: ``abs`` or ``signed``.
        tie_seed: see :func:`pixel_ranking`.

    Returns:
        ``(H*W,)`` int32.
    """
    return _ranks_of_order(pixel_ranking(relevance, ranking, tie_seed))


def patch_scores(relevance: Tensor, patch_size: int, ranking: str = "abs") -> Tensor:
    """Summed relevance of each ``patch_size`` square of a grid laid from the top-left corner.

    Patches cut by the right or bottom border score the mean of their pixels times a full patch's area, so that
    their score is comparable with the full patches' (for full patches it is exactly the sum).

    Args:
        relevance: ``(H, W)``.
        patch_size: side of a patch in pixels.
        ranking: ``abs`` sums ``|r|``, ``signed`` sums ``r``.

    Returns:
        ``(ceil(H / p), ceil(W / p))`` float64.
    """
    score = (relevance.abs() if ranking == "abs" else relevance).to(torch.float64)[None, None]
    mean = F.avg_pool2d(score, patch_size, stride=patch_size, ceil_mode=True)
    return mean[0, 0] * float(patch_size * patch_size)


def unit_ranks(relevance: Tensor, config: PerturbationConfig, tie_seed: int | None = None) -> tuple[Tensor, int]:
    """The removal rank of every pixel in units of the scheme: ``(ranks (H*W,) int32, number of units)``.

    With ``unit='pixel'`` a pixel's rank is its position in the MoRF order (:func:`removal_ranks`); with
    ``unit='patch'`` every pixel of a patch carries the patch's position in the MoRF order of the patches
    (ranked by :func:`patch_scores`, ties in a random order drawn with ``tie_seed``).
    """
    if config.unit == "pixel":
        return removal_ranks(relevance, config.ranking, tie_seed), relevance.numel()
    h, w = relevance.shape
    p = config.patch_size
    scores = patch_scores(relevance, p, config.ranking)
    ranks = removal_ranks(scores, "signed", tie_seed)  # the scores already hold |r| or r
    rows = torch.arange(h, device=relevance.device) // p
    cols = torch.arange(w, device=relevance.device) // p
    patch_of_pixel = (rows[:, None] * scores.shape[1] + cols[None, :]).reshape(-1)
    return ranks[patch_of_pixel], scores.numel()


def _ranks_of_order(order: Tensor) -> Tensor:
    """``rank[order[i]] = i``: ``(N,)`` int64 permutation -> ``(N,)`` int32."""
    n = order.numel()
    positions = torch.arange(n, dtype=torch.int32, device=order.device)
    return torch.empty(n, dtype=torch.int32, device=order.device).scatter_(0, order, positions)


def deletion_masks(order: Tensor, fractions: Sequence[float], shape: tuple[int, int],
                   most_relevant_first: bool) -> Tensor:
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


def _removed(ranks: Tensor, copies: Sequence[tuple[bool, int]], n_units: int | None = None) -> Tensor:
    """``(P, N)`` bool: the pixels that copy ``j = (most_relevant_first, count)`` removes, in one comparison.

    A pixel's position in its copy's removal order is its rank (MoRF) or ``n_units - 1 - rank`` (LeRF); the copy
    removes the pixels whose position is below its count. ``n_units`` defaults to the number of pixels.
    """
    n = ranks.numel() if n_units is None else n_units
    positions = torch.stack([ranks, (n - 1) - ranks])  # (2, N): MoRF, LeRF
    which = torch.tensor([0 if morf else 1 for morf, _ in copies], device=ranks.device)
    counts = torch.tensor([k for _, k in copies], dtype=torch.int32, device=ranks.device)
    return positions[which] < counts[:, None]


def replacement_image(image: Tensor, config: PerturbationConfig, mean_rgb: Sequence[float], seed: int) -> Tensor:
    """What removed pixels become, for the replacements that do not depend on the mask: ``(3, H, W)`` in [0, 1].

    ``mean``: the dataset's mean colour; ``blur``: the image blurred with ``blur_sigma`` (removes detail, keeps
    colour); ``noise``: the image plus seeded Gaussian noise of ``noise_std``, clipped to [0, 1]. (``road``
    imputes from each copy's kept pixels: :func:`perturbed_copies`.)
    """
    if config.replacement == "mean":
        return torch.tensor(list(mean_rgb), dtype=image.dtype, device=image.device).view(3, 1, 1).expand_as(image)
    if config.replacement == "blur":
        return gaussian_blur(image[None], config.blur_sigma)[0]
    if config.replacement == "road":
        raise ValueError("the 'road' replacement depends on each copy's mask; use perturbed_copies")
    noise = torch.randn(image.shape, generator=seeded_generator(seed), dtype=image.dtype).to(image.device)
    return (image + config.noise_std * noise).clamp(0.0, 1.0)


def perturbed_copies(image: Tensor, removed: Tensor, config: PerturbationConfig, mean_rgb: Sequence[float],
                     seed: int) -> Tensor:
    """The perturbed copies of one image.

    Args:
        image: ``(3, H, W)`` RGB in [0, 1].
        removed: ``(P, H, W)`` bool, the pixels each copy removes.
        config: the scheme (its ``replacement``).
        mean_rgb: the dataset's mean colour (``mean``; the fallback of ``road`` for groups without a kept pixel).
        seed: seed of the random parts (``noise``; ``road``'s noise, drawn copy after copy from one generator).

    Returns:
        ``(P, 3, H, W)``.
    """
    if config.replacement != "road":
        return torch.where(removed[:, None], replacement_image(image, config, mean_rgb, seed), image)
    generator = seeded_generator(seed)
    return torch.stack([noisy_linear_imputation(image, mask, mean_rgb, config.road_noise_std, generator)
                        for mask in removed])


@dataclass
class GroundTruth:
    """Ground truth in the model's view: ``depth (H', W')`` metres and ``mask (H', W')`` bool of evaluated pixels."""

    depth: Tensor
    mask: Tensor


class ReferenceMap:
    """One reference depth map, prepared once for scoring many predictions against it by RMSE and AbsRel.

    The same quantities as ``rmse`` and ``abs_rel`` of :func:`~depthxai.metrics.batched.batched_errors`
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


def _score_at(native: Tensor, size: tuple[int, int], reference: ReferenceMap, clip: tuple[float, float],
              target_weights: Tensor | None = None, alignment: DepthAlignment | None = None) -> tuple[Tensor, ...]:
    """RMSE and AbsRel against ``reference`` of ``native (B, 1, h, w)`` resized to ``size``, block by block; with
    ``target_weights`` ``(H, W)`` (at ``size``) also the explained scalar ``sum(w * depth)`` of each (unclipped, of
    the raw output); with ``alignment`` the resized maps are turned into metres before they are scored."""
    per_map = size[0] * size[1]
    block = max(1, SCORING_BLOCK_ELEMENTS // per_map)
    columns: list[list[Tensor]] = [[], [], []]
    for rows in native.split(block):
        resized = resize_depth(rows, size)
        if target_weights is not None:  # before the in-place scoring below overwrites the maps
            columns[2].append((resized[:, 0] * target_weights).sum(dim=(1, 2), dtype=torch.float64))
        if alignment is not None:  # after the resize, as the accuracy is aligned at the ground truth's resolution
            resized = alignment.apply(resized)
        scores = reference.rmse_absrel(resized[:, 0], clip, in_place=resized is not rows)  # never the caller's maps
        columns[0].append(scores[0])
        columns[1].append(scores[1])
    return tuple(torch.cat(c) for c in columns if c)


@torch.no_grad()
def perturbation_curves(model: DepthModel, image: Tensor, relevance: Tensor, config: PerturbationConfig,
                        mean_rgb: Sequence[float], seed: int, ground_truth: GroundTruth | None = None,
                        clean_native: Tensor | None = None, target_weights: Tensor | None = None,
                        tie_seed: int | None = 0, alignment: DepthAlignment | None = None) -> dict[str, np.ndarray]:
    """MoRF and LeRF curves of one image under one removal scheme.

    All perturbed copies of the image go through the model together, in batches of ``config.batch_size``, and
    only the copies that differ: a fraction that removes no unit reuses the clean prediction, and removing every
    unit gives the same copy for MoRF and LeRF, which runs once (with ``road``, which draws noise per copy, each
    order gets its own). The batches hold one image's copies only, so an image's curves never depend on the other
    images of its shard. Besides the forward passes, the cost is one integer sort of the pixels, one comparison
    for all masks, one selection for all copies (or one sparse solve per copy with ``road``) and, per block of
    predictions, one resize and a few passes over the scored pixels.

    Args:
        model: depth model.
        image: ``(3, H, W)`` RGB in [0, 1] (the network input).
        relevance: ``(H, W)`` per-pixel relevance at the same resolution.
        config: the removal scheme.
        mean_rgb: ``(3,)`` dataset mean colour (``mean`` replacement; ``road``'s fallback).
        seed: seed of the random replacements (per image).
        ground_truth: optional ground truth in the model's view (any resolution; predictions are resized to it).
        clean_native: ``(1, 1, h, w)`` unperturbed prediction at the network's output resolution (metres), as
            stored by the prediction stage; computed if not given.
        target_weights: ``(H, W)`` weights of the explained scalar, from the unperturbed prediction
            (:func:`~depthxai.attribution.targets.target_weights`); gives the ``target_change`` curve.
        tie_seed: seed of the random order of tied units (:func:`pixel_ranking`; per image); ``None``: raster order.
        alignment: a relative model's alignment of this image (:class:`~depthxai.evaluation.relative.DepthAlignment`):
            the ``depth_*`` and ``gt_*`` curves then score the aligned predictions, clipped to ``alignment.clip``.

    Returns:
        ``{"<order>_<curve>": (F,) float64}`` for orders ``morf``, ``lerf`` and curves ``depth_rmse``,
        ``depth_absrel`` (against the unperturbed prediction), with ``target_weights`` ``target_change``, and with
        ground truth ``gt_absrel``, ``gt_rmse``. Index ``i`` belongs to ``config.fractions[i]``.
    """
    h, w = image.shape[-2:]
    ranks, n_units = unit_ranks(relevance, config, tie_seed)
    counts = [round(f * n_units) for f in config.fractions]
    share_full = config.replacement != "road"
    # source[order][i]: the row of the predictions [clean, perturbed...] that fraction i of the order gets
    source: dict[str, list[int]] = {}
    copies: list[tuple[bool, int]] = []
    for order_name in ORDERS:
        rows: list[int] = []
        for i, count in enumerate(counts):
            if count == 0:
                rows.append(0)
            elif count == n_units and order_name != ORDERS[0] and share_full:
                rows.append(source[ORDERS[0]][i])  # everything removed: the same copy for both orders
            else:
                copies.append((order_name == "morf", count))
                rows.append(len(copies))
        source[order_name] = rows

    chunks: list[Tensor] = [] if clean_native is None else [clean_native.to(image.device)]
    if copies:
        removed = _removed(ranks, copies, n_units).view(len(copies), h, w)
        batch = perturbed_copies(image, removed, config, mean_rgb, seed)
    else:
        batch = image.new_empty((0, *image.shape))
    if clean_native is None:
        batch = torch.cat([image[None], batch])
    chunks += [model.native(batch[i : i + config.batch_size]) for i in range(0, batch.shape[0], config.batch_size)]
    native = torch.cat(chunks)  # (1 + P, 1, h, w): the clean prediction, then the perturbed ones

    # Predictions are clipped to the model's range, as the official evaluation does (AbsRel divides by them); a
    # relative model's are turned into metres by the image's alignment (after each resize) and clipped to the
    # dataset's range. The explained scalar stays that of the raw output.
    clip = (model.card.min_depth, model.card.max_depth) if alignment is None else alignment.clip
    clean = resize_depth(native[:1], (h, w))[0, 0]
    clean = (clean if alignment is None else alignment.apply(clean)).clamp(*clip)
    clean_reference = ReferenceMap(clean, dtype=native.dtype)
    scored = _score_at(native, (h, w), clean_reference, clip, target_weights, alignment)
    curves = dict(zip(("depth_rmse", "depth_absrel"), scored[:2]))
    if target_weights is not None:
        explained = scored[2]  # (1 + P,): the clean scalar first
        curves["target_change"] = (explained - explained[0]).abs() / explained[0].abs()
    if ground_truth is not None:
        gt_reference = ReferenceMap(ground_truth.depth, ground_truth.mask, native.dtype)
        curves.update(zip(("gt_rmse", "gt_absrel"),
                          _score_at(native, (ground_truth.depth.shape[-2], ground_truth.depth.shape[-1]),
                                    gt_reference, clip, alignment=alignment)))
    table = torch.stack(list(curves.values())).cpu().numpy()  # (metrics, 1 + P) float64
    return {f"{order_name}_{metric}": table[m, source[order_name]]
            for order_name in ORDERS for m, metric in enumerate(curves)}


def normalised_auc(values: np.ndarray, fractions: Sequence[float]) -> float:
    """Mean height of a curve over ``[f_min, f_max]``: ``trapz(values, fractions) / (f_max - f_min)``."""
    f = np.asarray(fractions, dtype=np.float64)
    return float(np.trapezoid(np.asarray(values, dtype=np.float64), f) / (f[-1] - f[0]))
