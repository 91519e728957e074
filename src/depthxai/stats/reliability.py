"""Psychometric reliability of XAI evaluation metrics, carried over from classification to depth.

Following Tomsett et al. (AAAI 2020, "Sanity checks for saliency metrics") and Fresz et al. (2024,
"Classification Metrics for Image Explanations: Towards Building Reliable XAI-Evaluations"; code
lelo204/ClassificationMetricsForImageExplanations), an XAI metric (Attribution Fidelity, a perturbation
AUC, ...) is treated as a measuring instrument and asked whether it measures consistently:

* **Inter-rater reliability** (:func:`inter_rater_reliability`): does the metric rank the attribution
  methods in the same order on every image? Each image is a "rater" that ranks the methods (the "units");
  agreement is Krippendorff's alpha at the ordinal level. 1 = every image gives the same ranking,
  0 = agreement at chance level, < 0 = systematic disagreement.
* **Inter-method reliability** (:func:`inter_method_reliability`): do different methods find the same
  images easy and hard under the metric? Spearman correlation between two methods' per-image scores.
  The cross-metric variant (:func:`cross_metric_reliability`) correlates two metrics' per-image scores for
  one method (do two metrics agree on which images are explained well?).
* **Test-retest reliability** (:func:`retest_reliability`): does the metric give the same score when
  the measurement is repeated (another seed for a stochastic baseline, noise, or perturbation order)?
  Intra-class correlations ICC(2,1) / ICC(3,1) (Shrout & Fleiss 1979) with images as targets and
  repetitions as judges.

Input is the tidy score table of the evaluate stage: columns ``dataset, model, method, image_id, metric,
value`` (plus ``repeat`` for test-retest). Outputs are tidy frames sorted by their key columns.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import krippendorff
import numpy as np
import pandas as pd
from scipy import stats

from depthxai.correlation import spearman_or_nan
from depthxai.stats.hypothesis import complete_blocks
from depthxai.tidy import require_columns


def _groups(tidy: pd.DataFrame, by: Sequence[str]):
    """(key dict, frame) for each group of ``by``, in sorted order."""
    by = list(by)
    for key, frame in tidy.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(by, key)), frame


def rank_within_rows(matrix: pd.DataFrame) -> pd.DataFrame:
    """Rank the columns within each row, 1 = lowest value, ties get their average rank (e.g. 2.5).

    Ascending or descending does not matter for Krippendorff's alpha: reversing every rating maps the
    ordinal scale onto its mirror image, which keeps every coincidence and every ordinal distance.
    """
    return pd.DataFrame(
        stats.rankdata(matrix.to_numpy(), axis=1, method="average"), index=matrix.index, columns=matrix.columns
    )


def ordinal_alpha(ranks: pd.DataFrame | np.ndarray) -> float:
    """Krippendorff's alpha (ordinal) of a ``raters x units`` matrix, NaN if undefined.

    Undefined (NaN) with fewer than 2 raters or 2 units, or when all ratings are the same value.
    """
    data = np.asarray(ranks, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] < 2:
        return float("nan")
    if np.unique(data[np.isfinite(data)]).size < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))


def inter_rater_reliability(
    tidy: pd.DataFrame,
    *,
    by: Sequence[str] = ("dataset", "model", "metric"),
    method: str = "method",
    image: str = "image_id",
    value: str = "value",
) -> pd.DataFrame:
    """Krippendorff's ordinal alpha of the method rankings across images, per group of ``by``.

    For each group: pivot to ``images x methods`` (images lacking a method's score are dropped, since a
    ranking of a subset is not comparable), rank the methods within each image (average ranks for ties),
    and compute alpha with images as raters (rows of ``reliability_data``) and methods as units (columns).
    Whether higher or lower scores are better does not matter: alpha measures consistency, and it is the
    same for the ascending and the descending ranking.

    Returns:
        Columns ``by + [alpha, n_images, n_methods, n_images_dropped]``, sorted by ``by``. ``alpha`` is NaN
        with fewer than 2 images or methods, or when every image ties every method.
    """
    require_columns(tidy, [*by, method, image, value])
    rows = []
    for key, frame in _groups(tidy, by):
        matrix, dropped = complete_blocks(frame, block=image, group=method, value=value)
        alpha = ordinal_alpha(rank_within_rows(matrix)) if len(matrix) else float("nan")
        rows.append({**key, "alpha": alpha, "n_images": len(matrix), "n_methods": matrix.shape[1],
                     "n_images_dropped": dropped})
    return pd.DataFrame(rows, columns=[*by, "alpha", "n_images", "n_methods", "n_images_dropped"])


def _spearman_pairs(matrix: pd.DataFrame, prefix: str) -> list[dict]:
    """Spearman rho (and its n) for every ordered pair of columns of ``matrix``, diagonal included."""
    out = []
    for a, b in itertools.product(matrix.columns, repeat=2):
        x, y = matrix[a].to_numpy(), matrix[b].to_numpy()
        rho = spearman_or_nan(x, y)  # NaN for a constant score vector
        out.append({f"{prefix}_a": a, f"{prefix}_b": b, "spearman": rho, "n_images": len(x)})
    return out


def inter_method_reliability(
    tidy: pd.DataFrame,
    *,
    by: Sequence[str] = ("dataset", "model", "metric"),
    method: str = "method",
    image: str = "image_id",
    value: str = "value",
) -> pd.DataFrame:
    """Spearman correlation between every two methods' per-image scores, per group of ``by``.

    Only images scored for every method of the group are used. The result is a tidy form of one
    ``methods x methods`` matrix per group (all ordered pairs, diagonal = 1): pivot it with
    ``df.pivot(index="method_a", columns="method_b", values="spearman")``.

    Returns:
        Columns ``by + [method_a, method_b, spearman, n_images]``, sorted. ``spearman`` is NaN where a
        method's scores are constant over the images.
    """
    require_columns(tidy, [*by, method, image, value])
    rows: list[dict] = []
    for key, frame in _groups(tidy, by):
        matrix, _ = complete_blocks(frame, block=image, group=method, value=value)
        rows.extend({**key, **pair} for pair in _spearman_pairs(matrix, "method"))
    return pd.DataFrame(rows, columns=[*by, "method_a", "method_b", "spearman", "n_images"])


def cross_metric_reliability(
    tidy: pd.DataFrame,
    *,
    by: Sequence[str] = ("dataset", "model", "method"),
    metric: str = "metric",
    image: str = "image_id",
    value: str = "value",
) -> pd.DataFrame:
    """Spearman correlation between every two metrics' per-image scores, per group of ``by`` (one method).

    A high correlation means the two metrics agree on which images the method explains well. The sign
    reflects the metrics' orientations (a lower-is-better metric against a higher-is-better one gives a
    negative rho when they agree).

    Returns:
        Columns ``by + [metric_a, metric_b, spearman, n_images]``, sorted; images need every metric.
    """
    require_columns(tidy, [*by, metric, image, value])
    rows: list[dict] = []
    for key, frame in _groups(tidy, by):
        matrix, _ = complete_blocks(frame, block=image, group=metric, value=value)
        rows.extend({**key, **pair} for pair in _spearman_pairs(matrix, "metric"))
    return pd.DataFrame(rows, columns=[*by, "metric_a", "metric_b", "spearman", "n_images"])


@dataclass(frozen=True)
class ICCResult:
    """Intra-class correlations of an ``n targets x k judges`` table (Shrout & Fleiss 1979).

    ``icc2_1``: two-way random effects, absolute agreement, single measurement (judges are a sample of
    possible repetitions, and a systematic shift between repetitions counts as disagreement).
    ``icc3_1``: two-way mixed, consistency, single measurement (judge shifts do not count).
    ``icc2_k`` / ``icc3_k``: the same for the mean of the ``k`` judges. Mean squares from the two-way
    ANOVA without replication: ``ms_targets`` (BMS), ``ms_judges`` (JMS), ``ms_error`` (EMS).
    """

    icc2_1: float
    icc3_1: float
    icc2_k: float
    icc3_k: float
    ms_targets: float
    ms_judges: float
    ms_error: float
    n_targets: int
    n_judges: int


def icc(ratings: np.ndarray) -> ICCResult:
    """ICC(2,1), ICC(3,1), ICC(2,k), ICC(3,k) of ``ratings`` ``(n_targets, k_judges)``, no missing values.

    With ``BMS``, ``JMS``, ``EMS`` the target, judge and residual mean squares of the two-way ANOVA:

    * ICC(2,1) = (BMS - EMS) / (BMS + (k - 1) EMS + k (JMS - EMS) / n)
    * ICC(3,1) = (BMS - EMS) / (BMS + (k - 1) EMS)
    * ICC(2,k) = (BMS - EMS) / (BMS + (JMS - EMS) / n)
    * ICC(3,k) = (BMS - EMS) / BMS

    A coefficient whose denominator is 0 (e.g. every rating equal: no variance to explain) is NaN.

    Raises:
        ValueError: fewer than 2 targets or 2 judges, or non-finite ratings.
    """
    y = np.asarray(ratings, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(f"ICC needs at least 2 targets x 2 judges, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("ICC ratings contain NaN or inf; drop incomplete targets first")
    n, k = y.shape
    grand = y.mean()
    ss_targets = k * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_judges = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_error = np.sum((y - grand) ** 2) - ss_targets - ss_judges
    bms = ss_targets / (n - 1)
    jms = ss_judges / (k - 1)
    ems = max(ss_error, 0.0) / ((n - 1) * (k - 1))  # clamp rounding below 0 for exactly additive data

    def ratio(denominator: float) -> float:
        return float((bms - ems) / denominator) if denominator > 0 else float("nan")

    return ICCResult(
        icc2_1=ratio(bms + (k - 1) * ems + k * (jms - ems) / n),
        icc3_1=ratio(bms + (k - 1) * ems),
        icc2_k=ratio(bms + (jms - ems) / n),
        icc3_k=ratio(bms),
        ms_targets=float(bms),
        ms_judges=float(jms),
        ms_error=float(ems),
        n_targets=int(n),
        n_judges=int(k),
    )


def retest_reliability(
    tidy: pd.DataFrame,
    *,
    by: Sequence[str] = ("dataset", "model", "metric", "method"),
    target: str = "image_id",
    repeat: str = "repeat",
    value: str = "value",
) -> pd.DataFrame:
    """Test-retest reliability: ICCs with images as targets and repetitions (seeds) as judges, per group.

    Args:
        tidy: scores with a ``repeat`` column (one row per group, image and repetition).

    Returns:
        Columns ``by + [icc2_1, icc3_1, icc2_k, icc3_k, n_targets, n_repeats, n_targets_dropped]``, sorted by
        ``by``; images missing a repetition are dropped (counted). ICCs are NaN for groups with fewer than
        2 complete images or 2 repetitions, and where undefined (see :func:`icc`).
    """
    require_columns(tidy, [*by, target, repeat, value])
    columns = [*by, "icc2_1", "icc3_1", "icc2_k", "icc3_k", "n_targets", "n_repeats", "n_targets_dropped"]
    rows = []
    for key, frame in _groups(tidy, by):
        matrix, dropped = complete_blocks(frame, block=target, group=repeat, value=value)
        n, k = matrix.shape
        if n >= 2 and k >= 2:
            result = icc(matrix.to_numpy())
            coefficients = {name: getattr(result, name) for name in ("icc2_1", "icc3_1", "icc2_k", "icc3_k")}
        else:
            coefficients = dict.fromkeys(("icc2_1", "icc3_1", "icc2_k", "icc3_k"), float("nan"))
        rows.append({**key, **coefficients, "n_targets": n, "n_repeats": k, "n_targets_dropped": dropped})
    return pd.DataFrame(rows, columns=columns)
