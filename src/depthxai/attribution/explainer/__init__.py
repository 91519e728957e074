"""A learned explainer: a small network that predicts an attribution mask in one forward pass.

The Explainer (Stalder et al., "What You See is What You Classify: Black Box Attributions", NeurIPS 2022) is a
second network trained against a frozen model, the Explanandum, so that at inference an attribution costs one
forward pass of a small net instead of many passes (IG) or a backward pass (Saliency) of the depth model. For
depth, Hu, Zhang and Okatani ("Visualization of Convolutional Neural Networks for Monocular Depth Estimation",
ICCV 2019) train such a mask network so that the frozen depth model, fed the masked image, still predicts the
original depth while the mask stays sparse.

Here the mask answers the same question as the other methods of :mod:`depthxai.attribution`: which pixels carry
the scalar target ``sum(weights * depth)``. The target weights are an input of the net (normalised to a maximum
of 1), so one explainer serves every target kind (mean / near / far / box).

One job per module:

* :mod:`~depthxai.attribution.explainer.network`: :class:`ExplainerNet`, the mask network, and its blocks;
* :mod:`~depthxai.attribution.explainer.losses`: the loss terms of the training;
* :mod:`~depthxai.attribution.explainer.config`: :class:`ExplainerConfig`, the training settings;
* :mod:`~depthxai.attribution.explainer.masking`: training targets, composites of image and replacement, and the
  random masks of the evaluation's baselines;
* :mod:`~depthxai.attribution.explainer.method`: :class:`Explainer`, the attribution method of a trained net;
* :mod:`~depthxai.attribution.explainer.training`: :func:`fit_explainer`, :func:`train_explainer` and
  :func:`evaluate_explainer`.
"""

from __future__ import annotations

from depthxai.attribution.explainer.config import REPLACEMENTS, ExplainerConfig
from depthxai.attribution.explainer.losses import (
    DEFAULT_LOSS_WEIGHTS,
    LOSS_TERMS,
    area_penalty,
    binary_penalty,
    complement_term,
    log_depth,
    preservation_terms,
    total_variation,
)
from depthxai.attribution.explainer.masking import (
    RANDOM_BASELINES,
    compose,
    random_masks_like,
    replacement_images,
    sample_target,
)
from depthxai.attribution.explainer.method import Explainer
from depthxai.attribution.explainer.network import (
    SIZE_MULTIPLE,
    ExplainerNet,
    width_of_state,
)
from depthxai.attribution.explainer.training import (
    FINAL_LR_FRACTION,
    cosine_lr,
    evaluate_explainer,
    fit_explainer,
    train_explainer,
)

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "FINAL_LR_FRACTION",
    "LOSS_TERMS",
    "RANDOM_BASELINES",
    "REPLACEMENTS",
    "SIZE_MULTIPLE",
    "Explainer",
    "ExplainerConfig",
    "ExplainerNet",
    "area_penalty",
    "binary_penalty",
    "complement_term",
    "compose",
    "cosine_lr",
    "evaluate_explainer",
    "fit_explainer",
    "log_depth",
    "preservation_terms",
    "random_masks_like",
    "replacement_images",
    "sample_target",
    "total_variation",
    "train_explainer",
    "width_of_state",
]
