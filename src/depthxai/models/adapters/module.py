"""A user's own depth network behind :class:`~depthxai.models.DepthModel`: ``module:<python.module>:<factory>``.

``factory(**factory_kwargs)`` builds an ``nn.Module`` that maps normalised RGB ``(B, 3, H, W)`` to depth
``(B, 1, h, w)`` or ``(B, h, w)``; its state dict is loaded strictly (``weights_only=True``) from the weights
file. The card comes from a small YAML beside the weights (``<weights stem>.yaml``, else ``card.yaml`` in the
same folder), then from keyword arguments, which win::

    # depthnet.yaml, beside depthnet.pt
    input_size: [192, 256]          # required: (H, W) fed to the network
    mean: [0.485, 0.456, 0.406]     # optional, with std: normalisation of RGB in [0, 1] (default: none)
    std: [0.229, 0.224, 0.225]
    output_unit_m: 1.0              # metres per output unit (default 1)
    output_kind: metric             # or relative (affine-invariant inverse depth)
    max_depth: 10.0                 # optional depth range (default [1e-3, inf) for metric outputs)
    factory_kwargs: {width: 32}     # optional keyword arguments of the factory

The output shape is checked on a probe forward (a grey image at ``input_size``) when the model is loaded, and on
every forward: anything but ``(B, 1, h, w)`` or ``(B, h, w)`` is a :class:`~depthxai.errors.ConfigError` naming
the model. A network that has an ``attentions(pixel_values)`` method returning ``(list of (B, heads, N, N),
TokenLayout)`` can be explained with ViT attention rollout (:mod:`depthxai.attribution.rollout.vit`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from depthxai.errors import CheckpointError, ConfigError
from depthxai.models.adapters.base import CARD_FIELDS, TokenLayout, make_card
from depthxai.models.checkpoint import load_weights
from depthxai.models.wrapper import DepthModel

PREFIX = "module:"


class ModuleDepthNet(nn.Module):
    """The user's network with its output checked and brought to ``(B, 1, h, w)``.

    Args:
        net: the user's module.
        name: the depthxai model name, for error messages.
    """

    def __init__(self, net: nn.Module, name: str) -> None:
        super().__init__()
        self.net = net
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        if not isinstance(out, Tensor):
            raise ConfigError(f"model {self.name!r}: the network returned {type(out).__name__}, not a depth tensor")
        batch = x.shape[0]
        if out.dim() == 3 and out.shape[0] == batch:
            return out[:, None]
        if out.dim() == 4 and out.shape[:2] == (batch, 1):
            return out
        raise ConfigError(f"model {self.name!r}: the network returned shape {tuple(out.shape)} for input "
                          f"{tuple(x.shape)}; expected depth (B, 1, h, w) or (B, h, w)")

    def attentions(self, pixel_values: Tensor) -> tuple[list[Tensor], TokenLayout]:
        """The user's network's ``attentions(pixel_values)``; a ConfigError naming the model if it has none."""
        source = getattr(self.net, "attentions", None)
        if not callable(source):
            raise ConfigError(f"model {self.name!r}: attention rollout cannot read its attention (the network has "
                              "no attentions(pixel_values) method)")
        result: tuple[list[Tensor], TokenLayout] = source(pixel_values)
        return result


def card_yaml_path(weights: Path) -> Path | None:
    """The card YAML beside ``weights``: ``<stem>.yaml``, else ``card.yaml``; None if neither exists."""
    for candidate in (weights.with_suffix(".yaml"), weights.parent / "card.yaml"):
        if candidate.is_file():
            return candidate
    return None


def read_card_yaml(path: Path, name: str) -> dict[str, Any]:
    """The fields of a card YAML (:data:`CARD_FIELDS` and ``factory_kwargs``); a ConfigError naming file and key."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"model {name!r}: cannot read card {path} ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"model {name!r}: card {path} must be a mapping of fields")
    unknown = sorted(set(data) - set(CARD_FIELDS) - {"factory_kwargs"})
    if unknown:
        raise ConfigError(f"model {name!r}: card {path}: unknown key(s) {', '.join(map(str, unknown))}; known: "
                          f"{', '.join((*CARD_FIELDS, 'factory_kwargs'))}")
    return data


def load_module_model(spec: str, weights: str | Path | None, device: str | torch.device = "cpu",
                      **overrides: Any) -> DepthModel:
    """``module:<spec>`` (``<python.module>:<factory>``) with ``weights`` as a :class:`DepthModel` in eval mode.

    Args:
        spec: ``package.module:factory``.
        weights: the state dict of the factory's network (required).
        device: torch device.
        overrides: card fields and ``factory_kwargs``, replacing those of the card YAML.

    Raises:
        ConfigError: malformed spec, import failure, factory missing or not returning a module, no weights given,
            missing card field, wrong output shape on the probe forward.
        CheckpointError: weights file missing or not matching the network.
    """
    name = PREFIX + spec
    module_name, sep, factory_name = spec.rpartition(":")
    if not sep or not module_name or not factory_name:
        raise ConfigError(f"model {name!r}: expected module:<python.module>:<factory>")
    if weights is None:
        raise ConfigError(f"model {name!r}: needs the network's weights file (weights=...)")
    weights = Path(weights)
    if not weights.is_file():
        raise CheckpointError(f"model {name!r}: weights file {weights} not found")
    card_path = card_yaml_path(weights)
    fields = {**(read_card_yaml(card_path, name) if card_path else {}),
              **{k: v for k, v in overrides.items() if v is not None}}
    factory_kwargs = fields.pop("factory_kwargs", None) or {}
    if not isinstance(factory_kwargs, Mapping):
        raise ConfigError(f"model {name!r}: factory_kwargs must be a mapping, got {factory_kwargs!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model {name!r}: cannot import {module_name!r} ({exc})") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ConfigError(f"model {name!r}: {module_name!r} has no callable {factory_name!r}")
    net = factory(**factory_kwargs)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model {name!r}: {factory_name}() returned {type(net).__name__}, not a torch nn.Module")
    card = make_card(name, arch="module", variant=factory_name, builder=spec, builder_kwargs=factory_kwargs,
                     fields=fields)
    try:
        load_weights(net, weights)
    except CheckpointError as exc:
        raise CheckpointError(f"model {name!r}: {exc}") from None
    model = DepthModel(ModuleDepthNet(net, name), card).to(device).eval()
    with torch.no_grad():  # the probe: a wrong output shape fails here, at load time, not in the middle of a run
        model.raw(torch.full((1, 3, *card.input_size), 0.5, device=device))
    return model
