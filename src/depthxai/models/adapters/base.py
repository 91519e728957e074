"""What the adapters share: the card fields a user may set, their checks, and the token layout of a ViT encoder."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from depthxai.errors import ConfigError
from depthxai.models.registry import IMAGENET_MEAN, IMAGENET_STD, OUTPUT_KINDS, ModelCard

#: Card fields an adapter reads from the model's files and a caller may override by keyword.
CARD_FIELDS = ("input_size", "mean", "std", "output_unit_m", "output_kind", "min_depth", "max_depth")


@dataclass(frozen=True)
class TokenLayout:
    """How the token sequence of a ViT encoder maps onto the image.

    Attributes:
        prefix: tokens before the patch tokens that are not image patches (CLS, then register tokens).
        grid: ``(gh, gw)`` patch tokens, row-major after the prefix.
        patch: ``(ph, pw)`` pixels per patch; the pixels beyond ``gh * ph`` rows / ``gw * pw`` columns are cropped
            by the patch embedding and never seen.
    """

    prefix: int
    grid: tuple[int, int]
    patch: tuple[int, int]

    @property
    def n_tokens(self) -> int:
        return self.prefix + self.grid[0] * self.grid[1]


def _triple(name: str, key: str, value: Any) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ConfigError(f"model {name!r}: {key} must be three finite numbers (R, G, B), got {value!r}")
    return out


def make_card(name: str, arch: str, variant: str, builder: str, builder_kwargs: Mapping[str, Any],
              fields: Mapping[str, Any]) -> ModelCard:
    """A :class:`ModelCard` for an adapted model from ``fields`` (keys of :data:`CARD_FIELDS`; None = not given).

    Defaults: no normalisation unless ``mean`` and ``std`` are given (both or neither), ``output_unit_m`` 1,
    ``output_kind`` metric, depth range ``[1e-3, inf)`` for metric and ``[0, inf)`` for relative outputs (no
    clipping beyond the sign). ``input_size`` is required.

    Raises:
        ConfigError: naming the model and the field, for a missing, unknown or malformed field.
    """
    given = {k: v for k, v in fields.items() if v is not None}
    unknown = sorted(set(given) - set(CARD_FIELDS))
    if unknown:
        raise ConfigError(f"model {name!r}: unknown card field(s) {', '.join(unknown)}; "
                          f"known: {', '.join(CARD_FIELDS)}")
    if "input_size" not in given:
        raise ConfigError(f"model {name!r}: missing input_size (H, W); pass input_size=(H, W) or write it in the "
                          "model's card")
    size = given["input_size"]
    if isinstance(size, int):
        size = (size, size)
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"model {name!r}: input_size must be (H, W), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"model {name!r}: input_size must be positive, got {(h, w)}")
    if ("mean" in given) != ("std" in given):
        raise ConfigError(f"model {name!r}: give both mean and std (or neither: no normalisation)")
    normalise = "mean" in given
    mean = _triple(name, "mean", given["mean"]) if normalise else IMAGENET_MEAN
    std = _triple(name, "std", given["std"]) if normalise else IMAGENET_STD
    if min(std) <= 0:
        raise ConfigError(f"model {name!r}: std must be positive, got {std}")
    kind = str(given.get("output_kind", "metric"))
    if kind not in OUTPUT_KINDS:
        raise ConfigError(f"model {name!r}: output_kind must be one of {OUTPUT_KINDS}, got {kind!r}")
    min_depth = float(given.get("min_depth", 1e-3 if kind == "metric" else 0.0))
    max_depth = float(given.get("max_depth", math.inf))
    if not 0 <= min_depth < max_depth:
        raise ConfigError(f"model {name!r}: need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
    unit = float(given.get("output_unit_m", 1.0))
    if not (math.isfinite(unit) and unit > 0):
        raise ConfigError(f"model {name!r}: output_unit_m must be positive, got {unit}")
    return ModelCard(name=name, arch=arch, variant=variant, dataset="unspecified", input_size=(h, w),
                     imagenet_norm=normalise, output_unit_m=unit, min_depth=min_depth, max_depth=max_depth,
                     builder=builder, builder_kwargs=dict(builder_kwargs), mean=mean, std=std, output_kind=kind)
