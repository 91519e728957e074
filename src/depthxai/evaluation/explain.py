"""Explain one photograph: the prediction, one map per method and, optionally, the image's scores.

The functions behind ``depthxai explain``, for people rather than workflows: no prepared dataset, no shards. Each
step is the one the workflow runs (:func:`depthxai.attribution.run.attribute_image` for the maps,
:func:`depthxai.evaluation.run.score_map` for the scores), so a map made here equals the workflow's map of the same
image, model, method, target and seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from depthxai.attribution.base import AttributionMethod
from depthxai.attribution.run import attribute_image
from depthxai.attribution.targets import TargetSpec
from depthxai.errors import DataError
from depthxai.evaluation.run import EvaluationConfig, score_map
from depthxai.models.wrapper import DepthModel, prepare_input, resize_depth


@dataclass(frozen=True)
class Explanation:
    """One image explained, everything in the network's input frame ``(h, w)`` = ``card.input_size``.

    Attributes:
        image_id: the image's name.
        rgb: ``(h, w, 3)`` float32 in [0, 1], the input as the network receives it (crop, resize).
        depth: ``(h, w)`` float32, the prediction (metres, or the model's relative units; see ``card.output_kind``).
        maps: ``{method: (h, w) float32}``, each map after the channel reduction (signed where the method is).
        convergence_delta: ``{method: float}``, IG's completeness gap (NaN for other methods).
        scores: columns ``method, metric, value`` (every score of :func:`score_map`), or ``None`` without
            evaluation.
    """

    image_id: str
    rgb: np.ndarray
    depth: np.ndarray
    maps: dict[str, np.ndarray]
    convergence_delta: dict[str, float]
    scores: pd.DataFrame | None = None


def explain_image(model: DepthModel, rgb: np.ndarray, methods: Mapping[str, AttributionMethod], target: TargetSpec,
                  *, image_id: str, seed: int = 0, evaluation: EvaluationConfig | None = None,
                  mean_rgb: tuple[float, float, float] | None = None, channel_reduction: str = "sum",
                  source: str = "the image") -> Explanation:
    """Predict, attribute with each method and (with ``evaluation``) score each map of one image.

    Args:
        model: depth model in eval mode.
        rgb: ``uint8 (H, W, 3)`` the photograph (:func:`depthxai.data.io.read_rgb`).
        methods: ``{name: method}``; names key the maps and scores.
        target: the scalar to explain.
        image_id: the image's name (seeds derive from it, as in the workflow).
        seed: base seed.
        evaluation: score each map (perturbation curves, AF, Infidelity) with these settings; ``None``: no scores.
        mean_rgb: the removal colour of the ``mean`` replacement; default the image's own mean colour (the
            workflow uses its dataset's).
        channel_reduction: ``sum`` or ``abs_sum``.
        source: the image's file, named in errors.

    Raises:
        DataError: the model predicts NaN/inf, or a method gives NaN/inf (naming ``source``, the model, the method).
    """
    device = next(model.parameters()).device
    image = prepare_input(rgb, model.card)[None].to(device)
    with torch.no_grad():
        native = model.native(image)
    if not bool(torch.isfinite(native).all()):
        raise DataError(f"{source}: the model {model.card.name} predicts non-finite depth (NaN/inf); check its weights "
                        f"({model.weights_path or 'not from a file'})")
    clean = resize_depth(native, tuple(image.shape[-2:]))
    maps: dict[str, np.ndarray] = {}
    deltas: dict[str, float] = {}
    for name, method in methods.items():
        maps[name], deltas[name] = attribute_image(model, method, image, clean, target, seed=seed, image_id=image_id,
                                                   channel_reduction=channel_reduction, source=source)
    scores = None
    if evaluation is not None:
        colour = mean_rgb if mean_rgb is not None else tuple(float(c) for c in image[0].mean(dim=(1, 2)).cpu())
        rows = []
        for name, method in methods.items():
            signed = bool(method.signed and channel_reduction == "sum")
            relevance = torch.from_numpy(maps[name]).to(device)
            image_scores, _ = score_map(model, image[0], relevance, native, evaluation, target, colour, seed=seed,
                                        image_id=image_id, signed=signed)
            rows += [{"method": name, "metric": metric, "value": value} for metric, value in image_scores]
        scores = pd.DataFrame(rows, columns=["method", "metric", "value"])
    return Explanation(image_id=image_id, rgb=image[0].permute(1, 2, 0).cpu().numpy(),
                       depth=clean[0, 0].cpu().numpy().astype(np.float32), maps=maps, convergence_delta=deltas,
                       scores=scores)
