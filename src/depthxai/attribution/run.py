"""The attribution stage: one map per test image of a shard, for one (dataset, model, method).

Output (``.npz``): ``ids`` (N,) str; ``maps`` (N, H, W) float32, the per-pixel relevance at the network's input
resolution after channel reduction; ``convergence_delta`` (N,) float32 for IG (NaN otherwise); ``meta``, a JSON
string with everything that made the maps (model, method and its parameters, target, channel reduction, seed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from depthxai.attribution.base import AttributionMethod, image_seed, reduce_channels
from depthxai.attribution.targets import TargetSpec, target_weights
from depthxai.data.io import read_rgb, sample_paths
from depthxai.errors import DataError
from depthxai.fileio import write_npz
from depthxai.models.wrapper import DepthModel, prepare_input, resize_depth


def attribute_split(model: DepthModel, method: AttributionMethod, data_root: str | Path,
                    predictions: Mapping[str, np.ndarray], target: TargetSpec, *, channel_reduction: str = "sum",
                    seed: int = 0, meta: Mapping[str, Any] | None = None,
                    progress: bool = True) -> dict[str, np.ndarray]:
    """Attribute the target of every image in ``predictions`` (one image per call, shard-invariant).

    Args:
        model: depth model in eval mode.
        method: the attribution method.
        data_root: prepared dataset folder.
        predictions: output of the prediction stage (``ids``, ``native``); the target region is taken from it.
        target: the scalar target.
        channel_reduction: ``sum`` or ``abs_sum`` (see :func:`reduce_channels`).
        seed: base seed; each image's seed derives from (seed, image id, method name).
        meta: extra provenance stored in the file.

    Returns:
        The arrays of the output file (see the module docstring).
    """
    device = next(model.parameters()).device
    ids = [str(i) for i in predictions["ids"]]
    maps: list[np.ndarray] = []
    deltas: list[float] = []
    for k, image_id in enumerate(tqdm(ids, desc=f"{method.name} {model.card.name}", disable=not progress, mininterval=5)):
        rgb_path, _ = sample_paths(data_root, image_id)
        image = prepare_input(read_rgb(rgb_path), model.card)[None].to(device)
        clean = resize_depth(torch.from_numpy(predictions["native"][k : k + 1]).to(device), tuple(image.shape[-2:]))
        weights = target_weights(target, clean)
        result = method.attribute(model, image, weights, seeds=[image_seed(seed, image_id, method.name)])
        pixel_map = reduce_channels(result.maps, channel_reduction)[0]
        if not bool(torch.isfinite(pixel_map).all()):
            raise DataError(f"{rgb_path}: {method.name} produced non-finite attributions for {image_id}")
        maps.append(pixel_map.detach().cpu().numpy().astype(np.float32))
        delta = result.extras.get("convergence_delta")
        deltas.append(float(delta[0]) if delta is not None else float("nan"))
    record = {"method": method.name, "model": model.card.name, "target": target.__dict__,
              "channel_reduction": channel_reduction, "seed": seed, **dict(meta or {})}
    h, w = model.card.input_size
    return {
        "ids": np.asarray(ids, dtype=str),
        "maps": np.stack(maps) if maps else np.zeros((0, h, w), np.float32),
        "convergence_delta": np.asarray(deltas, dtype=np.float32),
        "meta": np.asarray(json.dumps(record, sort_keys=True, default=list)),
    }


def write_attributions(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    write_npz(path, **arrays)


def read_attributions(path: str | Path) -> dict[str, Any]:
    """Read an attribution file; ``meta`` comes back as a dict."""
    try:
        with np.load(path, allow_pickle=False) as data:
            out: dict[str, Any] = {k: data[k] for k in data.files}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: unreadable attribution file ({exc}); rerun the attribute rule") from exc
    out["ids"] = out["ids"].astype(str)
    out["meta"] = json.loads(str(out["meta"]))
    return out
