"""The paper preset (config/paper.yaml) end to end: the whole Snakemake DAG on real images with the official
METER XXS checkpoints, restricted to what can be had offline.

The preset is loaded as it is and changed only where this machine forces it: the mirror folder, CPU, one
thread, the METER XXS model only (its checkpoints are the mirrored ones), cheaper method and evaluation settings
(the learned explainer included: it trains on the train frames below), the science stage off (KITTI has 2 frames
here, its localisation mosaics need 4), PNG figures only, the datasets' test splits restricted to the real sample
ids and NYU's train frames to every 200th (4). The mirror holds

- the real files of ../shared/mirror (both checkpoints, splits.mat, both split files), which keep the sha256 the
  preset pins for them: the download rule verifies them exactly as it would for a user;
- in place of the 2.8 GB nyu_depth_v2_labeled.mat, the 28 raw KITTI drives and the 14 GB annotated depth, files
  in the exact upstream formats holding the real sample frames (tests/real_fixtures.py): a MATLAB v7.3 file with
  all 1449 frame slots (the real splits.mat indexes into it; frames other than the 8 samples are empty, except
  the 4 selected train frames, which get pixels of their own), and the two KITTI zips laid out as the KITTI
  servers lay them out;
- in place of the Eigen train split file and the preset's 4 raw train drives: a train split file in the real
  format with 2 frames of each of those drives (and of one drive the preset does not select), and one zip per
  drive; their ground truth is in the annotated-depth zip. The downloads entries of all these fixtures get the
  fixtures' own sha256 and size.

The downloads table keeps only these mirrored entries (the other 27 raw test drives, METER XS/S and PixelFormer
are not mirrored); everything else of the preset (datasets' download roles and patterns, the KITTI train
selection, extract_members, stats, attribution target, ...) is used as it is.

Run time: about 300 s on 2 CPU cores shared with other test runs (load average 5), nearly all of it the Snakemake
DAG (51 jobs; 145 s and 41 jobs at load 3-4 before the explainer joined). The explainer's 6 jobs (train_explainer,
attribute, evaluate per dataset) are about a quarter of the summed job time; the evaluate jobs the largest part.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from real_fixtures import (
    KITTI_DRIVE,
    NYU_LABELED_FRAMES,
    RealSample,
    kitti_train_pixels,
    nyu_train_pixels,
    predict_with_cli,
    read_png,
    real_samples,
    reference_metrics,
    write_eigen_train_split,
    write_kitti_archives,
    write_nyu_labeled,
)

from depthxai.data.nyu import read_nyu_splits

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
METHODS = ["explainer", "ig", "random", "rollout", "saliency"]
DATASETS = ["kitti", "nyu"]
MODEL = "meter_xxs"
# downloads keys of the real files the preset pins, by their name in ../shared/mirror
REAL_DOWNLOADS = {"meter_xxs_nyu": "build_model_best_nyu_xxs", "meter_xxs_kitti": "build_model_best_kitti_xxs",
                  "nyu_splits": "splits.mat", "nyu_test_files": "nyudepthv2_test_files_with_gt.txt",
                  "kitti_eigen_test_split": "eigen_test_files_with_gt.txt"}
RAW_KEY = f"kitti_raw_{KITTI_DRIVE}"
NYU_TRAIN_EVERY = 200  # of the 795 official train frames: 4
# one step over the 4 train frames per dataset, one target kind (the test-split check of train_explainer runs every
# kind), the CPU-sized net
EXPLAINER_TEST = {"epochs": 1, "batch_size": 8, "width": 8, "target_kinds": ["mean"]}
KITTI_TRAIN = PAPER["datasets"]["kitti"]["train"]
# 2 frames of each train drive of the preset (every 2nd: 1 each), plus a drive it does not select (never fetched,
# never prepared)
KITTI_TRAIN_FILE_FRAMES = {drive: [f"{n:010d}" for n in (5, 6)]
                           for drive in [*KITTI_TRAIN["drives"], "2011_09_26_drive_0057"]}
TIMEOUT_S = 900


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(shared_dir: Path) -> dict[str, dict[str, str]]:
    table = pd.read_csv(shared_dir / "mirror" / "MANIFEST.tsv", sep="\t", dtype=str)
    return {row["file"]: row for row in table.to_dict("records")}


def _build_mirror(shared_dir: Path, mirror: Path) -> dict[str, Path]:
    """The mirror folder: links to the real files, plus the fixtures. Returns the fixture files by downloads key."""
    mirror.mkdir()
    for name in REAL_DOWNLOADS.values():
        (mirror / name).symlink_to(shared_dir / "mirror" / name)
    labeled = mirror / PAPER["downloads"]["nyu_labeled"]["filename"]
    write_nyu_labeled(shared_dir, labeled, NYU_LABELED_FRAMES, train_frames=tuple(_nyu_train_indices(shared_dir)))
    train_frames = {drive: KITTI_TRAIN_FILE_FRAMES[drive] for drive in KITTI_TRAIN["drives"]}
    archives = write_kitti_archives(shared_dir, mirror, train_frames)
    train_split = mirror / PAPER["downloads"]["kitti_eigen_train_split"]["filename"]
    write_eigen_train_split(train_split, KITTI_TRAIN_FILE_FRAMES)
    fixtures = {"nyu_labeled": labeled, "kitti_depth_annotated": archives["depth"], RAW_KEY: archives["raw"],
                "kitti_eigen_train_split": train_split}
    fixtures.update({f"kitti_train_raw_{drive}": archives[drive] for drive in KITTI_TRAIN["drives"]})
    for key, path in fixtures.items():  # the archives must carry the names the preset downloads them as
        assert path.name == PAPER["downloads"][key]["filename"], key
    return fixtures


def _nyu_train_indices(shared_dir: Path) -> list[int]:
    """0-based indices of the NYU train frames the test config selects (every NYU_TRAIN_EVERY-th)."""
    return [int(i) for i in read_nyu_splits(shared_dir / "mirror" / "splits.mat")["train"][::NYU_TRAIN_EVERY]]


def _kitti_train_ids() -> list[str]:
    """Ids of the KITTI train frames the preset's selection (every k-th by frame number) takes from the fixture."""
    return sorted(f"{drive}_sync_{frame}" for drive in KITTI_TRAIN["drives"]
                  for frame in KITTI_TRAIN_FILE_FRAMES[drive][::KITTI_TRAIN["every"]])


