"""The prediction stage: depth for every test image of a shard, computed once and reused downstream.

Output (``.npz``, see :func:`write_predictions`): ``ids`` (N,) str; ``native`` (N, 1, h, w) float32 metres at
the network's output resolution. Per-image accuracy against the ground truth (the official protocol: upsample
to the full frame, clip, crop, mask) goes to a tidy CSV with one row per (image, metric).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from depthxai.data.io import read_dataset_info, read_depth, read_rgb, sample_paths
from depthxai.errors import DataError
from depthxai.evaluation.depth_metrics import METRIC_NAMES, evaluate_depth
from depthxai.fileio import write_npz
from depthxai.models.wrapper import DepthModel, crop_box, prepare_input, resize_depth


@torch.no_grad()
def predict_split(model: DepthModel, data_root: str | Path, ids: Sequence[str], *, progress: bool = True,
                  log: logging.Logger | None = None) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Predict depth for ``ids`` of a prepared dataset, one image per forward (so results never depend on
    which images share a batch or a shard).

    Returns:
        ``({"ids": (N,), "native": (N, 1, h, w)}, metrics)`` where ``metrics`` has columns
        ``image_id, metric, value`` (the :data:`METRIC_NAMES` per image with ground truth).
    """
    info = read_dataset_info(data_root)
    device = next(model.parameters()).device
    natives: list[np.ndarray] = []
    rows: list[dict[str, object]] = []
    for image_id in tqdm(list(ids), desc=f"predict {model.card.name}", disable=not progress, mininterval=5):
        rgb_path, depth_path = sample_paths(data_root, image_id)
        rgb = read_rgb(rgb_path)
        native = model.native(prepare_input(rgb, model.card)[None].to(device))
        natives.append(native.cpu().numpy().astype(np.float32))
        if depth_path is None:
            continue
        gt = read_depth(depth_path, info.depth_scale)
        if gt.shape != rgb.shape[:2]:
            raise DataError(f"{depth_path}: depth map is {gt.shape}, its image {rgb_path} is {rgb.shape[:2]}")
        top, left, ch, cw = crop_box(model.card, rgb.shape[:2])
        full = np.zeros(rgb.shape[:2], dtype=np.float32)
        full[top : top + ch, left : left + cw] = resize_depth(native, (ch, cw))[0, 0].cpu().numpy()
        try:
            metrics = evaluate_depth(full, gt, info)
        except ValueError as exc:
            if log:
                log.warning("%s: no valid ground truth (%s); skipped in the accuracy table", image_id, exc)
            continue
        rows.extend({"image_id": image_id, "metric": name, "value": metrics[name]} for name in METRIC_NAMES)
    arrays = {"ids": np.asarray(list(ids), dtype=str), "native": np.concatenate(natives) if natives else np.zeros((0, 1, 1, 1), np.float32)}
    return arrays, pd.DataFrame(rows, columns=["image_id", "metric", "value"])


def write_predictions(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    write_npz(path, **arrays)


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Read a predictions file written by :func:`write_predictions`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {"ids": data["ids"].astype(str), "native": data["native"]}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: unreadable predictions file ({exc}); rerun the predict rule") from exc
