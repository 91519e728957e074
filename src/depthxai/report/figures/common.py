"""What every figure shares: the style (:func:`figure_style`), the method colours (:func:`method_colors`,
Okabe-Ito colour-blind-safe palette; the random baseline is grey and dashed), axis labels of the metrics and
curves, the facet helpers, and :func:`save_figure`, which writes a figure without timestamps or version strings
so that two runs on the same data give byte-identical PNG, PDF and SVG files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from depthxai.fileio import atomic_path
from depthxai.report.labels import BASELINE_METHODS, display_name
from depthxai.stats.run import metric_direction

if TYPE_CHECKING:  # annotation only: older matplotlib.typing lacks RcKeyType
    from matplotlib.typing import RcKeyType

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

STYLE: dict[RcKeyType, Any] = {
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


def _facet_grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return int(np.ceil(n / cols)), cols
