"""Model-parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

An attribution method that explains the *model* must produce different maps once the model's learned weights are
destroyed. The cascading test re-initialises the network block by block from the output side to the input side
and, after every step, compares each image's map with the map of the intact model:

* ``spearman``: Spearman rank correlation of ``|map|`` over all pixels (1 = same ranking of pixels);
* ``ssim``: structural similarity (Wang et al., IEEE TIP 2004) of the two ``|map|`` images, each min-max
  normalised to [0, 1] first (as Adebayo et al. compare normalised maps), Gaussian window, data range 1;
* ``attribution_fidelity``: the Attribution Fidelity (:mod:`depthxai.evaluation.fidelity`) of the step's map
  against the step's own predicted depth, i.e. the score the evaluation stage would give that (randomised)
  model; a metric that measures the model must react to the randomisation as well.

Known answers: step 0 (nothing randomised) reproduces the original maps, so ``spearman = ssim = 1`` exactly; a
method that ignores the model (the ``random`` baseline, seeded per image) gives identical maps at every step.

A learned explainer does not look at the model when it runs: randomising the model leaves its maps unchanged by
construction, which says nothing. Its counterpart of the test (``retrain_explainer``) trains it again, with the
same settings and seed, against the *fully* randomised model, and compares those maps with the original
explainer's: rows for it exist at step 0 and at the last step only.

Cascade order (``layer_groups``):

* **METER** (:data:`METER_CASCADE`): the decoder from ``conv2d_out`` back to ``conv2d_in``, then the encoder from
  the 1x1 ``conv2`` after the last MobileViT block back to the stem ``conv1`` (MobileViT blocks and MV2 blocks as
  separate steps), i.e. exactly the reverse of the forward order.
* **Other networks** (PixelFormer, ``hf:`` and ``module:`` models, test nets): the reverse of the order in which the
  network *calls* its modules, recorded with forward hooks (:func:`trace_call_order`) and grouped by a name-prefix
  depth (:func:`group_by_prefix`; PixelFormer: the top-level modules, the Swin backbone split into patch embedding,
  stages and norms; ``hf:``: the transformers model's submodules two levels down (embeddings, layer norm, the
  neck's stages, the head's layers) with every layer of a ViT encoder (Depth Anything's DINOv2, DPT's ViT) a step
  of its own; ``module:``: the user's network's top-level children).

Re-initialisation (:func:`reinitialise`) uses PyTorch's ``reset_parameters()`` where a module defines it, under a
seed derived from (seed, group name); parameters of modules without it (e.g. Swin's relative-position bias table)
are redrawn from a normal distribution with the tensor's own standard deviation (0.02 if that is 0). The draws are
made on a CPU copy, so the result does not depend on the device. The caller's model is never modified.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor, nn

from depthxai.attribution.base import AttributionMethod, image_seed, reduce_channels
from depthxai.attribution.targets import TargetSpec, target_weights
from depthxai.data.io import split_ids
from depthxai.evaluation.fidelity import attribution_fidelity
from depthxai.models.wrapper import DepthModel, load_inputs

SANITY_COLUMNS = ["step", "layer", "method", "image_id", "metric", "value"]
SANITY_METRICS = ("spearman", "ssim", "attribution_fidelity")

#: METER's cascade, output side first (module names relative to the bare network).
METER_CASCADE = (
    "decoder.conv2d_out", "decoder.ups_block_3", "decoder.ups_block_2", "decoder.ups_block_1", "decoder.conv2d_in",
    "encoder.conv2", "encoder.mvit.2", "encoder.mv2.6", "encoder.mvit.1", "encoder.mv2.5", "encoder.mvit.0",
    "encoder.mv2.4", "encoder.mv2.3", "encoder.mv2.2", "encoder.mv2.1", "encoder.mv2.0", "encoder.conv1",
)

#: Prefix depths of the traced grouping per architecture: (default depth, {prefix: depth}), see group_by_prefix.
TRACE_GROUPING: dict[str, tuple[int, dict[str, int]]] = {
    "pixelformer": (1, {"backbone": 2, "backbone.layers": 3}),
    # hf: HFDepthNet.model is the transformers model; module: ModuleDepthNet.net the user's network
    "hf": (3, {"model.backbone.encoder": 5, "model.dpt.encoder": 5}),
    "module": (2, {}),
}


@dataclass(frozen=True)
class LayerGroup:
    """One step of the cascade: ``name`` (for the output table) and the ``modules`` (names relative to the bare
    network) whose own parameters are re-initialised at that step."""

    name: str
    modules: tuple[str, ...]


# --------------------------------------------------------------------------------------------- layer order


def trace_call_order(net: nn.Module, example: Tensor) -> list[str]:
    """Names of the modules that own parameters, in the order ``net(example)`` first calls them.

    Only modules with parameters of their own (``parameters(recurse=False)``) are recorded: they are what
    randomisation changes. Modules never called by the forward pass are left out.

    Args:
        net: the bare network.
        example: an input batch for ``net`` (e.g. ``(1, 3, H, W)``).
    """
    order: list[str] = []
    seen: set[str] = set()
    handles = []

    def hook_for(name: str):
        def hook(module: nn.Module, args: object) -> None:
            if name not in seen:
                seen.add(name)
                order.append(name)
        return hook

    for name, module in net.named_modules():
        if name and next(module.parameters(recurse=False), None) is not None:
            handles.append(module.register_forward_pre_hook(hook_for(name)))
    try:
        with torch.no_grad():
            net(example)
    finally:
        for handle in handles:
            handle.remove()
    return order


def group_by_prefix(order: Sequence[str], depth: int = 1, deeper: Mapping[str, int] | None = None) -> list[LayerGroup]:
    """Group module names by their first ``depth`` dotted components, groups in order of first appearance.

    Args:
        order: module names in call order (:func:`trace_call_order`).
        depth: default number of name components that identify a group (1: top-level children).
        deeper: per-prefix depths overriding ``depth``; the longest matching prefix wins, e.g.
            ``{"backbone": 2, "backbone.layers": 3}`` makes ``backbone.layers.0.blocks.1.attn.qkv`` part of
            ``backbone.layers.0`` and ``backbone.patch_embed.proj`` part of ``backbone.patch_embed``.

    Returns:
        The groups in forward (call) order.
    """
    deeper = dict(deeper or {})
    groups: dict[str, list[str]] = {}
    for name in order:
        matches = [p for p in deeper if name == p or name.startswith(p + ".")]
        d = deeper[max(matches, key=len)] if matches else depth
        key = ".".join(name.split(".")[:d])
        groups.setdefault(key, []).append(name)
    return [LayerGroup(key, tuple(members)) for key, members in groups.items()]


def _modules_with_parameters(net: nn.Module, root: str) -> tuple[str, ...]:
    module = net.get_submodule(root)
    return tuple(f"{root}.{n}" if n else root for n, m in module.named_modules()
                 if next(m.parameters(recurse=False), None) is not None)


def layer_groups(model: DepthModel, example: Tensor | None = None) -> list[LayerGroup]:
    """The cascade of ``model``, **output side first** (the order in which layers are randomised).

    Args:
        model: the depth model (its ``card.arch`` picks the rule).
        example: ``(1, 3, H, W)`` input for the trace; default a grey image at ``card.input_size``.
    """
    net = model.net
    if model.card.arch == "meter":
        return [LayerGroup(name, _modules_with_parameters(net, name)) for name in METER_CASCADE]
    if example is None:
        device = next(model.parameters()).device
        example = torch.full((1, 3, *model.card.input_size), 0.5, device=device)
        if model.card.imagenet_norm:
            example = (example - model.mean) / model.std
    depth, deeper = TRACE_GROUPING.get(model.card.arch, (1, {}))
    return group_by_prefix(trace_call_order(net, example), depth, deeper)[::-1]


# --------------------------------------------------------------------------------------------- re-initialisation


@torch.no_grad()
def reinitialise(net: nn.Module, group: LayerGroup, seed: int) -> None:
    """Re-initialise the own parameters of every module of ``group`` in place, seeded (see the module docstring).

    The global RNG state is restored afterwards, so callers' random streams are not disturbed.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in group.modules:
            module = net.get_submodule(name)
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for param in module.parameters(recurse=False):
                std = float(param.detach().double().std()) if param.numel() > 1 else 0.0
                param.normal_(0.0, std if std > 0 and math.isfinite(std) else 0.02)


