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

Training (:func:`train_explainer`), with ``x`` the image, ``m`` the mask, ``r`` the replacement image (the
dataset's mean colour or a blurred copy) and ``d(.)`` the frozen model's depth:

* preservation: ``d(m x + (1 - m) r)`` should equal ``d(x)``: the target-weighted log-L1 error, a whole-image
  log-L1 error and a gradient-matching term on the log-depth difference (Hu et al.);
* complement: ``d((1 - m) x + m r)`` should differ from ``d(x)`` on the target region: the target-weighted hinge
  ``relu(margin - |log d_c - log d|)``, bounded by the margin so that it cannot explode;
* area: the mask's mean should lie in ``[a_min, a_max]`` (linear penalty outside);
* total variation of the mask (smooth masks);
* binarity ``mean(4 m (1 - m))``, so that a mask selects pixels instead of dimming the whole image.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from depthxai.attribution.base import AttributionMethod, AttributionResult
from depthxai.attribution.targets import TARGET_KINDS, TargetSpec, target_weights
from depthxai.data.io import read_dataset_info
from depthxai.errors import CheckpointError, ConfigError, DataError
from depthxai.fileio import write_json
from depthxai.imageops import gaussian_blur
from depthxai.models.checkpoint import load_weights, read_state_dict, save_state_dict
from depthxai.models.train import load_training_images
from depthxai.models.wrapper import DepthModel

_LOG = logging.getLogger(__name__)

#: The input size of :class:`ExplainerNet` is padded to a multiple of this (four halvings).
SIZE_MULTIPLE = 16
REPLACEMENTS = ("mean", "blur")
LOSS_TERMS = ("preserve", "preserve_whole", "preserve_gradient", "complement", "area", "tv", "binary")
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "preserve": 1.0, "preserve_whole": 0.25, "preserve_gradient": 0.5, "complement": 2.0, "area": 4.0, "tv": 0.5,
    "binary": 0.5,
}
#: Random baselines of the test-split evaluation: the explainer's own mask values re-assigned to random places,
#: ranked by i.i.d. pixel noise (``pixels``) or by smooth noise with blobs of about 1/8 of the frame (``blobs``).
RANDOM_BASELINES = ("pixels", "blobs")
#: The cosine schedule decays the learning rate to this fraction of ``lr``.
FINAL_LR_FRACTION = 0.05


# --------------------------------------------------------------------------------------------- network


