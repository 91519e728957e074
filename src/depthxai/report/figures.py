"""The paper's figures: qualitative maps (Figure 1), perturbation curves (Figure 2), Attribution Fidelity
against a conventional metric (Figure 3), and the metric-distribution and method-correlation plots that the
reliability analysis uses.

Every figure is built on a bare :class:`matplotlib.figure.Figure` (no pyplot, so no global figure state and
no dependence on the interactive backend) inside one style context, and saved by :func:`save_figure`
without timestamps or version strings, so that two runs on the same data give byte-identical PNG, PDF and SVG
files. Methods keep one colour in every figure (:func:`method_colors`, Okabe-Ito colour-blind-safe palette;
the random baseline is grey and dashed).

Each figure has a ``plot_*`` function that returns the :class:`Figure` (to tweak or show in a notebook) and a
``figure_*`` function that plots and saves it as ``<stem>.<format>`` for each requested format.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats

from depthxai.data.io import read_dataset_info, read_depth, read_index, read_rgb
from depthxai.errors import DataError
from depthxai.fileio import NpzRows, atomic_path
from depthxai.models.registry import ModelCard, get_card
from depthxai.models.wrapper import crop_box, prepare_input, resize_depth
from depthxai.report.tables import BASELINE_METHODS, display_name, scheme_name, sort_methods
from depthxai.stats.run import add_gap_metrics, metric_direction
from depthxai.stats.hypothesis import bootstrap_ci

FORMATS = ("png", "pdf", "svg")

#: Okabe & Ito (2008) colour-blind-safe colours of the known methods; the baseline is neutral grey.
METHOD_COLORS: dict[str, str] = {
    "saliency": "#0072B2",  # blue
    "ig": "#E69F00",  # orange
    "rollout": "#009E73",  # bluish green
    "explainer": "#CC79A7",  # reddish purple
    "random": "#7F7F7F",  # grey
    "random_smooth": "#3F3F3F",  # dark grey
}
#: Colours for methods not listed above, handed out in sorted order of their names.
EXTRA_COLORS = ("#D55E00", "#56B4E9", "#000000", "#F0E442")
BASELINE_STYLE = {"linestyle": (0, (4, 2))}

#: Axis labels of the tidy tables' metrics and curves (units in brackets).
METRIC_LABELS: dict[str, str] = {
    "morf_auc_target_change": "MoRF AUC, target change (rel.)",
    "lerf_auc_target_change": "LeRF AUC, target change (rel.)",
    "gap_auc_target_change": "MoRF − LeRF AUC, target change (rel.)",
    "morf_auc_depth_rmse": "MoRF AUC, depth change RMSE (m)",
    "lerf_auc_depth_rmse": "LeRF AUC, depth change RMSE (m)",
    "gap_auc_depth_rmse": "MoRF − LeRF AUC, depth RMSE (m)",
    "morf_auc_depth_absrel": "MoRF AUC, depth change AbsRel",
    "lerf_auc_depth_absrel": "LeRF AUC, depth change AbsRel",
    "morf_auc_gt_absrel_change": "MoRF AUC, Δ AbsRel vs GT",
    "lerf_auc_gt_absrel_change": "LeRF AUC, Δ AbsRel vs GT",
    "morf_auc_gt_rmse_change": "MoRF AUC, Δ RMSE vs GT (m)",
    "lerf_auc_gt_rmse_change": "LeRF AUC, Δ RMSE vs GT (m)",
    "attribution_fidelity": "Attribution Fidelity",
    "infidelity": "Infidelity",
    "infidelity_unsigned": "Infidelity (unsigned maps: not comparable)",
    "convergence_delta": "IG convergence delta",
}
CURVE_LABELS: dict[str, str] = {
    "target_change": "|Δt| / t, explained scalar",
    "depth_rmse": "Depth change, RMSE (m)",
    "depth_absrel": "Depth change, AbsRel",
    "gt_absrel": "AbsRel vs ground truth",
    "gt_rmse": "RMSE vs ground truth (m)",
}
ORDER_TITLES = {"morf": "MoRF: most relevant pixels first", "lerf": "LeRF: least relevant pixels first"}

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.5,
    "pdf.fonttype": 42,  # TrueType: text stays text in the PDF
    "svg.fonttype": "path",
    "svg.hashsalt": "depthxai",  # fixed element ids: reproducible SVG
    "image.interpolation": "antialiased",
}

# No timestamps and no software versions in the files: reruns give the same bytes.
_METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
    "svg": {"Date": None, "Creator": None},
}


# ------------------------------------------------------------------------------------------------ common


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """The colour of each method: :data:`METHOD_COLORS` for known methods, :data:`EXTRA_COLORS` in sorted order
    for the others (cycled if there are more)."""
    unknown = sorted(set(methods) - set(METHOD_COLORS))
    colours = {m: METHOD_COLORS[m] for m in set(methods) & set(METHOD_COLORS)}
    colours.update({m: EXTRA_COLORS[i % len(EXTRA_COLORS)] for i, m in enumerate(unknown)})
    return colours


def _line_style(method: str) -> dict[str, Any]:
    return BASELINE_STYLE if method in BASELINE_METHODS else {"linestyle": "-"}


@contextmanager
def figure_style() -> Iterator[None]:
    """The shared style (font sizes, spines, reproducible vector output) as an rc context."""
    with mpl.rc_context(STYLE):
        yield


def save_figure(fig: Figure, stem: str | os.PathLike[str], formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 200) -> list[Path]:
    """Save ``fig`` as ``<stem>.<format>`` for each format, atomically and without timestamps.

    The canvas is saved as laid out (no ``bbox_inches="tight"``), so a PNG is exactly ``figsize * dpi`` pixels.
    The layout is computed once and then frozen (the figure's layout engine is switched off): constrained
    layout moves panels a little on every draw, and freezing it makes every format, and every later save of
    the same figure, show the same layout.

    Returns:
        The paths written, in the order of ``formats``.
    """
    stem = Path(stem)
    paths = []
    with figure_style():
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
        for fmt in formats:
            if fmt not in FORMATS:
                raise ValueError(f"figure format must be one of {FORMATS}, got {fmt!r}")
            path = stem.with_name(f"{stem.name}.{fmt}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
            paths.append(path)
    return paths


def _require(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; have {list(table.columns)}")


def _facet_keys(table: pd.DataFrame) -> list[tuple[str, str]]:
    """Sorted unique (dataset, model) pairs."""
    return sorted({(str(d), str(m)) for d, m in table[["dataset", "model"]].itertuples(index=False)})


def _facet_title(dataset: str, model: str) -> str:
    return f"{display_name('dataset', dataset)} · {display_name('model', model)}"


def _method_handles(methods: Sequence[str], colours: Mapping[str, str], *, lines: bool) -> list[Line2D]:
    handles = []
    for method in methods:
        if lines:
            handles.append(Line2D([], [], color=colours[method], label=display_name("method", method),
                                  **_line_style(method)))
        else:
            handles.append(Line2D([], [], color=colours[method], marker="o", linestyle="none", markersize=5,
                                  label=display_name("method", method)))
    return handles


def _metric_label(metric: str) -> str:
    base, _, scheme = metric.partition("@")
    label = METRIC_LABELS.get(base, base) + (f" [{scheme}]" if scheme else "")
    direction = metric_direction(metric)
    return label + {"higher": " ↑", "lower": " ↓"}.get(direction or "", "")


# ------------------------------------------------------------------------------------------------ Figure 2


def curve_bands(curves: pd.DataFrame, *, curve: str = "depth_rmse", band: str = "bootstrap",
                confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean perturbation curve over images and its confidence band, per dataset, model, method, order, fraction.

    Args:
        curves: tidy curves, columns ``dataset, model, method, image_id, order, fraction, curve, value``.
        curve: which curve (``depth_rmse``: RMSE in metres between the depth of the perturbed and the clean image).
        band: ``bootstrap`` (percentile bootstrap of the mean, seeded) or ``t`` (Student t interval of the mean).
        confidence: band level.

    Returns:
        Columns ``dataset, model, method, order, fraction, n, mean, low, high``, sorted. NaN values are left out.
    """
    _require(curves, ["dataset", "model", "method", "image_id", "order", "fraction", "curve", "value"], "curves table")
    if band not in ("bootstrap", "t"):
        raise ValueError(f"band must be 'bootstrap' or 't', got {band!r}")
    rows = curves[curves["curve"] == curve]
    if rows.empty:
        raise ValueError(f"curves table has no curve {curve!r}; it has {sorted(curves['curve'].unique())}")
    out = []
    keys = ["dataset", "model", "method", "order", "fraction"]
    for key, frame in rows.groupby(keys, sort=True):
        values = np.sort(frame["value"].to_numpy(np.float64))
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        mean = float(values.mean())
        if values.size < 2:
            low = high = float("nan")
        elif band == "bootstrap":
            _, low, high = bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, method="percentile",
                                        seed=seed)
        else:
            sem = float(values.std(ddof=1) / np.sqrt(values.size))
            half = float(stats.t.ppf(0.5 + confidence / 2, values.size - 1)) * sem
            low, high = mean - half, mean + half
        out.append({**dict(zip(keys, key)), "n": int(values.size), "mean": mean, "low": low, "high": high})
    return pd.DataFrame(out, columns=[*keys, "n", "mean", "low", "high"])


