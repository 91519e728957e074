"""NYU Depth v2 (Silberman et al., ECCV 2012): the labeled set and its official split -> prepared dataset.

Sources (both in the config's ``downloads``):

- ``nyu_depth_v2_labeled.mat`` (2,972,037,809 bytes, md5 ``520609c519fba3ba5ac58c8fefcc3530``): a MATLAB
  v7.3 file, i.e. HDF5 behind a 512-byte MATLAB header. HDF5 stores MATLAB's column-major arrays with
  their axes reversed, so MATLAB's ``images`` (480, 640, 3, 1449) uint8 reads here as (1449, 3, 640, 480)
  = (N, C, W, H), and ``depths`` / ``rawDepths`` (480, 640, 1449) single as (N, W, H), in metres.
  ``depths`` is the in-painted ("filled") depth; ``rawDepths`` has holes stored as 0.
- ``splits.mat`` (MATLAB v5): ``testNdxs`` (654) and ``trainNdxs`` (795), one-based indices into the
  1449 labeled frames.

:func:`prepare_nyu` streams the selected frames one at a time (the file is 2.8 GB; nothing else is held
in memory) into the layout of :mod:`depthxai.data.io`: ids are the 5-digit 0-based frame index
(``00000``), RGB as PNG, depth as 16-bit PNG in millimetres (``depth_scale`` 1000; 0 = no measurement).
The official train frames (795) live in the same file: with ``train_every`` the test preparation also writes
every k-th of them (by index) as ``split = train`` rows of the same prepared dataset (the learned explainer trains
on them; no other download is needed). Evaluation uses the Eigen crop (rows 45:471, cols 41:601) and
1e-3 < gt < 10 m, as in the paper's protocol and the official METER/PixelFormer evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.io
from tqdm import tqdm

from depthxai.data.io import DatasetInfo, write_dataset_info, write_depth, write_index, write_rgb
from depthxai.errors import DataError

N_LABELED_FRAMES = 1449
IMAGE_SIZE = (480, 640)  # (H, W)
DEPTH_SCALE = 1000.0  # PNG value per metre: millimetres
# RGB camera intrinsics from the NYU Depth v2 toolbox (camera_params.m), in pixels of the 640x480 frames.
NYU_CAMERA = {"fx": 518.8579, "fy": 519.4696, "cx": 325.5824, "cy": 253.7362}
DEPTH_SOURCES = {"filled": "depths", "raw": "rawDepths"}
SPLIT_KEYS = {"test": "testNdxs", "train": "trainNdxs"}


def nyu_id(index: int) -> str:
    """The dataset id of a labeled frame: its 0-based index, 5 digits (``00000`` ... ``01448``)."""
    return f"{int(index):05d}"


def read_nyu_splits(splits_mat: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the official split as 0-based frame indices.

    Returns:
        ``{"test": int64 array (654,), "train": int64 array (795,)}``, each sorted ascending.

    Raises:
        DataError: naming the file, if it is missing, not a MATLAB v5 file, or lacks ``testNdxs``/``trainNdxs``.
    """
    path = Path(splits_mat)
    try:
        content = scipy.io.loadmat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: NYU split file not found; fetch the `nyu_splits` download") from None
    except (NotImplementedError, ValueError, TypeError, OSError) as exc:
        raise DataError(f"{path}: not a readable MATLAB v5 splits.mat ({exc}); download it again") from exc
    splits = {}
    for split, key in SPLIT_KEYS.items():
        if key not in content:
            raise DataError(f"{path}: variable {key!r} missing; expected the official NYU splits.mat")
        one_based = np.asarray(content[key]).astype(np.int64).ravel()
        if one_based.size == 0 or one_based.min() < 1:
            raise DataError(f"{path}: {key} must hold one-based frame indices (>= 1)")
        splits[split] = np.sort(one_based - 1)
    return splits


def _select_indices(splits: dict[str, np.ndarray], split: str, ids: Iterable[str | int] | None,
                    splits_mat: Path) -> list[int]:
    if split not in SPLIT_KEYS:
        raise DataError(f"NYU split must be one of {sorted(SPLIT_KEYS)}, got {split!r}")
    available = [int(i) for i in splits[split]]
    if ids is None:
        return available
    wanted = sorted({int(i) for i in ([ids] if isinstance(ids, (str, int)) else ids)})
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise DataError(
            f"NYU ids {[nyu_id(i) for i in missing[:10]]} are not in the {split!r} split of {splits_mat}; "
            f"ids are 0-based labeled-frame indices such as {nyu_id(available[0])}"
        )
    return wanted


