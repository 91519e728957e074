"""Model-independent reference maps for the perturbation test, and the smoothness measure that matches them.

* ``random`` (:class:`RandomRanking`): i.i.d. uniform relevance in [-1, 1] per pixel, seeded per image. Ranked by
  ``|r|`` it removes pixels in a uniformly random order; signed, it is also the reference of Infidelity (a signed
  first-order explanation that carries no information).
* ``random_smooth`` (:class:`RandomSmooth`): seeded white noise blurred by a Gaussian to a given *correlation
  length*, mapped through the normal CDF to (0, 1). Ranked by ``|r|`` it removes pixels in a random order whose
  spatial smoothness matches that of the explanation methods' maps. The perturbation test is sensitive to the
  shape of the removal mask (Rong et al., ICML 2022: removing scattered pixels and removing compact regions change
  a network's output differently, whatever the ranking), so an i.i.d. baseline favours or penalises methods for
  their smoothness alone; this baseline holds the smoothness fixed and removes only the information in the ranking.

**Correlation length** (:func:`correlation_length`) of a map ``a = |r|``: the autocorrelation of ``a - mean(a)``
along rows and along columns (all pairs of pixels at lag ``d``, normalised by the variance), the lag at which it
first falls to 0.5 (linear interpolation between integer lags), averaged over the two axes. White noise gives
0.5; a Gaussian blur of white noise with standard deviation ``sigma`` has autocorrelation
``exp(-d^2 / (4 sigma^2))`` and so a correlation length of ``2 sigma sqrt(ln 2)`` (:func:`blur_sigma_for`, the
inverse, is how :class:`RandomSmooth` hits a target length). The target of a study is the median over the
explanation methods (config ``methods.random_smooth.match_methods``) of each method's median correlation length
over its maps (:func:`smoothness_summary`), measured per (dataset, model) by the workflow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from depthxai.attribution.base import AttributionMethod, AttributionResult, seeded_generator
from depthxai.errors import DataError
from depthxai.imageops import gaussian_blur
from depthxai.models.wrapper import DepthModel


class RandomRanking(AttributionMethod):
    """The random-ranking baseline: i.i.d. uniform relevance in [-1, 1] per pixel, seeded per image (``C = 1``)."""

    name = "random"
    stochastic = True
    signed = True

    def attribute(self, model: DepthModel, images: Tensor, weights: Tensor,
                  seeds: Sequence[int] | None = None) -> AttributionResult:
        if seeds is None or len(seeds) != images.shape[0]:
            raise ValueError("the random baseline needs one seed per image")
        _, _, h, w = images.shape
        maps = torch.stack([2.0 * torch.rand((1, h, w), generator=seeded_generator(s)) - 1.0 for s in seeds])
        return AttributionResult(maps=maps.to(images.device))


def _autocorrelation_along(values: np.ndarray, axis: int) -> np.ndarray:
    """Autocorrelation of the centred ``(H, W)`` array along ``axis`` at lags ``0 .. size-1`` (pairs at each lag
    over the whole array, divided by their number, then by the lag-0 value)."""
    n = values.shape[axis]
    spectrum = np.fft.rfft(values, n=2 * n, axis=axis)
    sums = np.fft.irfft(spectrum * np.conj(spectrum), n=2 * n, axis=axis)
    sums = sums.sum(axis=1 - axis)[:n]
    covariance = sums / (values.shape[1 - axis] * (n - np.arange(n)))
    return covariance / covariance[0]


def _half_crossing(rho: np.ndarray) -> float:
    """The first lag at which ``rho`` falls to 0.5, interpolated linearly; the last lag if it never does."""
    below = np.flatnonzero(rho <= 0.5)
    if below.size == 0:
        return float(rho.size - 1)
    d = int(below[0])
    return float(d - 1 + (rho[d - 1] - 0.5) / (rho[d - 1] - rho[d]))


def correlation_length(relevance: Tensor | np.ndarray, ranking: str = "abs") -> float:
    """Correlation length in pixels of one map (see the module docstring); NaN for a constant map.

    Args:
        relevance: ``(H, W)``.
        ranking: ``abs`` measures ``|r|`` (what the perturbation test ranks), ``signed`` measures ``r``.
    """
    values = relevance.detach().cpu().double().numpy() if isinstance(relevance, Tensor) else np.asarray(relevance,
                                                                                                       np.float64)
    values = np.abs(values) if ranking == "abs" else values
    centred = values - values.mean()
    if not np.any(centred):
        return float("nan")
    return 0.5 * (_half_crossing(_autocorrelation_along(centred, 0))
                  + _half_crossing(_autocorrelation_along(centred, 1)))


def blur_sigma_for(length: float) -> float:
    """The Gaussian blur (standard deviation, pixels) that gives white noise the correlation length ``length``;
    0 (no blur) for lengths at or below white noise's 0.5."""
    return max(0.0, float(length)) / (2.0 * math.sqrt(math.log(2.0))) if length > 0.5 else 0.0


