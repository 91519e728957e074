"""Test helpers for the real developer samples (../shared/data): upstream-format fixtures and a reference evaluation.

Fixtures in the exact upstream formats, built from the real frames (one implementation, used by
``test_prepare_real.py`` and ``test_paper_preset.py``):

- NYU Depth v2: :func:`write_nyu_labeled` writes an ``nyu_depth_v2_labeled.mat`` look-alike (MATLAB v7.3, i.e.
  HDF5 behind MATLAB's 512-byte header, arrays stored with their axes reversed) holding the 8 real test frames
  at their true 0-based indices; every other frame is all zero and costs no disk space (unwritten HDF5 chunks).
  :func:`write_nyu_splits` writes a MATLAB v5 ``splits.mat``. Optionally some other frames (train frames) get
  content of their own (:func:`nyu_train_pixels`), so that a test can tell which frame was read.
- KITTI: :func:`place_kitti_frame` files one real frame into a raw-drive / annotated-depth folder tree with the
  Eigen naming; :func:`write_kitti_archives` packs such trees into ``<drive>_sync.zip`` and
  ``data_depth_annotated.zip`` as the KITTI servers lay them out. :func:`write_eigen_train_split` writes an Eigen
  train split file in the real format (lines shuffled, as in the real file) and :func:`kitti_train_pixels` the
  pixels of its frames.

Reference evaluation (:func:`reference_metrics`): the nine accuracy metrics of one prediction, written here from
the protocol's definition (BTS / PixelFormer ``compute_errors``: clip the prediction to [1e-3, cap], keep
1e-3 < gt < cap inside the Eigen crop for NYU or the Garg crop for KITTI), without the project's code, so that
tests can hold the project's numbers against it.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

NYU_REAL = (0, 1, 8, 13, 14, 20, 28, 38)  # 0-based labeled-frame indices of ../shared/data/nyu_test
NYU_LABELED_FRAMES = 1449  # frames of the real nyu_depth_v2_labeled.mat

# The two developer frames come from Metric3D's kitti_demo (a 2011_09_26 drive, 1242x375); which drive is not
# recorded anywhere we can check. Frames 0000000005 and 0000000050 both have ground-truth lines in the real
# split for drive 0013 (lines 72 and 52), so the fixtures file them there: tests check path handling and
# pixels, not the drive's identity.
KITTI_DATE = "2011_09_26"
KITTI_DRIVE = "2011_09_26_drive_0013"
KITTI_FRAMES = ("0000000005", "0000000050")
# data_depth_annotated.zip splits drives into train/ and val/; the fixtures use both folders.
KITTI_SUBSETS = ("train", "val")

# Evaluation protocol, from the papers rather than from depthxai: valid ground truth (metres, exclusive) and crop.
DEPTH_CAP = {"nyu": 10.0, "kitti": 80.0}
MIN_DEPTH = 1e-3
DEPTH_SCALE = {"nyu": 1000.0, "kitti": 256.0}  # PNG value per metre of the samples
CHECKPOINTS = {"nyu": "build_model_best_nyu_xxs", "kitti": "build_model_best_kitti_xxs"}


def read_png(path: Path) -> np.ndarray:
    """The pixels of a PNG as stored (uint8 RGB or uint16 depth)."""
    with Image.open(path) as img:
        return np.asarray(img)


# ------------------------------------------------------------------------------------------------------ NYU


def nyu_train_pixels(shared_dir: Path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Content of the non-test frame ``index``: a real test frame mirrored and rolled by ``index`` columns, so
    that every index has its own pixels. Returns (480, 640, 3) uint8 RGB and (480, 640) uint16 depth (mm)."""
    data = shared_dir / "data" / "nyu_test"
    source = NYU_REAL[index % len(NYU_REAL)]
    rgb = read_png(data / f"{source:05d}_colors.png")[:, ::-1]
    depth = read_png(data / f"{source:05d}_depth.png")[:, ::-1]
    return np.ascontiguousarray(np.roll(rgb, index, axis=1)), np.ascontiguousarray(np.roll(depth, index, axis=1))


