"""The prepared-dataset layout shared by every data source, and readers that fail with clear errors.

A prepared dataset is a folder::

    <root>/dataset.json      DatasetInfo: name, depth_scale, depth range, evaluation crop, camera
    <root>/index.csv         one row per image: id, split, rgb, depth (paths relative to <root>)
    <root>/rgb/<id>.png      8-bit RGB, H x W x 3
    <root>/depth/<id>.png    16-bit depth; metres = value / depth_scale; 0 = no ground truth

The synthetic renderer and the NYU/KITTI preparation rules write exactly this, so no downstream rule
can tell where the images came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from depthxai.errors import DataError
from depthxai.fileio import atomic_path, write_json

INDEX_COLUMNS = ("id", "split", "rgb", "depth")
EVAL_CROPS = ("none", "eigen", "garg")


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a prepared dataset (``dataset.json``).

    Attributes:
        name: dataset id used in paths and model names (``nyu``, ``kitti``, ``synthindoor``, ``synthroad``).
        kind: ``synthetic``, ``nyu`` or ``kitti`` (where the images came from).
        depth_scale: PNG value per metre (1000 for millimetres, 256 for KITTI).
        min_depth, max_depth: valid ground-truth range in metres for evaluation (exclusive bounds).
        eval_crop: ``none``, ``eigen`` (NYU rows 45:471, cols 41:601 of 480x640) or ``garg`` (KITTI).
        image_size: (H, W) of every RGB image and depth map.
        camera: pinhole intrinsics ``fx, fy, cx, cy`` in pixels (informative).
        extra: free-form provenance (seed, source files, hashes).
    """

    name: str
    kind: str
    depth_scale: float
    min_depth: float
    max_depth: float
    eval_crop: str
    image_size: tuple[int, int]
    camera: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.eval_crop not in EVAL_CROPS:
            raise DataError(f"dataset {self.name!r}: eval_crop must be one of {EVAL_CROPS}, got {self.eval_crop!r}")

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["image_size"] = list(self.image_size)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> DatasetInfo:
        obj = dict(obj)
        obj["image_size"] = tuple(obj["image_size"])
        return cls(**obj)


def write_dataset_info(root: str | Path, info: DatasetInfo) -> None:
    write_json(Path(root) / "dataset.json", info.to_json())


def read_dataset_info(root: str | os.PathLike[str]) -> DatasetInfo:
    path = Path(root) / "dataset.json"
    try:
        return DatasetInfo.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise DataError(f"{path}: missing; prepare the dataset first (snakemake rule 'prepare_*')") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a valid dataset.json ({exc}); delete it and prepare the dataset again") from exc


def write_index(root: str | Path, index: pd.DataFrame) -> None:
    """Write ``index.csv`` (columns :data:`INDEX_COLUMNS`, sorted by split then id) atomically."""
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"index is missing columns {missing}")
    table = index.loc[:, list(INDEX_COLUMNS)].astype(str).sort_values(["split", "id"], kind="stable")
    with atomic_path(Path(root) / "index.csv") as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")


def read_index(root: str | os.PathLike[str], split: str | None = None) -> pd.DataFrame:
    """Read ``index.csv`` (ids as strings, in file order), optionally only the rows of one split."""
    path = Path(root) / "index.csv"
    try:
        index = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; prepare the dataset first") from None
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; expected {list(INDEX_COLUMNS)}")
    if split is not None:
        index = index[index["split"] == split].reset_index(drop=True)
    return index


