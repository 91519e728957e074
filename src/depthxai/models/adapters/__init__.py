"""Any depth model behind one :class:`~depthxai.models.DepthModel`: registry names, transformers, a user's module.

:func:`load_any_depth_model` is the one entry point. It dispatches on the name:

* ``<arch>_<variant>_<dataset>`` (``meter_xxs_nyu``): the registry (:func:`depthxai.models.load_depth_model`).
* ``hf:<hub-id-or-local-dir>``: a transformers ``AutoModelForDepthEstimation`` (:mod:`.hf`; the ``hf`` extra).
* ``module:<python.module>:<factory>``: a user's ``nn.Module`` and its weights file (:mod:`.module`).

Whatever the source, the model maps RGB in [0, 1] to depth ``(B, 1, H, W)``; its card says how (input size,
normalisation, units) and whether the output is metric or relative (:data:`~depthxai.models.registry.OUTPUT_KINDS`).
Every error is a one-line :mod:`depthxai.errors` exception naming the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from depthxai.errors import CheckpointError, ConfigError
from depthxai.models.adapters.base import CARD_FIELDS, TokenLayout, make_card
from depthxai.models.registry import get_card
from depthxai.models.wrapper import DepthModel, load_depth_model

PREFIXES = ("hf:", "module:")


def load_any_depth_model(name: str, weights: str | Path | None = None, device: str | torch.device = "cpu",
                         **card: Any) -> DepthModel:
    """Load the depth model ``name`` (registry name, ``hf:...`` or ``module:...``) in eval mode on ``device``.

    Args:
        name: see the module docstring.
        weights: the state dict file: optional for registry models (random weights without), required for
            ``module:``, not accepted for ``hf:`` (the weights come with the hub id or directory).
        device: torch device.
        card: card fields for ``hf:`` and ``module:`` models (:data:`CARD_FIELDS`, and ``factory_kwargs`` for
            ``module:``), replacing those read from the model's files.

    Raises:
        ConfigError: unknown registry name, unknown prefix, weights given to an ``hf:`` model, card fields given to
            a registry model, and the adapters' own errors.
        CheckpointError: a weights file that does not exist or does not fit.
    """
    if name.startswith("hf:"):
        if weights is not None:
            raise ConfigError(f"model {name!r}: hf models take their weights from the hub id or directory; "
                              "drop weights=...")
        from depthxai.models.adapters.hf import load_hf_model

        return load_hf_model(name[len("hf:"):], device=device, **card)
    if name.startswith("module:"):
        from depthxai.models.adapters.module import load_module_model

        return load_module_model(name[len("module:"):], weights, device=device, **card)
    if ":" in name:
        prefix = name.split(":", 1)[0]
        raise ConfigError(f"model {name!r}: unknown prefix {prefix + ':'!r}; use {', '.join(PREFIXES)} or a "
                          "registry name")
    try:
        get_card(name)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; or hf:<hub-id-or-dir>, module:<python.module>:<factory>") from None
    if card:
        raise ConfigError(f"model {name!r}: a registry model's card is fixed; unexpected {', '.join(sorted(card))}")
    if weights is not None and not Path(weights).is_file():
        raise CheckpointError(f"model {name!r}: weights file {weights} not found")
    return load_depth_model(name, weights, device=device)


__all__ = ["CARD_FIELDS", "PREFIXES", "TokenLayout", "load_any_depth_model", "make_card"]
