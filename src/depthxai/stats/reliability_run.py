"""The reliability stage: the psychometric tables of :mod:`depthxai.stats.reliability` from the tidy scores.

Tables (each tidy, sorted by its key columns; written as ``<name>.csv`` by :func:`depthxai.fileio.write_csv_tables`):

* ``alpha``: per (dataset, model, metric), Krippendorff's ordinal alpha of the method rankings across images
  (inter-rater reliability, :func:`~depthxai.stats.reliability.inter_rater_reliability`);
* ``spearman``: per (dataset, model, metric), the methods x methods Spearman correlations of the per-image scores
  (inter-method reliability, tidy: one row per ordered pair);
* ``cross_metric``: per (dataset, model, method), the metrics x metrics Spearman correlations (do two metrics agree
  on which images a method explains well);
* ``icc``: per (dataset, model, metric, method, factor), test-retest ICCs from a table with ``factor`` and ``repeat``
  columns (the same image and method scored again with one seed changed: ``factor`` names which, e.g. the analysis
  seed or the training seed of the model); empty with the right columns when no retest table is given.

Metrics that exist for one method only (IG's ``convergence_delta``) are left out: they rank nothing. The per-image
MoRF-LeRF gaps are derived first (as the statistics stage does), so that they get their reliability too.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from depthxai.stats.reliability import (
    cross_metric_reliability,
    inter_method_reliability,
    inter_rater_reliability,
    retest_reliability,
)
from depthxai.stats.run import SINGLE_METHOD_METRICS, add_gap_metrics

SCORE_COLUMNS = ["dataset", "model", "method", "image_id", "metric", "value"]
ICC_COLUMNS = ["dataset", "model", "metric", "method", "factor", "icc2_1", "icc3_1", "icc2_k", "icc3_k", "n_targets",
               "n_repeats", "n_targets_dropped"]


def _clean(table: pd.DataFrame, columns: list[str], what: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; have {list(table.columns)}")
    out = table[columns].copy()
    out["value"] = pd.to_numeric(out["value"], errors="coerce").astype(np.float64)
    return out[~out["metric"].isin(SINGLE_METHOD_METRICS)]


def reliability_tables(scores: pd.DataFrame, retest: pd.DataFrame | None = None, *,
                       derive_gaps: bool = True) -> dict[str, pd.DataFrame]:
    """The reliability tables of the tidy scores (see the module docstring).

    Args:
        scores: the evaluate stage's merged scores, columns ``dataset, model, method, image_id, metric, value``.
        retest: the same columns plus ``factor`` (what the repetitions vary) and ``repeat`` (any label of the
            repetition within its factor: a seed); ``None``: no ICC table.
        derive_gaps: append ``gap_auc_*`` per image first (:func:`depthxai.stats.run.add_gap_metrics`).

    Returns:
        ``{"alpha", "spearman", "cross_metric", "icc"}``.
    """
    scores = _clean(scores, SCORE_COLUMNS, "score table")
    if derive_gaps:
        scores = add_gap_metrics(scores)
    tables = {
        "alpha": inter_rater_reliability(scores),
        "spearman": inter_method_reliability(scores),
        "cross_metric": cross_metric_reliability(scores),
    }
    if retest is None:
        tables["icc"] = pd.DataFrame(columns=ICC_COLUMNS)
    else:
        repeated = _clean(retest, [*SCORE_COLUMNS, "factor", "repeat"], "retest table")
        if derive_gaps:  # gaps within each repetition
            repeated = pd.concat([add_gap_metrics(frame[SCORE_COLUMNS]).assign(factor=factor, repeat=repeat)
                                  for (factor, repeat), frame in repeated.groupby(["factor", "repeat"], sort=True)],
                                 ignore_index=True)
        tables["icc"] = retest_reliability(repeated, by=("dataset", "model", "metric", "method", "factor"))[ICC_COLUMNS]
    return tables
