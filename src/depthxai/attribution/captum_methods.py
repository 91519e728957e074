"""Every Captum primary attribution method by name, behind :class:`~depthxai.attribution.base.AttributionMethod`.

Names (the config's method names):

* ``captum:<Method>`` for any primary attribution class of ``captum.attr`` (:func:`available_methods`):
  ``Saliency``, ``IntegratedGradients``, ``InputXGradient``, ``GuidedBackprop``, ``Deconvolution``, ``DeepLift``,
  ``DeepLiftShap``, ``GradientShap``, ``Occlusion``, ``FeatureAblation``, ``ShapleyValueSampling``,
  ``ShapleyValues``, ``Lime``, ``KernelShap``, ``LRP``, ``GuidedGradCam``.
* ``captum:NoiseTunnel(<Method>)``: SmoothGrad (Smilkov et al., 2017) over any of them, e.g.
  ``captum:NoiseTunnel(IntegratedGradients)``; ``nt_type`` ``smoothgrad_sq`` or ``vargrad`` for the other
  variants (Adebayo et al., 2018).

Every method explains the same scalar as Saliency and IG (:class:`~depthxai.attribution.targets.TargetModel`:
``sum_p w_p depth_p``) and returns ``(B, 3, H, W)`` maps. The parameters (the config's ``methods.<name>`` dict)
go to the Captum constructor if it takes them, else to ``attribute``; for ``NoiseTunnel(...)`` its own
``attribute`` arguments (``nt_type``, ``nt_samples``, ``nt_samples_batch_size``, ``stdevs``,
``draw_baseline_from_distrib``) go to it and the rest to the inner method. ``inputs``, ``target``,
``additional_forward_args`` and ``return_convergence_delta`` are set here. Keys read here:

==================  ============================================  ==================================================
key                 methods                                       default
==================  ============================================  ==================================================
``baselines``       those with baselines                          ``black``; ``black+noise`` for GradientShap and
                                                                  DeepLiftShap (black and ``n_noise_baselines``
                                                                  uniform-noise images); also ``noise`` or a number
                                                                  (a grey level in [0, 1])
``window_fraction`` Occlusion                                     1/8 of each side (``sliding_window_shapes``, all
                                                                  three channels together); explicit
                                                                  ``sliding_window_shapes``/``strides`` win
``stride_fraction`` Occlusion                                     1/16 (half a window); the last window is cut at
                                                                  the border, so every pixel is covered
``grid``            FeatureAblation, ShapleyValue*, Lime,          ``[rows, cols]`` cells of a regular grid as the
                    KernelShap (``feature_mask``)                 features (all channels of a cell together): 8x8
                                                                  (FeatureAblation), 4x4 (Shapley sampling, Lime,
                                                                  KernelShap), 2x2 (exact ShapleyValues: all n! orders)
``layer``           GuidedGradCam                                 required: a submodule path of the DepthModel,
                                                                  e.g. ``net.decoder.conv``
==================  ============================================  ==================================================

Defaults that differ from Captum's: IntegratedGradients ``n_steps=32`` (Captum 50); NoiseTunnel
``nt_samples=10`` (5) and ``stdevs=0.15`` (1.0; inputs are RGB in [0, 1] and Smilkov et al. recommend 10-20 % of
the range); GradientShap ``n_samples=16`` (5) and ``stdevs=0.1`` (0); ShapleyValueSampling ``n_samples=10`` (25);
Lime and KernelShap ``n_samples=64`` (25); Lime's surrogate an ordinary least-squares fit (Captum's Lasso with
``alpha=0.01`` zeroes every coefficient of a target in metres that moves by millimetres);
``perturbations_per_eval=8`` (1) for the perturbation methods (batching only: the same maps). LRP has rules for a
few layer types only (Captum's): a model with another layer is refused with a one-line error naming it.

Randomness: a method is ``stochastic`` if Captum draws inside it (NoiseTunnel, GradientShap, Lime, KernelShap,
ShapleyValueSampling) or its baselines hold noise. It then runs image by image: the noise baselines come from
:func:`~depthxai.attribution.base.seeded_generator` of the image's seed, and Captum's own draws from the global
generators (torch's of the image's device, NumPy's, Python's), seeded from the image's seed and restored
afterwards (:func:`seeded_global_rngs`: the caller's random state is untouched). So an image's map does not depend
on its batch; Captum's torch draws differ between CPU and CUDA. ``signed`` says whether maps carry a sign: all
but Saliency (``abs=True``) and NoiseTunnel's ``smoothgrad_sq``/``vargrad``.

Not offered: ``FeaturePermutation`` (permutes features across the images of a batch, so an image's map would
depend on its batch), ``LimeBase`` (needs hand-written interpretable-space transforms: use Lime or KernelShap),
``DataLoaderAttribution`` and the LLM attributions (not one image's map).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import captum.attr
import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import NoiseTunnel
from captum.attr._utils.attribution import GradientAttribution
from torch import Tensor

from depthxai.attribution.base import AttributionMethod, AttributionResult, seeded_generator
from depthxai.attribution.targets import TargetModel
from depthxai.errors import ConfigError
from depthxai.models.wrapper import DepthModel

PREFIX = "captum:"

#: Captum classes that are not offered, and why.
EXCLUDED = {
    "FeaturePermutation": "it permutes features across the images of a batch, so an image's map would depend on its "
                          "batch",
    "LimeBase": "it needs hand-written interpretable-space transforms; use captum:Lime or captum:KernelShap",
    "DataLoaderAttribution": "it attributes a metric over a data loader, not one image",
    "NoiseTunnel": "it wraps another method: spell it captum:NoiseTunnel(<Method>)",
}

#: NoiseTunnel's own ``attribute`` arguments and our defaults for them.
NT_ARGS = ("nt_type", "nt_samples", "nt_samples_batch_size", "stdevs", "draw_baseline_from_distrib")
NT_DEFAULTS: dict[str, Any] = {"nt_type": "smoothgrad", "nt_samples": 10, "stdevs": 0.15}

#: Arguments set by this module.
RESERVED = ("inputs", "target", "additional_forward_args", "return_convergence_delta")

BASELINE_KINDS = ("black", "noise", "black+noise")
#: Methods whose ``baselines`` are a distribution (several images per input).
DISTRIBUTION_BASELINES = ("GradientShap", "DeepLiftShap")


@dataclass(frozen=True)
class MethodSpec:
    """What this module knows about a Captum method beyond its signature.

    Attributes:
        signed: whether its maps carry a sign.
        random_inside: whether Captum draws random numbers inside it (then it runs seeded, image by image).
        baselines: the default baseline kind, for methods whose ``attribute`` takes ``baselines``.
        grid: the default feature-mask grid (rows, cols) for methods with a ``feature_mask``.
        defaults: ``attribute`` defaults that differ from Captum's.
        delta: whether it returns one convergence delta per image.
    """

    signed: bool = True
    random_inside: bool = False
    baselines: str = "black"
    grid: tuple[int, int] = (8, 8)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    delta: bool = False


_PERTURB = {"perturbations_per_eval": 8}
SPECS: dict[str, MethodSpec] = {
    "Saliency": MethodSpec(signed=False),
    "IntegratedGradients": MethodSpec(defaults={"n_steps": 32, "method": "gausslegendre"}, delta=True),
    "InputXGradient": MethodSpec(),
    "GuidedBackprop": MethodSpec(),
    "Deconvolution": MethodSpec(),
    "DeepLift": MethodSpec(delta=True),
    "DeepLiftShap": MethodSpec(baselines="black+noise"),
    "GradientShap": MethodSpec(random_inside=True, baselines="black+noise", defaults={"n_samples": 16, "stdevs": 0.1}),
    "Occlusion": MethodSpec(defaults=_PERTURB),
    "FeatureAblation": MethodSpec(defaults=_PERTURB),
    "ShapleyValueSampling": MethodSpec(random_inside=True, grid=(4, 4), defaults={"n_samples": 10, **_PERTURB}),
    "ShapleyValues": MethodSpec(grid=(2, 2), defaults=_PERTURB),
    "Lime": MethodSpec(random_inside=True, grid=(4, 4), defaults={"n_samples": 64, **_PERTURB}),
    "KernelShap": MethodSpec(random_inside=True, grid=(4, 4), defaults={"n_samples": 64, **_PERTURB}),
    "LRP": MethodSpec(delta=True),
    "GuidedGradCam": MethodSpec(),
}
#: A primary method this module has no entry for: assumed signed and random inside (seeded per image: safe).
GENERIC_SPEC = MethodSpec(random_inside=True)

_NAME = re.compile(r"^captum:(?P<outer>[A-Za-z_]\w*)(?:\((?P<inner>[A-Za-z_]\w*)\))?$")


def _primary_classes() -> dict[str, Any]:
    """The primary attribution classes of ``captum.attr`` (not layer/neuron ones, not abstract, not excluded)."""
    from captum.attr._utils.attribution import Attribution, LayerAttribution, NeuronAttribution

    found = {}
    for name in dir(captum.attr):
        cls = getattr(captum.attr, name)
        if (inspect.isclass(cls) and issubclass(cls, Attribution)
                and not issubclass(cls, (LayerAttribution, NeuronAttribution))
                and callable(getattr(cls, "attribute", None))  # the abstract bases declare no attribute
                and name not in EXCLUDED and "LLM" not in name):
            found[name] = cls
    return dict(sorted(found.items()))


def available_methods() -> list[str]:
    """Every name this module accepts: ``captum:<Method>`` and ``captum:NoiseTunnel(<Method>)``."""
    names = list(_primary_classes())
    return [PREFIX + n for n in names] + [f"{PREFIX}NoiseTunnel(<{'|'.join(names)}>)"]


def _parameters(func: Any, skip: int) -> dict[str, inspect.Parameter]:
    """Named parameters of ``func`` after the first ``skip`` (no ``*args``/``**kwargs``)."""
    params = list(inspect.signature(func).parameters.values())[skip:]
    return {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _captum_seed(seed: int) -> int:
    """The seed of Captum's internal draws, distinct from the stream that draws noise baselines from ``seed``."""
    return int.from_bytes(hashlib.sha256(f"{seed}:captum".encode()).digest()[:8], "little") & ((1 << 63) - 1)


