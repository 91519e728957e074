"""What ``depthxai explain`` shows a person: the per-image score table and the PNG panel of one image.

Both read plain arrays and tables (no PyTorch): the explanation itself is computed by
:func:`depthxai.evaluation.explain.explain_image`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from depthxai.evaluation.panels import QualitativePanel, QualitativePanels, relevance_display
from depthxai.report.figures.common import save_figure
from depthxai.report.figures.qualitative import plot_qualitative
from depthxai.report.labels import display_name
from depthxai.stats.run import add_gap_metrics

#: The columns of :func:`explanation_summary`: the primary removal scheme's MoRF and LeRF AUCs of the explained
#: scalar's relative change, their gap (higher: the ranking is more faithful) and Attribution Fidelity.
SUMMARY_METRICS = ("morf_auc_target_change", "lerf_auc_target_change", "gap_auc_target_change",
                   "attribution_fidelity")
_SUMMARY_HEADERS = {"morf_auc_target_change": "MoRF AUC", "lerf_auc_target_change": "LeRF AUC",
                    "gap_auc_target_change": "MoRF - LeRF", "attribution_fidelity": "AF"}


def explanation_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per method (first-seen order) with :data:`SUMMARY_METRICS`, from one image's scores.

    Args:
        scores: columns ``method, metric, value`` (:attr:`depthxai.evaluation.explain.Explanation.scores`).

    Returns:
        Columns ``method`` and :data:`SUMMARY_METRICS`.
    """
    labelled = scores.assign(dataset="", model="", image_id="")[["dataset", "model", "method", "image_id", "metric",
                                                                 "value"]]
    with_gaps = add_gap_metrics(labelled)
    wide = with_gaps.pivot_table(index="method", columns="metric", values="value", aggfunc="first", sort=False,
                                 dropna=False)
    missing = [m for m in SUMMARY_METRICS if m not in wide.columns]
    if missing:
        raise ValueError(f"the scores lack {missing}")
    return wide[list(SUMMARY_METRICS)].reset_index().rename_axis(columns=None)


def format_summary(summary: pd.DataFrame, image_id: str) -> str:
    """:func:`explanation_summary` as an aligned text table headed by the image's name."""
    header = ["Method", *(_SUMMARY_HEADERS[m] for m in SUMMARY_METRICS)]
    rows = [[display_name("method", str(r["method"])), *(f"{r[m]:.4f}" for m in SUMMARY_METRICS)]
            for _, r in summary.iterrows()]
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    lines = [f"{image_id}:"]
    for row in [header, *rows]:
        lines.append("  " + "  ".join(cell.ljust(w) if k == 0 else cell.rjust(w) for k, (cell, w) in
                                      enumerate(zip(row, widths))))
    return "\n".join(lines)


def figure_explanation(rgb: np.ndarray, depth: np.ndarray, maps: Mapping[str, np.ndarray],
                       stem: str | os.PathLike[str], *, image_id: str, model: str, relative: bool = False,
                       percentile: float = 99.0, formats: tuple[str, ...] = ("png",), dpi: int = 150) -> list[Path]:
    """The panel of one explained image: the input as the network sees it, the prediction with its colour bar,
    and each method's map as an overlay on the input with one shared colour bar (Figure 1's style).

    Args:
        rgb: ``(h, w, 3)`` in [0, 1]; depth ``(h, w)``; maps ``{method: (h, w)}``, all in the network's frame.
        stem: written as ``<stem>.<format>``.
        image_id: the image's name (the row label); model: ``<arch>_<variant>`` or any name (the title).
        relative: the model predicts relative depth (labels the colour bar so).
        percentile: each map's magnitude shown as full relevance.
    """
    panel = QualitativePanel(image_id, np.asarray(rgb), None, np.asarray(depth),
                             {m: relevance_display(v, percentile) for m, v in maps.items()})
    panels = QualitativePanels(model=model, dataset="", percentile=percentile, panels=[panel])
    label = "Relative depth (model units)" if relative else "Depth (m)"
    fig = plot_qualitative(panels, title=f"{display_name('model', model)}: {image_id}", depth_label=label,
                           layout="rows")
    return save_figure(fig, stem, formats, dpi)
