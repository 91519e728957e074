"""NYU Depth v2 and KITTI Eigen preparation on fixtures in the exact upstream formats, built from real frames.

NYU: a MATLAB v7.3 file (HDF5 behind a 512-byte MATLAB header, arrays stored transposed) with the 8 real
test frames of ../shared/data/nyu_test at their true indices, plus a MATLAB v5 splits.mat.
KITTI: a raw/annotated folder tree with the Eigen naming, holding the 2 real frames of ../shared/data/kitti.
The builders live in tests/real_fixtures.py (shared with test_paper_preset.py).
Every prepared pixel is compared with the source PNGs.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
from real_fixtures import (
    KITTI_DRIVE,
    KITTI_FRAMES,
    NYU_REAL,
    kitti_train_pixels,
    nyu_train_pixels,
    place_kitti_frame,
    read_png,
    write_eigen_train_split,
    write_nyu_labeled,
    write_nyu_splits,
)

from depthxai.cli import main
from depthxai.data.io import mean_rgb, read_dataset_info, read_index
from depthxai.data.kitti import (
    IMAGE_SIZE,
    eigen_drives,
    fit_to_size,
    prepare_kitti_eigen,
    read_eigen_split,
    select_train_lines,
)
from depthxai.data.nyu import NYU_CAMERA, prepare_nyu, read_nyu_splits
from depthxai.errors import DataError

# ------------------------------------------------------------------------------------------------------ NYU

NYU_N = 39  # a short labeled file: the real frames at their true indices (the largest is 38), nothing more
NYU_TRAIN = tuple(i for i in range(NYU_N) if i not in NYU_REAL)  # the fixture's trainNdxs (0-based), 31 frames
NYU_TRAIN_CONTENT = NYU_TRAIN[::3]  # the train frames that get pixels of their own (the others stay zero)


@pytest.fixture(scope="module")
def nyu_sources(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("nyu_src")
    labeled = root / "nyu_depth_v2_labeled.mat"
    frames = write_nyu_labeled(shared_dir, labeled, NYU_N, train_frames=NYU_TRAIN_CONTENT)
    splits = root / "splits.mat"
    write_nyu_splits(splits, NYU_REAL, NYU_N)
    return {"labeled": labeled, "splits": splits, **frames}


def test_fixture_has_the_real_file_formats(nyu_sources, shared_dir):
    labeled, splits = nyu_sources["labeled"], nyu_sources["splits"]
    assert scipy.io.matlab.matfile_version(labeled) == (2, 0)  # what MATLAB writes for -v7.3
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(labeled)  # v7.3 is HDF5, not readable as v5
    with h5py.File(labeled, "r") as f:
        assert f.userblock_size == 512
        assert f["images"].shape == (NYU_N, 3, 640, 480) and f["depths"].shape == (NYU_N, 640, 480)
    assert scipy.io.matlab.matfile_version(splits) == scipy.io.matlab.matfile_version(
        shared_dir / "mirror" / "splits.mat") == (1, 0)


def test_official_splits_mat(shared_dir):
    splits = read_nyu_splits(shared_dir / "mirror" / "splits.mat")
    assert splits["test"].shape == (654,) and splits["train"].shape == (795,)
    assert not set(splits["test"]) & set(splits["train"])
    assert sorted(set(splits["test"]) | set(splits["train"])) == list(range(1449))
    assert set(NYU_REAL) <= set(splits["test"])  # the developer frames are official test frames


def test_prepare_nyu_filled_is_pixel_exact(nyu_sources, tmp_path):
    out = tmp_path / "nyu"
    info = prepare_nyu(nyu_sources["labeled"], nyu_sources["splits"], out, progress=False)
    ids = [f"{i:05d}" for i in NYU_REAL]
    index = read_index(out)
    assert list(index["id"]) == ids and set(index["split"]) == {"test"}
    for index_value, frame_id in zip(NYU_REAL, ids):
        rgb = read_png(out / "rgb" / f"{frame_id}.png")
        depth = read_png(out / "depth" / f"{frame_id}.png")
        assert rgb.dtype == np.uint8 and np.array_equal(rgb, nyu_sources["rgb"][index_value])
        assert depth.dtype == np.uint16 and np.array_equal(depth, nyu_sources["depth_mm"][index_value])
    assert read_dataset_info(out) == info
    assert (info.name, info.kind, info.depth_scale, info.min_depth, info.max_depth, info.eval_crop, info.image_size) \
        == ("nyu", "nyu", 1000.0, 1e-3, 10.0, "eigen", (480, 640))
    assert info.camera == NYU_CAMERA and info.extra["n_frames_in_source"] == NYU_N


def test_prepare_nyu_raw_keeps_holes_and_ids_subset(nyu_sources, tmp_path):
    out = tmp_path / "nyu_raw"
    prepare_nyu(nyu_sources["labeled"], nyu_sources["splits"], out, depth_source="raw", ids=["00013", 1],
                progress=False)
    assert list(read_index(out)["id"]) == ["00001", "00013"]
    for index_value in (1, 13):
        depth = read_png(out / "depth" / f"{index_value:05d}.png")
        holes = nyu_sources["holes"][index_value]
        assert holes.mean() > 0.1 and np.all(depth[holes] == 0)
        assert np.array_equal(depth[~holes], nyu_sources["depth_mm"][index_value][~holes])


def test_prepare_nyu_train_split_reads_the_right_frames(nyu_sources, tmp_path):
    # frame 2 has pixels of its own, its neighbours 1 (a test frame) and 3 (all zero) others: reading index i+1 or
    # i-1 by mistake would show
    out = tmp_path / "nyu_train"
    prepare_nyu(nyu_sources["labeled"], nyu_sources["splits"], out, split="train", ids=[2, 3], progress=False)
    assert np.array_equal(read_png(out / "rgb" / "00002.png"), nyu_sources["rgb"][2])
    assert np.array_equal(read_png(out / "depth" / "00002.png"), nyu_sources["depth_mm"][2])
    assert not read_png(out / "rgb" / "00003.png").any() and not read_png(out / "depth" / "00003.png").any()


def test_prepare_nyu_train_rows_join_the_test_split(nyu_sources, tmp_path):
    # through the CLI, as the prepare_nyu rule runs it: every 3rd official train frame joins the 8 test frames
    out = tmp_path / "nyu"
    status = main(["prepare-nyu", "--labeled", str(nyu_sources["labeled"]), "--splits", str(nyu_sources["splits"]),
                   "--train-every", "3", "--out", str(out), "-q"])
    assert status == 0
    index = read_index(out)
    train_ids = [f"{i:05d}" for i in NYU_TRAIN[::3]]  # sorted train indices 2, 3, 4, 5, ... -> 2, 5, 9, ...
    assert len(train_ids) == 11 and train_ids[:3] == ["00002", "00005", "00009"]
    assert list(read_index(out, "train")["id"]) == train_ids
    assert list(read_index(out, "test")["id"]) == [f"{i:05d}" for i in NYU_REAL]
    assert len(index) == 19 and set(index["split"]) == {"test", "train"}
    for index_value in NYU_TRAIN[::3]:  # the frames with content of their own: exactly the right frame was read
        rgb, depth_mm = nyu_sources["rgb"][index_value], nyu_sources["depth_mm"][index_value]
        assert rgb.any() and np.array_equal(read_png(out / "rgb" / f"{index_value:05d}.png"), rgb)
        assert np.array_equal(read_png(out / "depth" / f"{index_value:05d}.png"), depth_mm)
    info = read_dataset_info(out)
    assert (info.extra["n_images"], info.extra["n_train"], info.extra["train_every"]) == (8, 11, 3)
    # consumers of the test split (mean_rgb rule, predict, evaluate) see only the test frames
    expected = np.mean([nyu_sources["rgb"][i].reshape(-1, 3).mean(axis=0) for i in NYU_REAL], axis=0) / 255
    assert np.allclose(mean_rgb(out, "test"), expected, atol=1e-9)
    test_only = tmp_path / "nyu_test_only"
    prepare_nyu(nyu_sources["labeled"], nyu_sources["splits"], test_only, progress=False)
    assert mean_rgb(out, "test") == mean_rgb(test_only, "test")
    with pytest.raises(DataError, match="train_every adds train frames to the test split"):
        prepare_nyu(nyu_sources["labeled"], nyu_sources["splits"], tmp_path / "x", split="train", train_every=2,
                    progress=False)


def test_nyu_train_fixture_frames_differ(shared_dir, nyu_sources):
    # the fixture's train content is what nyu_train_pixels makes, and no two frames share pixels
    first, second = NYU_TRAIN_CONTENT[:2]
    assert np.array_equal(nyu_sources["rgb"][first], nyu_train_pixels(shared_dir, first)[0])
    assert not np.array_equal(nyu_sources["rgb"][first], nyu_sources["rgb"][second])


def test_prepare_nyu_errors_name_the_file(nyu_sources, tmp_path):
    with pytest.raises(DataError, match=r"\['00002'\] are not in the 'test' split"):
        prepare_nyu(nyu_sources["labeled"], nyu_sources["splits"], tmp_path / "a", ids=["00002"], progress=False)
    with pytest.raises(DataError, match="not a MATLAB v7.3"):
        prepare_nyu(nyu_sources["splits"], nyu_sources["splits"], tmp_path / "b", progress=False)
    with pytest.raises(DataError, match="not a readable MATLAB v5"):
        prepare_nyu(nyu_sources["labeled"], nyu_sources["labeled"], tmp_path / "c", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "dataset.json").exists()


# ---------------------------------------------------------------------------------------------------- KITTI


def test_real_eigen_split_file(shared_dir):
    lines = read_eigen_split(shared_dir / "mirror" / "eigen_test_files_with_gt.txt")
    with_gt = [entry for entry in lines if entry.gt is not None]
    assert (len(lines), len(with_gt)) == (697, 652)
    assert len({entry.id for entry in with_gt}) == 652 and len(eigen_drives(lines)) == 28
    first = lines[0]
    assert (first.id, first.rgb, first.gt, first.focal) == (
        "2011_09_26_drive_0002_sync_0000000069", "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png",
        "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png", 721.5377)
    focal_by_date = {(entry.date, entry.focal) for entry in lines}
    assert focal_by_date == {("2011_09_26", 721.5377), ("2011_09_28", 707.0493), ("2011_09_29", 718.3351),
                             ("2011_09_30", 707.0912), ("2011_10_03", 718.856)}
    assert {f"{KITTI_DRIVE}_sync_{frame}" for frame in KITTI_FRAMES} <= {entry.id for entry in with_gt}


def test_prepare_kitti_is_pixel_exact(shared_dir, tmp_path):
    raw_root, depth_root, out = tmp_path / "raw", tmp_path / "annotated", tmp_path / "kitti"
    # one ground-truth map under train/, the other under val/, as data_depth_annotated.zip splits drives
    for frame, subset in zip(KITTI_FRAMES, ("train", "val")):
        place_kitti_frame(shared_dir, raw_root, depth_root, "2011_09_26", KITTI_DRIVE, frame, subset)
    ids = [f"{KITTI_DRIVE}_sync_{frame}" for frame in KITTI_FRAMES]
    info = prepare_kitti_eigen(shared_dir / "mirror" / "eigen_test_files_with_gt.txt", raw_root, depth_root, out,
                               ids=ids[::-1], progress=False)
    assert list(read_index(out)["id"]) == ids
    for frame, frame_id in zip(KITTI_FRAMES, ids):
        rgb = read_png(out / "rgb" / f"{frame_id}.png")
        depth = read_png(out / "depth" / f"{frame_id}.png")
        assert np.array_equal(rgb, read_png(shared_dir / "data" / "kitti" / "rgb" / f"{frame}.png"))
        source_depth = read_png(shared_dir / "data" / "kitti" / "depth" / f"{frame}.png")
        assert depth.dtype == np.uint16 and np.array_equal(depth, source_depth) and (source_depth == 0).mean() > 0.5
        assert info.extra["frames"][frame_id]["offset"] == [0, 0]
    assert (info.name, info.kind, info.depth_scale, info.min_depth, info.max_depth, info.eval_crop, info.image_size) \
        == ("kitti", "kitti", 256.0, 1e-3, 80.0, "garg", (375, 1242))
    assert info.camera == {"fx": 721.5377, "fy": 721.5377} and info.extra["n_lines_without_gt"] == 45
    assert json.loads((out / "dataset.json").read_text())["image_size"] == [375, 1242]


def test_prepare_kitti_pads_and_crops_other_frame_sizes(shared_dir, tmp_path):
    # A split file in the same format with frames of other recording days: 370x1224 (2011_09_28) and
    # 376x1241 (2011_10_03), made from the real frames; plus a line without ground truth.
    raw_root, depth_root, out = tmp_path / "raw", tmp_path / "annotated", tmp_path / "kitti"
    src = shared_dir / "data" / "kitti"
    rgb5, depth5 = read_png(src / "rgb" / "0000000005.png"), read_png(src / "depth" / "0000000005.png")
    rgb50, depth50 = read_png(src / "rgb" / "0000000050.png"), read_png(src / "depth" / "0000000050.png")
    small_rgb, small_depth = rgb5[3:373, 7:1231], depth5[3:373, 7:1231]  # 370 x 1224
    tall_rgb = np.concatenate([rgb50, rgb50[-1:]], axis=0)[:, :1241]  # 376 x 1241
    tall_depth = np.concatenate([depth50, depth50[:1]], axis=0)[:, :1241]
    place_kitti_frame(shared_dir, raw_root, depth_root, "2011_09_28", "2011_09_28_drive_0002", "0000000005", "val",
                 small_rgb, small_depth)
    place_kitti_frame(shared_dir, raw_root, depth_root, "2011_10_03", "2011_10_03_drive_0047", "0000000050", "train",
                 tall_rgb, tall_depth)
    split = tmp_path / "split.txt"
    split.write_text(
        "2011_09_28/2011_09_28_drive_0002_sync/image_02/data/0000000005.png "
        "2011_09_28_drive_0002_sync/proj_depth/groundtruth/image_02/0000000005.png 707.0493\n"
        "2011_09_28/2011_09_28_drive_0002_sync/image_02/data/0000000007.png None 707.0493\n"
        "2011_10_03/2011_10_03_drive_0047_sync/image_02/data/0000000050.png "
        "2011_10_03_drive_0047_sync/proj_depth/groundtruth/image_02/0000000050.png 718.856"
    )
    info = prepare_kitti_eigen(split, raw_root, depth_root, out, progress=False)
    small_id, tall_id = "2011_09_28_drive_0002_sync_0000000005", "2011_10_03_drive_0047_sync_0000000050"
    assert list(read_index(out)["id"]) == [small_id, tall_id]
    # independent expectation: 5 missing rows -> 2 above, 3 below; 18 missing columns -> 9 each side
    expected_rgb = np.pad(small_rgb, ((2, 3), (9, 9), (0, 0)), mode="edge")
    expected_depth = np.pad(small_depth, ((2, 3), (9, 9)))
    assert np.array_equal(read_png(out / "rgb" / f"{small_id}.png"), expected_rgb)
    assert np.array_equal(read_png(out / "depth" / f"{small_id}.png"), expected_depth)
    # one extra row -> the last is cut; one missing column -> padded on the right
    assert np.array_equal(read_png(out / "rgb" / f"{tall_id}.png"), np.pad(tall_rgb[:375], ((0, 0), (0, 1), (0, 0)),
                                                                       mode="edge"))
    assert np.array_equal(read_png(out / "depth" / f"{tall_id}.png"), np.pad(tall_depth[:375], ((0, 0), (0, 1))))
    frames = info.extra["frames"]
    assert frames[small_id]["source_size"] == [370, 1224] and frames[small_id]["offset"] == [2, 9]
    assert frames[tall_id]["source_size"] == [376, 1241] and frames[tall_id]["offset"] == [0, 0]
    assert info.camera == {} and info.extra["n_lines_without_gt"] == 1
    # the recorded offset maps stored pixels back to source pixels
    dy, dx = frames[small_id]["offset"]
    stored = read_png(out / "depth" / f"{small_id}.png")
    assert np.array_equal(stored[dy:dy + 370, dx:dx + 1224], small_depth)


def test_fit_to_size_offsets():
    image = np.arange(4 * 6).reshape(4, 6)
    fitted, offset = fit_to_size(image, (3, 8), pad_mode="constant")
    assert offset == (0, 1) and fitted.shape == (3, 8)
    assert np.array_equal(fitted, np.pad(image[0:3], ((0, 0), (1, 1))))
    fitted, offset = fit_to_size(image, (2, 6), pad_mode="edge")
    assert offset == (-1, 0) and np.array_equal(fitted, image[1:3])
    assert IMAGE_SIZE == (375, 1242)


def test_prepare_kitti_missing_files_name_the_download(shared_dir, tmp_path):
    split = shared_dir / "mirror" / "eigen_test_files_with_gt.txt"
    frame_id = f"{KITTI_DRIVE}_sync_0000000005"
    with pytest.raises(DataError) as info:
        prepare_kitti_eigen(split, tmp_path / "raw", tmp_path / "gt", tmp_path / "out", ids=[frame_id], progress=False)
    message = str(info.value)
    assert f"{KITTI_DRIVE}_sync.zip" in message and f"raw_data/{KITTI_DRIVE}/{KITTI_DRIVE}_sync.zip" in message
    assert "line 72" in message and f"kitti_raw_{KITTI_DRIVE}" in message
    place_kitti_frame(shared_dir, tmp_path / "raw", tmp_path / "unused", "2011_09_26", KITTI_DRIVE, "0000000005", "val")
    with pytest.raises(DataError, match="data_depth_annotated.zip"):
        prepare_kitti_eigen(split, tmp_path / "raw", tmp_path / "gt", tmp_path / "out", ids=[frame_id], progress=False)
    with pytest.raises(DataError, match="not lines with ground truth"):
        prepare_kitti_eigen(split, tmp_path / "raw", tmp_path / "gt", tmp_path / "out",
                            ids=["2011_09_26_drive_0002_sync_0000000075"], progress=False)  # a "None" line
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_malformed_split_lines_are_reported(tmp_path):
    bad = tmp_path / "split.txt"
    bad.write_text("2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png None\n")
    with pytest.raises(DataError, match="line 1: expected"):
        read_eigen_split(bad)
    bad.write_text("2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png "
                   "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000070.png 721.5377\n")
    with pytest.raises(DataError, match="is not the annotated depth of"):
        read_eigen_split(bad)


def test_prepared_index_is_readable_by_pandas(shared_dir, tmp_path):
    # index.csv keeps ids as strings (leading zeros) for both datasets
    raw_root, depth_root, out = tmp_path / "raw", tmp_path / "annotated", tmp_path / "kitti"
    place_kitti_frame(shared_dir, raw_root, depth_root, "2011_09_26", KITTI_DRIVE, "0000000050", "train")
    prepare_kitti_eigen(shared_dir / "mirror" / "eigen_test_files_with_gt.txt", raw_root, depth_root, out,
                        ids=[f"{KITTI_DRIVE}_sync_0000000050"], progress=False)
    table = pd.read_csv(out / "index.csv", dtype=str)
    assert table.to_dict("records") == [{"id": f"{KITTI_DRIVE}_sync_0000000050", "split": "test",
                                         "rgb": f"rgb/{KITTI_DRIVE}_sync_0000000050.png",
                                         "depth": f"depth/{KITTI_DRIVE}_sync_0000000050.png"}]


# ---------------------------------------------------------------------------------------- KITTI train frames

# The fixture's Eigen train file: two drives to select (one of another recording day and frame size) and one
# that the selection leaves out (its files are never placed, so reading it would fail).
TRAIN_FRAMES = {"2011_09_26_drive_0001": [f"{n:010d}" for n in range(5, 12)],
                "2011_09_29_drive_0004": [f"{n:010d}" for n in (5, 6, 7, 9, 10)],
                "2011_09_26_drive_0057": [f"{n:010d}" for n in range(5, 8)]}
TRAIN_DRIVES = ["2011_09_29_drive_0004", "2011_09_26_drive_0001"]


@pytest.fixture()
def kitti_train_tree(shared_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """Raw and annotated trees with the two real test frames and the train frames of TRAIN_DRIVES."""
    raw_root, depth_root = tmp_path / "raw", tmp_path / "annotated"
    for frame, subset in zip(KITTI_FRAMES, ("train", "val")):
        place_kitti_frame(shared_dir, raw_root, depth_root, "2011_09_26", KITTI_DRIVE, frame, subset)
    for drive in TRAIN_DRIVES:
        for frame in TRAIN_FRAMES[drive]:
            place_kitti_frame(shared_dir, raw_root, depth_root, drive[:10], drive, frame, "train",
                              *kitti_train_pixels(drive, frame))
    train_split = tmp_path / "eigen_train_files_with_gt.txt"
    write_eigen_train_split(train_split, TRAIN_FRAMES)
    return {"raw": raw_root, "depth": depth_root, "train_split": train_split}


def test_select_train_lines_takes_every_kth_frame_of_the_drives(kitti_train_tree):
    lines = read_eigen_split(kitti_train_tree["train_split"], "train")
    assert len(lines) == 15 and [entry.frame for entry in lines] != sorted(entry.frame for entry in lines)  # shuffled
    selected = select_train_lines(lines, TRAIN_DRIVES, every=2)
    # per drive, by frame number: 5 7 9 11 of drive 0001; 5 7 10 of drive 0004 (its 8th frame is absent)
    assert [entry.id for entry in selected] == [
        "2011_09_26_drive_0001_sync_0000000005", "2011_09_26_drive_0001_sync_0000000007",
        "2011_09_26_drive_0001_sync_0000000009", "2011_09_26_drive_0001_sync_0000000011",
        "2011_09_29_drive_0004_sync_0000000005", "2011_09_29_drive_0004_sync_0000000007",
        "2011_09_29_drive_0004_sync_0000000010"]
    assert len(select_train_lines(lines, TRAIN_DRIVES, every=1)) == 12
    with pytest.raises(DataError, match=r"no line with ground truth for drive 2011_09_26_drive_0002"):
        select_train_lines(lines, ["2011_09_26_drive_0002"], split_file=kitti_train_tree["train_split"])


def test_prepare_kitti_writes_the_configured_train_frames(shared_dir, kitti_train_tree, tmp_path):
    out = tmp_path / "kitti"
    test_split = shared_dir / "mirror" / "eigen_test_files_with_gt.txt"
    test_ids = [f"{KITTI_DRIVE}_sync_{frame}" for frame in KITTI_FRAMES]
    # through the CLI, as the prepare_kitti rule runs it
    status = main(["prepare-kitti", "--split-file", str(test_split), "--raw-root", str(kitti_train_tree["raw"]),
                   "--depth-root", str(kitti_train_tree["depth"]), "--ids", *test_ids,
                   "--train-split-file", str(kitti_train_tree["train_split"]), "--train-drives", *TRAIN_DRIVES,
                   "--train-every", "3", "--out", str(out), "-q"])
    assert status == 0
    expected = {"2011_09_26_drive_0001": ["0000000005", "0000000008", "0000000011"],
                "2011_09_29_drive_0004": ["0000000005", "0000000009"]}
    train_ids = [f"{drive}_sync_{frame}" for drive, frames in expected.items() for frame in frames]
    assert list(read_index(out, "train")["id"]) == train_ids  # drive 0057 is in the file but not configured
    assert list(read_index(out, "test")["id"]) == test_ids
    for drive, frames in expected.items():
        for frame in frames:
            rgb, depth = kitti_train_pixels(drive, frame)
            frame_id = f"{drive}_sync_{frame}"
            if drive.startswith("2011_09_29"):  # 374 x 1238 -> 375 x 1242: 0 rows above, 1 below; 2 columns each side
                rgb = np.pad(rgb, ((0, 1), (2, 2), (0, 0)), mode="edge")
                depth = np.pad(depth, ((0, 1), (2, 2)))
            assert np.array_equal(read_png(out / "rgb" / f"{frame_id}.png"), rgb), frame_id
            assert np.array_equal(read_png(out / "depth" / f"{frame_id}.png"), depth), frame_id
    info = read_dataset_info(out)
    assert (info.extra["n_images"], info.extra["n_train"], info.extra["train_every"]) == (2, 5, 3)
    assert info.extra["train_drives"] == sorted(TRAIN_DRIVES)
    assert info.camera == {"fx": 721.5377, "fy": 721.5377}  # from the test frames (one day)
    # the test split's mean colour (mean_rgb rule) is that of the two test frames alone
    source = [read_png(shared_dir / "data" / "kitti" / "rgb" / f"{frame}.png") for frame in KITTI_FRAMES]
    expected_mean = np.mean([image.reshape(-1, 3).mean(axis=0) for image in source], axis=0) / 255
    assert np.allclose(mean_rgb(out, "test"), expected_mean, atol=1e-9)


def test_prepare_kitti_train_errors_name_the_download(shared_dir, kitti_train_tree, tmp_path):
    test_split = shared_dir / "mirror" / "eigen_test_files_with_gt.txt"
    ids = [f"{KITTI_DRIVE}_sync_{KITTI_FRAMES[0]}"]
    roots = (kitti_train_tree["raw"], kitti_train_tree["depth"])

    def prepare(drives, split_file=kitti_train_tree["train_split"], depth_root=roots[1]):
        return prepare_kitti_eigen(test_split, roots[0], depth_root, tmp_path / "out", ids=ids,
                                   train_split_file=split_file, train_drives=drives, progress=False)

    drive = "2011_09_26_drive_0057"  # in the train file, but its archive was not extracted
    with pytest.raises(DataError) as info:
        prepare([drive])
    message = str(info.value)
    assert f"{drive}_sync.zip" in message and f"raw_data/{drive}/{drive}_sync.zip" in message
    assert f"downloads key kitti_train_raw_{drive}" in message and "eigen_train_files_with_gt.txt line" in message
    with pytest.raises(DataError, match=r"Eigen train split file not found; fetch the `kitti_eigen_train_split`"):
        prepare(TRAIN_DRIVES, split_file=tmp_path / "missing.txt")
    with pytest.raises(DataError, match=r"data_depth_annotated\.zip"):  # ground truth of the train frames missing
        empty_gt = tmp_path / "gt_test_only"
        place_kitti_frame(shared_dir, tmp_path / "unused", empty_gt, "2011_09_26", KITTI_DRIVE, KITTI_FRAMES[0], "val")
        prepare(TRAIN_DRIVES, depth_root=empty_gt)
    # a test drive listed as a train drive: its frames would be in both splits
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(kitti_train_tree["train_split"].read_text() + test_split.read_text().splitlines()[71] + "\n")
    with pytest.raises(DataError, match=r"also test frames"):
        prepare([KITTI_DRIVE], split_file=mixed)
    assert not (tmp_path / "out" / "dataset.json").exists()
