"""Figure 2: MoRF and LeRF perturbation curves, the mean over images with a confidence band
(:func:`curve_bands`), one panel per (dataset, model), removal scheme and order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

from depthxai.report.figures.common import (
    CURVE_LABELS,
    ORDER_TITLES,
    _facet_keys,
    _facet_title,
    _line_style,
    _method_handles,
    figure_style,
    method_colors,
    save_figure,
)
from depthxai.report.labels import BASELINE_METHODS, scheme_name, sort_methods
from depthxai.stats.hypothesis import bootstrap_ci
from depthxai.tidy import require_columns


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
    require_columns(curves, ["dataset", "model", "method", "image_id", "order", "fraction", "curve", "value"],
                    "curves table")
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