def prepare_nyu(
    labeled_mat: str | os.PathLike[str],
    splits_mat: str | os.PathLike[str],
    out_root: str | os.PathLike[str],
    *,
    depth_source: str = "filled",
    split: str = "test",
    ids: Iterable[str | int] | None = None,
    train_every: int | None = None,
    progress: bool = True,
) -> DatasetInfo:
    """Write the frames of one NYU split (and optionally train frames) as a prepared dataset (rgb/, depth/,
    index.csv, dataset.json).

    Args:
        labeled_mat: ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 / HDF5).
        splits_mat: the official ``splits.mat``.
        out_root: output folder (created). ``dataset.json`` is written last, so its presence marks completion.
        depth_source: ``filled`` (``depths``, in-painted) or ``raw`` (``rawDepths``, holes stay 0 = invalid).
        split: ``test`` (654 frames) or ``train`` (795).
        ids: optional subset (ids like ``"00000"`` or ints), each of which must be in ``split``.
        train_every: with ``split="test"``: also write every ``train_every``-th frame of the official train split
            (sorted by index; 1 = all 795) as ``split = train`` rows. ``None``: test frames only.
        progress: show a progress bar.

    Returns:
        The DatasetInfo written to ``dataset.json`` (name ``nyu``, depth_scale 1000, 1e-3..10 m, Eigen crop).

    Raises:
        DataError: naming the file, for a missing or malformed input, or ids outside the split; ``train_every``
            below 1 or with a split other than ``test``.
    """
    if depth_source not in DEPTH_SOURCES:
        raise DataError(f"NYU depth_source must be one of {sorted(DEPTH_SOURCES)}, got {depth_source!r}")
    if train_every is not None and (split != "test" or train_every < 1):
        raise DataError(f"NYU train_every adds train frames to the test split: it needs split 'test' and a value >= 1, "
                        f"got split {split!r} and {train_every}")
    labeled_mat, splits_mat, out_root = Path(labeled_mat), Path(splits_mat), Path(out_root)
    splits = read_nyu_splits(splits_mat)
    # (0-based frame index, split) of every row to write, in file order (the splits are disjoint)
    work = [(index, split) for index in _select_indices(splits, split, ids, splits_mat)]
    n_split = len(work)
    if train_every is not None:
        work = sorted(work + [(int(index), "train") for index in splits["train"][::train_every]])
    last_index = max((index for index, _ in work), default=-1)
    if not labeled_mat.is_file():
        raise DataError(f"{labeled_mat}: NYU labeled set not found; fetch the `nyu_labeled` download")
    try:
        mat = h5py.File(labeled_mat, "r")
    except OSError as exc:
        raise DataError(
            f"{labeled_mat}: not a MATLAB v7.3 (HDF5) file ({exc}); expected nyu_depth_v2_labeled.mat "
            f"(2,972,037,809 bytes); delete it and download it again"
        ) from exc
    with mat:
        images, depths = _datasets(mat, labeled_mat, DEPTH_SOURCES[depth_source])
        n_frames = images.shape[0]
        if last_index >= n_frames:
            raise DataError(f"{splits_mat}: frame index {last_index + 1} (one-based) is beyond the "
                            f"{n_frames} frames of {labeled_mat}")
        rows = []
        for index, row_split in tqdm(work, desc=f"NYU {split}", unit="frame", disable=not progress):
            frame_id = nyu_id(index)
            # One frame at a time: (3, W, H) -> (H, W, 3) and (W, H) -> (H, W), undoing HDF5's axis reversal.
            rgb = np.ascontiguousarray(np.asarray(images[index]).transpose(2, 1, 0))
            depth_m = np.ascontiguousarray(np.asarray(depths[index], dtype=np.float32).T)
            write_rgb(out_root / "rgb" / f"{frame_id}.png", rgb)
            write_depth(out_root / "depth" / f"{frame_id}.png", depth_m, DEPTH_SCALE)
            rows.append({"id": frame_id, "split": row_split, "rgb": f"rgb/{frame_id}.png",
                         "depth": f"depth/{frame_id}.png"})
    write_index(out_root, pd.DataFrame(rows, columns=["id", "split", "rgb", "depth"]))
    extra = {
        "source": labeled_mat.name, "splits": splits_mat.name, "split": split, "depth_source": depth_source,
        "depth_variable": DEPTH_SOURCES[depth_source], "n_frames_in_source": int(n_frames), "n_images": n_split,
        "id_meaning": "0-based index into the 1449 labeled frames",
    }
    if train_every is not None:
        extra.update(train_every=int(train_every), n_train=len(work) - n_split)
    info = DatasetInfo(
        name="nyu", kind="nyu", depth_scale=DEPTH_SCALE, min_depth=1e-3, max_depth=10.0, eval_crop="eigen",
        image_size=IMAGE_SIZE, camera=dict(NYU_CAMERA), extra=extra,
    )
    write_dataset_info(out_root, info)
    return info


def _datasets(mat: h5py.File, path: Path, depth_key: str) -> tuple[h5py.Dataset, h5py.Dataset]:
    """The ``images`` and depth datasets, checked for the layout described in the module docstring."""
    for key in ("images", depth_key):
        if key not in mat or not isinstance(mat[key], h5py.Dataset):
            raise DataError(f"{path}: variable {key!r} missing; expected nyu_depth_v2_labeled.mat")
    images, depths = mat["images"], mat[depth_key]
    height, width = IMAGE_SIZE
    if images.ndim != 4 or images.shape[1:] != (3, width, height) or images.dtype != np.uint8:
        raise DataError(f"{path}: 'images' is {images.dtype} {images.shape}; expected uint8 (N, 3, {width}, {height})")
    if depths.shape != (images.shape[0], width, height) or depths.dtype.kind != "f":
        raise DataError(f"{path}: {depth_key!r} is {depths.dtype} {depths.shape}; expected float "
                        f"({images.shape[0]}, {width}, {height}) in metres")
    return images, depths