def read_correlation_length(path: str | Path) -> float:
    """The target correlation length from a :func:`smoothness_summary` JSON file."""
    try:
        value = float(json.loads(Path(path).read_text(encoding="utf-8"))["correlation_length_px"])
    except FileNotFoundError:
        raise DataError(f"{path}: smoothness file not found; "
                        "run 'depthxai smoothness' (rule smoothness) first") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a smoothness file of 'depthxai smoothness' ({exc!r}); "
                        "delete it and rerun") from exc
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{path}: correlation_length_px must be a finite length >= 0, got {value}")
    return value


class RandomSmooth(AttributionMethod):
    """The smoothness-matched random baseline (``random_smooth``): blurred seeded noise, ``(B, 1, H, W)`` in (0, 1).

    Args:
        correlation_length: target correlation length in pixels (:func:`correlation_length`).
        correlation_length_file: or read it from a :func:`smoothness_summary` JSON file (the workflow's
            ``correlation_length: auto``).
    """

    name = "random_smooth"
    stochastic = True
    signed = False

    def __init__(self, correlation_length: float | None = None,
                 correlation_length_file: str | Path | None = None) -> None:
        if (correlation_length is None) == (correlation_length_file is None):
            raise ValueError("random_smooth needs exactly one of correlation_length and correlation_length_file")
        self.correlation_length = (float(correlation_length) if correlation_length is not None
                                   else read_correlation_length(correlation_length_file))  # type: ignore[arg-type]
        if not math.isfinite(self.correlation_length) or self.correlation_length < 0:
            raise ValueError(f"correlation_length must be a finite length >= 0, got {self.correlation_length}")
        self.sigma = blur_sigma_for(self.correlation_length)

    def attribute(self, model: DepthModel, images: Tensor, weights: Tensor,
                  seeds: Sequence[int] | None = None) -> AttributionResult:
        if seeds is None or len(seeds) != images.shape[0]:
            raise ValueError("the random_smooth baseline needs one seed per image")
        _, _, h, w = images.shape
        noise = torch.stack([torch.randn((1, h, w), generator=seeded_generator(s), dtype=torch.float64)
                             for s in seeds])
        field = gaussian_blur(noise, self.sigma) if self.sigma > 0 else noise
        field = field / field.std(dim=(1, 2, 3), keepdim=True)
        maps = 0.5 * (1.0 + torch.erf(field / math.sqrt(2.0)))  # normal CDF: uniform-like, positive, same order
        return AttributionResult(maps=maps.to(device=images.device, dtype=images.dtype))


def smoothness_summary(lengths: Mapping[str, Sequence[float]], match_methods: Sequence[str],
                       ranking: str = "abs") -> dict[str, object]:
    """The target correlation length of a study from the per-map lengths of its methods.

    Args:
        lengths: ``{method: [correlation length of each map]}`` (NaN for constant maps, left out).
        match_methods: the methods whose smoothness the baseline matches (those present are used).
        ranking: what was measured (``abs``: ``|r|``), recorded.

    Returns:
        ``{"correlation_length_px": median over the matched methods of each method's median length,
        "per_method": {method: median, null where no map has a finite length}, "n_maps": {method: count},
        "match_methods": [...], "ranking": ...}``.

    Raises:
        DataError: none of ``match_methods`` has a finite length.
    """
    per_method = {}
    counts = {}
    for method, values in sorted(lengths.items()):
        finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
        counts[method] = int(finite.size)
        per_method[method] = float(np.median(finite)) if finite.size else float("nan")
    matched = [per_method[m] for m in match_methods if m in per_method and math.isfinite(per_method[m])]
    if not matched:
        raise DataError(f"no finite correlation length among the methods {list(match_methods)} "
                        f"(measured: {sorted(lengths)}); check methods.random_smooth.match_methods")
    return {"correlation_length_px": float(np.median(matched)),
            "per_method": {m: (v if math.isfinite(v) else None) for m, v in per_method.items()}, "n_maps": counts,
            "match_methods": [m for m in match_methods if m in per_method], "ranking": ranking}


def measure_smoothness(paths: Sequence[str | Path], match_methods: Sequence[str],
                       ranking: str = "abs") -> dict[str, object]:
    """:func:`smoothness_summary` of the maps in attribution files (read one map at a time)."""
    from depthxai.attribution.run import read_attributions

    lengths: dict[str, list[float]] = {}
    for path in paths:
        maps = read_attributions(path)
        lengths.setdefault(maps["meta"]["method"], []).extend(
            correlation_length(maps["maps"][k], ranking) for k in range(len(maps["ids"])))
    return smoothness_summary(lengths, match_methods, ranking)
