"""The statistics stage: descriptive summaries and across-method tests on the tidy per-image scores.

Input is the evaluate stage's merged score table, columns ``dataset, model, method, image_id, metric, value``
(see :mod:`depthxai.evaluation.run`). Three tidy tables come out (:func:`run_statistics`):

* ``summary``: per (dataset, model, method, metric) the number of finite scores, the number of missing (NaN)
  ones, mean, median, standard deviation and a bootstrap CI of the mean (:func:`depthxai.stats.hypothesis.summarise`).
* ``friedman``: per (dataset, model, metric) the Friedman test across the compared methods, with Kendall's W.
* ``wilcoxon``: per (dataset, model, metric) and pair of methods, the Wilcoxon signed-rank test with Holm's
  correction over the pairs of that (dataset, model, metric), its median difference and rank-biserial effect.

Images are the blocks of the repeated-measures design: an image whose score is NaN (or absent) for one of the
compared methods is left out of that metric's tests, and the number left out is reported (``n_blocks_dropped``).
A method with no finite score at all for a metric is left out of that metric's tests instead (it would
otherwise empty every block) and named in ``methods_excluded``.

A fourth table, ``paired`` (:func:`paired_differences`), gives every method's per-image MoRF-LeRF gap as a paired
difference against the reference baseline (``random_smooth``), with a BCa interval over images or, where
training-seed repeats exist, a two-level bootstrap over seeds and images.

Before the summary, :func:`add_gap_metrics` derives per image the MoRF-LeRF gap of every perturbation curve
(``gap_auc_<curve> = morf_auc_<curve> - lerf_auc_<curve>``, the "area between perturbation curves", higher =
more faithful), so that Table 1 reports the gap with its own confidence interval and test.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from depthxai.errors import DataError
from depthxai.metrics.depth import HIGHER_IS_BETTER
from depthxai.stats.hypothesis import (
    bootstrap_ci,
    complete_blocks,
    friedman,
    pairwise_wilcoxon,
    summarise,
    two_level_bootstrap_ci,
)
from depthxai.tidy import SCORE_COLUMNS, numeric_scores, require_columns

#: Metrics that exist for some methods only (IG's completeness error): summarised, never compared across methods.
SINGLE_METHOD_METRICS = ("convergence_delta",)
#: Metrics summarised but never compared across methods: the single-method ones, and Infidelity of maps without a
#: sign (its first-order model needs the signed map, so its values rank nothing; see depthxai.evaluation.infidelity).
UNTESTED_METRICS = (*SINGLE_METHOD_METRICS, "infidelity_unsigned", "constant_map")

FRIEDMAN_COLUMNS = ("dataset", "model", "metric", "methods", "methods_excluded", "k", "n_blocks", "n_blocks_dropped",
                    "statistic", "p", "kendall_w", "significant", "note")
WILCOXON_COLUMNS = ("dataset", "model", "metric", "method_a", "method_b", "n_blocks", "n_blocks_dropped", "statistic",
                    "p_raw", "p_adjusted", "median_difference", "rank_biserial", "better", "significant")


def metric_direction(metric: str) -> str | None:
    """Which way a metric is better: ``"higher"``, ``"lower"``, or ``None`` where no direction is defined.

    MoRF AUCs and MoRF-LeRF gaps: higher (removing the most relevant pixels first should change the depth
    most); LeRF AUCs: lower; Attribution Fidelity: higher; Infidelity: lower (Yeh et al., NeurIPS 2019); the
    depth-accuracy metrics as :data:`depthxai.metrics.depth.HIGHER_IS_BETTER`. IG's
    ``convergence_delta`` is a diagnostic with a sign, not a quality score: ``None``.
    """
    if metric.startswith(("morf_auc_", "gap_auc_")) or metric == "attribution_fidelity":
        return "higher"
    if metric.startswith("lerf_auc_") or metric in ("infidelity", "infidelity_unsigned"):
        return "lower"
    if metric in HIGHER_IS_BETTER:
        return "higher" if HIGHER_IS_BETTER[metric] else "lower"
    return None


def add_gap_metrics(scores: pd.DataFrame) -> pd.DataFrame:
    """Append ``gap_auc_<curve> = morf_auc_<curve> - lerf_auc_<curve>`` per (dataset, model, method, image).

    A gap is derived for every curve that has both a MoRF and a LeRF AUC; it is NaN where either is NaN
    and absent where either row is absent. Existing ``gap_auc_*`` rows are kept as they are (not derived twice).

    Returns:
        ``scores`` with the gap rows appended (same columns), in the input's row order followed by the gaps.
    """
    require_columns(scores, SCORE_COLUMNS)
    keys = ["dataset", "model", "method", "image_id"]
    present = set(scores["metric"].unique())
    gaps = []
    for morf in sorted(m for m in present if m.startswith("morf_auc_")):
        curve = morf[len("morf_auc_"):]
        lerf, gap = f"lerf_auc_{curve}", f"gap_auc_{curve}"
        if lerf not in present or gap in present:
            continue
        a = scores.loc[scores["metric"] == morf, [*keys, "value"]]
        b = scores.loc[scores["metric"] == lerf, [*keys, "value"]]
        merged = a.merge(b, on=keys, how="inner", suffixes=("_morf", "_lerf"), validate="one_to_one")
        merged["metric"] = gap
        merged["value"] = merged["value_morf"] - merged["value_lerf"]
        gaps.append(merged[list(SCORE_COLUMNS)])
    if not gaps:
        return scores.copy()
    return pd.concat([scores[list(SCORE_COLUMNS)], *gaps], ignore_index=True)


def _compared(frame: pd.DataFrame, methods: Sequence[str] | None) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The rows of the compared methods that have at least one finite score; (rows, kept, excluded), sorted."""
    if methods is not None:
        frame = frame[frame["method"].isin(list(methods))]
    finite = frame.groupby("method", sort=True)["value"].apply(lambda v: bool(np.isfinite(v.to_numpy(float)).any()))
    kept = [m for m, ok in finite.items() if ok]
    excluded = [m for m, ok in finite.items() if not ok]
    return frame[frame["method"].isin(kept)], kept, excluded


