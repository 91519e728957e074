"""Rank correlation that says "undefined" instead of guessing: shared by Attribution Fidelity, the reliability
tables and the figures."""

from __future__ import annotations

import warnings

import numpy as np


def spearman_or_nan(x: np.ndarray, y: np.ndarray, min_n: int = 2) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (average ranks for ties), NaN where it is undefined: fewer
    than ``min_n`` pairs, or either vector constant (no ranking to correlate)."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.size < max(min_n, 2) or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    from scipy import stats  # here, not at the top: a second of import time in every job that only needs Pearson

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(x, y).statistic)