def curve_schemes(curves: pd.DataFrame, curve: str) -> list[str]:
    """The curve names of ``curve`` under every removal scheme present: ``curve`` first, then ``curve@<scheme>``."""
    present = set(curves["curve"])
    return [c for c in [curve, *sorted(c for c in present if c.startswith(curve + "@"))] if c in present]


def plot_curves(curves: pd.DataFrame, *, curve: str = "target_change", band: str = "bootstrap",
                confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Figure:
    """Figure 2: MoRF and LeRF perturbation curves, mean over images with a confidence band.

    Facets: one row per (dataset, model); one column per removal scheme and order (MoRF, LeRF), so a reader sees
    whether the methods' order survives the change of scheme (same y range within a row). One colour per method
    (:func:`method_colors`), the random baselines dashed. The x axis is the fraction of pixels removed (in %), the
    y axis the ``curve`` (default: ``|t(x~) - t(x)| / t(x)``, the relative change of the explained scalar). See
    :func:`curve_bands`.
    """
    names = curve_schemes(curves, curve)
    if not names:
        raise ValueError(f"curves table has no curve {curve!r}; it has {sorted(curves['curve'].unique())}")
    bands = pd.concat([curve_bands(curves, curve=name, band=band, confidence=confidence, n_resamples=n_resamples,
                                   seed=seed).assign(curve=name) for name in names], ignore_index=True)
    facets = _facet_keys(bands)
    methods = sort_methods(bands["method"].unique())
    colours = method_colors(methods)
    columns = [(name, order) for name in names for order in ("morf", "lerf") if order in set(bands["order"])]
    with figure_style():
        fig = Figure(figsize=(3.0 * len(columns) + 0.4, 2.35 * len(facets) + 0.55), layout="constrained")
        axes = fig.subplots(len(facets), len(columns), squeeze=False, sharex=True, sharey="row")
        for r, (dataset, model) in enumerate(facets):
            for c, (name, order) in enumerate(columns):
                ax: Axes = axes[r, c]
                panel = bands[(bands["dataset"] == dataset) & (bands["model"] == model) & (bands["order"] == order)
                              & (bands["curve"] == name)]
                for method in methods:
                    line = panel[panel["method"] == method].sort_values("fraction")
                    if line.empty:
                        continue
                    x = 100 * line["fraction"].to_numpy()
                    ax.fill_between(x, line["low"].to_numpy(), line["high"].to_numpy(), color=colours[method],
                                    alpha=0.18, linewidth=0)
                    ax.plot(x, line["mean"].to_numpy(), color=colours[method], marker="o", markersize=2.8,
                            zorder=2 if method in BASELINE_METHODS else 3, **_line_style(method))
                ax.grid(True, axis="y")
                scheme = f"removal: {scheme_name(name)}" if len(names) > 1 else ""
                title = "\n".join(t for t in (ORDER_TITLES[order], scheme) if t)
                ax.set_title(f"{title}\n{_facet_title(dataset, model)}" if r == 0 else _facet_title(dataset, model))
                if c == 0:
                    ax.set_ylabel(CURVE_LABELS.get(curve, curve))
                if r == len(facets) - 1:
                    ax.set_xlabel("Pixels removed (%)")
                ax.set_xlim(left=0)
                ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
        band_text = f"{round(100 * confidence)}% {'bootstrap' if band == 'bootstrap' else 't'} band"
        handles = _method_handles(methods, colours, lines=True)
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False,
                   title=f"Mean over images ({band_text})", title_fontsize=8)
    return fig