class _ConvNormReLU(nn.Sequential):
    """3x3 convolution (optionally strided), GroupNorm (batch-independent: an image's mask never depends on its
    batch mates), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.GroupNorm(math.gcd(4, cout), cout), nn.ReLU(inplace=True))


class _Up(nn.Module):
    """Decoder step: upsample x2 (bilinear), project to the skip's width (1x1), add the skip, one 3x3 block.

    Adding instead of concatenating keeps the decoder as cheap as the encoder.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(cin, cout, 1, bias=False)
        self.block = _ConvNormReLU(cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(self.project(x) + skip)


class ExplainerNet(nn.Module):
    """Encoder-decoder mapping (image, target weights) to a mask in [0, 1] at the input resolution.

    Four down steps: a space-to-depth stem (2x2 pixel blocks to channels, width ``w``, 1/2 resolution), then three
    stride-2 blocks (widths ``2w, 6w, 16w`` at 1/4, 1/8, 1/16); four up steps: three decoder blocks with additive
    skips back to 1/2 resolution, a 1x1 convolution to logits and a bilinear x2 upsampling to the input
    resolution, then a sigmoid. The parameters sit in the coarse stages, where they cost little time; no
    convolution runs at full resolution (narrow full-resolution convolutions are slow on a CPU, and a mask needs
    no single-pixel detail). ``width=8``: 0.27 M parameters, 0.13 GMAC at 192x256 (METER-XXS: 0.71 M, 0.21 GMAC
    in its convolutions and linear layers alone), about a third of a METER-XXS forward pass on one CPU thread.

    The target map (normalised to max 1) enters with the image and again, average-pooled, at the input of every
    down block and of the head: the mask must depend on the target, and a short training learns that faster
    through these direct paths than from the first layer alone.

    Args:
        width: channels ``w`` of the 1/2-resolution stage (the others are multiples of it).
        initial_area: the output bias is set so that the first masks have this mean (the middle of the area
            range saves the first steps from pulling a 0.5 mask into range).
    """

    def __init__(self, width: int = 8, initial_area: float = 0.5) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if not 0 < initial_area < 1:
            raise ValueError(f"initial_area must be in (0, 1), got {initial_area}")
        self.width = width
        c0, c1, c2, c3 = width, 2 * width, 6 * width, 16 * width
        self.stem = nn.Sequential(nn.PixelUnshuffle(2), _ConvNormReLU(16, c0), _ConvNormReLU(c0, c0))
        self.down = nn.ModuleList(
            nn.Sequential(_ConvNormReLU(cin + 1, cout, stride=2), _ConvNormReLU(cout, cout))
            for cin, cout in ((c0, c1), (c1, c2), (c2, c3))
        )
        self.up = nn.ModuleList(_Up(cin, cout) for cin, cout in ((c3, c2), (c2, c1), (c1, c0)))
        self.head = nn.Conv2d(c0 + 1, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, math.log(initial_area / (1 - initial_area)))

    def forward(self, images: Tensor, weights: Tensor) -> Tensor:
        """The mask.

        Args:
            images: ``(B, 3, H, W)`` RGB in [0, 1].
            weights: ``(B, 1, H, W)`` target weights (non-negative; any scale, each image is normalised to max 1).

        Returns:
            ``(B, 1, H, W)`` mask in [0, 1]. Sizes not divisible by 16 are padded (replicate) and cropped back.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if weights.shape[0] != images.shape[0] or weights.shape[1] != 1 or weights.shape[-2:] != images.shape[-2:]:
            raise ValueError(f"weights {tuple(weights.shape)} do not match images {tuple(images.shape)}")
        h, w = images.shape[-2:]
        peak = weights.amax(dim=(1, 2, 3), keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
        target = weights / peak
        x = torch.cat([images - 0.5, target], dim=1)
        pad_h, pad_w = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            target = x[:, 3:]
        targets = [F.avg_pool2d(target, 2)]
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(torch.cat([skips[-1], targets[-1]], dim=1)))
            targets.append(F.avg_pool2d(targets[-1], 2))
        y = skips.pop()
        for block in self.up:
            y = block(y, skips.pop())
        logits = F.interpolate(self.head(torch.cat([y, targets[0]], dim=1)), size=x.shape[-2:], mode="bilinear",
                               align_corners=False)
        return torch.sigmoid(logits)[:, :, :h, :w]


def width_of_state(state: Mapping[str, Tensor]) -> int:
    """The ``width`` of the :class:`ExplainerNet` a state dict belongs to (output channels of its first layer)."""
    key = "stem.1.0.weight"
    if key not in state:
        raise CheckpointError(f"not an ExplainerNet state dict: no {key!r}")
    return int(state[key].shape[0])


# --------------------------------------------------------------------------------------------- losses


def log_depth(depth_m: Tensor, floor_m: float) -> Tensor:
    """``log`` of the depth read through a smooth floor ``softplus(d / floor) * floor`` (equal to ``d`` above a
    few ``floor_m``, positive below), so that the log and its gradient exist for any raw output.

    Far below the floor ``log softplus(z) = z`` to float precision; that branch is taken explicitly because
    ``softplus`` underflows to 0 there (``z < -20``).
    """
    z = depth_m / floor_m
    log_softplus = torch.where(z > -20.0, torch.log(F.softplus(z.clamp_min(-20.0))), z)
    return log_softplus + math.log(floor_m)


def preservation_terms(log_masked: Tensor, log_clean: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Errors of the prediction on the masked input, per image.

    Args:
        log_masked, log_clean: ``(B, 1, H, W)`` log depth on the masked and the clean input.
        weights: ``(B, 1, H, W)`` target weights, summing to 1 per image.

    Returns:
        ``(target, whole, gradient)``, each ``(B,)``: ``sum(w |e|)``, ``mean(|e|)`` and
        ``mean(|e[:, 1:] - e[:, :-1]|) + mean(|e[1:, :] - e[:-1, :]|)`` with ``e = log_masked - log_clean`` (the
        last is the difference of the log-depth gradients, Hu et al. 2019).
    """
    err = log_masked - log_clean
    target = (weights * err.abs()).sum(dim=(1, 2, 3))
    whole = err.abs().mean(dim=(1, 2, 3))
    gradient = ((err[..., :, 1:] - err[..., :, :-1]).abs().mean(dim=(1, 2, 3))
                + (err[..., 1:, :] - err[..., :-1, :]).abs().mean(dim=(1, 2, 3)))
    return target, whole, gradient


def complement_term(log_complement: Tensor, log_clean: Tensor, weights: Tensor, margin: float) -> Tensor:
    """``sum(w * relu(margin - |log_complement - log_clean|))`` per image ``(B,)``, in ``[0, margin]``: zero once
    removing the mask's pixels changes the target region's log depth by at least ``margin`` everywhere."""
    change = (log_complement - log_clean).abs()
    return (weights * F.relu(margin - change)).sum(dim=(1, 2, 3))


def area_penalty(mask: Tensor, area_range: tuple[float, float]) -> Tensor:
    """``relu(a_min - a) + relu(a - a_max)`` with ``a`` the mean of each mask ``(B, 1, H, W)``; ``(B,)``."""
    a_min, a_max = area_range
    area = mask.mean(dim=(1, 2, 3))
    return F.relu(a_min - area) + F.relu(area - a_max)


def total_variation(mask: Tensor) -> Tensor:
    """Anisotropic total variation per image ``(B,)``: mean absolute difference of horizontal neighbours plus
    that of vertical neighbours (a 0/1 checkerboard scores 2, a constant 0)."""
    return ((mask[..., :, 1:] - mask[..., :, :-1]).abs().mean(dim=(1, 2, 3))
            + (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean(dim=(1, 2, 3)))


def binary_penalty(mask: Tensor) -> Tensor:
    """``mean(4 m (1 - m))`` per image ``(B,)``, in [0, 1]: zero for a 0/1 mask, one for a uniform 0.5.

    Without it a soft mask can keep every pixel a little (a uniform 0.3 mask is a contrast reduction, which a
    depth network largely ignores) and so preserve the depth without selecting anything.
    """
    return (4.0 * mask * (1.0 - mask)).mean(dim=(1, 2, 3))


# --------------------------------------------------------------------------------------------- config


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


# --------------------------------------------------------------------------------------------- targets, masking


def sample_target(kind: str, quantile: float, gen: torch.Generator) -> TargetSpec:
    """A target of ``kind``; a ``box`` gets a random box of 15-50 % of the frame's height and width."""
    if kind != "box":
        return TargetSpec(kind=kind, quantile=quantile)
    top, left = (0.5 * torch.rand(2, generator=gen)).tolist()
    height, width = (0.15 + 0.35 * torch.rand(2, generator=gen)).tolist()
    return TargetSpec(kind="box", quantile=quantile, box=(top, left, min(1.0, top + height), min(1.0, left + width)))


def replacement_images(images: Tensor, config: ExplainerConfig, mean_rgb: Sequence[float]) -> Tensor:
    """What removed pixels become, ``(B, 3, H, W)``: the mean colour or a blurred copy (:class:`ExplainerConfig`)."""
    if config.replacement == "blur":
        return gaussian_blur(images, config.blur_sigma)
    return torch.tensor(list(mean_rgb), dtype=images.dtype, device=images.device).view(1, 3, 1, 1).expand_as(images)


def compose(images: Tensor, replacement: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(kept, removed)``: ``m x + (1 - m) r`` (only the mask's pixels kept) and ``(1 - m) x + m r`` (they are
    removed)."""
    return mask * images + (1 - mask) * replacement, (1 - mask) * images + mask * replacement


def random_masks_like(mask: Tensor, kind: str, gen: torch.Generator) -> Tensor:
    """The values of each mask ``(B, 1, H, W)`` moved to random places: same histogram, hence same area.

    Pixels are ranked by a random field (``pixels``: i.i.d. uniform noise; ``blobs``: uniform noise on an 8x8 grid
    upsampled bicubically to the frame, i.e. spatially coherent blobs like a real mask's) and the k-th ranked pixel
    gets the mask's k-th largest value.
    """
    b, _, h, w = mask.shape
    if kind == "pixels":
        field_ = torch.rand((b, 1, h, w), generator=gen)
    elif kind == "blobs":
        coarse = torch.rand((b, 1, 8, 8), generator=gen)
        field_ = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
        field_ = field_ + 1e-4 * torch.rand((b, 1, h, w), generator=gen)  # break ties
    else:
        raise ValueError(f"random mask kind must be one of {RANDOM_BASELINES}, got {kind!r}")
    flat_values = mask.reshape(b, -1).sort(dim=1, descending=True).values
    order = field_.to(mask.device).reshape(b, -1).argsort(dim=1, descending=True)
    out = torch.empty_like(flat_values).scatter_(1, order, flat_values)
    return out.view_as(mask)


# --------------------------------------------------------------------------------------------- the method


class Explainer(AttributionMethod):
    """Attribution by a trained :class:`ExplainerNet`: the relevance map is its mask, ``(B, 1, H, W)`` in [0, 1].

    One forward pass of the small net per batch; the depth model is not run (the mask was trained against it).

    Args:
        weights: path of the state dict written by :func:`train_explainer`.
        width: the net's width; ``None`` reads it from the state dict.
        net: or a trained net in memory (:func:`fit_explainer`), instead of ``weights``.
    """

    name = "explainer"

    def __init__(self, weights: str | Path | None = None, width: int | None = None,
                 net: ExplainerNet | None = None) -> None:
        if (weights is None) == (net is None):
            raise ValueError("the explainer needs exactly one of weights (a file) and net (a trained ExplainerNet)")
        if net is None:
            self.weights: Path | None = Path(weights)  # type: ignore[arg-type]
            state_width = width_of_state(read_state_dict(self.weights)) if width is None else int(width)
            net = ExplainerNet(width=state_width)
            load_weights(net, self.weights)  # strict; leaves eval mode
        else:
            self.weights = None
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def attribute(self, model: DepthModel, images: Tensor, weights: Tensor,
                  seeds: Sequence[int] | None = None) -> AttributionResult:
        self.net.to(images.device)
        return AttributionResult(maps=self.net(images, weights).detach())


# --------------------------------------------------------------------------------------------- training


@torch.no_grad()
def _predict(model: DepthModel, images: Tensor, batch_size: int = 16) -> Tensor:
    """Depth in metres ``(N, 1, H, W)`` of ``images`` ``(N, 3, H, W)``, in chunks, without autograd."""
    return torch.cat([model(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)])


def _step_losses(net: ExplainerNet, model: DepthModel, images: Tensor, clean_log: Tensor, weights: Tensor,
                 replacement: Tensor, config: ExplainerConfig, floor_m: float) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted total loss, and the batch mean of each term of :data:`LOSS_TERMS` plus ``mask_area``."""
    mask = net(images, weights)
    kept, removed = compose(images, replacement, mask)
    # one pass of the frozen model for both composites
    log_kept, log_removed = log_depth(model(torch.cat([kept, removed])), floor_m).chunk(2)
    target, whole, grad = preservation_terms(log_kept, clean_log, weights)
    terms = {
        "preserve": target.mean(),
        "preserve_whole": whole.mean(),
        "preserve_gradient": grad.mean(),
        "complement": complement_term(log_removed, clean_log, weights, config.complement_margin).mean(),
        "area": area_penalty(mask, config.area_range).mean(),
        "tv": total_variation(mask).mean(),
        "binary": binary_penalty(mask).mean(),
    }
    total = sum(config.loss_weights[k] * v for k, v in terms.items())
    assert isinstance(total, Tensor)
    terms["mask_area"] = mask.detach().mean()
    return total, terms


def cosine_lr(step: int, total_steps: int, peak: float) -> float:
    """Learning rate after ``step`` of ``total_steps``: cosine decay from ``peak`` to ``FINAL_LR_FRACTION * peak``
    (no warm-up: the net is small and its output starts in range). Depends on the planned steps only, never on
    the clock, so that a run is reproducible."""
    progress = min(1.0, step / max(1, total_steps))
    return peak * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def _batch_targets(clean: Tensor, kinds: Sequence[str], quantile: float, gen: torch.Generator) -> Tensor:
    """Target weights ``(B, 1, H, W)`` for a batch of clean predictions, one target kind drawn per image."""
    out = []
    for i in range(clean.shape[0]):
        kind = kinds[int(torch.randint(len(kinds), (1,), generator=gen))]
        out.append(target_weights(sample_target(kind, quantile, gen), clean[i : i + 1]))
    return torch.cat(out)


@torch.no_grad()
def evaluate_explainer(net: ExplainerNet, model: DepthModel, images: Tensor, config: ExplainerConfig,
                       mean_rgb: Sequence[float], floor_m: float, batch_size: int = 8) -> dict[str, Any]:
    """Mask quality on held-out images, against random masks with the same values (hence the same area).

    For every image and every kind of ``config.target_kinds`` (a box target gets a seeded random box), with
    ``e(x') = sum(w |log d(x') - log d(x)|)`` the target-weighted mean absolute log-depth change:

    * ``preservation``: ``e`` of the image with only the mask's pixels kept (lower is better);
    * ``complement``: ``e`` of the image with the mask's pixels removed (higher is better);

    for the explainer's mask and for each random baseline of :data:`RANDOM_BASELINES`
    (:func:`random_masks_like`).

    Args:
        images: ``(N, 3, H, W)`` RGB in [0, 1] at the model's input size.

    Returns:
        ``{"overall": {...}, "by_kind": {kind: {...}}, "n_images": N}`` where each ``{...}`` holds
        ``mask_area``, ``preservation_<m>`` and ``complement_<m>`` for ``m`` in ``explainer`` and the baselines,
        ``preservation_ratio_<b>`` (baseline / explainer: > 1 means the mask preserves better) and
        ``complement_ratio_<b>`` (explainer / baseline: > 1 means removing the mask changes more).
    """
    net.eval()
    gen = torch.Generator().manual_seed(config.seed + 1)
    masks_by = ("explainer", *RANDOM_BASELINES)
    rows: dict[str, dict[str, list[Tensor]]] = {k: {} for k in config.target_kinds}
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        clean = _predict(model, x)
        clean_log = log_depth(clean, floor_m)
        replacement = replacement_images(x, config, mean_rgb)
        for kind in config.target_kinds:
            weights = _batch_targets(clean, [kind], config.target_quantile, gen)
            mask = net(x, weights)
            candidates = {"explainer": mask, **{b: random_masks_like(mask, b, gen) for b in RANDOM_BASELINES}}
            record = rows[kind]
            record.setdefault("mask_area", []).append(mask.mean(dim=(1, 2, 3)))
            for label in masks_by:
                kept, removed = compose(x, replacement, candidates[label])
                log_kept, log_removed = log_depth(_predict(model, torch.cat([kept, removed])), floor_m).chunk(2)
                record.setdefault(f"preservation_{label}", []).append(
                    (weights * (log_kept - clean_log).abs()).sum(dim=(1, 2, 3)))
                record.setdefault(f"complement_{label}", []).append(
                    (weights * (log_removed - clean_log).abs()).sum(dim=(1, 2, 3)))

    def summarise(values: dict[str, Tensor]) -> dict[str, float]:
        out = {k: float(v.mean()) for k, v in values.items()}
        for b in RANDOM_BASELINES:
            out[f"preservation_ratio_{b}"] = out[f"preservation_{b}"] / max(out["preservation_explainer"], 1e-12)
            out[f"complement_ratio_{b}"] = out["complement_explainer"] / max(out[f"complement_{b}"], 1e-12)
        # share of (image, target) pairs where the explainer beats the baseline
        for b in RANDOM_BASELINES:
            kept_better = values["preservation_explainer"] < values[f"preservation_{b}"]
            removed_more = values["complement_explainer"] > values[f"complement_{b}"]
            out[f"preservation_win_rate_{b}"] = float(kept_better.double().mean())
            out[f"complement_win_rate_{b}"] = float(removed_more.double().mean())
        return out

    by_kind_values = {kind: {k: torch.cat(v) for k, v in rec.items()} for kind, rec in rows.items()}
    overall_values = {k: torch.cat([by_kind_values[kind][k] for kind in config.target_kinds])
                      for k in by_kind_values[config.target_kinds[0]]}
    return {"overall": summarise(overall_values),
            "by_kind": {kind: summarise(v) for kind, v in by_kind_values.items()},
            "n_images": int(images.shape[0])}


def train_explainer(model: DepthModel, data_root: str | Path, config: ExplainerConfig, out_weights: str | Path,
                    out_metrics: str | Path, log: logging.Logger | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Train an :class:`ExplainerNet` against the frozen ``model`` on the train split of ``data_root``.

    The model is put in eval mode and its parameters stop requiring gradients (they stay that way). Images are
    loaded at ``model.card.input_size`` with :func:`depthxai.models.train.load_training_images`; the clean
    predictions are computed once. Each step draws one target per image (a kind of ``config.target_kinds``,
    weights from :func:`~depthxai.attribution.targets.target_weights` on the clean prediction) and minimises the
    weighted loss terms of the module docstring.

    Writes ``out_weights`` (the net's plain state dict; load with :class:`Explainer` or
    :func:`depthxai.models.load_weights`) and ``out_metrics`` (JSON: ``final_losses`` (last epoch's mean of
    every term, the weighted ``loss`` and ``mask_area``), ``history`` (the same for every epoch), ``test``
    (:func:`evaluate_explainer` on the test split), ``train_seconds``, ``eval_seconds``, ``epochs`` (run; a
    fraction when ``max_minutes`` stopped it within an epoch), ``steps``, ``stopped_by_time``, ``n_train``,
    ``n_test``, ``n_parameters``, ``mean_rgb``, ``model``, ``dataset``, ``config``),
    both atomically.

    Returns:
        the record written to ``out_metrics``.
    """
    log = log or _LOG
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        net, fit = fit_explainer(model, data_root, config, log=log, progress=progress)
        state = {k: v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
        save_state_dict(out_weights, state)  # through a handle: the same weights always give the same bytes
        return _write_metrics(net, model, Path(data_root), config, fit, Path(out_metrics), log)
    finally:
        torch.set_num_threads(previous_threads)


def fit_explainer(model: DepthModel, data_root: str | Path, config: ExplainerConfig,
                  log: logging.Logger | None = None, progress: bool = True) -> tuple[ExplainerNet, dict[str, Any]]:
    """Train an :class:`ExplainerNet` against the frozen ``model`` (see :func:`train_explainer`), in memory.

    Returns:
        ``(net in eval mode, record)``: the record holds ``final_losses``, ``history``, ``train_seconds``,
        ``epochs``, ``steps``, ``stopped_by_time``, ``n_train``, ``n_parameters``, ``mean_rgb`` and ``floor_m``.
    """
    log = log or _LOG
    data_root = Path(data_root)
    started = time.perf_counter()
    info = read_dataset_info(data_root)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    device = next(model.parameters()).device
    card = model.card
    train = load_training_images(data_root, "train", card, info)
    images = train.rgb.to(device)
    n = images.shape[0]
    mean_rgb = [float(c) for c in train.rgb.mean(dim=(0, 2, 3), dtype=torch.float64)]
    clean = _predict(model, images)
    floor_m = max(card.max_depth / 1000.0, 1e-3)
    clean_log = log_depth(clean, floor_m)
    if not bool(torch.isfinite(clean).all()):
        raise DataError(f"{data_root}: the model {card.name} predicts non-finite depth on the train split")
    log.info("explainer for %s on %s: %d train images at %s, load + clean predictions %.1f s", card.name, data_root, n,
             card.input_size, time.perf_counter() - started)

    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    initial_area = min(0.99, max(0.01, 0.5 * (config.area_range[0] + config.area_range[1])))
    net = ExplainerNet(width=config.width, initial_area=initial_area).to(device)
    net.train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    n_parameters = sum(p.numel() for p in net.parameters())
    log.info("ExplainerNet width %d: %d parameters; %d epochs x %d steps", config.width, n_parameters, config.epochs,
             steps_per_epoch)

    deadline = None if config.max_minutes is None else started + 60.0 * config.max_minutes
    steps_run, out_of_time = 0, False
    epoch_terms: dict[str, float] = {}
    history: list[dict[str, float]] = []
    for epoch in range(config.epochs):
        epoch_start = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        sums: dict[str, float] = {}
        seen = 0
        bar = tqdm(range(steps_per_epoch), desc=f"explainer epoch {epoch + 1}/{config.epochs}", unit="step",
                   disable=not progress, leave=False)
        for b in bar:
            if deadline is not None and time.perf_counter() > deadline:
                out_of_time = True
                break
            idx = order[b * config.batch_size : (b + 1) * config.batch_size].to(device)
            x, c, c_log = images[idx], clean[idx], clean_log[idx]
            weights = _batch_targets(c.cpu(), config.target_kinds, config.target_quantile, gen).to(device)
            replacement = replacement_images(x, config, mean_rgb)
            loss, terms = _step_losses(net, model, x, c_log, weights, replacement, config, floor_m)
            if not bool(torch.isfinite(loss)):
                raise DataError(f"the explainer training of {card.name} diverged in epoch {epoch + 1}, step {b + 1} "
                                f"(loss {float(loss.detach())}); lower methods.explainer.lr (now {config.lr:g})")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
            steps_run += 1
            for group in optimiser.param_groups:
                group["lr"] = cosine_lr(steps_run, total_steps, config.lr)
            for k, v in {"loss": loss, **terms}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", area=f"{float(terms['mask_area']):.2f}")
        bar.close()
        if seen:
            epoch_terms = {k: v / seen for k, v in sums.items()}
            history.append(epoch_terms)
            log.info("epoch %d/%d%s: %s; %.1f s (total %.1f s)", epoch + 1, config.epochs,
                     f" ({seen}/{n} images)" if seen < n else "",
                     ", ".join(f"{k} {v:.4f}" for k, v in epoch_terms.items()), time.perf_counter() - epoch_start,
                     time.perf_counter() - started)
        if out_of_time:
            log.warning("stopped after %d steps (%.2f epochs): max_minutes=%s reached", steps_run,
                        steps_run / steps_per_epoch, config.max_minutes)
            break
    train_seconds = time.perf_counter() - started
    net.eval()
    return net, {"final_losses": epoch_terms, "history": history, "train_seconds": train_seconds,
                 "epochs": steps_run / steps_per_epoch, "steps": steps_run, "stopped_by_time": out_of_time,
                 "n_train": n, "n_parameters": n_parameters, "mean_rgb": mean_rgb, "floor_m": floor_m}


def _write_metrics(net: ExplainerNet, model: DepthModel, data_root: Path, config: ExplainerConfig,
                   fit: dict[str, Any], out_metrics: Path, log: logging.Logger) -> dict[str, Any]:
    """The test-split check of a trained net (:func:`evaluate_explainer`) with the training record, written as JSON."""
    card = model.card
    info = read_dataset_info(data_root)
    device = next(model.parameters()).device
    eval_start = time.perf_counter()
    test = load_training_images(data_root, "test", card, info)
    quality = evaluate_explainer(net, model, test.rgb.to(device), config, fit["mean_rgb"], fit["floor_m"])
    record: dict[str, Any] = {
        **{k: v for k, v in fit.items() if k != "floor_m"}, "test": quality,
        "eval_seconds": time.perf_counter() - eval_start, "n_test": len(test.ids), "model": card.name,
        "dataset": info.name, "config": config.to_json(),
    }
    write_json(out_metrics, record)
    overall = quality["overall"]
    log.info("test (%d images x %d targets): mask area %.3f; preservation %.4f vs random %.4f (pixels) / %.4f (blobs); "
             "complement %.4f vs random %.4f / %.4f; %.1f s training", len(test.ids), len(config.target_kinds),
             overall["mask_area"], overall["preservation_explainer"], overall["preservation_pixels"],
             overall["preservation_blobs"], overall["complement_explainer"], overall["complement_pixels"],
             overall["complement_blobs"], fit["train_seconds"])
    return record

