"""Compute what Figure 1 shows (:class:`depthxai.evaluation.panels.QualitativePanel`) from the dataset, the
prediction shards and the attribution shards: only the requested images are read.

A relative model's prediction is shown in metres, aligned to the image's ground truth as the accuracy table aligns
it (:mod:`depthxai.evaluation.relative`); an image of such a model without ground truth shows the raw output."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from depthxai.data.frames import resize_depth_nearest
from depthxai.data.io import read_dataset_info, read_depth, read_index, read_rgb
from depthxai.errors import DataError
from depthxai.evaluation.panels import QualitativePanel, relevance_display
from depthxai.evaluation.relative import AlignmentSpec, fit_alignment, relative_output
from depthxai.fileio import read_npz_ids, read_npz_rows
from depthxai.metrics.depth import eval_mask
from depthxai.models.registry import ModelCard, get_card
from depthxai.models.wrapper import crop_box, prepare_input, resize_depth

PathOrPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def _as_paths(paths: PathOrPaths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _resolve_card(model: str | ModelCard, dataset: str) -> ModelCard:
    if isinstance(model, ModelCard):
        return model
    return get_card(model if model.count("_") >= 2 else f"{model}_{dataset}")


def _bilinear(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).reshape(1, 1, *array.shape[-2:])
    return resize_depth(tensor, size)[0, 0].numpy()


def _default_ids(common: Sequence[str], n_images: int) -> list[str]:
    """``n_images`` ids spread evenly over the sorted ``common`` ids (deterministic)."""
    ordered = sorted(common)
    if len(ordered) <= n_images:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, n_images).round().astype(int)
    return [ordered[k] for k in picks]


def qualitative_panels(data_root: str | os.PathLike[str], predictions: PathOrPaths,
                       attributions: Mapping[str, PathOrPaths], *, model: str | ModelCard,
                       image_ids: Sequence[str] | None = None, n_images: int = 4,
                       percentile: float = 99.0, alignment: AlignmentSpec | None = None
                       ) -> tuple[ModelCard, list[QualitativePanel]]:
    """Load and align what Figure 1 shows.

    Args:
        data_root: the prepared dataset (:mod:`depthxai.data.io` layout).
        predictions: the prediction stage's ``.npz`` file(s) (``ids``, ``native``), shards in any order.
        attributions: ``{method: .npz file(s)}`` from the attribution stage (``ids``, ``maps`` at input size).
        model: a :class:`ModelCard`, a registry name, or ``<arch>_<variant>`` (the dataset is appended).
        image_ids: the images to show (in this order); default: ``n_images`` spread evenly over the sorted ids
            that the dataset and every file hold.
        percentile: the percentile of each map's magnitude shown as full relevance.
        alignment: how a relative model's prediction is aligned to the ground truth (default least squares in
            disparity space); unused for metric models.

    Returns:
        ``(card, panels)``: the model card and one :class:`QualitativePanel` per image, in the order of
        ``image_ids``; methods in the order of ``attributions`` (the figure orders them for display).

    Raises:
        DataError: a file is unreadable or lacks a requested image.
    """
    if not attributions:
        raise ValueError("Figure 1 needs the attribution files of at least one method")
    info = read_dataset_info(data_root)
    card = _resolve_card(model, info.name)
    prediction_paths = _as_paths(predictions)
    method_paths = {m: _as_paths(paths) for m, paths in attributions.items()}
    index = read_index(data_root).set_index("id")
    if image_ids is None:
        common = set(index.index)
        for paths in [prediction_paths, *method_paths.values()]:
            common &= {i for p in paths for i in read_npz_ids(p)}
        if not common:
            raise DataError(f"no image is in the dataset {data_root}, the predictions and every attribution file")
        image_ids = _default_ids(sorted(common), n_images)
    image_ids = [str(i) for i in image_ids]
    unknown = [i for i in image_ids if i not in index.index]
    if unknown:
        raise DataError(f"{Path(data_root) / 'index.csv'}: no image with id {unknown}")
    natives = read_npz_rows(prediction_paths, image_ids, "native")
    maps = {m: read_npz_rows(paths, image_ids, "maps") for m, paths in method_paths.items()}
    size = (int(card.input_size[0]), int(card.input_size[1]))
    relative = relative_output(card)
    alignment = alignment if alignment is not None else AlignmentSpec()
    panels = []
    for image_id in image_ids:
        entry = index.loc[image_id]
        rgb = prepare_input(read_rgb(Path(data_root) / entry["rgb"]), card).permute(1, 2, 0).numpy()
        ground_truth = None
        native = np.asarray(natives[image_id], dtype=np.float32)
        prediction = _bilinear(native.reshape(-1, *native.shape[-2:])[0], size)
        if entry["depth"]:
            depth = read_depth(Path(data_root) / entry["depth"], info.depth_scale)
            top, left, ch, cw = crop_box(card, depth.shape)
            if relative:  # fitted as the accuracy table fits it: full resolution, the evaluation mask
                full_gt = depth[top : top + ch, left : left + cw]
                fit_mask = eval_mask(depth, info.min_depth, info.max_depth, info.eval_crop)[top : top + ch,
                                                                                            left : left + cw]
                try:
                    fitted = fit_alignment(_bilinear(native.reshape(-1, *native.shape[-2:])[0], (ch, cw)), full_gt,
                                           fit_mask, alignment, info.min_depth, info.max_depth)
                    prediction = fitted.apply(torch.from_numpy(prediction)).clamp(*fitted.clip).numpy()
                except ValueError:
                    pass  # nothing to align to: the raw output is shown
            cropped = torch.from_numpy(np.ascontiguousarray(depth[top : top + ch, left : left + cw]))
            depth = resize_depth_nearest(cropped, size).numpy()
            ground_truth = np.where((depth > info.min_depth) & (depth < info.max_depth), depth, np.nan)
        relevance = {}
        for method in method_paths:
            raw = np.asarray(maps[method][image_id], dtype=np.float32)
            relevance[method] = relevance_display(raw if raw.shape == size else _bilinear(raw, size), percentile)
        panels.append(QualitativePanel(image_id, rgb, ground_truth, prediction, relevance))
    return card, panels
