"""KITTI Eigen split (Eigen et al., NIPS 2014) with annotated ground truth (Uhrig et al., 3DV 2017).

Sources (all in the config's ``downloads``):

- ``eigen_test_files_with_gt.txt`` (the BTS/PixelFormer export): 697 lines ``<rgb> <gt or None> <focal>``,
  e.g. ``2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
  2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377``. 45 lines have no
  annotated ground truth (``None``); the 652 others are the evaluated set.
- The KITTI raw drives ``<drive>_sync.zip`` (28 drives), which unpack to ``<date>/<drive>_sync/image_02/data/``:
  extracted into one folder ``raw_root``, the split's RGB paths are relative to it.
- ``data_depth_annotated.zip``, which unpacks to ``train/`` and ``val/``, each holding
  ``<drive>_sync/proj_depth/groundtruth/image_02/<frame>.png`` (uint16, metres = value / 256, 0 = invalid):
  the split's GT paths are relative to ``depth_root/train`` or ``depth_root/val`` (both are searched; a
  ``depth_root`` that holds the drive folders directly also works).

Train frames (optional; the learned explainer trains on them): ``eigen_train_files_with_gt.txt`` (same format,
23,157 lines, all with ground truth, from 33 raw drives that are not among the 28 test drives) is far larger than
an explainer needs (well over 100 GB of raw archives). :func:`prepare_kitti_eigen` therefore takes a selection:
the frames of a few named drives, every ``k``-th by frame number (neighbouring frames at 10 Hz are near
duplicates). They are written as ``split = train`` rows of the same prepared dataset, with their ground truth from
the ``train/`` folder of the same ``data_depth_annotated.zip``; their raw drives extract into the same
``raw_root``.

Ids are ``<drive>_sync_<frame>``, e.g. ``2011_09_26_drive_0002_sync_0000000069`` (unique, and sorting them
sorts by date, drive, frame).

Frame size. The prepared layout has one image size, but KITTI's rectified frames differ by recording day:
2011_09_26 frames (522 of the 697 lines, and the paper's reference frames) are 375 x 1242; the other days
are a few pixels smaller or larger (about 370-376 rows, 1224-1241 columns). Every frame is therefore
brought to 375 x 1242 by centring it: an axis that is longer is centre-cropped, one that is shorter is padded
(RGB by repeating the edge pixels, so that the model sees no artificial border; depth with 0 = invalid, so
padded pixels are never evaluated). No pixel is resampled: depth values stay exactly as annotated. The pads
and crops are at most a few pixels per side and fall outside the Garg evaluation crop (rows 40.8%..99.2%,
columns 3.6%..96.4%), whose position on such frames moves by at most a few pixels relative to the native
frame. ``dataset.json``'s ``extra["frames"][id]`` records each frame's ``source_size`` [H, W] and ``offset``
[dy, dx]: stored[y, x] = source[y - dy, x - dx] (negative = cropped).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from depthxai.data.io import DatasetInfo, read_depth, read_rgb, write_dataset_info, write_depth, write_index, write_rgb
from depthxai.errors import DataError

IMAGE_SIZE = (375, 1242)  # (H, W) of the 2011_09_26 frames
DEPTH_SCALE = 256.0
RAW_DRIVE_URL = "https://s3.eu-central-1.amazonaws.com/avg-kitti/raw_data/{drive}/{drive}_sync.zip"
ANNOTATED_DEPTH_URL = "https://s3.eu-central-1.amazonaws.com/avg-kitti/data_depth_annotated.zip"
ANNOTATED_SUBSETS = ("train", "val", "")
#: downloads keys of the config (config/paper.yaml) that the error messages point to
SPLIT_FILE_KEYS = {"test": "kitti_eigen_test_split", "train": "kitti_eigen_train_split"}
RAW_DRIVE_KEYS = {"test": "kitti_raw_{drive}", "train": "kitti_train_raw_{drive}"}

_RGB_PATTERN = re.compile(r"(?P<date>\d{4}_\d{2}_\d{2})/(?P<drive>(?P=date)_drive_\d{4})_sync/"
                          r"(?P<camera>image_0[23])/data/(?P<frame>\d{10})\.png")
_GT_PATTERN = re.compile(r"(?P<drive>\d{4}_\d{2}_\d{2}_drive_\d{4})_sync/proj_depth/groundtruth/"
                         r"(?P<camera>image_0[23])/(?P<frame>\d{10})\.png")


@dataclass(frozen=True)
class EigenLine:
    """One line of the Eigen split file.

    Attributes:
        rgb: RGB path relative to the raw root, ``<date>/<drive>_sync/image_02/data/<frame>.png``.
        gt: ground-truth path relative to ``train/`` or ``val/`` of the annotated depth, or None.
        focal: focal length in pixels (per recording day).
        line: 1-based line number in the file (for error messages).
        date, drive, frame: parsed from ``rgb`` (drive like ``2011_09_26_drive_0002``).
    """

    rgb: str
    gt: str | None
    focal: float
    line: int
    date: str
    drive: str
    frame: str

    @property
    def id(self) -> str:
        """``<drive>_sync_<frame>``, e.g. ``2011_09_26_drive_0002_sync_0000000069``."""
        return f"{self.drive}_sync_{self.frame}"

    @property
    def archive(self) -> str:
        """The raw-data archive that holds this frame's RGB image."""
        return f"{self.drive}_sync.zip"


