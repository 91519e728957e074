"""Attribution methods behind one interface (see :mod:`depthxai.attribution.base`).

``build_method(name, params)`` returns a method by its config name: ``saliency``, ``ig``, ``rollout``,
``random``, ``random_smooth``, ``explainer``, and any Captum primary method as ``captum:<Method>`` or
``captum:NoiseTunnel(<Method>)`` (:mod:`depthxai.attribution.captum_methods`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from depthxai.attribution.base import AttributionMethod, AttributionResult, image_seed, reduce_channels
from depthxai.attribution.baselines import RandomRanking, RandomSmooth
from depthxai.attribution.explainer import Explainer
from depthxai.attribution.rollout import AttentionRollout
from depthxai.attribution.targets import TargetModel, TargetSpec, target_weights
from depthxai.errors import ConfigError

if TYPE_CHECKING:
    from depthxai.attribution.captum_methods import CaptumMethod
    from depthxai.attribution.gradient import IntegratedGradients, Saliency

#: The classes that need Captum, imported on first use: Captum takes about a second to import, which every job
#: that never calls it (evaluation, rollout, the baselines, the explainer) would pay.
_CAPTUM_BACKED = {"CaptumMethod": "captum_methods", "IntegratedGradients": "gradient", "Saliency": "gradient"}


def __getattr__(name: str) -> Any:
    if name in _CAPTUM_BACKED:
        return getattr(importlib.import_module(f"{__name__}.{_CAPTUM_BACKED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

METHOD_NAMES = ("saliency", "ig", "rollout", "random", "random_smooth", "explainer")
#: The model-independent reference maps (never compared as explanations: see depthxai.attribution.baselines).
BASELINE_METHODS = ("random", "random_smooth")


def build_method(name: str, params: Mapping[str, Any] | None = None,
                 mean_rgb: Sequence[float] | None = None) -> AttributionMethod:
    """The attribution method ``name`` configured with ``params`` (the config's ``methods.<name>`` section).

    Args:
        name: one of :data:`METHOD_NAMES`.
        params: keyword arguments of the method's constructor.
        mean_rgb: the dataset's mean colour, for IG's ``mean`` baseline.
    """
    params = dict(params or {})
    if name.startswith("captum:"):
        from depthxai.attribution.captum_methods import CaptumMethod

        return CaptumMethod(name, params)
    if name == "saliency":
        from depthxai.attribution.gradient import Saliency

        return Saliency(**params)
    if name == "ig":
        from depthxai.attribution.gradient import IntegratedGradients

        return IntegratedGradients(mean_rgb=mean_rgb, **params)
    if name == "rollout":
        return AttentionRollout(**params)
    if name == "random":
        return RandomRanking()
    if name == "random_smooth":
        params.pop("match_methods", None)  # used by the workflow to measure the target length
        if params.get("correlation_length") == "auto":
            raise ConfigError("config key methods.random_smooth.correlation_length: 'auto' is resolved by the workflow "
                              "(rule smoothness); pass a length in pixels or correlation_length_file")
        return RandomSmooth(**params)
    if name == "explainer":
        if "weights" not in params:
            raise ConfigError("config key methods.explainer.weights: required (the trained explainer's state dict)")
        return Explainer(**params)
    raise ConfigError(f"config key methods.{name}: unknown attribution method; known: {', '.join(METHOD_NAMES)}, "
                      "captum:<Method>, captum:NoiseTunnel(<Method>)")


__all__ = [
    "BASELINE_METHODS",
    "METHOD_NAMES",
    "AttentionRollout",
    "AttributionMethod",
    "AttributionResult",
    "CaptumMethod",
    "Explainer",
    "IntegratedGradients",
    "RandomRanking",
    "RandomSmooth",
    "Saliency",
    "TargetModel",
    "TargetSpec",
    "build_method",
    "image_seed",
    "reduce_channels",
    "target_weights",
]