def _friedman_rows(scores: pd.DataFrame, methods: Sequence[str] | None, alpha: float) -> list[dict]:
    rows = []
    for (dataset, model, metric), frame in scores.groupby(["dataset", "model", "metric"], sort=True):
        frame, kept, excluded = _compared(frame, methods)
        if len(kept) < 2:
            continue
        row = {"dataset": dataset, "model": model, "metric": metric, "methods": ";".join(kept),
               "methods_excluded": ";".join(excluded), "k": len(kept)}
        matrix, dropped = complete_blocks(frame)
        n_blocks = len(matrix)
        untested = {"statistic": np.nan, "p": np.nan, "kendall_w": np.nan, "significant": False}
        if len(kept) < 3:
            row.update(n_blocks=n_blocks, n_blocks_dropped=dropped, **untested,
                       note="fewer than 3 methods: see the Wilcoxon table")
        elif n_blocks < 2:
            row.update(n_blocks=n_blocks, n_blocks_dropped=dropped, **untested,
                       note=f"only {n_blocks} image(s) scored by every method")
        else:
            result = friedman(frame)
            row.update(n_blocks=result.n_blocks, n_blocks_dropped=result.n_blocks_dropped, statistic=result.statistic,
                       p=result.p, kendall_w=result.kendall_w, significant=bool(result.p < alpha), note="")
        rows.append(row)
    return rows


def _wilcoxon_rows(scores: pd.DataFrame, methods: Sequence[str] | None, alpha: float, correction: str) -> list[dict]:
    rows = []
    for (dataset, model, metric), frame in scores.groupby(["dataset", "model", "metric"], sort=True):
        frame, kept, _ = _compared(frame, methods)
        if len(kept) < 2:
            continue
        matrix, dropped = complete_blocks(frame)
        if len(matrix) == 0:
            continue  # nothing to pair; the Friedman table's note says why
        direction = metric_direction(metric)
        table = pairwise_wilcoxon(frame, correction=correction)
        for pair in table.to_dict("records"):
            effect = pair["rank_biserial"]
            if direction is None or effect == 0:
                better = ""
            else:
                a_higher = effect > 0
                better = pair["group_a"] if a_higher == (direction == "higher") else pair["group_b"]
            rows.append({
                "dataset": dataset, "model": model, "metric": metric,
                "method_a": pair["group_a"], "method_b": pair["group_b"], "n_blocks": pair["n_blocks"],
                "n_blocks_dropped": dropped, "statistic": pair["statistic"], "p_raw": pair["p_raw"],
                "p_adjusted": pair["p_adjusted"], "median_difference": pair["median_difference"],
                "rank_biserial": effect, "better": better, "significant": bool(pair["p_adjusted"] < alpha),
            })
    return rows


