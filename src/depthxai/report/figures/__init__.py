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

One job per module: :mod:`~depthxai.report.figures.common` (style, colours, labels, facets,
:func:`save_figure`), :mod:`~depthxai.report.figures.qualitative` (Figure 1, from the panels file of
:mod:`depthxai.evaluation.panels`),
:mod:`~depthxai.report.figures.curves` (Figure 2), :mod:`~depthxai.report.figures.fidelity` (Figure 3) and
:mod:`~depthxai.report.figures.science` (metric violins, method correlations, randomisation).
"""

from __future__ import annotations

from depthxai.report.figures.common import (
    BASELINE_STYLE,
    CURVE_LABELS,
    EXTRA_COLORS,
    FORMATS,
    METHOD_COLORS,
    METRIC_LABELS,
    ORDER_TITLES,
    STYLE,
    figure_style,
    method_colors,
    save_figure,
)
from depthxai.report.figures.curves import (
    curve_bands,
    curve_schemes,
    figure_curves,
    plot_curves,
)
from depthxai.report.figures.fidelity import (
    disagreement_caption,
    disagreement_points,
    figure_fidelity_vs_conventional,
    plot_fidelity_vs_conventional,
)
from depthxai.report.figures.qualitative import depth_range, figure_qualitative, plot_qualitative
from depthxai.report.figures.science import (
    DEFAULT_VIOLIN_METRICS,
    SANITY_LABELS,
    SANITY_PANEL_METRICS,
    figure_method_correlation,
    figure_metric_violins,
    figure_randomisation,
    plot_method_correlation,
    plot_metric_violins,
    plot_randomisation,
)

__all__ = [
    "BASELINE_STYLE",
    "CURVE_LABELS",
    "DEFAULT_VIOLIN_METRICS",
    "EXTRA_COLORS",
    "FORMATS",
    "METHOD_COLORS",
    "METRIC_LABELS",
    "ORDER_TITLES",
    "SANITY_LABELS",
    "SANITY_PANEL_METRICS",
    "STYLE",
    "curve_bands",
    "curve_schemes",
    "depth_range",
    "disagreement_caption",
    "disagreement_points",
    "figure_curves",
    "figure_fidelity_vs_conventional",
    "figure_method_correlation",
    "figure_metric_violins",
    "figure_qualitative",
    "figure_randomisation",
    "figure_style",
    "method_colors",
    "plot_curves",
    "plot_fidelity_vs_conventional",
    "plot_method_correlation",
    "plot_metric_violins",
    "plot_qualitative",
    "plot_randomisation",
    "save_figure",
]