def write_nyu_labeled(shared_dir: Path, path: Path, n_frames: int, *, hole_fraction: float = 0.15,
                      seed: int = 0, train_frames: tuple[int, ...] = ()) -> dict[str, dict[int, np.ndarray]]:
    """Write an ``nyu_depth_v2_labeled.mat`` look-alike with the real test frames at their true indices.

    MATLAB's ``images`` (480, 640, 3, N) uint8 and ``depths`` / ``rawDepths`` (480, 640, N) single are stored
    reversed in HDF5: (N, 3, 640, 480) and (N, 640, 480). ``depths`` holds the real filled depth (metres);
    ``rawDepths`` the same with a random ``hole_fraction`` of pixels set to 0 (holes, as in the raw Kinect depth).

    Args:
        shared_dir: the developer material (``../shared``).
        path: the ``.mat`` file to write.
        n_frames: frames in the file (:data:`NYU_LABELED_FRAMES` for the real size); must exceed ``max(NYU_REAL)``.
        train_frames: further 0-based indices (not in :data:`NYU_REAL`) that get :func:`nyu_train_pixels`.

    Returns:
        ``{"rgb": {index: (480, 640, 3) uint8}, "depth_mm": {index: (480, 640) uint16}, "holes": {index: bool}}``.
    """
    data = shared_dir / "data" / "nyu_test"
    rgb = {i: read_png(data / f"{i:05d}_colors.png") for i in NYU_REAL}
    depth_mm = {i: read_png(data / f"{i:05d}_depth.png") for i in NYU_REAL}
    assert not set(train_frames) & set(NYU_REAL)
    for index in train_frames:
        rgb[index], depth_mm[index] = nyu_train_pixels(shared_dir, index)
    rng = np.random.default_rng(seed)
    holes = {i: rng.random(depth_mm[i].shape) < hole_fraction for i in rgb}
    with h5py.File(path, "w", userblock_size=512) as f:
        kw = {"compression": "gzip", "compression_opts": 1}  # chunks of the all-zero frames are never written
        images = f.create_dataset("images", shape=(n_frames, 3, 640, 480), dtype=np.uint8, chunks=(1, 3, 640, 480),
                                  **kw)
        depths = f.create_dataset("depths", shape=(n_frames, 640, 480), dtype=np.float32, chunks=(1, 640, 480), **kw)
        raws = f.create_dataset("rawDepths", shape=(n_frames, 640, 480), dtype=np.float32, chunks=(1, 640, 480), **kw)
        for dataset, cls in ((images, b"uint8"), (depths, b"single"), (raws, b"single")):
            dataset.attrs["MATLAB_class"] = np.bytes_(cls)
        for index, frame_rgb in rgb.items():
            depth_m = depth_mm[index].astype(np.float32) / np.float32(1000)
            images[index] = frame_rgb.transpose(2, 1, 0)
            depths[index] = depth_m.T
            raws[index] = np.where(holes[index], np.float32(0), depth_m).T
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2015 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + bytes(8) + (0x0200).to_bytes(2, "little") + b"IM"
    with open(path, "r+b") as fh:  # MATLAB's 128-byte header at the start of the 512-byte userblock
        fh.write(header)
    return {"rgb": rgb, "depth_mm": depth_mm, "holes": holes}


def write_nyu_splits(path: Path, test: list[int] | tuple[int, ...], n_frames: int) -> None:
    """Write a MATLAB v5 ``splits.mat``: ``testNdxs`` = ``test`` + 1, ``trainNdxs`` = every other frame + 1."""
    train = [i for i in range(n_frames) if i not in set(test)]
    scipy.io.savemat(path, {"testNdxs": (np.array(test) + 1).astype(np.uint16)[:, None],
                            "trainNdxs": (np.array(train) + 1).astype(np.uint16)[:, None]})


# ---------------------------------------------------------------------------------------------------- KITTI


def kitti_id(frame: str, drive: str = KITTI_DRIVE) -> str:
    """The prepared-dataset id of a KITTI frame: ``<drive>_sync_<frame>``."""
    return f"{drive}_sync_{frame}"


def place_kitti_frame(shared_dir: Path, raw_root: Path, depth_root: Path, date: str, drive: str, frame: str,
                      subset: str, rgb: np.ndarray | None = None, depth: np.ndarray | None = None) -> None:
    """File one frame as KITTI does: ``raw_root/<date>/<drive>_sync/image_02/data/<frame>.png`` and
    ``depth_root/<subset>/<drive>_sync/proj_depth/groundtruth/image_02/<frame>.png``.

    The pixels are the real sample ``frame`` of ``../shared/data/kitti``, or ``rgb`` / ``depth`` if given.
    """
    src = shared_dir / "data" / "kitti"
    rgb_path = raw_root / date / f"{drive}_sync" / "image_02" / "data" / f"{frame}.png"
    gt_path = depth_root / subset / f"{drive}_sync" / "proj_depth" / "groundtruth" / "image_02" / f"{frame}.png"
    for path, array, sample in ((rgb_path, rgb, src / "rgb" / f"{frame}.png"),
                                (gt_path, depth, src / "depth" / f"{frame}.png")):
        path.parent.mkdir(parents=True, exist_ok=True)
        if array is None:
            shutil.copyfile(sample, path)
        else:
            Image.fromarray(array).save(path)


