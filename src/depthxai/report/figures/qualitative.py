"""Figure 1: per image, the input, the ground truth, the prediction and one attribution map per method, all
in the frame the network sees; the shard files of the prediction and attribution stages are read here, only the
requested images.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.figure import Figure

from depthxai.data.io import read_dataset_info, read_depth, read_index, read_rgb
from depthxai.errors import DataError
from depthxai.fileio import NpzRows
from depthxai.models.registry import ModelCard, get_card
from depthxai.models.wrapper import crop_box, prepare_input, resize_depth
from depthxai.report.figures.common import figure_style, save_figure
from depthxai.report.labels import display_name, sort_methods


def _as_paths(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _file_ids(path: Path) -> list[str]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return [str(i) for i in data["ids"]]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable .npz with an 'ids' array ({exc}); rerun the rule that writes it") from exc


def _rows_by_id(paths: Sequence[Path], ids: Sequence[str], key: str) -> dict[str, np.ndarray]:
    """``{id: array}`` of the per-image arrays ``key`` (``<key>/<id>`` members, or rows of one stacked ``key``
    array) for ``ids``, looked up in shard files; only the wanted images are read."""
    wanted = set(ids)
    out: dict[str, np.ndarray] = {}
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as data:
                file_ids = [str(i) for i in data["ids"]]
                rows = NpzRows(data, key, file_ids)
                out.update({i: rows.row(i) for i in file_ids if i in wanted and i not in out})
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: unreadable .npz or no {key!r} array ({exc}); rerun the rule that writes it") from exc
    absent = [i for i in ids if i not in out]
    if absent:
        raise DataError(f"images {absent} are in none of {[str(p) for p in paths]}")
    return out


def _resolve_card(model: str | ModelCard, dataset: str) -> ModelCard:
    if isinstance(model, ModelCard):
        return model
    return get_card(model if model.count("_") >= 2 else f"{model}_{dataset}")


def _nearest_resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ``(H, W)`` to ``size`` (keeps invalid ground-truth pixels crisp)."""
    h, w = array.shape
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(int), w - 1)
    return array[np.ix_(rows, cols)]


def _bilinear(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).reshape(1, 1, *array.shape[-2:])
    return resize_depth(tensor, size)[0, 0].numpy()