# --------------------------------------------------------------------------------------------- similarity


def spearman_abs(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of ``|a|`` and ``|b|`` over all elements (average ranks for ties).

    Computed as the Pearson correlation of the ranks, ``s_ab / sqrt(s_aa s_bb)``, in float64, so identical inputs
    give exactly 1. NaN if either map is constant.
    """
    x = stats.rankdata(a.detach().abs().double().cpu().numpy().ravel())
    y = stats.rankdata(b.detach().abs().double().cpu().numpy().ravel())
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(np.dot(dx, dx)), float(np.dot(dy, dy))
    if sxx == 0.0 or syy == 0.0:
        return float("nan")
    return float(np.clip(np.dot(dx, dy) / math.sqrt(sxx * syy), -1.0, 1.0))


def ssim(x: Tensor, y: Tensor, *, data_range: float = 1.0, sigma: float = 1.5, window: int = 11,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean structural similarity of two single-channel images (Wang, Bovik, Sheikh, Simoncelli 2004).

    ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))`` with local means,
    variances and covariance under a normalised Gaussian window (``sigma`` 1.5, ``window`` 11 px, truncated to
    the image when smaller), ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``, ``L = data_range``; averaged over the positions
    where the window fits entirely ("valid"), in float64. Identical inputs give exactly 1.

    Args:
        x, y: ``(H, W)`` images of equal shape.
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"ssim needs two (H, W) images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    size = min(window, x.shape[0], x.shape[1])
    size -= 1 - size % 2  # odd, so the window has a centre
    radius = size // 2
    g = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    g = g / g.sum()
    kernel_h, kernel_w = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)

    def local_mean(img: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(img[None, None], kernel_h), kernel_w)[0, 0]

    x = x.detach().double().cpu()
    y = y.detach().double().cpu()
    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x * mu_x
    var_y = local_mean(y * y) - mu_y * mu_y
    cov = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    numerator = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return float((numerator / denominator).mean())


def normalised_magnitude(relevance: Tensor) -> Tensor:
    """``|r|`` min-max normalised to [0, 1]; a constant map becomes all zeros."""
    a = relevance.detach().abs().double()
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else torch.zeros_like(a)


# --------------------------------------------------------------------------------------------- the test


def _as_list(methods: AttributionMethod | Sequence[AttributionMethod]) -> list[AttributionMethod]:
    return [methods] if isinstance(methods, AttributionMethod) else list(methods)


def _pixel_maps(model: DepthModel, methods: list[AttributionMethod], images: Tensor, weights: Tensor,
                ids: Sequence[str], seed: int, channel_reduction: str) -> dict[tuple[str, str], Tensor]:
    """``{(method, image_id): (H, W) map}``, one image per call (as the attribution stage does)."""
    out = {}
    for method in methods:
        for k, image_id in enumerate(ids):
            result = method.attribute(model, images[k : k + 1], weights[k : k + 1],
                                      seeds=[image_seed(seed, image_id, method.name)])
            out[(method.name, image_id)] = reduce_channels(result.maps, channel_reduction)[0].detach()
    return out


def cascading_randomisation(model: DepthModel, images: Tensor, weights: Tensor,
                            methods: AttributionMethod | Sequence[AttributionMethod], *, seed: int,
                            image_ids: Sequence[str] | None = None, groups: Sequence[LayerGroup] | None = None,
                            channel_reduction: str = "sum", fidelity_measure: str = "pearson",
                            retrain_explainer: tuple[AttributionMethod, Callable[[DepthModel], AttributionMethod]]
                            | None = None) -> pd.DataFrame:
    """Cascading model-parameter randomisation of ``model`` for every method and image.

    Args:
        model: the trained depth model (left untouched: the test runs on a deep copy).
        images: ``(N, 3, H, W)`` RGB in [0, 1] at the model's input size, on the model's device.
        weights: ``(N, 1, H, W)`` target weights (:func:`~depthxai.attribution.targets.target_weights`), computed
            from the intact model's prediction and kept fixed through the cascade (the same scalar is explained).
        methods: one attribution method or several.
        seed: base seed: re-initialisation of group ``g`` uses ``image_seed(seed, g, "randomisation")``;
            stochastic methods get ``image_seed(seed, image_id, method)``, the same at every step.
        image_ids: one id per image (default ``"0"``, ``"1"``, ...).
        groups: the cascade, output side first (default :func:`layer_groups`).
        channel_reduction: how ``(C, H, W)`` maps become pixel maps (:func:`reduce_channels`).
        fidelity_measure: the Attribution Fidelity measure.
        retrain_explainer: ``(explainer of the trained model, train)``: ``train(model)`` returns an explainer
            trained against ``model``; it is called once, on the fully randomised model (see the module docstring).

    Returns:
        Tidy rows :data:`SANITY_COLUMNS`: ``step`` 0 (intact model, maps computed again, ``layer`` ``"none"``) to
        ``len(groups)`` (every group up to and including ``layer`` randomised), ``metric`` in
        :data:`SANITY_METRICS`; sorted by step, method, image, metric. ``spearman`` is NaN where a map is constant;
        ``attribution_fidelity`` is NaN where the map or the prediction is constant.
    """
    methods = _as_list(methods)
    n = images.shape[0]
    ids = [str(i) for i in (image_ids if image_ids is not None else range(n))]
    if len(ids) != n or weights.shape[0] != n:
        raise ValueError(f"{n} images, {len(ids)} ids and {weights.shape[0]} weight maps: they must match")
    working = copy.deepcopy(model).eval()
    # Draws are made on a CPU copy and loaded into the working copy, so CPU and GPU runs randomise identically.
    master = copy.deepcopy(working.net).cpu()
    groups = list(groups) if groups is not None else layer_groups(working, None)

    rows: list[tuple[int, str, str, str, str, float]] = []

    def maps_now(extra: Sequence[AttributionMethod] = ()) -> dict[tuple[str, str], Tensor]:
        return _pixel_maps(working, [*methods, *extra], images, weights, ids, seed, channel_reduction)

    def score(step: int, layer: str, extra: Sequence[AttributionMethod] = ()) -> None:
        maps = maps_now(extra)
        with torch.no_grad():
            native = torch.cat([working.native(images[k : k + 1]) for k in range(n)])
        for (method_name, image_id), current in maps.items():
            original = reference[(method_name, image_id)]
            k = ids.index(image_id)
            rows.append((step, layer, method_name, image_id, "spearman", spearman_abs(original, current)))
            rows.append((step, layer, method_name, image_id, "ssim",
                         ssim(normalised_magnitude(original), normalised_magnitude(current))))
            rows.append((step, layer, method_name, image_id, "attribution_fidelity",
                         attribution_fidelity(current, native[k, 0], fidelity_measure)))

    # The original maps; step 0 computes them a second time on the intact copy (a check of determinism).
    original_explainer = [retrain_explainer[0]] if retrain_explainer is not None else []
    reference = maps_now(original_explainer)
    score(0, "none", original_explainer)
    for step, group in enumerate(groups, start=1):
        reinitialise(master, group, image_seed(seed, group.name, "randomisation"))
        working.net.load_state_dict(master.state_dict())  # copies into the working copy's tensors, on its device
        last = step == len(groups)
        score(step, group.name, [retrain_explainer[1](working)] if last and retrain_explainer is not None else ())
    table = pd.DataFrame(rows, columns=SANITY_COLUMNS)
    return table.sort_values(["step", "method", "image_id", "metric"], kind="stable").reset_index(drop=True)


def randomisation_test(model: DepthModel, data_root: str | Path, n_images: int,
                       methods: Sequence[AttributionMethod], target: TargetSpec, *, seed: int,
                       retrain_explainer: tuple[AttributionMethod, Callable[[DepthModel], AttributionMethod]]
                       | None = None) -> pd.DataFrame:
    """:func:`cascading_randomisation` on the first ``n_images`` test images of a prepared dataset, explaining the
    target of the intact model's prediction (its weights computed once, without gradients, and held fixed)."""
    ids = split_ids(data_root, "test", n_images)
    images = load_inputs(model, data_root, ids)
    with torch.no_grad():
        weights = target_weights(target, model(images))
    return cascading_randomisation(model, images, weights, methods, seed=seed, image_ids=ids,
                                   retrain_explainer=retrain_explainer)


def explainer_retraining(weights: str | Path, data_root: str | Path, settings: Mapping[str, object], *,
                         log: logging.Logger | None = None, progress: bool = True
                         ) -> tuple[AttributionMethod, Callable[[DepthModel], AttributionMethod]]:
    """The ``retrain_explainer`` pair of :func:`cascading_randomisation` for a trained explainer: the explainer of
    ``weights``, and a function that trains one with the same settings (``methods.explainer`` fields with seed and
    threads) against a given model on the train split of ``data_root``."""
    from depthxai.attribution.explainer import Explainer, ExplainerConfig, fit_explainer

    config = ExplainerConfig.from_config(dict(settings))

    def train_against(randomised: DepthModel) -> AttributionMethod:
        if log:
            log.info("training the explainer again against the fully randomised model")
        return Explainer(net=fit_explainer(randomised, data_root, config, log=log, progress=progress)[0])

    return Explainer(weights), train_against