# Frame size of the rectified frames per recording day (2011_09_26 as the developer frames; another day smaller).
KITTI_DAY_SIZE = {"2011_09_26": (375, 1242), "2011_09_28": (370, 1224), "2011_09_29": (374, 1238)}
KITTI_FOCAL = {"2011_09_26": 721.5377, "2011_09_28": 707.0493, "2011_09_29": 718.3351}


def kitti_train_pixels(drive: str, frame: str) -> tuple[np.ndarray, np.ndarray]:
    """Content of a fixture train frame, its own for every (drive, frame): smooth colour ramps (cheap PNGs) and a
    sparse uint16 ground truth (value / 256 = metres, 0 = no LiDAR point), at its recording day's frame size."""
    height, width = KITTI_DAY_SIZE[drive[:10]]
    seed = int(drive[-4:]) * 10_000 + int(frame)
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    phase = rng.integers(0, 256, size=3)
    rgb = np.stack([(rows * (c + 1) // 3 + cols // (c + 2) + phase[c]) % 256 for c in range(3)], axis=-1)
    depth = np.where(rng.random((height, width)) < 0.05, (rows + 1) * 64 + seed % 997, 0)
    return rgb.astype(np.uint8), depth.astype(np.uint16)


def write_eigen_train_split(path: Path, frames: dict[str, list[str]], seed: int = 0) -> None:
    """An Eigen train split file in the real format (``<rgb> <gt> <focal>``, every line with ground truth), its
    lines shuffled as in the real file; ``frames`` maps a drive (``2011_09_26_drive_0001``) to its frame numbers."""
    lines = [f"{drive[:10]}/{drive}_sync/image_02/data/{frame}.png "
             f"{drive}_sync/proj_depth/groundtruth/image_02/{frame}.png {KITTI_FOCAL[drive[:10]]}"
             for drive, numbers in frames.items() for frame in numbers]
    order = np.random.default_rng(seed).permutation(len(lines))
    path.write_text("\n".join(lines[i] for i in order) + "\n")


def _zip_tree(root: Path, archive: Path) -> None:
    """Zip every file under ``root`` with paths relative to it (PNGs are compressed already: stored)."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, path.relative_to(root).as_posix())


def write_kitti_archives(shared_dir: Path, dest_dir: Path,
                         train_frames: dict[str, list[str]] | None = None) -> dict[str, Path]:
    """The two real KITTI frames as the KITTI downloads hold them, in ``dest_dir``.

    ``<drive>_sync.zip`` unpacks to ``<date>/<drive>_sync/image_02/data/<frame>.png``; ``data_depth_annotated.zip``
    to ``train|val/<drive>_sync/proj_depth/groundtruth/image_02/<frame>.png`` (the first frame under train/, the
    second under val/). Each archive also holds an entry the workflow must not extract (another camera's
    data), as the real ones hold far more than the Eigen test frames.

    ``train_frames`` (drive -> frame numbers) adds train frames (:func:`kitti_train_pixels`): one
    ``<drive>_sync.zip`` per drive, their ground truth under ``train/`` of the same annotated-depth zip.

    Returns:
        ``{"raw": <drive>_sync.zip, "depth": data_depth_annotated.zip}``, plus ``<drive>: <drive>_sync.zip`` per
        train drive.
    """
    staging = dest_dir / "kitti_staging"
    raw_root, depth_root = staging / "raw", staging / "annotated"
    for frame, subset in zip(KITTI_FRAMES, KITTI_SUBSETS):
        place_kitti_frame(shared_dir, raw_root, depth_root, KITTI_DATE, KITTI_DRIVE, frame, subset)
    unused = [raw_root / KITTI_DATE / f"{KITTI_DRIVE}_sync" / "image_03" / "timestamps.txt",
              depth_root / "train" / f"{KITTI_DRIVE}_sync" / "proj_depth" / "groundtruth" / "image_03" / "unused.txt"]
    for path in unused:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not part of the Eigen test split\n")
    train_raw_root = staging / "train_raw"
    archives = {"raw": dest_dir / f"{KITTI_DRIVE}_sync.zip", "depth": dest_dir / "data_depth_annotated.zip"}
    for drive, numbers in (train_frames or {}).items():
        for frame in numbers:
            rgb, depth = kitti_train_pixels(drive, frame)
            place_kitti_frame(shared_dir, train_raw_root / drive, depth_root, drive[:10], drive, frame, "train", rgb,
                              depth)
        archives[drive] = dest_dir / f"{drive}_sync.zip"
        _zip_tree(train_raw_root / drive, archives[drive])
    _zip_tree(raw_root, archives["raw"])
    _zip_tree(depth_root, archives["depth"])
    shutil.rmtree(staging)
    return archives


# ----------------------------------------------------------------------------------------- reference metrics


@dataclass(frozen=True)
class RealSample:
    """One real developer frame: dataset (``nyu`` / ``kitti``), its prepared-dataset id, and its source PNGs."""

    dataset: str
    image_id: str
    rgb: Path
    depth: Path

    def depth_m(self) -> np.ndarray:
        """Ground truth in metres, ``(H, W)`` float32 (0 = no measurement)."""
        return read_png(self.depth).astype(np.float32) / np.float32(DEPTH_SCALE[self.dataset])


def real_samples(shared_dir: Path) -> list[RealSample]:
    """The 8 NYU and 2 KITTI developer frames, NYU first, each dataset in id order."""
    nyu = shared_dir / "data" / "nyu_test"
    kitti = shared_dir / "data" / "kitti"
    return ([RealSample("nyu", f"{i:05d}", nyu / f"{i:05d}_colors.png", nyu / f"{i:05d}_depth.png") for i in NYU_REAL]
            + [RealSample("kitti", kitti_id(f), kitti / "rgb" / f"{f}.png", kitti / "depth" / f"{f}.png")
               for f in KITTI_FRAMES])


def evaluation_window(dataset: str, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns that are evaluated: Eigen et al. (NIPS 2014) for NYU, Garg et al. (ECCV 2016) for KITTI.

    Eigen: rows 45..470, columns 41..600 of the 480x640 frame. Garg: rows 0.40810811 H .. 0.99189189 H,
    columns 0.03594771 W .. 0.96405229 W, truncated to integers as the official eval does.
    """
    if dataset == "nyu":
        assert (height, width) == (480, 640)
        return slice(45, 471), slice(41, 601)
    return (slice(int(0.40810811 * height), int(0.99189189 * height)),
            slice(int(0.03594771 * width), int(0.96405229 * width)))


def reference_metrics(pred: np.ndarray, gt: np.ndarray, dataset: str) -> dict[str, float]:
    """The nine accuracy metrics of one full-frame prediction, from their definitions (BTS/PixelFormer eval).

    Args:
        pred: ``(H, W)`` predicted depth, metres.
        gt: ``(H, W)`` ground truth, metres, 0 = invalid.
        dataset: ``nyu`` or ``kitti`` (crop and depth cap).

    Returns:
        ``abs_rel, sq_rel, rmse, rmse_log, log10, silog, delta1, delta2, delta3`` (``silog`` x100).
    """
    cap = DEPTH_CAP[dataset]
    rows, cols = evaluation_window(dataset, *gt.shape)
    g = gt[rows, cols].astype(np.float64).ravel()
    p = np.clip(pred[rows, cols], MIN_DEPTH, cap).astype(np.float64).ravel()
    keep = (g > MIN_DEPTH) & (g < cap)
    g, p = g[keep], p[keep]
    threshold = np.maximum(g / p, p / g)
    e = np.log(p) - np.log(g)
    return {
        "abs_rel": float(np.mean(np.abs(g - p) / g)),
        "sq_rel": float(np.mean((g - p) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
        "rmse_log": float(np.sqrt(np.mean(e**2))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "silog": float(np.sqrt(max(np.mean(e**2) - np.mean(e) ** 2, 0.0)) * 100),
        "delta1": float(np.mean(threshold < 1.25)),
        "delta2": float(np.mean(threshold < 1.25**2)),
        "delta3": float(np.mean(threshold < 1.25**3)),
    }


def predict_with_cli(shared_dir: Path, samples: list[RealSample], out_dir: Path) -> dict[str, np.ndarray]:
    """Depth of every sample from the ``depthxai predict`` command with the official METER XXS checkpoint.

    Runs the command's ``main`` in this process (same argument parsing and output file as the installed
    ``depthxai`` entry point, without a torch import per image).

    Returns:
        ``{image_id: (H, W) float32 metres}``.
    """
    from depthxai.cli import main

    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = {}
    for sample in samples:
        out = out_dir / f"{sample.image_id}.npy"
        status = main(["predict", "--model", f"meter_xxs_{sample.dataset}",
                       "--weights", str(shared_dir / "mirror" / CHECKPOINTS[sample.dataset]),
                       "--device", "cpu", "--threads", "1", "--out", str(out), "-q", str(sample.rgb)])
        assert status == 0, f"depthxai predict failed on {sample.rgb}"
        predictions[sample.image_id] = np.load(out)
    return predictions