def read_eigen_split(split_file: str | os.PathLike[str], split: str = "test") -> list[EigenLine]:
    """Parse an Eigen split file (every line, including those without ground truth).

    Args:
        split_file: ``eigen_test_files_with_gt.txt`` or ``eigen_train_files_with_gt.txt``.
        split: ``test`` or ``train``: which file it is (names the download to fetch when it is missing).

    Raises:
        DataError: naming the file and line, for a line that is not ``<rgb> <gt|None> <focal>`` in the KITTI
            path formats, a GT path that names another frame, or a duplicate id.
    """
    path = Path(split_file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: Eigen {split} split file not found; fetch the `{SPLIT_FILE_KEYS[split]}` "
                        "download") from None
    lines: list[EigenLine] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        where = f"{path} line {number}"
        if len(fields) != 3:
            raise DataError(f"{where}: expected '<rgb path> <gt path or None> <focal>', got {raw!r}")
        rgb, gt, focal_text = fields
        rgb_match = _RGB_PATTERN.fullmatch(rgb)
        if rgb_match is None:
            raise DataError(f"{where}: RGB path {rgb!r} is not <date>/<date>_drive_NNNN_sync/image_0X/data/<frame>.png")
        if gt == "None":
            gt_path = None
        else:
            gt_match = _GT_PATTERN.fullmatch(gt)
            if gt_match is None or any(gt_match[k] != rgb_match[k] for k in ("drive", "camera", "frame")):
                raise DataError(f"{where}: GT path {gt!r} is not the annotated depth of {rgb!r}")
            gt_path = gt
        try:
            focal = float(focal_text)
        except ValueError:
            raise DataError(f"{where}: focal length {focal_text!r} is not a number") from None
        entry = EigenLine(rgb=rgb, gt=gt_path, focal=focal, line=number, date=rgb_match["date"],
                          drive=rgb_match["drive"], frame=rgb_match["frame"])
        if entry.id in seen:
            raise DataError(f"{where}: id {entry.id} repeats line {seen[entry.id]}")
        seen[entry.id] = number
        lines.append(entry)
    return lines


def eigen_drives(lines: Iterable[EigenLine]) -> list[str]:
    """The raw drives (``2011_09_26_drive_0002``) that the given lines need, sorted."""
    return sorted({entry.drive for entry in lines})


