"""The evaluation stage: perturbation curves, Attribution Fidelity and Infidelity for every map of a shard.

Two tidy tables come out, one row per value:

* ``scores``: ``image_id, metric, value`` with, per image and removal scheme, ``<order>_auc_<curve><suffix>`` for
  orders ``morf``/``lerf`` and curves ``target_change`` (relative change of the explained scalar: the primary
  metric), ``depth_rmse``, ``depth_absrel`` (change of the whole predicted map) and, with ground truth,
  ``gt_absrel_change``, ``gt_rmse_change`` (change of the error against the ground truth: the "depth-error
  change"); the suffix is empty for the primary (first) scheme and ``@<scheme>`` for the others
  (:func:`~depthxai.evaluation.perturbation.scheme_suffix`). Then ``attribution_fidelity``; ``infidelity`` for
  signed maps, ``infidelity_unsigned`` for maps without a sign (not comparable: Infidelity's first-order model
  needs the signed map); ``constant_map`` (1 where the map is constant: it ranks nothing, its ties are broken at
  random and its Attribution Fidelity is undefined; a warning names it in the log); and ``convergence_delta`` for
  IG.
* ``curves``: ``image_id, order, fraction, curve, value``, the raw curves behind the AUCs (Figure 2); ``curve``
  carries the scheme's suffix.

A relative model (card ``output_kind: relative``) is scored in metres where its predictions are compared with
metres: per image, its clean prediction is aligned to the ground truth (:mod:`depthxai.evaluation.relative`) and
the ``depth_*`` and ``gt_*`` curves and Attribution Fidelity use the aligned predictions; ``target_change`` and
Infidelity use the raw output. An image of such a model without valid ground truth gets no ``depth_*`` / ``gt_*``
curves and no Attribution Fidelity (a warning names it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from depthxai.attribution.base import image_seed
from depthxai.attribution.targets import TargetSpec, target_weights
from depthxai.data.io import DatasetInfo, read_dataset_info, read_depth, read_rgb, sample_paths
from depthxai.errors import DataError
from depthxai.evaluation.fidelity import attribution_fidelity
from depthxai.evaluation.infidelity import infidelity
from depthxai.evaluation.perturbation import (
    GroundTruth,
    PerturbationConfig,
    normalised_auc,
    perturbation_curves,
    scheme_suffix,
)
from depthxai.evaluation.relative import AlignmentSpec, DepthAlignment, fit_alignment, relative_output
from depthxai.metrics.depth import eval_mask
from depthxai.models.wrapper import DepthModel, crop_box, prepare_input, resize_depth

#: The columns of a shard's scores and curves (the CLI adds dataset, model and method).
IMAGE_SCORE_COLUMNS = ["image_id", "metric", "value"]
CURVE_COLUMNS = ["image_id", "order", "fraction", "curve", "value"]


@dataclass(frozen=True)
class EvaluationConfig:
    """The config's ``evaluation`` section, typed: the removal schemes (the first is the primary one), Attribution
    Fidelity and Infidelity settings."""

    schemes: tuple[PerturbationConfig, ...]
    fidelity_measure: str = "pearson"
    fidelity_resolution: str = "native"
    infidelity_samples: int = 16
    infidelity_noise_std: float = 0.05
    infidelity_normalize: bool = True

    def __post_init__(self) -> None:
        names = [s.name for s in self.schemes]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"removal schemes need distinct names, got {names}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> EvaluationConfig:
        schemes = tuple(
            PerturbationConfig(
                fractions=tuple(float(f) for f in section["fractions"]), ranking=section["ranking"],
                batch_size=int(section["batch_size"]), name=scheme["name"], unit=scheme["unit"],
                patch_size=int(scheme["patch_size"]), replacement=scheme["replacement"],
                blur_sigma=float(scheme["blur_sigma"]), noise_std=float(scheme["noise_std"]),
                road_noise_std=float(scheme["road_noise_std"]))
            for scheme in section["schemes"])
        fid, infid = section["fidelity"], section["infidelity"]
        return cls(schemes=schemes, fidelity_measure=fid["measure"], fidelity_resolution=fid["resolution"],
                   infidelity_samples=int(infid["n_perturb_samples"]), infidelity_noise_std=float(infid["noise_std"]),
                   infidelity_normalize=bool(infid["normalize"]))


def ground_truth_view(model: DepthModel, data_root: str | Path, depth_path: Path | None,
                      image_size: tuple[int, int], info: DatasetInfo | None = None) -> GroundTruth | None:
    """The ground truth and its evaluation mask, cut to the region the model sees; ``None`` without ground truth.

    ``info`` is the dataset's :class:`DatasetInfo` (read from ``data_root`` if not given).
    """
    if depth_path is None:
        return None
    info = info if info is not None else read_dataset_info(data_root)
    gt = read_depth(depth_path, info.depth_scale)
    if gt.shape != tuple(image_size):
        raise DataError(f"{depth_path}: depth map is {gt.shape}, its image is {image_size}")
    mask = eval_mask(gt, info.min_depth, info.max_depth, info.eval_crop)
    top, left, ch, cw = crop_box(model.card, gt.shape)
    gt, mask = gt[top : top + ch, left : left + cw], mask[top : top + ch, left : left + cw]
    if not mask.any():
        return None
    device = next(model.parameters()).device
    return GroundTruth(depth=torch.from_numpy(np.ascontiguousarray(gt)).to(device),
                       mask=torch.from_numpy(np.ascontiguousarray(mask)).to(device))


def score_map(model: DepthModel, image: Tensor, relevance: Tensor, native: Tensor, config: EvaluationConfig,
              target: TargetSpec, mean_rgb: Sequence[float], *, seed: int, image_id: str,
              ground_truth: GroundTruth | None = None, signed: bool = True, alignment: DepthAlignment | None = None
              ) -> tuple[list[tuple[str, float]], list[tuple[str, float, str, float]]]:
    """Every score of one map: the perturbation curves under each removal scheme and their AUCs, Attribution
    Fidelity and Infidelity.

    Args:
        model: depth model.
        image: ``(3, H, W)`` RGB in [0, 1] at the network's input size.
        relevance: ``(H, W)`` the map.
        native: ``(1, 1, h, w)`` the stored clean prediction (metres): the target's weights come from it.
        config, target, mean_rgb: as :func:`evaluate_split`.
        seed: base seed; the image's seeds (ties, replacement noise per scheme, Infidelity) derive from it and
            ``image_id``, so results do not depend on the shard.
        ground_truth: in the model's view, or ``None``.
        signed: whether the map carries a sign (else Infidelity is named ``infidelity_unsigned``).
        alignment: a relative model's alignment of this image (:func:`image_alignment`); a relative model without
            one is scored on the scale-free quantities only (``target_change``, Infidelity).

    Returns:
        ``(scores, curves)``: rows ``(metric, value)`` and ``(order, fraction, curve, value)``.
    """
    weights = target_weights(target, resize_depth(native, tuple(image.shape[-2:])))[0]
    scale_free_only = relative_output(model.card) and alignment is None
    scores: list[tuple[str, float]] = []
    curve_rows: list[tuple[str, float, str, float]] = []
    for index, scheme in enumerate(config.schemes):
        suffix = scheme_suffix(index, scheme.name)
        curves = perturbation_curves(model, image, relevance, scheme, mean_rgb,
                                     seed=image_seed(seed, image_id, "perturbation" + suffix),
                                     ground_truth=None if scale_free_only else ground_truth, clean_native=native,
                                     target_weights=weights[0], tie_seed=image_seed(seed, image_id, "ties"),
                                     alignment=alignment)
        for key, values in curves.items():
            if scale_free_only and not key.endswith("_target_change"):
                continue
            order, curve = key.split("_", 1)
            curve_rows.extend((order, float(f), curve + suffix, float(v)) for f, v in zip(scheme.fractions, values))
            baseline = values[0] if curve.startswith("gt_") else 0.0
            name = f"{order}_auc_{curve}" + ("_change" if curve.startswith("gt_") else "") + suffix
            scores.append((name, normalised_auc(values - baseline, scheme.fractions)))
    compare = native[0, 0] if config.fidelity_resolution == "native" else resize_depth(
        native, tuple(image.shape[-2:]))[0, 0]
    if alignment is not None:
        compare = alignment.apply(compare).clamp(*alignment.clip)
    if not scale_free_only:
        scores.append(("attribution_fidelity", attribution_fidelity(relevance, compare, config.fidelity_measure)))
    scores.append(("infidelity" if signed else "infidelity_unsigned", infidelity(
        model, image, relevance, weights, n_perturb_samples=config.infidelity_samples,
        noise_std=config.infidelity_noise_std, normalize=config.infidelity_normalize,
        seed=image_seed(seed, image_id, "infidelity"), max_batch=config.schemes[0].batch_size, clean_native=native)))
    return scores, curve_rows


def image_alignment(native: Tensor, ground_truth: GroundTruth | None, spec: AlignmentSpec, info: DatasetInfo
                    ) -> DepthAlignment | None:
    """A relative model's alignment of one image: its clean prediction ``native (1, 1, h, w)`` resized to the ground
    truth's view and fitted on its evaluation mask (:func:`~depthxai.evaluation.relative.fit_alignment`); ``None``
    without ground truth or where the fit is impossible (a prediction constant over the valid pixels)."""
    if ground_truth is None:
        return None
    pred = resize_depth(native, tuple(ground_truth.depth.shape[-2:]))[0, 0].cpu().numpy()
    try:
        return fit_alignment(pred, ground_truth.depth.cpu().numpy(), ground_truth.mask.cpu().numpy(), spec,
                             info.min_depth, info.max_depth)
    except ValueError:
        return None


def check_map(relevance: Tensor, size: tuple[int, int], source: str, image_id: str) -> None:
    """Refuse a map that is not ``(H, W)`` at the network's input size or holds NaN/inf, naming file and image."""
    if relevance.dim() != 2 or tuple(relevance.shape) != tuple(size):
        raise DataError(f"{source}: the map of image {image_id} has shape {tuple(relevance.shape)}; expected {size} "
                        "(one value per pixel of the network's input); rerun the attribute rule")
    if not bool(torch.isfinite(relevance).all()):
        bad = int((~torch.isfinite(relevance)).sum())
        raise DataError(f"{source}: the map of image {image_id} holds {bad} NaN/inf value(s); rerun the attribute "
                        "rule (and check the method on this image)")


