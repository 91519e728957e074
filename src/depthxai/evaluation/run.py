"""The evaluation stage: perturbation curves, Attribution Fidelity and Infidelity for every map of a shard.

Two tidy tables come out, one row per value:

* ``scores``: ``image_id, metric, value`` with, per image, ``<order>_auc_<curve>`` for orders ``morf``/``lerf``
  and curves ``depth_rmse``, ``depth_absrel`` (change of the prediction) and, with ground truth,
  ``gt_absrel_change``, ``gt_rmse_change`` (change of the error against the ground truth: the "depth-error
  change"); ``attribution_fidelity``; ``infidelity``; and ``convergence_delta`` for IG.
* ``curves``: ``image_id, order, fraction, curve, value``, the raw curves behind the AUCs (Figure 2).
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
from tqdm import tqdm

from depthxai.attribution.base import image_seed
from depthxai.attribution.targets import TargetSpec, target_weights
from depthxai.data.io import DatasetInfo, read_dataset_info, read_depth, read_rgb, sample_paths
from depthxai.errors import DataError
from depthxai.evaluation.depth_metrics import eval_mask
from depthxai.evaluation.fidelity import attribution_fidelity
from depthxai.evaluation.infidelity import infidelity
from depthxai.evaluation.perturbation import GroundTruth, PerturbationConfig, normalised_auc, perturbation_curves
from depthxai.models.wrapper import DepthModel, crop_box, prepare_input, resize_depth

SCORE_COLUMNS = ["image_id", "metric", "value"]
CURVE_COLUMNS = ["image_id", "order", "fraction", "curve", "value"]


@dataclass(frozen=True)
class EvaluationConfig:
    """The config's ``evaluation`` section, typed."""

    perturbation: PerturbationConfig
    fidelity_measure: str = "pearson"
    fidelity_resolution: str = "native"
    infidelity_samples: int = 16
    infidelity_noise_std: float = 0.05
    infidelity_normalize: bool = True

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> EvaluationConfig:
        perturbation = PerturbationConfig(
            fractions=tuple(float(f) for f in section["fractions"]), ranking=section["ranking"],
            replacement=section["replacement"], blur_sigma=float(section["blur_sigma"]),
            noise_std=float(section["noise_std"]), batch_size=int(section["batch_size"]))
        fid, infid = section["fidelity"], section["infidelity"]
        return cls(perturbation=perturbation, fidelity_measure=fid["measure"], fidelity_resolution=fid["resolution"],
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


def evaluate_split(model: DepthModel, data_root: str | Path, predictions: Mapping[str, np.ndarray],
                   attributions: Mapping[str, Any], config: EvaluationConfig, target: TargetSpec,
                   mean_rgb: Sequence[float], *, seed: int = 0, progress: bool = True,
                   log: logging.Logger | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
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

    Returns:
        ``(scores, curves)`` tidy tables (see the module docstring).
    """
    pred_ids = [str(i) for i in predictions["ids"]]
    map_ids = [str(i) for i in attributions["ids"]]
    if pred_ids != map_ids:
        raise DataError("predictions and attributions list different images; rerun the attribute rule for this shard")
    method = attributions["meta"].get("method", "?")
    device = next(model.parameters()).device
    info = read_dataset_info(data_root)
    fractions = config.perturbation.fractions
    score_rows: list[tuple[str, str, float]] = []
    curve_rows: list[tuple[str, str, float, str, float]] = []
    for k, image_id in enumerate(tqdm(pred_ids, desc=f"evaluate {method}", disable=not progress, mininterval=5)):
        rgb_path, depth_path = sample_paths(data_root, image_id)
        rgb = read_rgb(rgb_path)
        image = prepare_input(rgb, model.card).to(device)
        # the stored prediction: neither the clean depth nor the target region is ever recomputed here
        native = torch.from_numpy(predictions["native"][k : k + 1]).to(device)
        relevance = torch.from_numpy(attributions["maps"][k]).to(device)
        ground_truth = ground_truth_view(model, data_root, depth_path, rgb.shape[:2], info)
        curves = perturbation_curves(model, image, relevance, config.perturbation, mean_rgb,
                                     seed=image_seed(seed, image_id, "perturbation"), ground_truth=ground_truth,
                                     clean_native=native)
        for key, values in curves.items():
            order, curve = key.split("_", 1)
            curve_rows.extend((image_id, order, float(f), curve, float(v)) for f, v in zip(fractions, values))
            baseline = values[0] if curve.startswith("gt_") else 0.0
            name = f"{order}_auc_{curve}" + ("_change" if curve.startswith("gt_") else "")
            score_rows.append((image_id, name, normalised_auc(values - baseline, fractions)))
        compare_depth = native[0, 0] if config.fidelity_resolution == "native" else resize_depth(native, tuple(image.shape[-2:]))[0, 0]
        score_rows.append((image_id, "attribution_fidelity", attribution_fidelity(relevance, compare_depth, config.fidelity_measure)))
        weights = target_weights(target, resize_depth(native, tuple(image.shape[-2:])))[0]
        score_rows.append((image_id, "infidelity", infidelity(
            model, image, relevance, weights, n_perturb_samples=config.infidelity_samples,
            noise_std=config.infidelity_noise_std, normalize=config.infidelity_normalize,
            seed=image_seed(seed, image_id, "infidelity"), max_batch=config.perturbation.batch_size,
            clean_native=native)))
        delta = float(attributions["convergence_delta"][k])
        if np.isfinite(delta):
            score_rows.append((image_id, "convergence_delta", delta))
    if log:
        log.info("evaluated %d images of %s", len(pred_ids), method)
    return pd.DataFrame(score_rows, columns=SCORE_COLUMNS), pd.DataFrame(curve_rows, columns=CURVE_COLUMNS)