def relevance_display(relevance: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Attribution magnitude scaled to [0, 1] for display: ``|r| / percentile(|r|)``, clipped (robust to a
    few extreme pixels); an all-zero map stays zero."""
    magnitude = np.abs(np.asarray(relevance, dtype=np.float64))
    scale = float(np.percentile(magnitude, percentile))
    if not np.isfinite(scale) or scale <= 0:
        scale = float(magnitude.max())
    return np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)


def _default_ids(common: Sequence[str], n_images: int) -> list[str]:
    """``n_images`` ids spread evenly over the sorted ``common`` ids (deterministic)."""
    ordered = sorted(common)
    if len(ordered) <= n_images:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, n_images).round().astype(int)
    return [ordered[k] for k in picks]


@dataclass(frozen=True)
class QualitativePanel:
    """What Figure 1 shows of one image, all in the network's input frame ``(h, w)`` = ``card.input_size``.

    Attributes:
        image_id: the image.
        rgb: ``(h, w, 3)`` float in [0, 1], the input as the network receives it (crop, resize).
        ground_truth: ``(h, w)`` metres, NaN where there is no valid ground truth (outside the dataset's depth
            range or 0), nearest-neighbour resampled; ``None`` for an image without a depth file.
        prediction: ``(h, w)`` metres, bilinear from the network's output grid.
        relevance: ``{method: (h, w)}`` in [0, 1], see :func:`relevance_display`.
    """

    image_id: str
    rgb: np.ndarray
    ground_truth: np.ndarray | None
    prediction: np.ndarray
    relevance: dict[str, np.ndarray]


def qualitative_panels(data_root: str | os.PathLike[str],
                       predictions: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                       attributions: Mapping[str, str | os.PathLike[str] | Sequence[str | os.PathLike[str]]], *,
                       model: str | ModelCard, image_ids: Sequence[str] | None = None, n_images: int = 4,
                       percentile: float = 99.0) -> tuple[ModelCard, list[QualitativePanel]]:
    """Load and align what Figure 1 shows (see :func:`plot_qualitative` for the arguments).

    Returns:
        ``(card, panels)``: the model card and one :class:`QualitativePanel` per image, in the order of
        ``image_ids``; methods in :data:`depthxai.report.tables.METHOD_ORDER`.

    Raises:
        DataError: a file is unreadable or lacks a requested image.
    """
    if not attributions:
        raise ValueError("Figure 1 needs the attribution files of at least one method")
    info = read_dataset_info(data_root)
    card = _resolve_card(model, info.name)
    prediction_paths = _as_paths(predictions)
    method_paths = {m: _as_paths(attributions[m]) for m in sort_methods(list(attributions))}
    index = read_index(data_root).set_index("id")
    if image_ids is None:
        common = set(index.index)
        for paths in [prediction_paths, *method_paths.values()]:
            common &= {i for p in paths for i in _file_ids(p)}
        if not common:
            raise DataError(f"no image is in the dataset {data_root}, the predictions and every attribution file")
        image_ids = _default_ids(sorted(common), n_images)
    image_ids = [str(i) for i in image_ids]
    unknown = [i for i in image_ids if i not in index.index]
    if unknown:
        raise DataError(f"{Path(data_root) / 'index.csv'}: no image with id {unknown}")
    natives = _rows_by_id(prediction_paths, image_ids, "native")
    maps = {m: _rows_by_id(paths, image_ids, "maps") for m, paths in method_paths.items()}
    size = (int(card.input_size[0]), int(card.input_size[1]))
    panels = []
    for image_id in image_ids:
        entry = index.loc[image_id]
        rgb = prepare_input(read_rgb(Path(data_root) / entry["rgb"]), card).permute(1, 2, 0).numpy()
        ground_truth = None
        if entry["depth"]:
            depth = read_depth(Path(data_root) / entry["depth"], info.depth_scale)
            top, left, ch, cw = crop_box(card, depth.shape)
            depth = _nearest_resize(depth[top : top + ch, left : left + cw], size)
            ground_truth = np.where((depth > info.min_depth) & (depth < info.max_depth), depth, np.nan)
        native = np.asarray(natives[image_id], dtype=np.float32)
        prediction = _bilinear(native.reshape(-1, *native.shape[-2:])[0], size)
        relevance = {}
        for method in method_paths:
            raw = np.asarray(maps[method][image_id], dtype=np.float32)
            relevance[method] = relevance_display(raw if raw.shape == size else _bilinear(raw, size), percentile)
        panels.append(QualitativePanel(image_id, rgb, ground_truth, prediction, relevance))
    return card, panels


def depth_range(panels: Sequence[QualitativePanel]) -> tuple[float, float]:
    """The shared colour range of ground truth and prediction: 1st and 99th percentile of all shown depths."""
    values = [p.prediction.ravel() for p in panels]
    values += [p.ground_truth[np.isfinite(p.ground_truth)] for p in panels if p.ground_truth is not None]
    low, high = (float(v) for v in np.percentile(np.concatenate(values), [1, 99]))
    return low, (high if high > low else low + 1e-3)


def plot_qualitative(data_root: str | os.PathLike[str],
                     predictions: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                     attributions: Mapping[str, str | os.PathLike[str] | Sequence[str | os.PathLike[str]]], *,
                     model: str | ModelCard, image_ids: Sequence[str] | None = None, n_images: int = 4,
                     depth_cmap: str = "magma_r", relevance_cmap: str = "inferno", percentile: float = 99.0,
                     layout: str = "auto") -> Figure:
    """Figure 1 for one (dataset, model): per image the input, ground truth, prediction and one map per method.

    Everything is shown in the frame the network sees (the model card's crop and input size): the input as the
    network receives it, the ground truth (nearest-neighbour resampled; pixels without valid ground truth in
    grey), the prediction (bilinear from the network's output grid). Ground truth and prediction share one
    colour map and range (:func:`depth_range`) and one colour bar in metres. Each attribution map is shown as
    its magnitude scaled by its own ``percentile`` (:func:`relevance_display`), blended over a grey copy of the
    input (opacity grows with relevance), with one shared colour bar.

    Args:
        data_root: the prepared dataset (:mod:`depthxai.data.io` layout).
        predictions: the prediction stage's ``.npz`` file(s) (``ids``, ``native``), shards in any order.
        attributions: ``{method: .npz file(s)}`` from the attribution stage (``ids``, ``maps`` at input size).
        model: a :class:`ModelCard`, a registry name, or ``<arch>_<variant>`` (the dataset is appended).
        image_ids: the images to show (in this order); default: ``n_images`` spread evenly over the sorted ids
            that the dataset and every file hold.
        depth_cmap, relevance_cmap: colour maps (perceptually uniform, colour-blind safe by default).
        percentile: the percentile of each map's magnitude shown as full relevance.
        layout: ``rows`` (one row per image), ``columns`` (one column per image, for wide frames) or ``auto``
            (``columns`` when the frame is more than twice as wide as high).

    Raises:
        DataError: a file is unreadable or lacks a requested image.
    """
    if layout not in ("auto", "rows", "columns"):
        raise ValueError(f"layout must be 'auto', 'rows' or 'columns', got {layout!r}")
    info = read_dataset_info(data_root)
    card, panels = qualitative_panels(data_root, predictions, attributions, model=model, image_ids=image_ids,
                                      n_images=n_images, percentile=percentile)
    methods = list(panels[0].relevance) if panels else []
    size = tuple(card.input_size)
    vmin, vmax = depth_range(panels)
    depth_map = mpl.colormaps[depth_cmap].with_extremes(bad="#A0A0A0")
    kinds = ["Input", "Ground truth", "Prediction", *(display_name("method", m) for m in methods)]
    height, width = size
    # Wide frames (road scenes, KITTI) are stacked: one column per image, one row per kind.
    transpose = layout == "columns" or (layout == "auto" and width > 2 * height)
    with figure_style():
        if transpose:
            cell = min(2.1, 9.0 / len(panels))
            figsize = (cell * len(panels) + 2.1, cell * height / width * len(kinds) + 0.6)
        else:
            cell = 1.45
            figsize = (cell * len(kinds) + 0.2, cell * height / width * len(panels) + 1.25)
        fig = Figure(figsize=figsize, layout="constrained")
        fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.01, hspace=0.01)
        # grid[k, i]: kind k of image i, whichever way the panels are arranged. The colour bars get their own
        # thin grid row (or column), so that every image panel keeps the same size and the panels stay aligned.
        if transpose:
            spec = fig.add_gridspec(len(kinds), len(panels) + 1, width_ratios=[1.0] * len(panels) + [0.04])
            grid = np.array([[fig.add_subplot(spec[k, i]) for i in range(len(panels))] for k in range(len(kinds))])
            depth_bar_slot, relevance_bar_slot = spec[1:3, -1], spec[3:, -1]
        else:
            spec = fig.add_gridspec(len(panels) + 1, len(kinds), height_ratios=[1.0] * len(panels) + [0.07])
            grid = np.array([[fig.add_subplot(spec[i, k]) for i in range(len(panels))] for k in range(len(kinds))])
            depth_bar_slot, relevance_bar_slot = spec[-1, 1:3], spec[-1, 3:]
        depth_image = None
        for i, panel in enumerate(panels):
            grey = panel.rgb @ np.array([0.299, 0.587, 0.114])
            grid[0, i].imshow(panel.rgb)
            if panel.ground_truth is not None:
                grid[1, i].imshow(np.ma.masked_invalid(panel.ground_truth), cmap=depth_map, vmin=vmin, vmax=vmax)
            else:
                grid[1, i].text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize=7,
                                transform=grid[1, i].transAxes)
            depth_image = grid[2, i].imshow(panel.prediction, cmap=depth_map, vmin=vmin, vmax=vmax)
            for k, method in enumerate(methods, start=3):
                value = panel.relevance[method]
                grid[k, i].imshow(0.25 + 0.5 * grey, cmap="gray", vmin=0, vmax=1)
                grid[k, i].imshow(value, cmap=relevance_cmap, vmin=0, vmax=1, alpha=np.clip(0.15 + 0.85 * value, 0, 1))
            for k in range(len(kinds)):
                ax = grid[k, i]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if transpose and i == 0:
                    ax.set_ylabel(kinds[k], rotation=0, ha="right", va="center")
                elif not transpose and i == 0:
                    ax.set_title(kinds[k])
            if transpose:
                grid[0, i].set_title(panel.image_id, fontsize=8)
            else:
                grid[0, i].set_ylabel(panel.image_id, fontsize=7.5)
        fig.suptitle(f"{display_name('model', f'{card.arch}_{card.variant}')} on {display_name('dataset', info.name)}")
        orientation = "vertical" if transpose else "horizontal"
        if depth_image is not None:
            bar = fig.colorbar(depth_image, cax=fig.add_subplot(depth_bar_slot), orientation=orientation)
            bar.set_label("Depth (m)\ngrey: no ground truth" if transpose else "Depth (m); grey: no ground truth",
                          fontsize=8)
        if methods:
            bar = fig.colorbar(mpl.cm.ScalarMappable(mpl.colors.Normalize(0, 1), relevance_cmap),
                               cax=fig.add_subplot(relevance_bar_slot), orientation=orientation)
            bar.set_ticks([0, 1], labels=["0", f"≥ p{percentile:g}"])
            bar.set_label("|attribution|\nscaled per map" if transpose else "|attribution|, scaled per map",
                          fontsize=8)
    return fig


def figure_qualitative(data_root: str | os.PathLike[str],
                       predictions: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                       attributions: Mapping[str, str | os.PathLike[str] | Sequence[str | os.PathLike[str]]],
                       stem: str | os.PathLike[str], *, model: str | ModelCard, image_ids: Sequence[str] | None = None,
                       n_images: int = 4, layout: str = "auto", formats: Sequence[str] = ("png", "pdf"),
                       dpi: int = 200) -> list[Path]:
    """Plot :func:`plot_qualitative` for one (dataset, model) and save it; returns the paths."""
    fig = plot_qualitative(data_root, predictions, attributions, model=model, image_ids=image_ids, n_images=n_images,
                           layout=layout)
    return save_figure(fig, stem, formats, dpi)
