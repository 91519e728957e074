"""Figure 1: per image, the input, the ground truth, the prediction and one attribution map per method, all
in the frame the network sees. The figure reads the panels file that the rule ``qualitative_panels`` wrote
(:mod:`depthxai.evaluation.panels`); it loads no model and needs no PyTorch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from depthxai.evaluation.panels import QualitativePanel, QualitativePanels, read_panels
from depthxai.report.figures.common import figure_style, save_figure
from depthxai.report.labels import display_name, sort_methods


def depth_range(panels: Sequence[QualitativePanel]) -> tuple[float, float]:
    """The shared colour range of ground truth and prediction: 1st and 99th percentile of all shown depths."""
    values = [p.prediction.ravel() for p in panels]
    values += [p.ground_truth[np.isfinite(p.ground_truth)] for p in panels if p.ground_truth is not None]
    low, high = (float(v) for v in np.percentile(np.concatenate(values), [1, 99]))
    return low, (high if high > low else low + 1e-3)


def plot_qualitative(panels: QualitativePanels | str | os.PathLike[str], *, depth_cmap: str = "magma_r",
                     relevance_cmap: str = "inferno", layout: str = "auto", title: str | None = None,
                     depth_label: str = "Depth (m)") -> Figure:
    """Figure 1 for one (dataset, model): per image the input, ground truth, prediction and one map per method.

    Everything is shown in the frame the network sees (the model card's crop and input size): the input as the
    network receives it, the ground truth (nearest-neighbour resampled; pixels without valid ground truth in
    grey), the prediction (bilinear from the network's output grid). Ground truth and prediction share one
    colour map and range (:func:`depth_range`) and one colour bar in metres. Each attribution map is shown as
    its magnitude scaled by its own percentile (:func:`depthxai.evaluation.panels.relevance_display`), blended
    over a grey copy of the input (opacity grows with relevance), with one shared colour bar.

    Args:
        panels: the panels, or the ``.npz`` file :func:`depthxai.evaluation.panels.write_panels` wrote.
        depth_cmap, relevance_cmap: colour maps (perceptually uniform, colour-blind safe by default).
        layout: ``rows`` (one row per image), ``columns`` (one column per image, for wide frames) or ``auto``
            (``columns`` when the frame is more than twice as wide as high).
        title: the figure's title; default "<model> on <dataset>".
        depth_label: the depth colour bar's label (e.g. for a model of relative depth).

    The ground-truth column is left out when no panel has ground truth (``depthxai explain`` on a photograph).

    Raises:
        DataError: the panels file is unreadable.
    """
    if layout not in ("auto", "rows", "columns"):
        raise ValueError(f"layout must be 'auto', 'rows' or 'columns', got {layout!r}")
    loaded = panels if isinstance(panels, QualitativePanels) else read_panels(panels)
    shown, percentile = loaded.panels, loaded.percentile
    if title is None:
        title = f"{display_name('model', loaded.model)} on {display_name('dataset', loaded.dataset)}"
    methods = sort_methods(loaded.methods)
    size = loaded.size
    vmin, vmax = depth_range(shown)
    depth_map = mpl.colormaps[depth_cmap].with_extremes(bad="#A0A0A0")
    with_truth = any(p.ground_truth is not None for p in shown)
    # columns (or rows, transposed) of each kind: input, [ground truth], prediction, one per method
    kinds = ["Input", *(["Ground truth"] if with_truth else []), "Prediction",
             *(display_name("method", m) for m in methods)]
    predicted = 2 if with_truth else 1
    height, width = size
    # Wide frames (road scenes, KITTI) are stacked: one column per image, one row per kind.
    transpose = layout == "columns" or (layout == "auto" and width > 2 * height)
    with figure_style():
        if transpose:
            cell = min(2.1, 9.0 / len(shown))
            figsize = (cell * len(shown) + 2.1, cell * height / width * len(kinds) + 0.6)
        else:
            cell = 1.45
            figsize = (cell * len(kinds) + 0.2, cell * height / width * len(shown) + 1.25)
        fig = Figure(figsize=figsize, layout="constrained")
        engine = fig.get_layout_engine()
        assert isinstance(engine, ConstrainedLayoutEngine)  # layout="constrained"
        engine.set(w_pad=0.02, h_pad=0.02, wspace=0.01, hspace=0.01)
        # grid[k, i]: kind k of image i, whichever way the panels are arranged. The colour bars get their own
        # thin grid row (or column), so that every image panel keeps the same size and the panels stay aligned.
        if transpose:
            spec = fig.add_gridspec(len(kinds), len(shown) + 1, width_ratios=[1.0] * len(shown) + [0.04])
            grid = np.array([[fig.add_subplot(spec[k, i]) for i in range(len(shown))] for k in range(len(kinds))])
            depth_bar_slot, relevance_bar_slot = spec[1 : predicted + 1, -1], spec[predicted + 1 :, -1]
        else:
            spec = fig.add_gridspec(len(shown) + 1, len(kinds), height_ratios=[1.0] * len(shown) + [0.07])
            grid = np.array([[fig.add_subplot(spec[i, k]) for i in range(len(shown))] for k in range(len(kinds))])
            depth_bar_slot, relevance_bar_slot = spec[-1, 1 : predicted + 1], spec[-1, predicted + 1 :]
        depth_image = None
        for i, panel in enumerate(shown):
            grey = panel.rgb @ np.array([0.299, 0.587, 0.114])
            grid[0, i].imshow(panel.rgb)
            if panel.ground_truth is not None:
                grid[1, i].imshow(np.ma.masked_invalid(panel.ground_truth), cmap=depth_map, vmin=vmin, vmax=vmax)
            elif with_truth:
                grid[1, i].text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize=7,
                                transform=grid[1, i].transAxes)
            depth_image = grid[predicted, i].imshow(panel.prediction, cmap=depth_map, vmin=vmin, vmax=vmax)
            for k, method in enumerate(methods, start=predicted + 1):
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
        fig.suptitle(title)
        orientation = "vertical" if transpose else "horizontal"
        if depth_image is not None:
            bar = fig.colorbar(depth_image, cax=fig.add_subplot(depth_bar_slot), orientation=orientation)
            note = ("\ngrey: no ground truth" if transpose else "; grey: no ground truth") if with_truth else ""
            bar.set_label(depth_label + note, fontsize=8)
        if methods:
            bar = fig.colorbar(mpl.cm.ScalarMappable(mpl.colors.Normalize(0, 1), relevance_cmap),
                               cax=fig.add_subplot(relevance_bar_slot), orientation=orientation)
            bar.set_ticks([0, 1], labels=["0", f"≥ p{percentile:g}"])
            bar.set_label("|attribution|\nscaled per map" if transpose else "|attribution|, scaled per map",
                          fontsize=8)
    return fig


def figure_qualitative(panels: QualitativePanels | str | os.PathLike[str], stem: str | os.PathLike[str], *,
                       layout: str = "auto", formats: Sequence[str] = ("png", "pdf"), dpi: int = 200) -> list[Path]:
    """Plot :func:`plot_qualitative` for one (dataset, model) and save it; returns the paths."""
    return save_figure(plot_qualitative(panels, layout=layout), stem, formats, dpi)
