"""The prediction stage: depth for every test image of a shard, computed once and reused downstream.

Output (``.npz``, see :func:`predict_to_file`): ``ids`` (N,) str and, per image, ``native/<id>`` (1, h, w) float32
metres at the network's output resolution, streamed into the file as they are computed (a shard is never held
in memory; :func:`read_predictions` reads one image at a time). Per-image accuracy against the ground truth (the
official protocol: upsample to the full frame, clip, crop, mask) goes to a tidy CSV with one row per
(image, metric).

A model whose card says ``output_kind: relative`` predicts affine-invariant (inverse) depth: its file holds the raw
output (``output_unit_m`` applied, no metres), and its accuracy is computed after aligning each image's full-frame
prediction to the ground truth on the pixels the metrics use (the ``align`` argument, e.g.
:func:`depthxai.evaluation.align.align_to_ground_truth` with the config's ``evaluation.alignment``), then clipped to
the dataset's depth range like any prediction. Metric models are never aligned.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from depthxai.data.io import read_dataset_info, read_depth, read_rgb, sample_paths
from depthxai.errors import DataError
from depthxai.fileio import NpzRows, NpzStreamWriter, write_npy
from depthxai.metrics.depth import METRIC_NAMES, eval_mask, evaluate_depth
from depthxai.models.wrapper import DepthModel, crop_box, predict_image, prepare_input, resize_depth

METRIC_COLUMNS = ["image_id", "metric", "value"]

#: Aligns one relative prediction to the ground truth: ``(pred (H, W), gt (H, W) metres, mask (H, W) bool of the pixels
#: to fit, max_depth of the dataset) -> (H, W) metres``. Passed in (the alignment lives in depthxai.evaluation.align,
#: a later layer than the models).
Aligner = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


@torch.no_grad()
def iter_predictions(model: DepthModel, data_root: str | Path, ids: Sequence[str], *, progress: bool = True,
                     log: logging.Logger | None = None, align: Aligner | None = None
                     ) -> Iterator[tuple[str, np.ndarray, list[dict[str, Any]]]]:
    """Predict depth for ``ids`` of a prepared dataset, one image per forward (so results never depend on
    which images share a batch or a shard), yielding each image as soon as it is done.

    Args:
        align: how a relative model's prediction is aligned to the ground truth before the metrics (see the module
            docstring); fitted on the pixels the metrics use (valid depth range, evaluation crop, the region the
            model sees). Without it a relative model gets no accuracy rows (a warning says so). Unused for metric
            models.

    Yields:
        ``(image_id, native, rows)``: ``native`` ``(1, h, w)`` float32 metres (relative models: the raw output) at
        the network's output resolution; ``rows`` the accuracy rows ``{"image_id", "metric", "value"}`` of
        :data:`METRIC_NAMES` (none without valid ground truth).
    """
    info = read_dataset_info(data_root)
    device = next(model.parameters()).device
    relative = model.card.output_kind == "relative"
    if relative and align is None and log:
        log.warning("model %s predicts relative depth and no alignment was given: no accuracy rows", model.card.name)
    medians: list[float] = []
    for image_id in tqdm(list(ids), desc=f"predict {model.card.name}", disable=not progress, mininterval=5):
        rgb_path, depth_path = sample_paths(data_root, image_id)
        rgb = read_rgb(rgb_path)
        native = model.native(prepare_input(rgb, model.card)[None].to(device))
        if not bool(torch.isfinite(native).all()):
            raise DataError(f"{rgb_path}: the model {model.card.name} predicts non-finite depth (NaN/inf) for image "
                            f"{image_id}; check its weights ({model.weights_path or 'not from a file'})")
        medians.append(float(native.median()))
        rows: list[dict[str, Any]] = []
        if depth_path is not None and (align is not None or not relative):
            gt = read_depth(depth_path, info.depth_scale)
            if gt.shape != rgb.shape[:2]:
                raise DataError(f"{depth_path}: depth map is {gt.shape}, its image {rgb_path} is {rgb.shape[:2]}")
            top, left, ch, cw = crop_box(model.card, rgb.shape[:2])
            full = np.zeros(rgb.shape[:2], dtype=np.float32)
            full[top : top + ch, left : left + cw] = resize_depth(native, (ch, cw))[0, 0].cpu().numpy()
            try:
                if relative:
                    assert align is not None
                    fit = eval_mask(gt, info.min_depth, info.max_depth, info.eval_crop)
                    seen = np.zeros_like(fit)
                    seen[top : top + ch, left : left + cw] = True
                    full = align(full, gt, fit & seen, float(info.max_depth))
                metrics = evaluate_depth(full, gt, info)
                rows = [{"image_id": image_id, "metric": name, "value": metrics[name]} for name in METRIC_NAMES]
            except ValueError as exc:
                if log:
                    log.warning("%s: no valid ground truth for image %s (%s); skipped in the accuracy table",
                                depth_path, image_id, exc)
        yield image_id, native[0].cpu().numpy().astype(np.float32), rows
    warning = implausible_depth_warning(model, medians, info.max_depth)
    if warning and log:
        log.warning("%s", warning)


def implausible_depth_warning(model: DepthModel, medians: Sequence[float], depth_cap: float | None = None) -> str:
    """A warning where the median of the images' median predicted depths is implausible, else ``""``: outside the
    range the model card expects (:attr:`~depthxai.models.registry.ModelCard.expected_median_m`), or beyond the
    depth cap of the frames' dataset (``depth_cap``, e.g. 10 m for NYU).

    Weights run under the wrong model card (another dataset's preprocessing or output unit) still give plausible
    looking numbers per pixel; their scale gives them away: NYU weights run as the KITTI model predict 17-34 m for an
    indoor frame (within a road model's range, beyond the 10 m of an indoor dataset).

    A relative model (``output_kind: relative``) is never warned about: its output has no unit to check (its scale
    and shift are fitted per image against the ground truth).
    """
    if not medians or model.card.output_kind == "relative":
        return ""
    median = float(np.median(medians))
    source = model.weights_path or "these weights"
    where = f"{source}: the median predicted depth over {len(medians)} image(s) is {median:.2f} m"
    question = "do the weights belong to this model (its preprocessing and output unit)?"
    if model.card.expected_median_m is not None:
        low, high = model.card.expected_median_m
        if not low <= median <= high:
            return (f"{where}, outside the {low:g}-{high:g} m expected of {model.card.name} ({model.card.dataset}): "
                    f"{question}")
    if depth_cap is not None and median > depth_cap:
        return f"{where}, beyond the {depth_cap:g} m depth cap of the images' dataset: {question}"
    return ""


def predict_split(model: DepthModel, data_root: str | Path, ids: Sequence[str], *, progress: bool = True,
                  log: logging.Logger | None = None, align: Aligner | None = None
                  ) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """:func:`iter_predictions` collected in memory (small shards, tests; the workflow uses :func:`predict_to_file`).

    Returns:
        ``({"ids": (N,), "native": (N, 1, h, w)}, metrics)`` where ``metrics`` has columns
        ``image_id, metric, value`` (the :data:`METRIC_NAMES` per image with ground truth).
    """
    natives: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    for _, native, image_rows in iter_predictions(model, data_root, ids, progress=progress, log=log, align=align):
        natives.append(native)
        rows.extend(image_rows)
    arrays = {"ids": np.asarray(list(ids), dtype=str),
              "native": np.stack(natives) if natives else np.zeros((0, 1, 1, 1), np.float32)}
    return arrays, pd.DataFrame(rows, columns=METRIC_COLUMNS)


def predict_to_file(path: str | Path, model: DepthModel, data_root: str | Path, ids: Sequence[str], *,
                    progress: bool = True, log: logging.Logger | None = None, align: Aligner | None = None
                    ) -> pd.DataFrame:
    """Predict ``ids`` and stream each image's prediction into the ``.npz`` at ``path`` (written atomically).

    Memory stays that of one image whatever the shard size. Returns the accuracy table of :func:`predict_split`.
    """
    rows: list[dict[str, Any]] = []
    with NpzStreamWriter(path) as out:
        for image_id, native, image_rows in iter_predictions(model, data_root, ids, progress=progress, log=log,
                                                             align=align):
            out.add_row("native", image_id, native)
            rows.extend(image_rows)
        out.add("ids", np.asarray(list(ids), dtype=str))
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def write_predictions(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write in-memory predictions (:func:`predict_split`) in the streamed layout of :func:`predict_to_file`."""
    ids = [str(i) for i in arrays["ids"]]
    with NpzStreamWriter(path) as out:
        for image_id, native in zip(ids, arrays["native"]):
            out.add_row("native", image_id, native)
        out.add("ids", np.asarray(ids, dtype=str))


def read_predictions(path: str | Path) -> dict[str, Any]:
    """Open a predictions file; images are read one at a time, when asked for.

    Returns:
        ``{"ids": (N,) str, "native": rows}`` where ``rows[k]`` is image ``k``'s ``(1, h, w)`` prediction,
        ``rows[k : k + 1]`` a ``(1, 1, h, w)`` array and ``np.asarray(rows)`` all of them (:class:`NpzRows`).
    """
    try:
        data = np.load(path, allow_pickle=False)
        ids = data["ids"].astype(str)
        return {"ids": ids, "native": NpzRows(data, "native", ids)}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable predictions file ({exc}); rerun the predict rule") from exc


def predict_image_to_file(model: DepthModel, image: str | Path, out: str | Path) -> np.ndarray:
    """Depth in metres of one image file at its own resolution (:func:`~depthxai.models.wrapper.predict_image`),
    written to ``out`` as ``.npy`` (float32 ``(H, W)``, atomically); returns it."""
    depth = predict_image(model, read_rgb(image), name=str(image))
    write_npy(out, depth)
    return depth
