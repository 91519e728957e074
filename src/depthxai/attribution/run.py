"""The attribution stage: one map per test image of a shard, for one (dataset, model, method).

Output (``.npz``, see :func:`attribute_to_file`): ``ids`` (N,) str; per image ``maps/<id>`` (H, W) float32, the
per-pixel relevance at the network's input resolution after channel reduction, streamed into the file as it is
computed (a shard is never held in memory: at paper scale one method's maps of a shard are ~0.8 GB);
``convergence_delta`` (N,) float32 for IG (NaN otherwise); ``meta``, a JSON string with everything that made
the maps (model, method and its parameters, target, channel reduction, seed, whether the maps are signed).
:func:`read_attributions` reads the maps one image at a time.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from depthxai.attribution.base import AttributionMethod, image_seed, reduce_channels
from depthxai.attribution.targets import TargetSpec, target_weights
from depthxai.data.io import read_rgb, sample_paths
from depthxai.errors import DataError
from depthxai.fileio import NpzRows, NpzStreamWriter
from depthxai.models.wrapper import DepthModel, prepare_input, resize_depth


def attribute_image(model: DepthModel, method: AttributionMethod, image: Tensor, clean: Tensor, target: TargetSpec, *,
                    seed: int, image_id: str, channel_reduction: str = "sum", source: str = "the image"
                    ) -> tuple[np.ndarray, float]:
    """One image's map: the target's weights from the clean prediction, the method, the channel reduction.

    Args:
        model: depth model in eval mode.
        method: the attribution method.
        image: ``(1, 3, H, W)`` RGB in [0, 1] at the model's input size, on the model's device.
        clean: ``(1, 1, H, W)`` the unperturbed prediction at the input size (the target region comes from it).
        target: the scalar target.
        seed: base seed; the image's seed derives from (seed, image id, method name).
        image_id: the image's id (seeds, errors).
        channel_reduction: ``sum`` or ``abs_sum`` (see :func:`reduce_channels`).
        source: the image's file, named in errors.

    Returns:
        ``(map, convergence_delta)``: ``map`` ``(H, W)`` float32; the delta NaN for methods without one.

    Raises:
        DataError: the method gave NaN/inf values (names the file, the method and the image).
    """
    weights = target_weights(target, clean)
    result = method.attribute(model, image, weights, seeds=[image_seed(seed, image_id, method.name)])
    pixel_map = reduce_channels(result.maps, channel_reduction)[0]
    if not bool(torch.isfinite(pixel_map).all()):
        raise DataError(f"{source}: {method.name} produced non-finite attributions for {image_id}")
    delta = result.extras.get("convergence_delta")
    return pixel_map.detach().cpu().numpy().astype(np.float32), float(delta[0]) if delta is not None else float("nan")


def iter_attributions(model: DepthModel, method: AttributionMethod, data_root: str | Path,
                      predictions: Mapping[str, Any], target: TargetSpec, *, channel_reduction: str = "sum",
                      seed: int = 0, progress: bool = True) -> Iterator[tuple[str, np.ndarray, float]]:
    """Attribute the target of every image in ``predictions``, one image per call (shard-invariant), yielding
    each map as soon as it is done (:func:`attribute_image`).

    Args:
        model: depth model in eval mode.
        method: the attribution method.
        data_root: prepared dataset folder.
        predictions: the prediction stage's arrays (``ids``, ``native``; :func:`read_predictions`); the target
            region is taken from the stored prediction (never recomputed).
        target: the scalar target.
        channel_reduction: ``sum`` or ``abs_sum`` (see :func:`reduce_channels`).
        seed: base seed; each image's seed derives from (seed, image id, method name).

    Yields:
        ``(image_id, map, convergence_delta)``: ``map`` ``(H, W)`` float32; the delta NaN for methods without one.
    """
    device = next(model.parameters()).device
    ids = [str(i) for i in predictions["ids"]]
    for k, image_id in enumerate(tqdm(ids, desc=f"{method.name} {model.card.name}", disable=not progress,
                                      mininterval=5)):
        rgb_path, _ = sample_paths(data_root, image_id)
        image = prepare_input(read_rgb(rgb_path), model.card)[None].to(device)
        clean = resize_depth(torch.from_numpy(predictions["native"][k : k + 1]).to(device), tuple(image.shape[-2:]))
        pixel_map, delta = attribute_image(model, method, image, clean, target, seed=seed, image_id=image_id,
                                           channel_reduction=channel_reduction, source=str(rgb_path))
        yield image_id, pixel_map, delta


def _meta(model: DepthModel, method: AttributionMethod, target: TargetSpec, channel_reduction: str, seed: int,
          meta: Mapping[str, Any] | None) -> np.ndarray:
    record = {"method": method.name, "model": model.card.name, "target": target.__dict__,
              "channel_reduction": channel_reduction, "seed": seed,
              # |.| after the channel sum ("abs_sum") leaves no sign, whatever the method gave
              "signed": bool(method.signed and channel_reduction == "sum"), **dict(meta or {})}
    return np.asarray(json.dumps(record, sort_keys=True, default=list))


def attribute_split(model: DepthModel, method: AttributionMethod, data_root: str | Path,
                    predictions: Mapping[str, Any], target: TargetSpec, *, channel_reduction: str = "sum",
                    seed: int = 0, meta: Mapping[str, Any] | None = None,
                    progress: bool = True) -> dict[str, np.ndarray]:
    """:func:`iter_attributions` collected in memory (small shards, tests; the workflow uses
    :func:`attribute_to_file`).

    Args:
        meta: extra provenance stored in the file.
        (the others as in :func:`iter_attributions`)

    Returns:
        ``{"ids": (N,), "maps": (N, H, W) float32, "convergence_delta": (N,), "meta": JSON string}``.
    """
    maps: list[np.ndarray] = []
    deltas: list[float] = []
    for _, pixel_map, delta in iter_attributions(model, method, data_root, predictions, target,
                                                 channel_reduction=channel_reduction, seed=seed, progress=progress):
        maps.append(pixel_map)
        deltas.append(delta)
    h, w = model.card.input_size
    return {
        "ids": np.asarray([str(i) for i in predictions["ids"]], dtype=str),
        "maps": np.stack(maps) if maps else np.zeros((0, h, w), np.float32),
        "convergence_delta": np.asarray(deltas, dtype=np.float32),
        "meta": _meta(model, method, target, channel_reduction, seed, meta),
    }


def attribute_to_file(path: str | Path, model: DepthModel, method: AttributionMethod, data_root: str | Path,
                      predictions: Mapping[str, Any], target: TargetSpec, *, channel_reduction: str = "sum",
                      seed: int = 0, meta: Mapping[str, Any] | None = None, progress: bool = True) -> int:
    """Attribute every image of ``predictions`` and stream each map into the ``.npz`` at ``path`` (atomic).

    Memory stays that of one image whatever the shard size. Arguments as in :func:`attribute_split`.

    Returns:
        The number of maps written.
    """
    ids: list[str] = []
    deltas: list[float] = []
    with NpzStreamWriter(path) as out:
        for image_id, pixel_map, delta in iter_attributions(model, method, data_root, predictions, target,
                                                            channel_reduction=channel_reduction, seed=seed,
                                                            progress=progress):
            out.add_row("maps", image_id, pixel_map)
            ids.append(image_id)
            deltas.append(delta)
        out.add("ids", np.asarray(ids, dtype=str))
        out.add("convergence_delta", np.asarray(deltas, dtype=np.float32))
        out.add("meta", _meta(model, method, target, channel_reduction, seed, meta))
    return len(ids)


def write_attributions(path: str | Path, arrays: Mapping[str, Any]) -> None:
    """Write in-memory attributions (:func:`attribute_split`) in the streamed layout of :func:`attribute_to_file`."""
    ids = [str(i) for i in arrays["ids"]]
    with NpzStreamWriter(path) as out:
        for k, image_id in enumerate(ids):
            out.add_row("maps", image_id, arrays["maps"][k])
        out.add("ids", np.asarray(ids, dtype=str))
        out.add("convergence_delta", np.asarray(arrays["convergence_delta"], dtype=np.float32))
        out.add("meta", arrays["meta"] if not isinstance(arrays["meta"], dict)
                else np.asarray(json.dumps(arrays["meta"], sort_keys=True, default=list)))


def read_attributions(path: str | Path) -> dict[str, Any]:
    """Open an attribution file; maps are read one image at a time, when asked for.

    Returns:
        ``{"ids": (N,) str, "maps": rows, "convergence_delta": (N,), "meta": dict, "path": str}`` where
        ``rows[k]`` is image ``k``'s ``(H, W)`` map and ``np.asarray(rows)`` all of them
        (:class:`~depthxai.fileio.NpzRows`).
    """
    try:
        data = np.load(path, allow_pickle=False)
        ids = data["ids"].astype(str)
        return {"ids": ids, "maps": NpzRows(data, "maps", ids), "convergence_delta": data["convergence_delta"],
                "meta": json.loads(str(data["meta"])), "path": str(path)}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable attribution file ({exc}); rerun the attribute rule") from exc
