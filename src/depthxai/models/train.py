"""Training the embedded models on a prepared dataset (the synthetic default), on CPU, seeded and deterministic.

Any registry model is trained through its :class:`~depthxai.models.DepthModel`, so the card's input
normalisation and output unit apply exactly as for the official checkpoints: an indoor METER learns to output
centimetres, a road METER decimetres, PixelFormer metres.

Loss: the scale-invariant log loss of BTS / PixelFormer (Lee et al., 2019; Agarwal & Arora, 2023),
``10 * sqrt(mean(e^2) - 0.85 * mean(e)^2)`` with ``e = ln pred - ln gt`` over the valid pixels of a batch, at the
network's input resolution (depth maps resized by nearest neighbour, so that invalid zeros are never blended into
valid depths). The log needs a positive prediction, which an unbounded output (METER's last layer has no
activation) does not guarantee: the loss reads the prediction through a softplus floor that equals it wherever
it is a plausible depth.

What makes a few minutes of single-thread CPU enough (each measured on the synthetic sets, see the report):

* METER's last convolution has no bias (the official state-dict layout), so its first output is a random sign
  around zero; it starts instead as a positive average of its ReLU features, scaled to the median train depth
  (:func:`init_output_scale`).
* Its 3x3 stride-2 transposed convolutions are held to "bilinear x2 + 1x1 mix" while training
  (:func:`smooth_upsampling`): free kernels printed a dotted checkerboard into the depth maps.
* Optionally the first ``low_res_epochs`` run on images resized to ``low_res_size`` (progressive resizing: about
  half the cost per image), the remaining epochs at the card's input size.
* Optionally the first ``crop_epochs`` run on random ``crop_size`` windows of the images (the same window for
  image and depth, drawn per sample from the seeded generator): the cost per image falls with the window's area
  while the pixel scale, and with it the focal length the depth cues are learned at, stays that of the test
  images.
* The saved weights are an exponential moving average of the last ``ema`` share of the steps, with BatchNorm
  statistics recomputed for them (:func:`recalibrate_batchnorm`).

Test metrics follow :mod:`depthxai.metrics.depth` at the ground truth's resolution: predictions
are upsampled bilinearly, clipped to the dataset's depth range and averaged per image.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from depthxai.data.frames import load_split_frames, resize_depth_nearest, split_files
from depthxai.data.io import DatasetInfo, read_dataset_info, read_depth, read_rgb
from depthxai.errors import DataError, TrainingError
from depthxai.fileio import write_json
from depthxai.metrics.depth import evaluate_depth
from depthxai.models.checkpoint import save_state_dict
from depthxai.models.registry import ModelCard, build_model, get_card
from depthxai.models.wrapper import DepthModel, crop_box, prepare_input

#: Weight of the squared mean log error subtracted in SILog (BTS / PixelFormer use 0.85).
SILOG_VARIANCE_FOCUS = 0.85
#: Share of the optimiser steps spent warming the learning rate up linearly from 0.
WARMUP_FRACTION = 0.05
#: The cosine schedule decays the learning rate to this fraction of ``lr``.
FINAL_LR_FRACTION = 0.02

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: passes over the train split (the learning-rate schedule spans all of them).
        batch_size: images per step.
        lr: peak AdamW learning rate (linear warm-up over 5 % of the steps, cosine decay to 2 %).
        weight_decay: AdamW decoupled weight decay.
        seed: seeds the initial weights, the shuffling and the augmentation.
        augment: random horizontal flips and brightness / contrast / saturation jitter (+-20 %).
        max_minutes: stop after the epoch during which this wall time was exceeded (``None``: no limit).
        threads: torch CPU threads while training (``None``: leave torch's setting).
        low_res_epochs: how many of the first epochs train on images resized to ``low_res_size`` (0: none;
            must be fewer than ``epochs``, so that the last epochs adapt to the card's input size).
        low_res_size: (H, W) for those epochs; it must be a size the network accepts (METER: multiples of 64).
        ema: the saved weights average the last ``ema`` share of the steps exponentially (0: the last weights).
        crop_epochs: how many of the first epochs train on random ``crop_size`` windows (0: none; at most
            ``epochs``).
        crop_size: (H, W) of those windows, no larger than the epoch's images and a size the network accepts.
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    augment: bool = True
    max_minutes: float | None = None
    threads: int | None = None
    low_res_epochs: int = 0
    low_res_size: tuple[int, int] | None = None
    ema: float = 0.1
    crop_epochs: int = 0
    crop_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if not 0 <= self.low_res_epochs < self.epochs:
            raise ValueError(f"low_res_epochs must be in [0, epochs), got {self.low_res_epochs} of {self.epochs}")
        if self.low_res_epochs and (self.low_res_size is None or len(self.low_res_size) != 2
                                    or min(self.low_res_size) < 1):
            raise ValueError(f"low_res_epochs > 0 needs low_res_size = (H, W), got {self.low_res_size}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not 0 <= self.crop_epochs <= self.epochs:
            raise ValueError(f"crop_epochs must be in [0, epochs], got {self.crop_epochs} of {self.epochs}")
        if self.crop_epochs and (self.crop_size is None or len(self.crop_size) != 2 or min(self.crop_size) < 1):
            raise ValueError(f"crop_epochs > 0 needs crop_size = (H, W), got {self.crop_size}")


# --------------------------------------------------------------------------------------------- data


def random_crops(rgb: Tensor, depth: Tensor, size: tuple[int, int], gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """One random ``size`` = (h, w) window per sample of ``rgb`` ``(B, 3, H, W)`` and ``depth`` ``(B, 1, H, W)``,
    the same window for both; offsets uniform over the valid positions, drawn from ``gen``.

    Raises:
        ValueError: if the window is larger than the images.
    """
    b, _, h, w = rgb.shape
    ch, cw = size
    if ch > h or cw > w:
        raise ValueError(f"crop_size {ch}x{cw} is larger than the training images ({h}x{w})")
    tops = torch.randint(0, h - ch + 1, (b,), generator=gen).tolist()
    lefts = torch.randint(0, w - cw + 1, (b,), generator=gen).tolist()
    windows = list(zip(tops, lefts))
    return (torch.stack([rgb[i, :, t : t + ch, x : x + cw] for i, (t, x) in enumerate(windows)]),
            torch.stack([depth[i, :, t : t + ch, x : x + cw] for i, (t, x) in enumerate(windows)]))


def _augment(rgb: Tensor, depth: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random horizontal flip (image and depth together) and colour jitter (image only), per sample."""
    b = rgb.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    rgb = torch.where(flip[:, None, None, None], rgb.flip(-1), rgb)
    depth = torch.where(flip[:, None, None, None], depth.flip(-1), depth)
    brightness, contrast, saturation = (0.8 + 0.4 * torch.rand(3, b, 1, 1, 1, generator=gen)).unbind(0)
    grey = rgb.mean(dim=1, keepdim=True)
    rgb = grey + (rgb - grey) * saturation
    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    rgb = mean + (rgb - mean) * contrast
    return (rgb * brightness).clamp(0.0, 1.0), depth


