"""The figures of the evaluation-science stage: the distribution of each metric per method (violins), the
methods x methods correlation heatmaps of the reliability analysis, and the cascading model-parameter
randomisation check.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from depthxai.report.figures.common import (
    METRIC_LABELS,
    _facet_grid,
    _facet_keys,
    _facet_title,
    _line_style,
    _method_handles,
    _metric_label,
    figure_style,
    method_colors,
    save_figure,
)
from depthxai.report.labels import display_name, sort_methods
from depthxai.tidy import require_columns

# ------------------------------------------------------------------------------------------------ violins


DEFAULT_VIOLIN_METRICS = ("morf_auc_target_change", "lerf_auc_target_change", "attribution_fidelity", "infidelity")


def plot_metric_violins(scores: pd.DataFrame, *, metrics: Sequence[str] = DEFAULT_VIOLIN_METRICS) -> Figure:
    """Distribution of each metric per method: rows = (dataset, model), columns = metrics, one violin per
    method (quartiles drawn inside, cut at the data range). Metrics absent from ``scores`` are skipped."""
    require_columns(scores, ["dataset", "model", "method", "image_id", "metric", "value"], "score table")
    present = [m for m in metrics if m in set(scores["metric"])]
    if not present:
        raise ValueError(f"none of the metrics {list(metrics)} is in the score table")
    data = scores[scores["metric"].isin(present) & np.isfinite(scores["value"].astype(float))]
    facets = _facet_keys(data)
    methods = sort_methods(data["method"].unique())
    colours = method_colors(methods)
    labels = [display_name("method", m) for m in methods]
    with figure_style():
        fig = Figure(figsize=(max(2.2, 0.55 * len(methods) + 0.6) * len(present) + 0.3, 2.3 * len(facets) + 0.2),
                     layout="constrained")
        axes = fig.subplots(len(facets), len(present), squeeze=False)
        for r, (dataset, model) in enumerate(facets):
            for c, metric in enumerate(present):
                ax: Axes = axes[r, c]
                panel = data[(data["dataset"] == dataset) & (data["model"] == model) & (data["metric"] == metric)]
                panel = panel.assign(label=panel["method"].map(lambda m: display_name("method", m)))
                if panel.empty:
                    ax.set_visible(False)
                    continue
                sns.violinplot(data=panel, x="label", y="value", hue="label", order=labels, hue_order=labels,
                               palette={display_name("method", m): colours[m] for m in methods}, cut=0,
                               inner="quart", linewidth=0.8, density_norm="width", saturation=1.0,
                               legend=False, ax=ax)
                ax.set_xlabel("")
                ax.set_ylabel(_facet_title(dataset, model) if c == 0 else "")
                ax.set_title(_metric_label(metric) if r == 0 else "")
                if r == len(facets) - 1:
                    ax.tick_params(axis="x", labelrotation=30, length=0)
                    for tick in ax.get_xticklabels():
                        tick.set_horizontalalignment("right")
                        tick.set_rotation_mode("anchor")
                else:
                    ax.tick_params(axis="x", labelbottom=False, length=0)
                ax.set_axisbelow(True)
                ax.grid(True, axis="y")
    return fig


def figure_metric_violins(scores: pd.DataFrame, stem: str | os.PathLike[str], *,
                          metrics: Sequence[str] = DEFAULT_VIOLIN_METRICS, formats: Sequence[str] = ("png", "pdf"),
                          dpi: int = 200) -> list[Path]:
    """Plot :func:`plot_metric_violins` and save it; returns the paths."""
    return save_figure(plot_metric_violins(scores, metrics=metrics), stem, formats, dpi)


# ------------------------------------------------------------------------------------------------ correlation


def _group_title(key: dict[str, Any]) -> str:
    """A facet title from its key columns: dataset and model first, then the metric's label, then the rest."""
    key = {k: str(v) for k, v in key.items() if k != "_all"}
    parts = []
    if "dataset" in key and "model" in key:
        parts.append(_facet_title(key.pop("dataset"), key.pop("model")))
    if "metric" in key:
        metric = key.pop("metric")
        parts.append(METRIC_LABELS.get(metric, metric))
    parts += [f"{k} {v}" for k, v in key.items()]
    return "\n".join(parts)


