"""Figure 3: Attribution Fidelity against a conventional metric, per image, with the rule that marks the
points where the two metrics disagree (:func:`disagreement_points`, stated in :func:`disagreement_caption`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from depthxai.correlation import spearman_or_nan
from depthxai.report.figures.common import (
    METRIC_LABELS,
    _facet_grid,
    _facet_keys,
    _facet_title,
    _method_handles,
    _metric_label,
    figure_style,
    method_colors,
    save_figure,
)
from depthxai.report.labels import BASELINE_METHODS, sort_methods
from depthxai.stats.run import add_gap_metrics, metric_direction
from depthxai.tidy import require_columns


def disagreement_points(scores: pd.DataFrame, *, fidelity: str = "attribution_fidelity",
                        conventional: str = "gap_auc_target_change", threshold: float = 0.5) -> pd.DataFrame:
    """Per (dataset, model, method, image): Attribution Fidelity, a conventional metric, and whether they disagree.

    The rule: within each (dataset, model), over all image-method points with both scores finite, each score
    is turned into a percentile of "goodness" -- its average rank divided by the number of points, after
    negating lower-is-better metrics (:func:`depthxai.stats.run.metric_direction`) so that 1 is best for both.
    A point is a **disagreement** when ``|percentile_AF - percentile_conventional| > threshold``: one metric
    calls the explanation among the better ones, the other among the worse ones.

    Args:
        scores: tidy scores (``dataset, model, method, image_id, metric, value``).
        fidelity: the x metric; conventional: the y metric (e.g. ``morf_auc_depth_rmse`` or ``infidelity``).
        threshold: percentile difference above which a point is a disagreement, in [0, 1).

    Returns:
        Columns ``dataset, model, method, image_id, fidelity, conventional, fidelity_pct, conventional_pct,
        disagree``, sorted by dataset, model, method, image.
    """
    require_columns(scores, ["dataset", "model", "method", "image_id", "metric", "value"], "score table")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    if any(m.startswith("gap_auc_") and m not in set(scores["metric"]) for m in (fidelity, conventional)):
        scores = add_gap_metrics(scores)  # the evaluation writes MoRF and LeRF; their gap is derived per image
    for metric in (fidelity, conventional):
        if metric not in set(scores["metric"]):
            raise ValueError(f"score table has no metric {metric!r}; it has {sorted(scores['metric'].unique())}")
    keys = ["dataset", "model", "method", "image_id"]
    wide = scores[scores["metric"].isin([fidelity, conventional])].pivot_table(
        index=keys, columns="metric", values="value", aggfunc="first", dropna=False)
    wide = wide.reset_index().rename(columns={fidelity: "fidelity", conventional: "conventional"})
    wide = wide[np.isfinite(wide["fidelity"].astype(float)) & np.isfinite(wide["conventional"].astype(float))]
    wide = wide[[*keys, "fidelity", "conventional"]].sort_values(keys, kind="stable").reset_index(drop=True)
    sign = {name: (-1.0 if metric_direction(metric) == "lower" else 1.0)
            for name, metric in (("fidelity", fidelity), ("conventional", conventional))}
    for name in ("fidelity", "conventional"):
        wide[f"{name}_pct"] = (sign[name] * wide[name]).groupby([wide["dataset"], wide["model"]]).rank(
            method="average", pct=True)
    wide["disagree"] = (wide["fidelity_pct"] - wide["conventional_pct"]).abs() > threshold
    return wide


def disagreement_caption(*, fidelity: str = "attribution_fidelity", conventional: str = "gap_auc_target_change",
                         threshold: float = 0.5) -> str:
    """The caption of Figure 3, stating the disagreement rule of :func:`disagreement_points`."""
    return (f"{METRIC_LABELS.get(fidelity, fidelity)} (x) against {METRIC_LABELS.get(conventional, conventional)} (y), "
            "one point per image and attribution method. Crosses mark disagreements: within a dataset and model, "
            "each metric is turned into a percentile over all image-method points (rank / number of points, "
            f"oriented so that higher is better), and a point disagrees when its two percentiles differ by more "
            f"than {threshold:g}. ρ: Spearman correlation of the two metrics over all points of a panel.")



def plot_fidelity_vs_conventional(scores: pd.DataFrame, *, fidelity: str = "attribution_fidelity",
                                  conventional: str = "gap_auc_target_change", threshold: float = 0.5,
                                  max_cols: int = 2) -> Figure:
    """Figure 3: per image, Attribution Fidelity (x) against a conventional metric (y), one facet per
    (dataset, model), colour = method, disagreements (see :func:`disagreement_points`) as larger crosses;
    each facet's title gives the Spearman correlation of the two metrics over its points (all methods)."""
    points = disagreement_points(scores, fidelity=fidelity, conventional=conventional, threshold=threshold)
    if points.empty:
        raise ValueError(f"no image has both {fidelity!r} and {conventional!r} finite")
    facets = _facet_keys(points)
    methods = sort_methods(points["method"].unique())
    colours = method_colors(methods)
    n_rows, n_cols = _facet_grid(len(facets), max_cols)
    with figure_style():
        fig = Figure(figsize=(3.4 * n_cols + 0.3, 2.9 * n_rows + 0.75), layout="constrained")
        axes = fig.subplots(n_rows, n_cols, squeeze=False)
        for index, (dataset, model) in enumerate(facets):
            ax: Axes = axes.flat[index]
            panel = points[(points["dataset"] == dataset) & (points["model"] == model)]
            for method in methods:
                rows = panel[panel["method"] == method]
                agree, disagree = rows[~rows["disagree"]], rows[rows["disagree"]]
                ax.scatter(agree["fidelity"], agree["conventional"], s=16, color=colours[method], alpha=0.75,
                           linewidths=0, zorder=1.5 if method in BASELINE_METHODS else 2)
                ax.scatter(disagree["fidelity"], disagree["conventional"], s=46, marker="X", color=colours[method],
                           edgecolors="black", linewidths=0.6, zorder=3)
            rho = spearman_or_nan(panel["fidelity"].to_numpy(float), panel["conventional"].to_numpy(float), min_n=3)
            n_disagree = int(panel["disagree"].sum())
            ax.set_title(f"{_facet_title(dataset, model)}\nSpearman ρ = {rho:.2f} (n = {len(panel)}), "
                         f"{n_disagree} disagree")
            ax.set_xlabel(_metric_label(fidelity))
            ax.set_ylabel(_metric_label(conventional))
            ax.set_axisbelow(True)
            ax.grid(True)
        for ax in axes.flat[len(facets):]:
            ax.set_visible(False)
        handles = _method_handles(methods, colours, lines=False)
        handles.append(Line2D([], [], marker="X", color="#BBBBBB", markeredgecolor="black", markeredgewidth=0.6,
                              linestyle="none", markersize=7, label=f"disagreement (|Δ percentile| > {threshold:g})"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3 if n_cols == 1 else 6),
                   frameon=False)
    return fig


def figure_fidelity_vs_conventional(scores: pd.DataFrame, stem: str | os.PathLike[str], *,
                                    fidelity: str = "attribution_fidelity", conventional: str = "gap_auc_target_change",
                                    threshold: float = 0.5, max_cols: int = 2, formats: Sequence[str] = ("png", "pdf"),
                                    dpi: int = 200) -> list[Path]:
    """Plot :func:`plot_fidelity_vs_conventional` and save it; returns the paths. Its caption, stating the
    disagreement rule, is :func:`disagreement_caption`."""
    fig = plot_fidelity_vs_conventional(scores, fidelity=fidelity, conventional=conventional, threshold=threshold,
                                        max_cols=max_cols)
    return save_figure(fig, stem, formats, dpi)
