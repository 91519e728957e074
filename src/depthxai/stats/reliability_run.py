"""The reliability stage: the psychometric tables of :mod:`depthxai.stats.reliability` from the tidy scores.

Tables (each tidy, sorted by its key columns; written as ``<name>.csv`` by :func:`depthxai.fileio.write_csv_tables`):

* ``alpha``: per (methods set, dataset, model, metric), Krippendorff's ordinal alpha of the method rankings across
  images (inter-rater reliability, :func:`~depthxai.stats.reliability.inter_rater_reliability`);
* ``spearman``: per (methods set, dataset, model, metric), the methods x methods Spearman correlations of the
  per-image scores (inter-method reliability, tidy: one row per ordered pair);
* ``cross_metric``: per (dataset, model, method), the metrics x metrics Spearman correlations (do two metrics agree
  on which images a method explains well);
* ``icc``: per (dataset, model, metric, method, factor), test-retest ICCs from a table with ``factor`` and ``repeat``
  columns (the same image and method scored again with one seed changed: ``factor`` names which, e.g. the analysis
  seed or the training seed of the model); empty with the right columns when no retest table is given.

Alpha and the inter-method Spearman are computed twice, labelled by ``methods_set``: ``explanations``, the
explanation methods only (:func:`explanation_methods`: by default every method but the model-independent baselines
``random*`` and the learned ``explainer``), and ``all``. Alpha measures how consistently images *rank the
explanation methods*; a baseline that every image ranks first or last adds agreement that says nothing about the
methods (4 indistinguishable methods over 32 images: alpha about 0; with an always-first baseline: about 0.5).

Metrics that exist for one method only (IG's ``convergence_delta``) are left out: they rank nothing. The per-image
MoRF-LeRF gaps are derived first (as the statistics stage does), so that they get their reliability too.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from depthxai.stats.reliability import (
    cross_metric_reliability,
    inter_method_reliability,
    inter_rater_reliability,
    retest_reliability,
)
from depthxai.stats.run import UNTESTED_METRICS, add_gap_metrics
from depthxai.tidy import SCORE_COLUMNS, numeric_scores

METHOD_SETS = ("explanations", "all")
ICC_COLUMNS = ["dataset", "model", "metric", "method", "factor", "icc2_1", "icc3_1", "icc2_k", "icc3_k", "n_targets",
               "n_repeats", "n_targets_dropped"]


def _clean(table: pd.DataFrame, columns: list[str], what: str) -> pd.DataFrame:
    out = numeric_scores(table, columns, what)
    return out[~out["metric"].isin(UNTESTED_METRICS)]


def explanation_methods(methods: Sequence[str], chosen: Sequence[str] | None = None) -> list[str]:
    """The explanation methods among ``methods``: ``chosen`` (config ``science.reliability.methods``) where given,
    else every method except the ``random*`` baselines and the ``explainer`` (trained on the deletion objective)."""
    if chosen is not None:
        return sorted(m for m in methods if m in set(chosen))
    return sorted(m for m in methods if not m.startswith("random") and m != "explainer")


def reliability_tables(scores: pd.DataFrame, retest: pd.DataFrame | None = None, *,
                       derive_gaps: bool = True, methods: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """The reliability tables of the tidy scores (see the module docstring).

    Args:
        scores: the evaluate stage's merged scores, columns ``dataset, model, method, image_id, metric, value``.
        retest: the same columns plus ``factor`` (what the repetitions vary) and ``repeat`` (any label of the
            repetition within its factor: a seed); ``None``: no ICC table.
        derive_gaps: append ``gap_auc_*`` per image first (:func:`depthxai.stats.run.add_gap_metrics`).
        methods: the explanation methods of the ``explanations`` set (:func:`explanation_methods`).

    Returns:
        ``{"alpha", "spearman", "cross_metric", "icc"}``.
    """
    scores = _clean(scores, list(SCORE_COLUMNS), "score table")
    if derive_gaps:
        scores = add_gap_metrics(scores)
    chosen = explanation_methods(sorted(scores["method"].unique()), methods)
    subsets = {"explanations": scores[scores["method"].isin(chosen)], "all": scores}
    tables = {
        "alpha": pd.concat([inter_rater_reliability(subset).assign(methods_set=name)
                            for name, subset in subsets.items()], ignore_index=True),
        "spearman": pd.concat([inter_method_reliability(subset).assign(methods_set=name)
                               for name, subset in subsets.items()], ignore_index=True),
        "cross_metric": cross_metric_reliability(scores),
    }
    for name in ("alpha", "spearman"):  # the set first, then as before
        table = tables[name]
        tables[name] = table[["methods_set", *[c for c in table.columns if c != "methods_set"]]].sort_values(
            ["methods_set", "dataset", "model", "metric"], kind="stable").reset_index(drop=True)
    if retest is None:
        tables["icc"] = pd.DataFrame(columns=ICC_COLUMNS)
    else:
        repeated = _clean(retest, [*SCORE_COLUMNS, "factor", "repeat"], "retest table")
        if derive_gaps:  # gaps within each repetition
            repeated = pd.concat([add_gap_metrics(frame[list(SCORE_COLUMNS)]).assign(factor=factor, repeat=repeat)
                                  for (factor, repeat), frame in repeated.groupby(["factor", "repeat"], sort=True)],
                                 ignore_index=True)
        tables["icc"] = retest_reliability(repeated, by=("dataset", "model", "metric", "method", "factor"))[ICC_COLUMNS]
    return tables


def retest_with_main(scores: pd.DataFrame, repeats: pd.DataFrame, source: str = "the retest table") -> pd.DataFrame:
    """The test-retest table with the main run as repeat 0 of every factor.

    Args:
        scores: the main run's scores.
        repeats: the repeats' scores, with ``factor`` and ``repeat`` columns (each repeat differs from the main run
            in one seed: the factor).
        source: named in the error.

    Raises:
        DataError: ``repeats`` lacks the ``factor`` column (written before factors existed).
    """
    from depthxai.errors import DataError

    if "factor" not in repeats:
        raise DataError(f"{source}: retest scores lack the 'factor' column; rerun the evaluate_repeat and "
                        "evaluate_retrained rules")
    main = [scores.assign(factor=factor, repeat=0) for factor in sorted(repeats["factor"].unique())]
    return pd.concat([*main, repeats], ignore_index=True)