# --------------------------------------------------------------------------------------------- loss, init


def silog_loss(pred_m: Tensor, gt_m: Tensor, valid: Tensor, floor_m: float) -> Tensor:
    """Scale-invariant log loss (BTS) over the valid pixels of a batch.

    Args:
        pred_m, gt_m: ``(B, 1, h, w)`` metres; valid: bool, same shape.
        floor_m: the prediction is read as ``softplus(pred * k) / k`` with ``k = 1 / floor_m`` (equal to it above
            a few ``floor_m``, positive below), so that the log and its gradient exist for any output.
    """
    k = 1.0 / floor_m
    positive = F.softplus(pred_m[valid] * k) / k
    err = torch.log(positive) - torch.log(gt_m[valid])
    return 10.0 * torch.sqrt((err**2).mean() - SILOG_VARIANCE_FOCUS * err.mean() ** 2 + 1e-12)


@torch.no_grad()
def init_output_scale(model: DepthModel, rgb: Tensor, target_m: float) -> nn.Conv2d | None:
    """Initialise a bias-free final convolution so that the first predictions are about ``target_m`` metres.

    Applies to networks whose last layer is a 1-channel ``nn.Conv2d`` without bias reading ReLU features
    (METER's ``decoder.conv2d_out``): its weights become a positive constant with +-20 % of the random
    initialisation's pattern, scaled so that the median prediction on ``rgb`` ``(B, 3, h, w)`` equals
    ``target_m``. Other networks (PixelFormer predicts inside its depth range by construction) are left alone.

    Returns:
        the output layer if it was changed, else ``None``.
    """
    last = None
    for module in model.net.modules():
        if isinstance(module, nn.Conv2d):
            last = module
    if last is None or last.out_channels != 1 or last.bias is not None or model.card.arch != "meter":
        return None
    weight = last.weight
    pattern = weight / weight.std()
    weight.copy_(1.0 + 0.2 * pattern)
    # Measure in training mode (BatchNorm on batch statistics, as the first steps will see it), then restore the
    # BatchNorm running statistics that this forward pass updated.
    buffers = {k: v.clone() for k, v in model.net.state_dict().items() if not v.is_floating_point() or "running" in k}
    was_training = model.training
    model.train()
    median = float(model(rgb).median())
    model.train(was_training)
    model.net.load_state_dict(buffers, strict=False)
    if not median > 0:
        return None
    weight.mul_(target_m / median)
    return last