def _test_config(mirror: Path, fixtures: dict[str, Path], samples: list[RealSample]) -> dict:
    config = copy.deepcopy(PAPER)
    config.update(mirror=str(mirror), device="cpu", threads=1)
    config["models"] = {MODEL: PAPER["models"][MODEL]}
    config["methods"] = {"saliency": PAPER["methods"]["saliency"], "ig": dict(PAPER["methods"]["ig"], n_steps=4),
                         "rollout": PAPER["methods"]["rollout"], "random": PAPER["methods"]["random"],
                         "explainer": dict(PAPER["methods"]["explainer"], **EXPLAINER_TEST)}
    config["science"] = {"enabled": False}
    config["evaluation"]["fractions"] = [0.0, 0.1, 0.5]
    config["evaluation"]["infidelity"]["n_perturb_samples"] = 2
    config["report"]["formats"] = ["png"]
    for dataset in DATASETS:
        config["datasets"][dataset]["ids"] = [s.image_id for s in samples if s.dataset == dataset]
    config["datasets"]["nyu"]["train"] = {"every": NYU_TRAIN_EVERY}
    # Only the mirrored files: the real ones keep the preset's pinned hashes, the fixtures get their own.
    config["downloads"] = {key: PAPER["downloads"][key] for key in REAL_DOWNLOADS}
    for key, path in fixtures.items():
        spec = {k: v for k, v in PAPER["downloads"][key].items() if k not in ("md5", "sha256", "git_sha1")}
        config["downloads"][key] = dict(spec, sha256=_sha256(path), size=path.stat().st_size)
    return config


@pytest.fixture(scope="module")
def samples(shared_dir: Path) -> list[RealSample]:
    return real_samples(shared_dir)


@pytest.fixture(scope="module")
def paper_run(shared_dir: Path, samples: list[RealSample], tmp_path_factory: pytest.TempPathFactory,
              copy_checkout: Callable[[Path], Path]) -> Path:
    root = tmp_path_factory.mktemp("paper")
    workdir = copy_checkout(root / "checkout")
    fixtures = _build_mirror(shared_dir, root / "mirror")
    (workdir / "paper_test.yaml").write_text(yaml.safe_dump(_test_config(root / "mirror", fixtures, samples)))
    env = {k: v for k, v in os.environ.items() if k != "DEPTHXAI_MIRROR"}  # the config's mirror, nothing else
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "paper_test.yaml"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    elapsed = time.perf_counter() - start
    failed_logs = [f"--- {log}\n{log.read_text()[-1500:]}" for log in sorted(workdir.glob("logs/**/*.log"))
                   if "error" in log.read_text().lower()]
    assert result.returncode == 0, (f"snakemake failed after {elapsed:.0f} s:\n{result.stderr[-5000:]}\n"
                                    + "\n".join(failed_logs)[-5000:])
    print(f"paper preset DAG on the real samples: {elapsed:.0f} s")
    return workdir