def figure_curves(curves: pd.DataFrame, stem: str | os.PathLike[str], *, curve: str = "target_change",
                  band: str = "bootstrap", confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
                  formats: Sequence[str] = ("png", "pdf"), dpi: int = 200) -> list[Path]:
    """Plot :func:`plot_curves` and save it (see :func:`save_figure`); returns the paths."""
    fig = plot_curves(curves, curve=curve, band=band, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return save_figure(fig, stem, formats, dpi)


# ------------------------------------------------------------------------------------------------ Figure 3


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
    _require(scores, ["dataset", "model", "method", "image_id", "metric", "value"], "score table")
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


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def _facet_grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return int(np.ceil(n / cols)), cols


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
            rho = _spearman(panel["fidelity"].to_numpy(float), panel["conventional"].to_numpy(float))
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


# ------------------------------------------------------------------------------------------------ violins


DEFAULT_VIOLIN_METRICS = ("morf_auc_target_change", "lerf_auc_target_change", "attribution_fidelity", "infidelity")


def plot_metric_violins(scores: pd.DataFrame, *, metrics: Sequence[str] = DEFAULT_VIOLIN_METRICS) -> Figure:
    """Distribution of each metric per method: rows = (dataset, model), columns = metrics, one violin per
    method (quartiles drawn inside, cut at the data range). Metrics absent from ``scores`` are skipped."""
    _require(scores, ["dataset", "model", "method", "image_id", "metric", "value"], "score table")
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
    _require(correlations, ["method_a", "method_b", value], "correlation table")
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


# ------------------------------------------------------------------------------------------------ Figure 1


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
    _require(sanity, ["dataset", "model", "step", "layer", "method", "image_id", "metric", "value"], "sanity table")
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