class _SmoothUpsampling(nn.Module):
    """Parametrisation of a 3x3, stride-2 transposed-convolution kernel as ``mix (x) [1/2, 1, 1/2] (x) [1/2, 1, 1/2]``:
    bilinear x2 upsampling followed by a 1x1 channel mix ``(in, out, 1, 1)``."""

    kernel: Tensor  # (1, 1, 3, 3) buffer

    def __init__(self) -> None:
        super().__init__()
        profile = torch.tensor([0.5, 1.0, 0.5])
        self.register_buffer("kernel", (profile[:, None] * profile[None, :])[None, None], persistent=False)

    def forward(self, mix: Tensor) -> Tensor:
        return mix * self.kernel

    def right_inverse(self, weight: Tensor) -> Tensor:
        # The random kernel's centre taps (std = default / 3, hence x3) keep the layer's default scale.
        return weight[:, :, 1:2, 1:2] * 3.0


def smooth_upsampling(net: nn.Module) -> list[nn.Module]:
    """Constrain every 3x3, stride-2 transposed convolution of ``net`` to bilinear x2 upsampling + 1x1 mix while
    training (see :class:`_SmoothUpsampling`); undo with :func:`unconstrain`.

    A free 3x3 stride-2 kernel gives even output pixels one tap and odd ones two per axis, so its output has a
    period-2 pattern; in METER's narrow decoder (8 channels before the output) training turned that pattern
    into ReLUs that are dead on three of the four pixel parities and a dotted depth map. With the separable
    ``[1/2, 1, 1/2]`` profile (Odena et al., Distill 2016, "Deconvolution and checkerboard artifacts") every
    output pixel has the same gain; the following 3x3 convolutions keep the decoder's spatial freedom.

    Returns:
        the constrained modules.
    """
    changed: list[nn.Module] = []
    for module in net.modules():
        if (isinstance(module, nn.ConvTranspose2d) and module.kernel_size == (3, 3) and module.stride == (2, 2)
                and module.groups == 1):
            parametrize.register_parametrization(module, "weight", _SmoothUpsampling())
            changed.append(module)
    return changed


def unconstrain(modules: list[nn.Module]) -> None:
    """Turn constrained weights back into plain parameters (same values), so the state dict has the official keys."""
    for module in modules:
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