def plot_method_correlation(correlations: pd.DataFrame, *, value: str = "spearman", max_cols: int = 3) -> Figure:
    """Heatmaps of methods x methods correlation matrices, one per group.

    Args:
        correlations: the tidy output of :func:`depthxai.stats.reliability.inter_method_reliability`: columns
            ``method_a, method_b, <value>`` plus grouping columns (e.g. ``dataset, model, metric``); every
            other column except ``n_images`` defines a facet.
        value: the correlation column, in [-1, 1].
    """
    require_columns(correlations, ["method_a", "method_b", value], "correlation table")
    groups = [c for c in correlations.columns if c not in ("method_a", "method_b", value, "n_images")]
    keyed = correlations.assign(_all="") if not groups else correlations
    facet_columns = groups or ["_all"]
    facets = list(keyed.groupby(facet_columns, sort=True))
    n_rows, n_cols = _facet_grid(len(facets), max_cols)
    methods = sort_methods(pd.concat([correlations["method_a"], correlations["method_b"]]).unique())
    size = 0.42 * len(methods) + 1.1
    cmap = sns.color_palette("vlag", as_cmap=True)
    with figure_style():
        fig = Figure(figsize=(size * n_cols + 0.9, size * n_rows + 0.3), layout="constrained")
        axes = fig.subplots(n_rows, n_cols, squeeze=False)
        image = None
        for index, (key, frame) in enumerate(facets):
            ax: Axes = axes.flat[index]
            key = key if isinstance(key, tuple) else (key,)
            matrix = frame.pivot_table(index="method_a", columns="method_b", values=value, aggfunc="first")
            present = [m for m in methods if m in matrix.index or m in matrix.columns]
            matrix = matrix.reindex(index=present, columns=present)
            labels = [display_name("method", m) for m in present]
            values = matrix.to_numpy(float)
            image = ax.imshow(values, cmap=cmap, vmin=-1, vmax=1)
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7.5,
                            color="white" if abs(v) > 0.6 else "black")
            ax.set_xticks(range(len(present)), labels, rotation=35, ha="right", rotation_mode="anchor")
            ax.set_yticks(range(len(present)), labels)
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_title(_group_title(dict(zip(facet_columns, key))))
        for ax in axes.flat[len(facets):]:
            ax.set_visible(False)
        if image is not None:
            fig.colorbar(image, ax=axes, shrink=0.6 if n_rows > 1 else 0.9, aspect=25,
                         label=f"{value.capitalize()} correlation")
    return fig


def figure_method_correlation(correlations: pd.DataFrame, stem: str | os.PathLike[str], *, value: str = "spearman",
                              max_cols: int = 3, formats: Sequence[str] = ("png", "pdf"), dpi: int = 200) -> list[Path]:
    """Plot :func:`plot_method_correlation` and save it; returns the paths."""
    return save_figure(plot_method_correlation(correlations, value=value, max_cols=max_cols), stem, formats, dpi)


# ------------------------------------------------------------------------------------------------ randomisation


SANITY_PANEL_METRICS = ("spearman", "ssim", "attribution_fidelity")
SANITY_LABELS = {"spearman": "Spearman of |map| with the original", "ssim": "SSIM with the original map",
                 "attribution_fidelity": "Attribution Fidelity"}


def plot_randomisation(sanity: pd.DataFrame, *, metrics: Sequence[str] = SANITY_PANEL_METRICS) -> Figure:
    """Cascading model-parameter randomisation (Adebayo et al. 2018): for each method, the median over images
    (band: interquartile range) of each similarity to the original map as more layers are re-initialised, from
    the output side. A faithful method falls towards 0; a method that ignores the model stays at 1.

    Args:
        sanity: tidy rows ``dataset, model, step, layer, method, image_id, metric, value``.
    """
    require_columns(sanity, ["dataset", "model", "step", "layer", "method", "image_id", "metric", "value"],
                    "sanity table")
    present = [m for m in metrics if m in set(sanity["metric"])]
    data = sanity[sanity["metric"].isin(present)].copy()
    data["value"] = data["value"].astype(float)
    facets = _facet_keys(data)
    methods = sort_methods(data["method"].unique())
    colours = method_colors(methods)
    with figure_style():
        fig = Figure(figsize=(3.6 * len(present) + 0.4, 2.9 * len(facets) + 0.9), layout="constrained")
        axes = fig.subplots(len(facets), len(present), squeeze=False)
        for r, (dataset, model) in enumerate(facets):
            facet = data[(data["dataset"] == dataset) & (data["model"] == model)]
            layers = facet.drop_duplicates("step").sort_values("step")[["step", "layer"]]
            for c, metric in enumerate(present):
                ax: Axes = axes[r, c]
                for method in methods:
                    rows = facet[(facet["method"] == method) & (facet["metric"] == metric)]
                    if rows.empty:
                        continue
                    grouped = rows.groupby("step")["value"]
                    median, q1, q3 = grouped.median(), grouped.quantile(0.25), grouped.quantile(0.75)
                    ax.plot(median.index, median.values, marker="o", markersize=2.5, color=colours[method],
                            label=display_name("method", method), **_line_style(method))
                    ax.fill_between(median.index, q1.values, q3.values, color=colours[method], alpha=0.15, lw=0)
                ax.set_xticks(layers["step"].to_numpy())
                ax.set_xticklabels([str(layer).replace("encoder.", "enc.").replace("decoder.", "dec.")
                                    for layer in layers["layer"]], rotation=60, ha="right", fontsize=6)
                ax.set_title(f"{_facet_title(dataset, model)}\n{SANITY_LABELS.get(metric, metric)}", fontsize=9)
                ax.axhline(0.0, color="black", lw=0.5)
                ax.grid(True, axis="y")
                if c == 0:
                    ax.set_ylabel("median over images (IQR band)")
        fig.supxlabel("randomised down to this layer (cascading from the output)", fontsize=9)
        fig.legend(handles=_method_handles(methods, colours, lines=True), loc="outside lower center",
                   ncols=len(methods), frameon=False)
    return fig


def figure_randomisation(sanity: pd.DataFrame, stem: str | os.PathLike[str], *,
                         formats: Sequence[str] = ("png", "pdf"), dpi: int = 200) -> list[Path]:
    """Plot :func:`plot_randomisation` and save it; returns the paths."""
    return save_figure(plot_randomisation(sanity), stem, formats, dpi)
