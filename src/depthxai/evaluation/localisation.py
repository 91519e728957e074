"""Localisation ground truth for depth attributions: 2x2 mosaics and the object-shift control.

**Mosaics** (after Arias-Duart et al. 2021, "Focus! Rating XAI Methods and Finding Biases with Mosaics", and
Fresz, Lörcher, Huber 2024, "Classification Metrics for Image Explanations: Towards Building Reliable
XAI-Evaluations"; code lelo204/ClassificationMetricsForImageExplanations). Four different test scenes, each
downscaled by 2, are tiled into one image of the model's input size (:func:`make_mosaics`). The explained scalar is
the mean predicted depth inside one tile (a ``box`` target over that tile), so a map that explains it should put its
relevance on that tile. This is a ground truth *under an assumption*: a depth network may legitimately use context
from the neighbouring tiles (large receptive fields, global attention), so a score below 1 is not by itself an
error; what matters is the comparison between methods and against chance (a uniform map scores 0.25).

**Metrics** (:func:`localisation_metrics`), from the pixel map after the channel reduction:

* ``focus``: share of the relevance *magnitude* ``|r|`` inside the tile (Arias-Duart et al.'s Focus counts positive
  relevance of a class explanation; for depth, the sign of ``r`` is the direction of the effect on the depth, not
  evidence for or against a class, so the magnitude is used for every method — for non-negative maps such as
  |gradient|, rollout and random it is the same number). Equal to the "relevance mass accuracy" of Arras, Osman,
  Samek (2022, CLEVR-XAI) on ``|r|``.
* Binarised confusion metrics: the ``K`` most relevant pixels by ``|r|`` are selected, ``K`` = the tile's area (25%
  of the mosaic by default, so that a perfect map selects exactly the tile); pixels tied at the threshold are
  selected fractionally, each with the same share of the remaining slots (the expectation over random tie-breaking,
  so a uniform map is not favoured by raster order). ``precision`` = TP/K, ``recall`` = TP/|tile|,
  ``specificity`` = TN/(TN+FP), ``f1``, ``accuracy`` = (TP+TN)/(H W). With ``K = |tile|``, precision = recall = F1,
  which is Arras et al.'s "relevance rank accuracy"; pass ``top_share`` to select another share.
* Relevance-mass confusion metrics exactly as Fresz et al. define them for the *signed* map
  (``evaluation/compute_metrics.py``, ``compute_metric``): TP = positive relevance inside the tile, FN = |negative|
  relevance inside, FP = positive relevance outside, TN = |negative| relevance outside; ``mass_precision`` =
  TP/(TP+FP), ``mass_sensitivity`` = TP/(TP+FN), ``mass_specificity`` = TN/(TN+FP), ``mass_accuracy`` =
  (TP+TN)/(TP+TN+FP+FN), ``mass_f1``; their FNR and FPR are 1 - sensitivity and 1 - specificity and are not
  repeated. For a non-negative map FN = TN = 0, so sensitivity is 1 and specificity 0 by construction: these
  metrics only say something for signed maps (IG with channel reduction ``sum``). NaN where a denominator is 0.

**Attribution Fidelity on the controls.** Both controls also score each map's Attribution Fidelity
(:mod:`depthxai.evaluation.fidelity`) against the prediction of the image it explains, and both add an **oracle**
pseudo-method whose map *is* the predicted depth (block-upsampled to the input grid, :func:`oracle_map`): its AF is 1
by construction, while it localises nothing (its Focus is the tile's share of the depth, its object-shift mass ratio
the object's share). The pair of numbers shows, on known answers, what AF rewards: similarity of the map to the
depth map, whatever the map explains.

**Object-shift control** (:func:`object_shift_run`). :func:`~depthxai.data.synthetic.render_object_shift` renders a
scene twice, with exactly one object moved in depth (A: original place, B: moved). The explained scalar is the mean
predicted depth over the object's mask in render B, attributed on image B; the region the depth change can come
from is the union of the object's masks in A and B, dilated by ``dilate_px`` pixels (:func:`shift_region`). The
metrics are the share of ``|r|`` inside that region (``mass_share``), the region's area share (``area_share``, the
share a uniform map would get), their ratio (``mass_ratio``, 1 = chance) and the binarised precision with ``K`` =
the region's area (``rank_precision``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from depthxai.attribution.base import AttributionMethod, image_seed, reduce_channels
from depthxai.attribution.targets import TargetSpec, target_weights
from depthxai.data.synthetic import render_object_shift
from depthxai.evaluation.fidelity import attribution_fidelity
from depthxai.models.wrapper import DepthModel, resize_depth

#: The pseudo-method of the controls whose map is the prediction itself (AF = 1 by construction).
ORACLE = "oracle"

#: Tile k of a mosaic: (row, column) of the 2x2 grid; 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
#: (the quadrant order of Fresz et al.'s ``extract_mosaic_relevance``).
TILES = ((0, 0), (0, 1), (1, 0), (1, 1))
LOCALISATION_COLUMNS = ["method", "image_id", "target_tile", "source_id", "metric", "value"]
SHIFT_COLUMNS = ["method", "image_id", "setup", "scene_seed", "true_shift_m", "predicted_shift_m", "metric", "value"]


# --------------------------------------------------------------------------------------------- mosaics


def tile_box(tile: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel box ``(top, left, bottom, right)`` (exclusive ends) of ``tile`` in a mosaic of ``size`` = (H, W)."""
    if tile not in range(4):
        raise ValueError(f"tile must be 0..3, got {tile}")
    h, w = size
    row, col = TILES[tile]
    return (row * (h // 2), col * (w // 2), h // 2 if row == 0 else h, w // 2 if col == 0 else w)


def tile_mask(tile: int, size: tuple[int, int]) -> Tensor:
    """``(H, W)`` bool mask of ``tile`` (see :data:`TILES`)."""
    top, left, bottom, right = tile_box(tile, size)
    mask = torch.zeros(size, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def make_mosaics(images: Tensor, n_mosaics: int, seed: int,
                 out_size: tuple[int, int] | None = None) -> tuple[Tensor, np.ndarray]:
    """2x2 mosaics of four different scenes each.

    Every image is downscaled by 2 with area averaging (an exact 2x2 mean for even sizes, so no aliasing), the four
    tiles are placed as :data:`TILES`, and the mosaic is resized bilinearly to ``out_size`` where that differs
    (only for odd input sizes).

    Args:
        images: ``(N, 3, H, W)`` RGB in [0, 1], ``N >= 4``, at the model's input size.
        n_mosaics: number of mosaics ``M``.
        seed: the scenes of mosaic ``m`` are ``numpy.random.default_rng(seed)``'s ``m``-th draw of 4 distinct indices.
        out_size: ``(H, W)`` of the mosaics; default the images' size.

    Returns:
        ``(mosaics (M, 3, H, W), tile_ids (M, 4) int64)``: ``tile_ids[m, k]`` is the index in ``images`` of the
        scene in tile ``k`` of mosaic ``m``.
    """
    n, c, h, w = images.shape
    if n < 4:
        raise ValueError(f"mosaics need at least 4 different images, got {n}")
    out_size = (h, w) if out_size is None else (out_size[0], out_size[1])
    rng = np.random.default_rng(seed)
    tile_ids = np.stack([rng.choice(n, size=4, replace=False) for _ in range(n_mosaics)]).astype(np.int64) \
        if n_mosaics > 0 else np.zeros((0, 4), np.int64)
    th, tw = h // 2, w // 2
    tiles = F.interpolate(images, size=(th, tw), mode="area")
    mosaics = torch.empty((n_mosaics, c, 2 * th, 2 * tw), dtype=images.dtype, device=images.device)
    for k, (row, col) in enumerate(TILES):
        mosaics[:, :, row * th : (row + 1) * th, col * tw : (col + 1) * tw] = tiles[torch.as_tensor(tile_ids[:, k])]
    if tuple(mosaics.shape[-2:]) != out_size:
        mosaics = F.interpolate(mosaics, size=out_size, mode="bilinear", align_corners=False)
    return mosaics, tile_ids


# --------------------------------------------------------------------------------------------- metrics


def soft_top_selection(score: Tensor, k: float) -> Tensor:
    """Selection weights in [0, 1] of the ``k`` highest scores, ties at the threshold sharing the remaining slots.

    Args:
        score: any shape.
        k: number of elements to select, ``0 <= k <= score.numel()`` (may be fractional).

    Returns:
        float64 tensor of ``score``'s shape summing to ``k``.
    """
    flat = score.detach().double().reshape(-1)
    n = flat.numel()
    if not 0 <= k <= n:
        raise ValueError(f"cannot select {k} of {n} elements")
    selection = torch.zeros_like(flat)
    if k == 0:
        return selection.reshape(score.shape)
    ordered = torch.sort(flat, descending=True).values
    threshold = ordered[min(int(np.ceil(k)) - 1, n - 1)]
    above = flat > threshold
    tied = flat == threshold
    selection[above] = 1.0
    selection[tied] = (k - float(above.sum())) / float(tied.sum())
    return selection.reshape(score.shape)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def localisation_metrics(relevance: Tensor, mask: Tensor, top_share: float | None = None) -> dict[str, float]:
    """Localisation metrics of one pixel map against a ground-truth region (see the module docstring).

    Args:
        relevance: ``(H, W)`` pixel map (any sign).
        mask: ``(H, W)`` bool ground-truth region (the target tile).
        top_share: share of pixels selected for the binarised metrics; default the region's area share.

    Returns:
        ``focus``, ``precision``, ``recall``, ``specificity``, ``f1``, ``accuracy``, ``mass_precision``,
        ``mass_sensitivity``, ``mass_specificity``, ``mass_accuracy``, ``mass_f1`` (floats; NaN where undefined).
    """
    if relevance.shape != mask.shape or relevance.dim() != 2:
        raise ValueError(f"relevance {tuple(relevance.shape)} and mask {tuple(mask.shape)} must be equal (H, W)")
    r = relevance.detach().double().cpu()
    inside = mask.detach().cpu().bool()
    n_pixels, n_inside = r.numel(), int(inside.sum())
    if n_inside == 0 or n_inside == n_pixels:
        raise ValueError("the ground-truth region must be neither empty nor the whole image")
    magnitude = r.abs()
    out = {"focus": _ratio(float(magnitude[inside].sum()), float(magnitude.sum()))}

    k = (n_inside / n_pixels if top_share is None else top_share) * n_pixels
    selected = soft_top_selection(magnitude, k)
    tp = float(selected[inside].sum())
    fp = k - tp
    tn = n_pixels - n_inside - fp
    precision, recall = _ratio(tp, k), _ratio(tp, n_inside)
    out.update(precision=precision, recall=recall, specificity=_ratio(tn, tn + fp),
               f1=2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0,
               accuracy=(tp + tn) / n_pixels)

    positive, negative = r.clamp(min=0), (-r).clamp(min=0)
    m_tp, m_fn = float(positive[inside].sum()), float(negative[inside].sum())
    m_fp, m_tn = float(positive[~inside].sum()), float(negative[~inside].sum())
    m_precision, m_sensitivity = _ratio(m_tp, m_tp + m_fp), _ratio(m_tp, m_tp + m_fn)
    if np.isnan(m_precision) or np.isnan(m_sensitivity):
        m_f1 = float("nan")
    else:
        total = m_precision + m_sensitivity
        m_f1 = 2 * m_precision * m_sensitivity / total if total > 0 else 0.0
    out.update(mass_precision=m_precision, mass_sensitivity=m_sensitivity,
               mass_specificity=_ratio(m_tn, m_tn + m_fp),
               mass_accuracy=_ratio(m_tp + m_tn, m_tp + m_tn + m_fp + m_fn), mass_f1=m_f1)
    return out


def _as_list(methods: AttributionMethod | Sequence[AttributionMethod]) -> list[AttributionMethod]:
    return [methods] if isinstance(methods, AttributionMethod) else list(methods)


def _pixel_map(model: DepthModel, method: AttributionMethod, image: Tensor, weights: Tensor, seed: int,
               channel_reduction: str) -> Tensor:
    result = method.attribute(model, image[None], weights[None], seeds=[seed])
    pixel_map = reduce_channels(result.maps, channel_reduction)[0].detach()
    if not bool(torch.isfinite(pixel_map).all()):
        raise ValueError(f"{method.name} produced non-finite attributions")
    return pixel_map


def oracle_map(native: Tensor, size: tuple[int, int]) -> Tensor:
    """The oracle's map: the predicted depth ``(h, w)`` on the input grid ``size``, each output pixel copied to its
    block where the sizes divide (so that area pooling gives the prediction back exactly), bilinear otherwise."""
    h, w = native.shape
    if size[0] % h == 0 and size[1] % w == 0:
        return native.repeat_interleave(size[0] // h, dim=0).repeat_interleave(size[1] // w, dim=1)
    return resize_depth(native[None, None], size)[0, 0]


def _control_maps(model: DepthModel, methods: Sequence[AttributionMethod], image: Tensor, weights: Tensor,
                  seed: int, image_id: str, channel_reduction: str, fidelity_measure: str
                  ) -> list[tuple[str, Tensor, float]]:
    """``[(method, pixel map, Attribution Fidelity)]`` of every method and the oracle on one control image."""
    with torch.no_grad():
        native = model.native(image[None])[0, 0]
    out = []
    for method in methods:
        pixel_map = _pixel_map(model, method, image, weights, image_seed(seed, image_id, method.name),
                               channel_reduction)
        out.append((method.name, pixel_map, attribution_fidelity(pixel_map, native, fidelity_measure)))
    oracle = oracle_map(native, (image.shape[-2], image.shape[-1]))
    out.append((ORACLE, oracle, attribution_fidelity(oracle, native, fidelity_measure)))
    return out


def localisation_run(model: DepthModel, images: Tensor, methods: AttributionMethod | Sequence[AttributionMethod],
                     n_mosaics: int, seed: int, *, image_ids: Sequence[str] | None = None,
                     channel_reduction: str = "sum", fidelity_measure: str = "pearson") -> pd.DataFrame:
    """Mosaic localisation scores of every method.

    Mosaic ``m`` (:func:`make_mosaics` with ``seed``) explains the mean predicted depth inside tile ``m % 4`` (so
    every tile position is the target equally often); its id is ``mosaic_<m:04d>``.

    Args:
        model: depth model in eval mode.
        images: ``(N, 3, H, W)`` RGB in [0, 1] at ``model.card.input_size``, on the model's device, ``N >= 4``.
        methods: one attribution method or several.
        n_mosaics: number of mosaics.
        seed: mosaic composition and the per-mosaic seeds of stochastic methods (``image_seed(seed, id, method)``).
        image_ids: ids of ``images`` (for ``source_id``: the scene in the target tile); default ``"0"``, ``"1"``...
        channel_reduction: as the attribution stage (:func:`~depthxai.attribution.base.reduce_channels`).
        fidelity_measure: of the ``attribution_fidelity`` rows.

    Returns:
        Tidy rows :data:`LOCALISATION_COLUMNS` (``metric`` as :func:`localisation_metrics`, and
        ``attribution_fidelity``) of every method and the :data:`ORACLE`, sorted by method, image_id, metric.
    """
    methods = _as_list(methods)
    ids = [str(i) for i in (image_ids if image_ids is not None else range(images.shape[0]))]
    if len(ids) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {len(ids)} ids")
    size = (images.shape[-2], images.shape[-1])
    mosaics, tile_ids = make_mosaics(images, n_mosaics, seed, out_size=size)
    rows = []
    for m in range(n_mosaics):
        mosaic_id, tile = f"mosaic_{m:04d}", m % 4
        top, left, bottom, right = tile_box(tile, size)
        spec = TargetSpec(kind="box", box=(top / size[0], left / size[1], bottom / size[0], right / size[1]))
        weights = target_weights(spec, torch.zeros((1, 1, *size), device=images.device))[0]
        mask = tile_mask(tile, size)
        source = ids[int(tile_ids[m, tile])]
        for name, pixel_map, fidelity in _control_maps(model, methods, mosaics[m], weights, seed, mosaic_id,
                                                       channel_reduction, fidelity_measure):
            for metric, value in {**localisation_metrics(pixel_map.cpu(), mask),
                                  "attribution_fidelity": fidelity}.items():
                rows.append((name, mosaic_id, tile, source, metric, float(value)))
    table = pd.DataFrame(rows, columns=LOCALISATION_COLUMNS)
    return table.sort_values(["method", "image_id", "metric"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------- object shift


def dilate(mask: Tensor, radius: int) -> Tensor:
    """Binary dilation of an ``(H, W)`` bool mask with a ``(2 radius + 1)`` square (Chebyshev distance <= radius)."""
    if radius <= 0:
        return mask.bool().clone()
    grown = F.max_pool2d(mask.float()[None, None], kernel_size=2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0] > 0


def shift_region(mask_a: Tensor | np.ndarray, mask_b: Tensor | np.ndarray, dilate_px: int = 3) -> Tensor:
    """The region an object shift can act through: ``dilate(mask_a | mask_b, dilate_px)``, ``(H, W)`` bool."""
    a, b = torch.as_tensor(np.asarray(mask_a)), torch.as_tensor(np.asarray(mask_b))
    return dilate(a.bool() | b.bool(), dilate_px)


def region_scores(relevance: Tensor, region: Tensor) -> dict[str, float]:
    """``mass_share`` (share of ``|r|`` in ``region``), ``area_share``, ``mass_ratio`` (= mass / area share, 1 =
    chance) and ``rank_precision`` (binarised precision, ``K`` = the region's area) of one ``(H, W)`` map."""
    metrics = localisation_metrics(relevance, region)
    area = float(region.double().mean())
    return {"mass_share": metrics["focus"], "area_share": area, "mass_ratio": metrics["focus"] / area,
            "rank_precision": metrics["precision"]}


def _to_input(rgb: np.ndarray, device: torch.device) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(torch.float32).div(255.0).to(device)


def object_shift_pairs(setup: str, n_pairs: int, seed: int, size: tuple[int, int], shift_m: float,
                       max_tries: int = 20) -> list[tuple[int, dict[str, Any]]]:
    """The first ``n_pairs`` scenes of ``setup`` in which an object can be moved by ``shift_m``.

    Candidate ``j`` uses the scene seed drawn from ``SeedSequence([seed, crc32(setup), j])`` (63 bits); scenes
    without a movable object are skipped. Returns ``[(scene_seed, render_object_shift(...)), ...]``.

    Raises:
        ValueError: if fewer than ``n_pairs`` are found within ``max_tries * n_pairs`` candidates.
    """
    pairs: list[tuple[int, dict[str, Any]]] = []
    setup_key = zlib.crc32(setup.encode("utf-8"))
    for j in range(max_tries * max(n_pairs, 1)):
        if len(pairs) == n_pairs:
            break
        # 63 bits, so that the seed fits the table's int64 column
        scene_seed = int(np.random.SeedSequence([int(seed), setup_key, j]).generate_state(1, dtype=np.uint64)[0]) >> 1
        try:
            pairs.append((scene_seed, render_object_shift(setup, scene_seed, shift_m, size)))
        except ValueError:
            continue
    if len(pairs) < n_pairs:
        raise ValueError(f"only {len(pairs)} of {n_pairs} {setup} scenes allow an object shift of {shift_m} m; "
                         "use a smaller shift")
    return pairs


def object_shift_run(model: DepthModel, methods: AttributionMethod | Sequence[AttributionMethod],
                     setups: Sequence[str], n_pairs: int, seed: int, *, shift_m: float = 0.5, dilate_px: int = 3,
                     channel_reduction: str = "sum", fidelity_measure: str = "pearson") -> pd.DataFrame:
    """The object-shift control for every method (see the module docstring).

    Scenes are rendered at ``model.card.input_size`` and fed to the model as they are (no crop or resize), so masks
    and maps share the pixel grid.

    Args:
        model: depth model in eval mode.
        methods: one attribution method or several.
        setups: synthetic camera set-ups (``indoor``, ``road``) matching the model's domain.
        n_pairs: pairs per set-up.
        seed: scene selection (:func:`object_shift_pairs`) and per-pair seeds of stochastic methods.
        shift_m: how far the object moves away from the camera (metres).
        dilate_px: dilation of the union of the object's masks.
        channel_reduction: as the attribution stage.
        fidelity_measure: of the ``attribution_fidelity`` rows.

    Returns:
        Tidy rows :data:`SHIFT_COLUMNS`: per pair (``image_id`` ``<setup>_<j:03d>``) the scene seed, the true shift
        of the object's mean depth (``mean depth_b[mask_b] - mean depth_a[mask_a]``, metres, from the ground truth
        over valid pixels), the model's (same masks, predicted depth), the metrics of :func:`region_scores` and
        ``attribution_fidelity``, for every method and the :data:`ORACLE`; sorted by method, image_id, metric.
    """
    methods = _as_list(methods)
    device = next(model.parameters()).device
    size = (model.card.input_size[0], model.card.input_size[1])
    rows = []
    for setup in setups:
        for j, (scene_seed, pair) in enumerate(object_shift_pairs(setup, n_pairs, seed, size, shift_m)):
            pair_id = f"{setup}_{j:03d}"
            image_a, image_b = _to_input(pair["rgb_a"], device), _to_input(pair["rgb_b"], device)
            mask_a = torch.from_numpy(pair["mask_a"]).to(device)
            mask_b = torch.from_numpy(pair["mask_b"]).to(device)
            with torch.no_grad():
                depth = model(torch.stack([image_a, image_b]))[:, 0]
            predicted = float(depth[1][mask_b].mean() - depth[0][mask_a].mean())
            gt_a, gt_b = pair["depth_a"], pair["depth_b"]
            valid_a, valid_b = pair["mask_a"] & (gt_a > 0), pair["mask_b"] & (gt_b > 0)
            true = (float(gt_b[valid_b].mean() - gt_a[valid_a].mean()) if valid_a.any() and valid_b.any()
                    else float("nan"))
            weights = (mask_b.float() / mask_b.float().sum())[None]
            region = shift_region(pair["mask_a"], pair["mask_b"], dilate_px)
            for name, pixel_map, fidelity in _control_maps(model, methods, image_b, weights, seed, pair_id,
                                                           channel_reduction, fidelity_measure):
                for metric, value in {**region_scores(pixel_map.cpu(), region),
                                      "attribution_fidelity": fidelity}.items():
                    rows.append((name, pair_id, setup, scene_seed, true, predicted, metric, float(value)))
    table = pd.DataFrame(rows, columns=SHIFT_COLUMNS)
    return table.sort_values(["method", "image_id", "metric"], kind="stable").reset_index(drop=True)