@torch.no_grad()
def recalibrate_batchnorm(model: DepthModel, rgb: Tensor, batch_size: int, max_images: int = 128) -> None:
    """Recompute every BatchNorm's running statistics as the plain average over (up to ``max_images`` of) ``rgb``
    for the current weights (needed after averaging weights, whose statistics no forward pass has seen)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    for start in range(0, min(len(rgb), max_images), batch_size):
        model(rgb[start : min(start + batch_size, max_images)].contiguous(memory_format=torch.channels_last))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


# --------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_on_split(model: DepthModel, data_root: str | Path, split: str = "test",
                      batch_size: int = 8) -> dict[str, float]:
    """Mean per-image depth metrics of ``model`` on ``split`` of a prepared dataset.

    Each image goes through :func:`~depthxai.models.prepare_input`, the model, bilinear upsampling to the
    ground truth's size, and :func:`depthxai.metrics.depth.evaluate_depth` (clip to the dataset's
    range, valid pixels only).

    Returns:
        the mean of every metric of :data:`~depthxai.metrics.depth.METRIC_NAMES` plus ``n_images``.
    """
    data_root = Path(data_root)
    info = read_dataset_info(data_root)
    model.eval()
    rows = split_files(data_root, split)
    per_image: list[dict[str, float]] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        rgbs = [read_rgb(p) for _, p, _ in chunk]
        gts = [read_depth(p, info.depth_scale) for _, _, p in chunk]
        shapes = {r.shape[:2] for r in rgbs}
        if len(shapes) != 1:
            raise DataError(f"{data_root}: images of split {split!r} differ in size ({sorted(shapes)})")
        top, left, ch, cw = crop_box(model.card, rgbs[0].shape[:2])
        x = torch.stack([prepare_input(r, model.card) for r in rgbs])
        pred = model(x, out_size=(ch, cw))[:, 0].numpy()
        for p, gt in zip(pred, gts):
            full = np.zeros(gt.shape, dtype=np.float32)
            full[top : top + ch, left : left + cw] = p
            gt_in = np.zeros_like(gt)
            gt_in[top : top + ch, left : left + cw] = gt[top : top + ch, left : left + cw]
            per_image.append(evaluate_depth(full, gt_in, info))
    out = {name: float(np.mean([m[name] for m in per_image])) for name in per_image[0]}
    out["n_images"] = float(len(per_image))
    return out


# --------------------------------------------------------------------------------------------- training


def _lr_at(step: int, total: int, peak: float) -> float:
    warm = max(1, int(round(WARMUP_FRACTION * total)))
    if step < warm:
        return peak * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return peak * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_model(model_name: str, data_root: str | Path, config: TrainConfig, out_weights: str | Path,
                out_metrics: str | Path, log: logging.Logger | None = None, progress: bool = True) -> dict[str, float]:
    """Train ``build_model(model_name)`` on the train split of ``data_root``, then score it on the test split.

    Writes ``out_weights`` (the bare network's ``state_dict`` of plain tensors, loadable with
    :func:`depthxai.models.load_weights`) and ``out_metrics`` (JSON: the test metrics of
    :func:`evaluate_on_split`, ``train_seconds`` (wall), ``train_cpu_seconds`` (this process's CPU time),
    ``epochs`` run, ``n_train``, ``n_test``, ``final_loss``, plus ``epoch_losses``, the model name, the dataset name
    and the config), both atomically. ``progress`` shows a tqdm bar per epoch.

    Returns:
        the numeric entries of the metrics JSON (``delta1``, ``abs_rel``, ``rmse``, ... , ``train_seconds``).

    Raises:
        DataError: the dataset is missing, unreadable, or its train split is empty or has no valid depth.
    """
    log = log or _LOG
    card = get_card(model_name)
    data_root = Path(data_root)
    info = read_dataset_info(data_root)
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _train(model_name, card, info, data_root, config, Path(out_weights), Path(out_metrics), log, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _train(model_name: str, card: ModelCard, info: DatasetInfo, data_root: Path, config: TrainConfig,
           out_weights: Path, out_metrics: Path, log: logging.Logger, progress: bool) -> dict[str, float]:
    started, cpu_started = time.perf_counter(), time.process_time()
    data = load_split_frames(data_root, "train", info, card.input_size, card.input_crop)
    n = len(data.ids)
    valid_all = data.depth > 0
    if not bool(valid_all.any()):
        raise DataError(f"{data_root}: the train split has no valid depth in ({info.min_depth}, {info.max_depth}) m")
    median_depth = float(data.depth[valid_all].median())
    log.info("train %s on %s: %d images at %s, median depth %.2f m, loaded in %.1f s", model_name, data_root, n,
             card.input_size, median_depth, time.perf_counter() - started)
    low_res = None
    if config.low_res_epochs:
        assert config.low_res_size is not None
        size = (int(config.low_res_size[0]), int(config.low_res_size[1]))
        low_res = (F.interpolate(data.rgb, size=size, mode="bilinear", align_corners=False, antialias=True),
                   resize_depth_nearest(data.depth, size))

    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = DepthModel(build_model(model_name), card).train()
    # NHWC is about 15 % faster for these small convolutions on CPU; evaluation runs in the default layout, as a
    # freshly loaded model would.
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack memory_format
    constrained = smooth_upsampling(model.net)
    output_layer = init_output_scale(model, data.rgb[: min(n, 16)], median_depth)
    if output_layer is not None:
        log.info("output layer initialised for a median prediction of %.2f m", median_depth)
    # No weight decay on a rescaled output layer: it would pull every prediction towards zero.
    rest = [p for p in model.parameters() if output_layer is None or p is not output_layer.weight]
    groups: list[dict[str, Any]] = [{"params": rest}]
    if output_layer is not None:
        groups.append({"params": [output_layer.weight], "weight_decay": 0.0})
    optimiser = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    ema_weights = [p.detach().clone() for p in model.parameters()] if config.ema > 0 else []
    ema_decay = 1.0 - 1.0 / max(1.0, config.ema * total_steps)
    # Below a few centimetres (indoor) or decimetres (road) no valid depth exists: the loss's softplus floor.
    floor_m = max(info.max_depth / 1000.0, 1e-3)

    step, epoch_losses = 0, []
    lr_key = f"config key models.{card.arch}_{card.variant}.train.lr"  # named when training diverges
    for epoch in range(config.epochs):
        epoch_start = time.perf_counter()
        rgb_all, depth_all = low_res if (low_res is not None and epoch < config.low_res_epochs) else (data.rgb,
                                                                                                       data.depth)
        order = torch.randperm(n, generator=gen)
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"{model_name} epoch {epoch + 1}/{config.epochs}", unit="step",
                   disable=not progress, leave=False)
        for b in bar:
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            rgb, depth = rgb_all[idx], depth_all[idx]
            if epoch < config.crop_epochs:
                assert config.crop_size is not None
                rgb, depth = random_crops(rgb, depth, (int(config.crop_size[0]), int(config.crop_size[1])), gen)
            if config.augment:
                rgb, depth = _augment(rgb, depth, gen)
            valid = depth > 0
            for group in optimiser.param_groups:
                group["lr"] = _lr_at(step, total_steps, config.lr)
            pred = model(rgb.contiguous(memory_format=torch.channels_last))
            loss = silog_loss(pred, depth, valid, floor_m) if bool(valid.any()) else pred.sum() * 0.0
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrainingError(f"training {model_name} diverged in epoch {epoch + 1}, step {b + 1}: the loss is "
                                    f"{loss_value}; lower the learning rate ({lr_key}, now {config.lr:g})")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if ema_weights:
                with torch.no_grad():
                    # Plain copies until the warm-up is over, then the exponential average.
                    weight = 1.0 if step < WARMUP_FRACTION * total_steps else 1.0 - ema_decay
                    torch._foreach_lerp_(ema_weights, [p.detach() for p in model.parameters()], weight)
            losses.append(loss_value)
            step += 1
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        epoch_losses.append(float(np.mean(losses)))
        epochs_run = epoch + 1
        bad = next((name for name, p in model.net.named_parameters() if not bool(torch.isfinite(p).all())), None)
        if bad is not None:
            raise TrainingError(f"training {model_name} diverged in epoch {epochs_run}: parameter {bad} holds "
                                f"non-finite values; lower the learning rate ({lr_key}, now {config.lr:g})")
        elapsed = time.perf_counter() - started
        seen = config.crop_size if epoch < config.crop_epochs and config.crop_size else rgb_all.shape[-2:]
        log.info("epoch %d/%d (%dx%d%s): loss %.4f, %.1f s (total %.1f s)", epochs_run, config.epochs, *seen,
                 " crops" if epoch < config.crop_epochs else "", epoch_losses[-1], time.perf_counter() - epoch_start,
                 elapsed)
        if config.max_minutes is not None and elapsed > 60.0 * config.max_minutes and epochs_run < config.epochs:
            log.warning("stopping after epoch %d: %.1f min exceeded max_minutes=%s", epochs_run, elapsed / 60,
                        config.max_minutes)
            break
    if ema_weights:
        with torch.no_grad():
            torch._foreach_copy_(list(model.parameters()), ema_weights)
        recalibrate_batchnorm(model, data.rgb, config.batch_size)
    model.eval()
    unconstrain(constrained)
    model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # as above
    train_seconds, train_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    state = {k: v.detach().clone().contiguous() for k, v in model.net.state_dict().items()}
    save_state_dict(out_weights, state)  # through a handle: the same weights always give the same bytes
    metrics = evaluate_on_split(model, data_root, "test")
    metrics.update(train_seconds=train_seconds, train_cpu_seconds=train_cpu_seconds, epochs=float(epochs_run),
                   n_train=float(n), n_test=metrics.pop("n_images"), final_loss=epoch_losses[-1])
    record: dict[str, Any] = dict(metrics, model=model_name, dataset=info.name, config=asdict(config),
                                  epoch_losses=epoch_losses)
    write_json(out_metrics, record)
    log.info("%s on %s test: delta1 %.3f, abs_rel %.3f, rmse %.3f m (%d epochs, %.1f s)", model_name, info.name,
             metrics["delta1"], metrics["abs_rel"], metrics["rmse"], epochs_run, train_seconds)
    return metrics