@pytest.fixture(scope="module")
def reference(shared_dir: Path, samples: list[RealSample], tmp_path_factory: pytest.TempPathFactory
              ) -> dict[tuple[str, str], dict[str, float]]:
    """test_real_metrics.py's independent computation: `depthxai predict` on the source PNGs, metrics in NumPy."""
    predictions = predict_with_cli(shared_dir, samples, tmp_path_factory.mktemp("reference"))
    return {(s.dataset, s.image_id): reference_metrics(predictions[s.image_id], s.depth_m(), s.dataset)
            for s in samples}


def test_real_downloads_are_verified_against_the_pinned_hashes(paper_run, shared_dir):
    manifest = _manifest(shared_dir)
    downloads = paper_run / "resources" / "downloads"
    for key, name in REAL_DOWNLOADS.items():
        pinned = PAPER["downloads"][key]
        assert pinned["sha256"] == manifest[name]["sha256"] and pinned["size"] == int(manifest[name]["bytes"]), key
        fetched = downloads / pinned["filename"]
        if key == "nyu_test_files":  # informative only: no rule reads it, so the DAG does not fetch it
            assert not fetched.exists()
            continue
        # a verified copy, not a link into the mirror
        assert fetched.is_file() and not fetched.is_symlink() and _sha256(fetched) == pinned["sha256"], key
    for dataset in DATASETS:  # the model card records the weights actually used: the official checkpoint
        card = (paper_run / "results" / "models" / dataset / MODEL / "card.json").read_text()
        assert manifest[REAL_DOWNLOADS[f"{MODEL}_{dataset}"]]["sha256"] in card


def test_archives_are_extracted_selectively(paper_run):
    downloads = paper_run / "resources" / "downloads"
    drive = downloads / "kitti_raw" / "2011_09_26" / f"{KITTI_DRIVE}_sync"
    assert sorted(p.name for p in (drive / "image_02" / "data").iterdir()) == ["0000000005.png", "0000000050.png"]
    assert not (drive / "image_03").exists()  # outside the preset's extract_members
    groundtruth = downloads / "kitti_depth_annotated" / "train" / f"{KITTI_DRIVE}_sync" / "proj_depth" / "groundtruth"
    assert sorted(p.name for p in groundtruth.iterdir()) == ["image_02"]
    # the train drives extract next to the test drive (one raw root), their ground truth from the same archive
    for drive in KITTI_TRAIN["drives"]:
        frames = [f"{frame}.png" for frame in KITTI_TRAIN_FILE_FRAMES[drive]]
        raw = downloads / "kitti_raw" / drive[:10] / f"{drive}_sync" / "image_02" / "data"
        assert sorted(p.name for p in raw.iterdir()) == frames, drive
        gt = downloads / "kitti_depth_annotated" / "train" / f"{drive}_sync" / "proj_depth" / "groundtruth" / "image_02"
        assert sorted(p.name for p in gt.iterdir()) == frames, drive
    assert not list((downloads / "kitti_raw").glob("*/2011_09_26_drive_0057_sync"))  # in the file, not selected


def test_prepared_datasets_hold_the_real_frames(paper_run, samples):
    for sample in samples:
        root = paper_run / "results" / "data" / sample.dataset
        assert np.array_equal(read_png(root / "rgb" / f"{sample.image_id}.png"), read_png(sample.rgb))
        assert np.array_equal(read_png(root / "depth" / f"{sample.image_id}.png"), read_png(sample.depth))
    for dataset in DATASETS:
        index = pd.read_csv(paper_run / "results" / "data" / dataset / "index.csv", dtype=str)
        test = index[index["split"] == "test"]
        assert sorted(test["id"]) == sorted(s.image_id for s in samples if s.dataset == dataset)


