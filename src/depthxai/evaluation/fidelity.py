"""Attribution Fidelity: how consistent an attribution map is with the depth map the model predicted.

Cirillo et al. (IJCNN 2025) introduce Attribution Fidelity as the consistency of the attribution with the
predicted depth map; the exact formula is not available to us. Our default, a documented protocol choice
(config ``evaluation.fidelity``), is per image:

1. the attribution magnitude ``|r|`` is area-pooled to the resolution of the prediction it is compared with
   (``native``: the network's own output grid, e.g. 48x64 for METER at 192x256; ``input``: the input grid);
2. both maps are min-max normalised to [0, 1];
3. ``pearson`` (default) or ``spearman`` correlation of the two maps over all pixels, in [-1, 1]; or ``l1``,
   ``1 - mean |a - d|`` of the normalised maps, in [0, 1].

Correlations are invariant to the min-max normalisation (it is an affine map); the ``l1`` variant is not, which
is why the normalisation is part of the definition. A constant map has no defined correlation: NaN is returned
(and reported as missing, never silently as 0). The measure is pluggable: add a function to
:data:`FIDELITY_MEASURES`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from depthxai.correlation import spearman_or_nan
from depthxai.imageops import area_pool


def _minmax(x: np.ndarray) -> np.ndarray | None:
    lo, hi = float(x.min()), float(x.max())
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 0:
        return None
    return (x - lo) / (hi - lo)


def _pearson(a: np.ndarray, d: np.ndarray) -> float:
    return float(np.corrcoef(a, d)[0, 1])


def _l1(a: np.ndarray, d: np.ndarray) -> float:
    return float(1.0 - np.abs(a - d).mean())


FIDELITY_MEASURES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "pearson": _pearson,
    "spearman": spearman_or_nan,
    "l1": _l1,
}


def attribution_fidelity(relevance: Tensor, depth: Tensor, measure: str = "pearson") -> float:
    """Attribution Fidelity of one map.

    Args:
        relevance: ``(H, W)`` per-pixel attribution (any sign; its magnitude is used).
        depth: ``(h, w)`` predicted depth (metres) at the resolution to compare at; ``relevance`` is area-pooled
            to it.
        measure: a key of :data:`FIDELITY_MEASURES`.

    Returns:
        The score (float64), NaN if either map is constant.
    """
    if measure not in FIDELITY_MEASURES:
        raise ValueError(f"fidelity measure must be one of {sorted(FIDELITY_MEASURES)}, got {measure!r}")
    pooled = area_pool(relevance.abs()[None, None].to(torch.float64), (depth.shape[-2], depth.shape[-1]))[0, 0]
    a = _minmax(pooled.detach().cpu().numpy().ravel())
    d = _minmax(depth.detach().cpu().to(torch.float64).numpy().ravel())
    if a is None or d is None:
        return float("nan")
    return FIDELITY_MEASURES[measure](a, d)