def evaluate_split(model: DepthModel, data_root: str | Path, predictions: Mapping[str, np.ndarray],
                   attributions: Mapping[str, Any], config: EvaluationConfig, target: TargetSpec,
                   mean_rgb: Sequence[float], *, seed: int = 0, progress: bool = True,
                   log: logging.Logger | None = None, alignment: AlignmentSpec | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every map of a shard.

    Args:
        model: depth model.
        data_root: prepared dataset.
        predictions: the prediction stage's arrays (``ids``, ``native``), e.g. :func:`read_predictions`, which
            reads one image at a time.
        attributions: the attribution stage's arrays (``ids``, ``maps``, ``convergence_delta``, ``meta``), e.g.
            :func:`read_attributions` (one map at a time).
        config: evaluation settings.
        target: the target the maps explain (for Infidelity).
        mean_rgb: dataset mean colour (perturbation replacement).
        seed: base seed; per-image seeds derive from it.
        alignment: how a relative model's predictions are aligned to the ground truth (config
            ``evaluation.alignment``; default least squares in disparity space); unused for metric models.

    Returns:
        ``(scores, curves)`` tidy tables (see the module docstring).
    """
    alignment = alignment if alignment is not None else AlignmentSpec()
    relative = relative_output(model.card)
    pred_ids = [str(i) for i in predictions["ids"]]
    map_ids = [str(i) for i in attributions["ids"]]
    if pred_ids != map_ids:
        raise DataError("predictions and attributions list different images; rerun the attribute rule for this shard")
    meta = attributions["meta"]
    method = meta.get("method", "?")
    source = attributions.get("path", f"the {method} attributions")
    if "signed" not in meta:
        raise DataError(f"{source}: the maps do not say whether they are signed (meta 'signed'); rerun the attribute "
                        "rule")
    if meta.get("model", model.card.name) != model.card.name:
        raise DataError(f"{source}: the maps explain the model {meta['model']!r}, not {model.card.name!r}; evaluate "
                        "them with the model they were made with")
    device = next(model.parameters()).device
    info = read_dataset_info(data_root)
    score_rows: list[tuple[str, str, float]] = []
    curve_rows: list[tuple[str, str, float, str, float]] = []
    for k, image_id in enumerate(tqdm(pred_ids, desc=f"evaluate {method}", disable=not progress, mininterval=5)):
        rgb_path, depth_path = sample_paths(data_root, image_id)
        rgb = read_rgb(rgb_path)
        image = prepare_input(rgb, model.card).to(device)
        # the stored prediction: neither the clean depth nor the target region is ever recomputed here
        native = torch.from_numpy(predictions["native"][k : k + 1]).to(device)
        relevance = torch.from_numpy(np.asarray(attributions["maps"][k])).to(device)
        check_map(relevance, (image.shape[-2], image.shape[-1]), source, image_id)
        constant = bool(relevance.max() == relevance.min())
        if constant and log:
            log.warning("%s: the map of image %s is constant: it ranks no pixel above another (scored with random "
                        "ties; Attribution Fidelity undefined) - flagged as constant_map in the scores",
                        source, image_id)
        ground_truth = ground_truth_view(model, data_root, depth_path, rgb.shape[:2], info)
        fitted = image_alignment(native, ground_truth, alignment, info) if relative else None
        if relative and fitted is None and log:
            log.warning("%s: image %s of the relative model %s cannot be aligned to ground truth (none valid, or a "
                        "constant prediction): scored on target_change and Infidelity only", source, image_id,
                        model.card.name)
        scores, curves = score_map(model, image, relevance, native, config, target, mean_rgb, seed=seed,
                                   image_id=image_id, ground_truth=ground_truth, signed=bool(meta["signed"]),
                                   alignment=fitted)
        score_rows += [(image_id, *row) for row in scores] + [(image_id, "constant_map", float(constant))]
        curve_rows += [(image_id, *row) for row in curves]
        delta = float(attributions["convergence_delta"][k])
        if np.isfinite(delta):
            score_rows.append((image_id, "convergence_delta", delta))
    if log:
        log.info("evaluated %d images of %s", len(pred_ids), method)
    return pd.DataFrame(score_rows, columns=IMAGE_SCORE_COLUMNS), pd.DataFrame(curve_rows, columns=CURVE_COLUMNS)
