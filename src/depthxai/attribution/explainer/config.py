"""The explainer's training settings, :class:`ExplainerConfig`, checked on construction (errors name the
config key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from depthxai.attribution.explainer.losses import DEFAULT_LOSS_WEIGHTS, LOSS_TERMS
from depthxai.attribution.targets import TARGET_KINDS
from depthxai.errors import ConfigError

REPLACEMENTS = ("mean", "blur")


@dataclass(frozen=True)
class ExplainerConfig:
    """Settings of :func:`train_explainer`.

    Attributes:
        epochs: passes over the train split.
        batch_size: images per step.
        lr: peak AdamW learning rate (cosine decay over the planned steps, :func:`cosine_lr`).
        weight_decay: AdamW decoupled weight decay.
        loss_weights: weight of each term of :data:`LOSS_TERMS` (missing terms take :data:`DEFAULT_LOSS_WEIGHTS`).
        complement_margin: hinge margin of the complement term, in log depth (0.5: a factor of 1.65).
        area_range: ``(a_min, a_max)``, the allowed mean of a mask.
        replacement: what removed pixels become: ``mean`` (the train split's mean colour) or ``blur`` (the image
            blurred with ``blur_sigma`` pixels).
        blur_sigma: Gaussian sigma in pixels for ``replacement='blur'``.
        target_kinds: the target kinds sampled per image (uniformly) during training and evaluated on the test split.
        target_quantile: share of pixels of the ``near`` / ``far`` targets.
        seed: seeds the initial weights, the shuffling, the targets and the evaluation's random masks.
        max_minutes: stop before the first step that would start after this wall time (data loading included;
            ``None``: no limit). A run stopped by time is not reproducible step for step: set ``None`` for that.
        width: channels of the full-resolution stage of :class:`ExplainerNet`.
        threads: torch CPU threads while training (``None``: leave torch's setting).
    """

    epochs: int = 2
    batch_size: int = 4
    lr: float = 5e-3
    weight_decay: float = 0.0
    loss_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LOSS_WEIGHTS))
    complement_margin: float = 0.5
    area_range: tuple[float, float] = (0.2, 0.4)
    replacement: str = "mean"
    blur_sigma: float = 5.0
    target_kinds: tuple[str, ...] = TARGET_KINDS
    target_quantile: float = 0.25
    seed: int = 0
    max_minutes: float | None = 3.0
    width: int = 8
    threads: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.loss_weights) - set(LOSS_TERMS))
        if unknown:
            raise ConfigError(f"config key explainer.loss_weights.{unknown[0]}: unknown loss term; known: "
                              f"{', '.join(LOSS_TERMS)}")
        merged = {**DEFAULT_LOSS_WEIGHTS, **{k: float(v) for k, v in self.loss_weights.items()}}
        for key, value in merged.items():
            if not value >= 0:
                raise ConfigError(f"config key explainer.loss_weights.{key}: must be >= 0, got {value}")
        object.__setattr__(self, "loss_weights", merged)
        object.__setattr__(self, "area_range", tuple(float(a) for a in self.area_range))
        object.__setattr__(self, "target_kinds", tuple(self.target_kinds))
        checks = [
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("lr", self.lr > 0, "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("complement_margin", self.complement_margin > 0, "must be > 0"),
            ("area_range", len(self.area_range) == 2 and 0 <= self.area_range[0] <= self.area_range[1] <= 1,
             "must be [a_min, a_max] with 0 <= a_min <= a_max <= 1"),
            ("replacement", self.replacement in REPLACEMENTS, f"must be one of {REPLACEMENTS}"),
            ("blur_sigma", self.blur_sigma > 0, "must be > 0"),
            ("target_kinds", len(self.target_kinds) > 0 and set(self.target_kinds) <= set(TARGET_KINDS),
             f"must be a non-empty subset of {TARGET_KINDS}"),
            ("target_quantile", 0 < self.target_quantile < 1, "must be in (0, 1)"),
            ("max_minutes", self.max_minutes is None or self.max_minutes > 0, "must be > 0 or null"),
            ("width", self.width >= 1, "must be >= 1"),
        ]
        for key, ok, what in checks:
            if not ok:
                raise ConfigError(f"config key explainer.{key}: {what}, got {getattr(self, key)!r}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ExplainerConfig:
        """From a config section (``explainer.train``); unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"config key explainer.{unknown[0]}: unknown; known: {', '.join(sorted(known))}")
        return cls(**dict(cfg))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["area_range"] = list(self.area_range)
        out["target_kinds"] = list(self.target_kinds)
        return out