def shard_ids(ids: Sequence[str], n_shards: int, shard: int) -> list[str]:
    """The ids of ``shard`` (0-based) when the sorted ids are cut into ``n_shards`` contiguous chunks."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for {n_shards} shards")
    ordered = sorted(ids)
    bounds = np.linspace(0, len(ordered), n_shards + 1).round().astype(int)
    return ordered[bounds[shard] : bounds[shard + 1]]


def _open_image(path: Path, what: str) -> tuple[Image.Image, int]:
    """Open and decode ``path`` fully; any failure becomes a :class:`DataError` naming the file.

    Returns the image and its bits per channel as stored in the file (Pillow quietly reduces 16-bit colour PNGs
    to 8 bits when decoding, so this is read from the decoder's raw mode first). Pillow's decompression-bomb
    guard (a header claiming far more pixels than any dataset frame) is an error here, not a warning, so a
    hostile header never makes a job allocate gigabytes.
    """
    if path.exists() and not (path.is_file() or path.is_dir()):  # open() on a FIFO would block, on a device never end
        raise DataError(f"{path}: the {what} is not a regular file (a FIFO, device or socket)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            try:
                rawmodes = [str(tile[3]) for tile in img.tile]  # (codec, extents, offset, rawmode or args)
                bits = 16 if img.mode.startswith("I;16") or any(";16" in mode for mode in rawmodes) else 8
                img.load()
            except BaseException:
                img.close()
                raise
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path}: refused: the {what} claims more pixels than any dataset frame ({exc}); replace the "
                        "file") from None
    except (UnidentifiedImageError, OSError, EOFError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: corrupt or truncated {what} ({exc}); replace the file or prepare the dataset "
                        "again") from exc
    return img, bits


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an 8-bit colour (or grey, or palette) image as ``uint8`` array ``(H, W, 3)``.

    The EXIF orientation of a photo (a phone's JPEG stores the sensor's pixels and a tag saying how to turn them)
    is applied, so the array is the image a person sees, as every viewer shows it.

    Raises:
        DataError: naming the file, if it is missing, truncated, not an image, not a regular file, or not 8 bits per
            channel (16-bit images are refused rather than silently cut to their high byte: they often hold linear,
            not display, values, which the models never saw).
    """
    path = Path(path)
    img, bits = _open_image(path, "image")
    with img:
        if img.mode not in ("RGB", "RGBA", "L", "P") or bits != 8:
            depth = f"{bits}-bit " if bits != 8 else ""
            raise DataError(f"{path}: expected an 8-bit RGB image, got a {depth}{img.format or ''} image of PIL mode "
                            f"{img.mode!r}; convert it to 8-bit RGB (e.g. PNG or JPEG)")
        try:
            upright = ImageOps.exif_transpose(img)
        except (OSError, ValueError, SyntaxError) as exc:  # a broken EXIF block
            raise DataError(f"{path}: unreadable EXIF orientation ({exc}); save the image without EXIF") from exc
        return np.asarray(upright.convert("RGB"))


def read_depth(path: str | Path, depth_scale: float) -> np.ndarray:
    """Read a 16-bit depth PNG as metres, ``float32`` ``(H, W)``; 0 (no ground truth) stays 0.

    Only single-channel 16-bit PNGs are accepted (the prepared-dataset layout): their values are finite by
    construction, so NaN/inf cannot reach the metrics. Float TIFFs, 8-bit or colour images are refused with what
    to do, rather than guessed at.

    Raises:
        DataError: naming the file, if it is missing, corrupt, or not a single-channel 16-bit PNG.
    """
    path = Path(path)
    fix = ("write depth maps with depthxai.data.io.write_depth "
           f"(16-bit PNG, value = metres x {depth_scale:g}, 0 = invalid)")
    img, _ = _open_image(path, "depth map")
    with img:
        if img.format != "PNG":
            raise DataError(f"{path}: depth map is a {img.format} image of PIL mode {img.mode!r}, "
                            f"not a 16-bit PNG; {fix}")
        raw = np.asarray(img)
    if raw.ndim != 2:
        raise DataError(f"{path}: depth map has {raw.shape[2]} channels (shape {raw.shape}); expected a single-channel "
                        f"16-bit PNG; {fix}")
    if raw.dtype == np.uint8 or raw.dtype == np.bool_:
        raise DataError(f"{path}: depth map is {8 if raw.dtype == np.uint8 else 1}-bit; expected 16-bit; {fix}")
    if raw.dtype not in (np.uint16, np.int32) or raw.min(initial=0) < 0 or raw.max(initial=0) > 65535:
        raise DataError(f"{path}: depth map of dtype {raw.dtype} is outside the 16-bit range; {fix}")
    return (raw.astype(np.float32) / np.float32(depth_scale)).astype(np.float32)


def _png_options(compress_level: int | None) -> dict[str, int]:
    """PIL save options: zlib ``compress_level`` 0-9 (``None``: PIL's default, 6). Level 1 encodes about 3x faster
    into files about a third larger; the pixels are the same at every level."""
    return {} if compress_level is None else {"compress_level": int(compress_level)}


def write_rgb(path: str | Path, rgb: np.ndarray, compress_level: int | None = None) -> None:
    """Write ``uint8`` ``(H, W, 3)`` as PNG atomically (``compress_level``: see :func:`_png_options`)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, mode="RGB").save(tmp, format="PNG", **_png_options(compress_level))


def write_depth(path: str | Path, depth_m: np.ndarray, depth_scale: float,
                compress_level: int | None = None) -> None:
    """Write metres ``(H, W)`` as a 16-bit PNG (value = round(depth * scale), 0 where depth <= 0 or not finite)."""
    depth = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, 0.0)
    raw = np.clip(np.round(depth * depth_scale), 0, 65535).astype(np.uint16)
    with atomic_path(path) as tmp:
        Image.fromarray(raw).save(tmp, format="PNG", **_png_options(compress_level))


def sample_paths(root: str | Path, image_id: str) -> tuple[Path, Path | None]:
    """The RGB and depth paths of ``image_id`` (depth ``None`` where the index lists none)."""
    root = Path(root)
    index = read_index(root)
    row = index[index["id"] == image_id]
    if row.empty:
        raise DataError(f"{root / 'index.csv'}: no image with id {image_id!r}")
    depth = row["depth"].iloc[0]
    return root / row["rgb"].iloc[0], (root / depth) if depth else None


def mean_rgb(root: str | Path, split: str = "test") -> tuple[float, float, float]:
    """Mean colour of a split, RGB in [0, 1] (float64 accumulation; the replacement colour for perturbations)."""
    root = Path(root)
    index = read_index(root, split)
    if index.empty:
        raise DataError(f"{root / 'index.csv'}: split {split!r} is empty")
    total = np.zeros(3, dtype=np.float64)
    count = 0
    for rel in index["rgb"]:
        rgb = read_rgb(root / rel)
        total += rgb.reshape(-1, 3).sum(axis=0, dtype=np.float64)
        count += rgb.shape[0] * rgb.shape[1]
    mean = total / count / 255.0
    return float(mean[0]), float(mean[1]), float(mean[2])


def write_mean_rgb(path: str | Path, root: str | Path, split: str = "test") -> tuple[float, float, float]:
    """Write the mean colour of a split (:func:`mean_rgb`) as the JSON file :func:`read_mean_rgb` reads."""
    colour = mean_rgb(root, split)
    write_json(path, {"mean_rgb": list(colour), "split": split})
    return colour


def read_mean_rgb(path: str | Path) -> list[float]:
    """The colour of a :func:`write_mean_rgb` file: three values in [0, 1].

    Raises:
        DataError: naming the file, if it is missing, not such a file, or holds anything but three values in [0, 1].
    """
    try:
        rgb = [float(v) for v in json.loads(Path(path).read_text(encoding="utf-8"))["mean_rgb"]]
    except FileNotFoundError:
        raise DataError(f"{path}: mean colour file not found; run 'depthxai mean-rgb' (rule mean_rgb) first") from None
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise DataError(f"{path}: not a mean colour file of 'depthxai mean-rgb' ({exc!r}); delete it and run the "
                        "mean_rgb rule again") from exc
    if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
        raise DataError(f"{path}: mean_rgb must be three values in [0, 1], got {rgb}; delete it and run the mean_rgb "
                        "rule again")
    return rgb


def split_ids(root: str | Path, split: str = "test", n: int | None = None) -> list[str]:
    """The ids of a split, sorted; the first ``n`` (all when ``None``)."""
    ids = sorted(read_index(root, split)["id"].astype(str).tolist())
    return ids if n is None else ids[:n]