PAIRED_COLUMNS = ("dataset", "model", "metric", "method", "baseline", "n", "n_seeds", "mean_difference", "ci_low",
                  "ci_high", "ci_method")


def paired_differences(scores: pd.DataFrame, *, baseline: str = "random_smooth", metric_prefix: str = "gap_auc_",
                       retest: pd.DataFrame | None = None, confidence: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """Each method's score minus the baseline's on the same image, with a confidence interval of the mean.

    Args:
        scores: tidy scores (the gaps already derived, :func:`add_gap_metrics`).
        baseline: the reference method; groups without it are skipped.
        metric_prefix: which metrics (default: every MoRF-LeRF gap, of every removal scheme).
        retest: test-retest scores (columns as ``scores`` plus ``factor``, ``repeat``); its ``training_seed`` rows
            (each model retrained with another seed, the whole pipeline rerun) add one cluster per repeat, and the
            interval becomes a two-level bootstrap over training seeds, then images
            (:func:`~depthxai.stats.hypothesis.two_level_bootstrap_ci`). ``None``: images only, BCa.
        confidence, n_resamples, seed: of the bootstrap.

    Returns:
        :data:`PAIRED_COLUMNS`, one row per (dataset, model, metric, method != baseline): ``n`` images with both
        scores finite in the main run, ``n_seeds`` training seeds (1 = the main run only), the mean difference (the
        mean over seeds of the per-seed means), its interval and ``ci_method`` saying which interval it is.
    """
    require_columns(scores, SCORE_COLUMNS)
    runs = [scores[list(SCORE_COLUMNS)]]
    if retest is not None and not retest.empty:
        require_columns(retest, [*SCORE_COLUMNS, "factor", "repeat"], "retest table")
        trained = retest[retest["factor"] == "training_seed"]
        runs += [add_gap_metrics(frame[list(SCORE_COLUMNS)]) for _, frame in trained.groupby("repeat", sort=True)]
    rows = []
    keys = ["dataset", "model", "metric"]
    selected = scores[scores["metric"].str.startswith(metric_prefix)]
    for (dataset, model, metric), frame in selected.groupby(keys, sort=True):
        if baseline not in set(frame["method"]):
            continue
        for method in sorted(set(frame["method"]) - {baseline}):
            clusters = []
            for run in runs:
                part = run[(run["dataset"] == dataset) & (run["model"] == model) & (run["metric"] == metric)
                           & run["method"].isin([method, baseline])]
                wide = part.pivot_table(index="image_id", columns="method", values="value", aggfunc="first")
                if method not in wide or baseline not in wide:
                    continue
                difference = (wide[method] - wide[baseline]).to_numpy(np.float64)
                difference = np.sort(difference[np.isfinite(difference)])
                if difference.size:
                    clusters.append(difference)
            row = {"dataset": dataset, "model": model, "metric": metric, "method": method, "baseline": baseline,
                   "n": int(clusters[0].size) if clusters else 0, "n_seeds": len(clusters)}
            if not clusters:
                row.update(mean_difference=np.nan, ci_low=np.nan, ci_high=np.nan, ci_method="")
            elif len(clusters) == 1:
                mean, low, high = bootstrap_ci(clusters[0], n_resamples=n_resamples, confidence=confidence, seed=seed)
                row.update(mean_difference=mean, ci_low=low, ci_high=high, ci_method="BCa over images")
            else:
                mean, low, high = two_level_bootstrap_ci(clusters, n_resamples=n_resamples, confidence=confidence,
                                                         seed=seed)
                row.update(mean_difference=mean, ci_low=low, ci_high=high,
                           ci_method="two-level bootstrap over training seeds, then images (percentile)")
            rows.append(row)
    table = pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
    return table.sort_values(keys + ["method"], kind="stable").reset_index(drop=True)


def run_statistics(
    scores: pd.DataFrame,
    *,
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    methods: Sequence[str] | None = None,
    correction: str = "holm",
    derive_gaps: bool = True,
    baseline: str = "random_smooth",
    retest: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Summaries, Friedman tests and pairwise Wilcoxon tests of the per-image scores.

    Args:
        scores: tidy scores, columns ``dataset, model, method, image_id, metric, value`` (NaN = missing score).
        alpha: significance level of the Friedman test and of the Holm-adjusted Wilcoxon p-values.
        confidence: level of the bootstrap CI of the mean (BCa, :func:`depthxai.stats.hypothesis.bootstrap_ci`).
        n_resamples: bootstrap resamples per group.
        seed: bootstrap seed (every group is resampled with it, so a group's CI does not depend on the others).
        methods: the methods compared in the tests (``None``: every method present, the ``random`` baseline
            included, since a method that does not beat the random ranking is not faithful). The summary
            always covers every method.
        correction: multiple-test correction over the method pairs of one (dataset, model, metric):
            ``holm`` (default), ``bonferroni`` or ``none``.
        derive_gaps: append the per-image MoRF-LeRF gaps first (:func:`add_gap_metrics`).
        baseline, retest: of the ``paired`` table (:func:`paired_differences`).

    Returns:
        ``{"summary", "friedman", "wilcoxon", "paired"}``, each sorted by its key columns with a fresh index:

        * ``summary``: ``dataset, model, method, metric, n, n_missing, mean, median, std, ci_low, ci_high``.
        * ``friedman``: :data:`FRIEDMAN_COLUMNS`; ``methods`` lists the compared methods (``;``-joined),
          ``n_blocks_dropped`` the images left out for a missing score, ``significant`` is ``p < alpha``.
          Groups with only two comparable methods or fewer than two complete images get NaN statistics and a
          ``note``. :data:`UNTESTED_METRICS` are not tested.
        * ``wilcoxon``: :data:`WILCOXON_COLUMNS`, one row per pair ``method_a < method_b``; ``median_difference``
          and ``rank_biserial`` are of ``a - b`` (positive: ``a`` scores higher), ``better`` names the method
          the effect favours given :func:`metric_direction` (empty without a direction or with no effect),
          ``significant`` is ``p_adjusted < alpha``.
        * ``paired``: :data:`PAIRED_COLUMNS` (:func:`paired_differences`).
    """
    scores = numeric_scores(scores)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if derive_gaps:
        scores = add_gap_metrics(scores)
    summary = summarise(scores, ["dataset", "model", "method", "metric"], confidence=confidence,
                        n_resamples=n_resamples, seed=seed)
    tested = scores[~scores["metric"].isin(UNTESTED_METRICS)]
    friedman_table = pd.DataFrame(_friedman_rows(tested, methods, alpha), columns=list(FRIEDMAN_COLUMNS))
    wilcoxon_table = pd.DataFrame(_wilcoxon_rows(tested, methods, alpha, correction), columns=list(WILCOXON_COLUMNS))
    friedman_table = friedman_table.astype({"k": int, "n_blocks": int, "n_blocks_dropped": int, "significant": bool,
                                            "statistic": float, "p": float, "kendall_w": float})
    wilcoxon_table = wilcoxon_table.astype({"n_blocks": int, "n_blocks_dropped": int, "significant": bool,
                                            "statistic": float, "p_raw": float, "p_adjusted": float,
                                            "median_difference": float, "rank_biserial": float})
    paired = paired_differences(scores, baseline=baseline, retest=retest, confidence=confidence,
                                n_resamples=n_resamples, seed=seed)
    return {
        "paired": paired,
        "summary": summary.sort_values(["dataset", "model", "method", "metric"], kind="stable").reset_index(drop=True),
        "friedman": friedman_table.sort_values(["dataset", "model", "metric"], kind="stable").reset_index(drop=True),
        "wilcoxon": wilcoxon_table.sort_values(["dataset", "model", "metric", "method_a", "method_b"],
                                               kind="stable").reset_index(drop=True),
    }


def read_statistics(directory: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """Read the tables written by :func:`depthxai.fileio.write_csv_tables` (keys, methods and notes as strings)."""
    out = {}
    for name in ("summary", "friedman", "wilcoxon", "paired"):
        path = Path(directory) / f"{name}.csv"
        if not path.is_file():
            raise DataError(f"{path}: missing; rerun the stats rule")
        out[name] = pd.read_csv(path, dtype={"dataset": str, "model": str, "method": str, "metric": str,
                                             "methods": str, "methods_excluded": str, "note": str,
                                             "method_a": str, "method_b": str, "better": str, "baseline": str,
                                             "ci_method": str},
                                keep_default_na=True)
        for column in ("methods_excluded", "note", "better", "ci_method"):
            if column in out[name].columns:
                out[name][column] = out[name][column].fillna("")
    return out