@contextlib.contextmanager
def seeded_global_rngs(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global generators Captum draws from inside the block, then restore them.

    Captum draws with torch's generator of the input's device (NoiseTunnel's noise, Lime's and KernelShap's
    samples, Shapley orders), NumPy's (GradientShap's path positions, the choice of baselines) and Python's
    (``ProductBaselines``). Only the input device's torch generator is seeded, not every device's.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            if device.type == "cuda":
                torch.cuda.manual_seed(seed)
            else:
                torch.random.default_generator.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def grid_mask(size: tuple[int, int], grid: Sequence[int], device: torch.device) -> Tensor:
    """``(1, 1, H, W)`` long feature mask: pixel ``(i, j)`` is feature ``floor(i r / H) * c + floor(j c / W)``."""
    (h, w), (r, c) = size, (int(grid[0]), int(grid[1]))
    rows = torch.arange(h, device=device) * r // h
    cols = torch.arange(w, device=device) * c // w
    return (rows[:, None] * c + cols[None, :])[None, None]


class CaptumMethod(AttributionMethod):
    """A Captum primary attribution method (or NoiseTunnel over one) by name, configured from a dict.

    Args:
        name: ``captum:<Method>`` or ``captum:NoiseTunnel(<Method>)`` (see the module docstring).
        params: the method's arguments and the keys read here.

    Raises:
        ConfigError: unknown name (listing the available ones), unknown or reserved argument, or a required
            argument without default (naming the method and the argument).
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        match = _NAME.match(name)
        classes = _primary_classes()
        known = ", ".join(available_methods())
        if match is None:
            raise ConfigError(f"attribution method {name!r}: not captum:<Method> or captum:NoiseTunnel(<Method>); "
                              f"available: {known}")
        outer, inner = match["outer"], match["inner"]
        tunnel = outer == "NoiseTunnel" and inner is not None
        method = inner if tunnel else outer
        if inner is not None and not tunnel:
            raise ConfigError(f"attribution method {name!r}: only NoiseTunnel wraps another method; available: {known}")
        if method in EXCLUDED:
            raise ConfigError(f"attribution method {name!r}: captum:{method} is not offered: {EXCLUDED[method]}")
        if method not in classes:
            raise ConfigError(f"attribution method {name!r}: captum.attr has no primary method {method!r}; "
                              f"available: {known}")
        self.name = name
        self.method = method
        self.tunnel = tunnel
        self.cls: Any = classes[method]
        self.spec = SPECS.get(method, GENERIC_SPEC)
        self._configure(dict(params or {}))

    # ------------------------------------------------------------------------------------------ configuration

    def _configure(self, params: dict[str, Any]) -> None:
        label = self.name
        bad = sorted(set(params) & set(RESERVED))
        if bad:
            raise ConfigError(f"{label}: argument(s) {', '.join(bad)} are set by depthxai, not by the config")
        self.nt_kwargs = {**NT_DEFAULTS, **{k: params.pop(k) for k in NT_ARGS if k in params}} if self.tunnel else {}
        init_params = _parameters(self.cls.__init__, 2)  # self, forward_func / model
        attr_params = _parameters(self.cls.attribute, 2)  # self, inputs
        self.takes_baselines = "baselines" in attr_params
        self.takes_mask = "feature_mask" in attr_params
        self.is_occlusion = "sliding_window_shapes" in attr_params
        ours = {"baselines"} if self.takes_baselines else set()
        if self.takes_baselines and self.method in DISTRIBUTION_BASELINES:
            ours.add("n_noise_baselines")
        if self.takes_mask:
            ours.add("grid")
        if self.is_occlusion:
            ours |= {"window_fraction", "stride_fraction"}
        if "feature_mask" in params:
            raise ConfigError(f"{label}: give the feature mask as grid: [rows, cols]")
        unknown = sorted(set(params) - set(init_params) - set(attr_params) - ours)
        if unknown:
            accepted = sorted((set(init_params) | set(attr_params) | ours) - set(RESERVED) - {"feature_mask"})
            raise ConfigError(f"{label}: unknown argument(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}")
        self.init_kwargs = {k: params.pop(k) for k in list(params) if k in init_params}
        self.baseline_kind: str | float | None = None
        if self.takes_baselines:
            self.baseline_kind = self._baseline_kind(params.pop("baselines", self.spec.baselines))
        self.n_noise = int(params.pop("n_noise_baselines", 4))
        self.grid = tuple(int(v) for v in params.pop("grid", self.spec.grid))
        if self.takes_mask and (len(self.grid) != 2 or min(self.grid) < 1):
            raise ConfigError(f"{label}: grid must be [rows, cols] with positive entries, got {list(self.grid)}")
        self.window_fraction = float(params.pop("window_fraction", 1 / 8))
        self.stride_fraction = float(params.pop("stride_fraction", 1 / 16))
        self.attr_kwargs = {k: v for k, v in self.spec.defaults.items() if k in attr_params}
        self.attr_kwargs.update({k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        provided = set(self.attr_kwargs) | {"baselines", "feature_mask"} | (
            {"sliding_window_shapes"} if self.is_occlusion else set())
        for where, table, given in (("constructor", init_params, self.init_kwargs),
                                    ("attribute", attr_params, provided)):
            for arg, p in table.items():
                if p.default is inspect.Parameter.empty and arg not in given and arg not in RESERVED:
                    raise ConfigError(f"{label}: missing argument {arg!r} (Captum's {self.method} {where} needs it "
                                      "and it has no default here)")
        self.stochastic = self.tunnel or self.spec.random_inside or (
            isinstance(self.baseline_kind, str) and "noise" in self.baseline_kind)
        self.signed = self._signed()
        self.delta = self.spec.delta and not self.tunnel

    def _baseline_kind(self, value: Any) -> str | float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if value not in BASELINE_KINDS:
            raise ConfigError(f"{self.name}: baselines must be one of {BASELINE_KINDS} or a number, got {value!r}")
        if value == "black+noise" and self.method not in DISTRIBUTION_BASELINES:
            raise ConfigError(f"{self.name}: 'black+noise' is a baseline distribution, for "
                              f"{' and '.join(DISTRIBUTION_BASELINES)} only")
        if self.method in DISTRIBUTION_BASELINES and value != "black+noise":
            raise ConfigError(f"{self.name}: {self.method} needs a baseline distribution: baselines 'black+noise'")
        return str(value)

    def _signed(self) -> bool:
        if self.tunnel and self.nt_kwargs.get("nt_type", "smoothgrad") != "smoothgrad":
            return False  # squares or variances
        if self.method == "Saliency":
            return not bool(self.attr_kwargs.get("abs", True))
        return self.spec.signed

    # ----------------------------------------------------------------------------------------------- running

    def _algorithm(self, model: DepthModel) -> Any:
        """A fresh Captum object over the target (hook-based methods keep per-instance state)."""
        init = dict(self.init_kwargs)
        if isinstance(init.get("layer"), str):
            try:
                init["layer"] = model.get_submodule(init["layer"])
            except AttributeError:
                raise ConfigError(f"{self.name}: model {model.card.name!r} has no submodule "
                                  f"{init['layer']!r}") from None
        if self.method == "Lime" and "interpretable_model" not in init:
            # Captum's default Lasso (alpha 0.01) zeroes every coefficient when the target (metres) moves by less
            init["interpretable_model"] = SkLearnLinearRegression()
        algorithm = self.cls(TargetModel(model), **init)
        return NoiseTunnel(algorithm) if self.tunnel else algorithm

    def _baselines(self, images: Tensor, seed: int | None) -> Tensor:
        """``(B, 3, H, W)`` (or ``(1 + n_noise, 3, H, W)`` for a distribution, one image) baselines."""
        kind = self.baseline_kind
        if isinstance(kind, float):
            return torch.full_like(images, kind)
        if kind == "black":
            return torch.zeros_like(images)
        assert seed is not None, "noise baselines are drawn per image"
        n = self.n_noise if kind == "black+noise" else 1
        noise = torch.rand((n, *images.shape[1:]), generator=seeded_generator(seed), dtype=images.dtype)
        noise = noise.to(images.device)
        return torch.cat([torch.zeros_like(images), noise]) if kind == "black+noise" else noise

    def _input_kwargs(self, images: Tensor, seed: int | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        h, w = images.shape[-2:]
        if self.takes_baselines:
            kwargs["baselines"] = self._baselines(images, seed)
        if self.takes_mask and not self.is_occlusion:
            kwargs["feature_mask"] = grid_mask((h, w), self.grid, images.device)
        if self.is_occlusion and "sliding_window_shapes" not in self.attr_kwargs:
            window = (3, max(1, math.ceil(h * self.window_fraction)), max(1, math.ceil(w * self.window_fraction)))
            kwargs["sliding_window_shapes"] = window
            if "strides" not in self.attr_kwargs:
                kwargs["strides"] = (3, max(1, math.floor(h * self.stride_fraction)),
                                     max(1, math.floor(w * self.stride_fraction)))
        return kwargs

    def _run(self, algorithm: Any, images: Tensor, weights: Tensor, seed: int | None) -> tuple[Tensor, Tensor | None]:
        kwargs = {**self.attr_kwargs, **self._input_kwargs(images, seed), **self.nt_kwargs}
        if self.delta:
            kwargs["return_convergence_delta"] = True

        def call() -> Any:
            return algorithm.attribute(images, additional_forward_args=(weights,), **kwargs)

        if issubclass(self.cls, GradientAttribution):  # as Captum would, without its warning
            images = images.clone().requires_grad_(True)
        if seed is None:
            out = call()
        else:
            with seeded_global_rngs(_captum_seed(seed), images.device):
                out = call()
        maps, delta = out if self.delta else (out, None)
        return maps.detach(), (delta.detach().reshape(-1) if delta is not None else None)

    def attribute(self, model: DepthModel, images: Tensor, weights: Tensor,
                  seeds: Sequence[int] | None = None) -> AttributionResult:
        """Attribute ``sum(weights * depth)`` of each image; ``(B, 3, H, W)`` maps (see :class:`AttributionMethod`).

        ``extras["convergence_delta"]`` (``(B,)``, Captum's ``sum(attr) - (F(x) - F(baseline))``) for
        IntegratedGradients, DeepLift and LRP.
        """
        algorithm = self._algorithm(model)
        images = images.detach()
        try:
            return self._attribute(algorithm, images, weights, seeds)
        except TypeError as exc:
            if self.method != "LRP":
                raise
            # LRP has propagation rules for a few layer types only (Captum); say which layer, in one line
            raise ConfigError(f"{self.name} cannot explain model {model.card.name!r}: "
                              f"{str(exc).splitlines()[0]}") from None

    def _attribute(self, algorithm: Any, images: Tensor, weights: Tensor,
                   seeds: Sequence[int] | None) -> AttributionResult:
        if not self.stochastic:
            maps, delta = self._run(algorithm, images, weights, None)
        else:
            if seeds is None or len(seeds) != images.shape[0]:
                raise ValueError(f"{self.name} is stochastic: it needs one seed per image")
            parts = [self._run(algorithm, images[i : i + 1], weights[i : i + 1], int(s)) for i, s in enumerate(seeds)]
            maps = torch.cat([m for m, _ in parts])
            deltas = [d for _, d in parts if d is not None]
            delta = torch.cat(deltas) if deltas else None
        extras = {"convergence_delta": delta.to(torch.float32)} if delta is not None else {}
        return AttributionResult(maps=maps, extras=extras)


def build_captum_method(name: str, params: Mapping[str, Any] | None = None) -> CaptumMethod:
    """The method ``captum:...`` configured with ``params`` (see the module docstring)."""
    return CaptumMethod(name, params)