def test_train_frames_are_prepared_and_the_explainer_trains_on_them(paper_run, shared_dir, samples):
    data = paper_run / "results" / "data"
    test_samples = {d: [s for s in samples if s.dataset == d] for d in DATASETS}
    expected = {"nyu": [f"{i:05d}" for i in _nyu_train_indices(shared_dir)], "kitti": _kitti_train_ids()}
    assert len(expected["nyu"]) == 4 and len(expected["kitti"]) == len(KITTI_TRAIN["drives"])
    for dataset, ids in expected.items():
        index = pd.read_csv(data / dataset / "index.csv", dtype=str)
        assert sorted(index.loc[index["split"] == "train", "id"]) == ids, dataset
        metrics = json.loads((paper_run / "results" / "models" / dataset / MODEL
                              / "explainer_metrics.json").read_text())
        assert metrics["n_train"] == len(ids) and metrics["n_test"] == len(test_samples[dataset]), dataset
        assert (metrics["model"] == f"{MODEL}_{dataset}"
                and metrics["steps"] == -(-len(ids) // EXPLAINER_TEST["batch_size"])), dataset
    for index in _nyu_train_indices(shared_dir)[:2]:  # the right frames of the labeled file
        rgb, depth_mm = nyu_train_pixels(shared_dir, index)
        assert np.array_equal(read_png(data / "nyu" / "rgb" / f"{index:05d}.png"), rgb)
        assert np.array_equal(read_png(data / "nyu" / "depth" / f"{index:05d}.png"), depth_mm)
    drive, frame = KITTI_TRAIN["drives"][0], KITTI_TRAIN_FILE_FRAMES[KITTI_TRAIN["drives"][0]][0]
    rgb, depth = kitti_train_pixels(drive, frame)
    assert np.array_equal(read_png(data / "kitti" / "rgb" / f"{drive}_sync_{frame}.png"), rgb)
    assert np.array_equal(read_png(data / "kitti" / "depth" / f"{drive}_sync_{frame}.png"), depth)
    # the test-split consumers (mean colour, predictions) see only the test frames
    for dataset in DATASETS:
        test_rgb = [read_png(s.rgb) for s in test_samples[dataset]]
        mean = np.mean([image.reshape(-1, 3).mean(axis=0) for image in test_rgb], axis=0) / 255
        recorded = json.loads((data / f"{dataset}.mean_rgb.json").read_text())["mean_rgb"]
        assert np.allclose(recorded, mean, atol=1e-9), dataset


def test_accuracy_table_equals_the_independent_computation(paper_run, samples, reference):
    accuracy = pd.read_csv(paper_run / "results" / "evaluation" / "accuracy.csv", dtype={"image_id": str})
    assert set(accuracy["model"]) == {MODEL}
    table = pd.read_csv(paper_run / "results" / "tables" / "accuracy.csv")
    for dataset in DATASETS:
        ids = [s.image_id for s in samples if s.dataset == dataset]
        rows = accuracy[accuracy["dataset"] == dataset]
        assert sorted(set(rows["image_id"])) == ids
        summary = table[(table["dataset"] == dataset) & (table["model"] == MODEL)]
        assert len(summary) == 1 and int(summary["n"].iloc[0]) == len(ids)
        for metric in ("abs_rel", "delta1", "rmse"):
            values = rows[rows["metric"] == metric].set_index("image_id")["value"]
            expected = {i: reference[(dataset, i)][metric] for i in ids}
            for image_id in ids:
                assert values[image_id] == pytest.approx(expected[image_id], abs=1e-4), (dataset, image_id, metric)
            mean = float(np.mean(list(expected.values())))
            assert float(summary[f"{metric}_mean"].iloc[0]) == pytest.approx(mean, abs=1e-4), (dataset, metric)


def test_every_table_and_figure_exists(paper_run):
    results = paper_run / "results"
    for name in ("table1", "table2", "accuracy"):
        for ext in ("csv", "md", "tex"):
            assert (results / "tables" / f"{name}.{ext}").stat().st_size > 100, (name, ext)
    for name in ("summary", "friedman", "wilcoxon"):
        assert len(pd.read_csv(results / "stats" / f"{name}.csv")) > 0, name
    figures = [f"figure1_{d}_{MODEL}" for d in DATASETS] + ["figure2", "figure3"]
    for name in figures:
        with Image.open(results / "figures" / f"{name}.png") as image:
            pixels = np.asarray(image.convert("L"))
        assert min(pixels.shape) > 300 and pixels.std() > 10, f"{name} missing detail"
    assert not list((results / "figures").glob("*.pdf"))  # report.formats: [png] is honoured
    table1 = pd.read_csv(results / "tables" / "table1.csv")
    assert sorted(zip(table1["dataset"], table1["method"])) == [(d, m) for d in DATASETS for m in METHODS]


def test_scores_exist_for_every_dataset_method_and_image(paper_run, samples):
    scores = pd.read_csv(paper_run / "results" / "evaluation" / "scores.csv", dtype={"image_id": str})
    assert set(scores["model"]) == {MODEL}
    for dataset in DATASETS:
        ids = sorted(s.image_id for s in samples if s.dataset == dataset)
        for method in METHODS:
            rows = scores[(scores["dataset"] == dataset) & (scores["method"] == method)]
            # Infidelity is named infidelity_unsigned for maps without a sign: one of the two per image
            for metric in ("attribution_fidelity", ("infidelity", "infidelity_unsigned"), "morf_auc_depth_rmse"):
                scored = rows[rows["metric"].isin([metric] if isinstance(metric, str) else metric)]
                assert sorted(scored["image_id"]) == ids, (dataset, method, metric)
                assert np.isfinite(scored["value"]).all(), (dataset, method, metric)
    curves = pd.read_csv(paper_run / "results" / "evaluation" / "curves.csv", dtype={"image_id": str})
    assert sorted(curves["fraction"].unique()) == [0.0, 0.1, 0.5]
