"""Training and evaluation of an explainer against a frozen depth model.

:func:`fit_explainer` trains an :class:`~depthxai.attribution.explainer.network.ExplainerNet` in memory (AdamW,
cosine learning rate, :func:`cosine_lr`) on the loss terms of :mod:`depthxai.attribution.explainer.losses`;
:func:`train_explainer` also writes its weights and a metrics record with :func:`evaluate_explainer`'s check on
the test split (the explainer's masks against random masks with the same values).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from depthxai.attribution.explainer.config import ExplainerConfig
from depthxai.attribution.explainer.losses import (
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
from depthxai.attribution.explainer.network import ExplainerNet
from depthxai.attribution.targets import target_weights
from depthxai.data.frames import load_split_frames
from depthxai.data.io import read_dataset_info
from depthxai.errors import DataError, TrainingError
from depthxai.fileio import write_json
from depthxai.models.checkpoint import save_state_dict
from depthxai.models.wrapper import DepthModel

_LOG = logging.getLogger(__name__)

#: The cosine schedule decays the learning rate to this fraction of ``lr``.
FINAL_LR_FRACTION = 0.05


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
    loaded at ``model.card.input_size`` with :func:`depthxai.data.frames.load_split_frames`; the clean
    predictions are computed once. Each step draws one target per image (a kind of ``config.target_kinds``,
    weights from :func:`~depthxai.attribution.targets.target_weights` on the clean prediction) and minimises the
    weighted loss terms of :mod:`depthxai.attribution.explainer.losses`.

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
    train = load_split_frames(data_root, "train", info, card.input_size, card.input_crop)
    images = train.rgb.to(device)
    n = images.shape[0]
    mean_rgb = [float(c) for c in train.rgb.mean(dim=(0, 2, 3), dtype=torch.float64)]
    clean = _predict(model, images)
    # the log-depth floor: a thousandth of the model's range; a model without one (an hf:/module: model, e.g. relative
    # inverse depth) takes a thousandth of the largest clean prediction of the train split instead
    if math.isfinite(card.max_depth):
        floor_m = max(card.max_depth / 1000.0, 1e-3)
    else:
        floor_m = max(float(clean.abs().max()) / 1000.0, 1e-6)
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
                raise TrainingError(f"the explainer training of {card.name} diverged in epoch {epoch + 1}, "
                                    f"step {b + 1} (loss {float(loss.detach())}); "
                                    f"lower methods.explainer.lr (now {config.lr:g})")
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
    test = load_split_frames(data_root, "test", info, card.input_size, card.input_crop)
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