def fit_to_size(image: np.ndarray, size: tuple[int, int], *,
                pad_mode: Literal["edge", "constant"]) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre-crop or pad the first two axes of ``image`` to ``size`` (H, W).

    Args:
        image: (H, W) or (H, W, C).
        size: target (H, W).
        pad_mode: ``edge`` (repeat border pixels) or ``constant`` (zeros).

    Returns:
        (fitted array, (dy, dx)) with fitted[y, x] = image[y - dy, x - dx]; a negative offset means cropped.
    """
    offsets = []
    for axis, target in enumerate(size):
        length = image.shape[axis]
        if length > target:
            start = (length - target) // 2
            image = np.take(image, np.arange(start, start + target), axis=axis)
            offsets.append(-start)
        elif length < target:
            before = (target - length) // 2
            widths = [(0, 0)] * image.ndim
            widths[axis] = (before, target - length - before)
            image = np.pad(image, widths, mode=pad_mode)
            offsets.append(before)
        else:
            offsets.append(0)
    return np.ascontiguousarray(image), (offsets[0], offsets[1])


def _find_gt(depth_root: Path, gt: str) -> Path | None:
    for subset in ANNOTATED_SUBSETS:
        candidate = depth_root / subset / gt
        if candidate.is_file():
            return candidate
    return None


def select_train_lines(lines: Iterable[EigenLine], drives: Iterable[str], every: int = 1,
                       split_file: str | os.PathLike[str] = "the Eigen train split file") -> list[EigenLine]:
    """The train frames of ``drives``: per drive, the lines with ground truth sorted by frame number, every
    ``every``-th from the first.

    Args:
        lines: the parsed train split file (:func:`read_eigen_split`).
        drives: raw drives like ``2011_09_26_drive_0001`` (each must have lines in the file).
        every: keep one frame in ``every`` (>= 1).
        split_file: the file the lines came from (for error messages).

    Returns:
        The selected lines, sorted by id (drive, then frame).

    Raises:
        DataError: naming the file, for a drive without lines in it or ``every`` < 1.
    """
    if every < 1:
        raise DataError(f"KITTI train selection: every must be >= 1, got {every}")
    by_drive: dict[str, list[EigenLine]] = {}
    for entry in lines:
        if entry.gt is not None:
            by_drive.setdefault(entry.drive, []).append(entry)
    selected = []
    for drive in sorted(set(drives)):
        if drive not in by_drive:
            raise DataError(f"{split_file}: no line with ground truth for drive {drive}; choose train drives among "
                            f"{', '.join(sorted(by_drive)[:40])}")
        selected += sorted(by_drive[drive], key=lambda entry: entry.frame)[::every]
    return sorted(selected, key=lambda entry: entry.id)


def prepare_kitti_eigen(
    split_file: str | os.PathLike[str],
    raw_root: str | os.PathLike[str],
    depth_root: str | os.PathLike[str],
    out_root: str | os.PathLike[str],
    *,
    ids: Iterable[str] | None = None,
    train_split_file: str | os.PathLike[str] | None = None,
    train_drives: Iterable[str] | None = None,
    train_every: int = 1,
    progress: bool = True,
) -> DatasetInfo:
    """Write the Eigen test frames that have ground truth (652), and optionally train frames, as a prepared dataset.

    Args:
        split_file: ``eigen_test_files_with_gt.txt``.
        raw_root: folder into which the raw drive archives were extracted (holds ``2011_09_26/...``); the train
            drives' archives too.
        depth_root: folder into which ``data_depth_annotated.zip`` was extracted (holds ``train/``, ``val/``).
        out_root: output folder; ``dataset.json`` is written last and marks completion.
        ids: optional subset of test ids (``2011_09_26_drive_0002_sync_0000000069``), each with ground truth.
        train_split_file: ``eigen_train_files_with_gt.txt``; with ``train_drives``, adds ``split = train`` rows.
        train_drives: the raw drives whose train frames to write (:func:`select_train_lines`).
        train_every: keep every ``train_every``-th train frame of each drive, by frame number.
        progress: show a progress bar.

    Returns:
        The DatasetInfo written (name ``kitti``, depth_scale 256, 1e-3..80 m, Garg crop, 375 x 1242).

    Raises:
        DataError: for a malformed split file, an unknown id, a train drive absent from the train split file, a
            missing RGB frame (naming the raw drive archive, its URL and downloads key) or a missing ground-truth
            map (naming data_depth_annotated.zip), or RGB and depth sizes that differ.
    """
    split_file, raw_root, depth_root, out_root = Path(split_file), Path(raw_root), Path(depth_root), Path(out_root)
    if (train_split_file is None) != (train_drives is None):
        raise DataError("KITTI train frames need both the train split file and the train drives")
    lines = read_eigen_split(split_file)
    with_gt = [entry for entry in lines if entry.gt is not None]
    if ids is not None:
        ids = [ids] if isinstance(ids, str) else ids
        by_id = {entry.id: entry for entry in with_gt}
        wanted = sorted(set(ids))
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            raise DataError(f"KITTI ids {unknown[:10]} are not lines with ground truth in {split_file}; ids look "
                            f"like {with_gt[0].id if with_gt else '<drive>_sync_<frame>'}")
        with_gt = [by_id[i] for i in wanted]
    with_gt.sort(key=lambda entry: entry.id)
    work = [("test", split_file, entry) for entry in with_gt]
    train: list[EigenLine] = []
    if train_split_file is not None and train_drives is not None:
        train_split_file = Path(train_split_file)
        train_drives = sorted(set([train_drives] if isinstance(train_drives, str) else train_drives))
        train = select_train_lines(read_eigen_split(train_split_file, "train"), train_drives, train_every,
                                   train_split_file)
        shared = sorted({entry.id for entry in train} & {entry.id for entry in with_gt})
        if shared:
            raise DataError(f"{train_split_file}: frames {shared[:5]} are also test frames of {split_file}; train "
                            "drives must not be test drives")
        work += [("train", train_split_file, entry) for entry in train]

    rows, frames = [], {}
    for split, source, entry in tqdm(work, desc="KITTI Eigen", unit="frame", disable=not progress):
        rgb_path = raw_root / entry.rgb
        if not rgb_path.is_file():
            key = RAW_DRIVE_KEYS[split].format(drive=entry.drive)
            raise DataError(
                f"{source} line {entry.line}: RGB frame {rgb_path} not found. It is in the KITTI raw archive "
                f"{entry.archive} ({RAW_DRIVE_URL.format(drive=entry.drive)}, downloads key {key}):"
                f" download it and extract it into {raw_root}"
            )
        gt_path = _find_gt(depth_root, entry.gt)
        if gt_path is None:
            raise DataError(
                f"{source} line {entry.line}: ground truth {entry.gt} not found under {depth_root}/train or "
                f"{depth_root}/val. It is in data_depth_annotated.zip ({ANNOTATED_DEPTH_URL}, downloads key "
                f"kitti_depth_annotated): download it and extract it into {depth_root}"
            )
        rgb = read_rgb(rgb_path)
        depth_m = read_depth(gt_path, DEPTH_SCALE)  # value / 256 is exact in float32, so the round trip is too
        if rgb.shape[:2] != depth_m.shape:
            raise DataError(f"{rgb_path} is {rgb.shape[1]}x{rgb.shape[0]} but its ground truth {gt_path} is "
                            f"{depth_m.shape[1]}x{depth_m.shape[0]}; the files do not belong together")
        rgb_fitted, offset = fit_to_size(rgb, IMAGE_SIZE, pad_mode="edge")
        depth_fitted, _ = fit_to_size(depth_m, IMAGE_SIZE, pad_mode="constant")
        write_rgb(out_root / "rgb" / f"{entry.id}.png", rgb_fitted)
        write_depth(out_root / "depth" / f"{entry.id}.png", depth_fitted, DEPTH_SCALE)
        rows.append({"id": entry.id, "split": split, "rgb": f"rgb/{entry.id}.png", "depth": f"depth/{entry.id}.png"})
        frames[entry.id] = {"source_size": list(rgb.shape[:2]), "offset": list(offset), "focal": entry.focal,
                            "rgb": entry.rgb, "gt": entry.gt}
    write_index(out_root, pd.DataFrame(rows, columns=["id", "split", "rgb", "depth"]))
    focals = sorted({entry.focal for entry in with_gt})
    extra = {
        "split_file": split_file.name, "n_images": len(with_gt),
        "n_lines_without_gt": sum(entry.gt is None for entry in lines),
        "size_policy": "centre crop / pad to 375x1242; RGB pad = edge pixels, depth pad = 0 (invalid)",
        "frames": frames,
    }
    if train_split_file is not None:
        extra.update(train_split_file=Path(train_split_file).name, train_drives=list(train_drives or []),
                     train_every=int(train_every), n_train=len(train))
    info = DatasetInfo(
        name="kitti", kind="kitti", depth_scale=DEPTH_SCALE, min_depth=1e-3, max_depth=80.0, eval_crop="garg",
        image_size=IMAGE_SIZE,
        # The split file gives only the focal length; the principal point differs per recording day.
        camera={"fx": focals[0], "fy": focals[0]} if len(focals) == 1 else {},
        extra=extra,
    )
    write_dataset_info(out_root, info)
    return info
