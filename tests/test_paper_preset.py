"""The paper preset (config/paper.yaml) end to end: the whole Snakemake DAG on real images with the official
METER XXS checkpoints, restricted to what can be had offline.

The preset is loaded as it is and changed only where this machine forces it: the mirror folder, CPU, one
thread, the METER XXS model only (its checkpoints are the mirrored ones), cheaper method and evaluation settings,
the science stage off (KITTI has 2 frames here, its localisation mosaics need 4), PNG figures only, and the
datasets restricted to the real sample ids. The mirror holds

- the real files of ../shared/mirror (both checkpoints, splits.mat, both split files), which keep the sha256 the
  preset pins for them: the download rule verifies them exactly as it would for a user;
- in place of the 2.8 GB nyu_depth_v2_labeled.mat, the 28 raw KITTI drives and the 14 GB annotated depth, files
  in the exact upstream formats holding the real sample frames (tests/real_fixtures.py): a MATLAB v7.3 file with
  all 1449 frame slots (the real splits.mat indexes into it; frames other than the 8 samples are empty), and
  the two KITTI zips laid out as the KITTI servers lay them out. Their downloads entries get the fixtures' own
  sha256 and size.

The downloads table keeps only these mirrored entries (the other 27 raw drives, METER XS/S and PixelFormer are
not mirrored); everything else of the preset (datasets' download roles and patterns, extract_members, stats,
attribution target, ...) is used as it is.

Run time: about 145 s on 2 CPU cores shared with another test run (load average 3-4), of which the Snakemake
DAG takes 143 s (41 jobs; the 8 evaluate jobs are the largest part).
"""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_checkout
from PIL import Image
from real_fixtures import (KITTI_DRIVE, NYU_LABELED_FRAMES, RealSample, predict_with_cli, read_png, real_samples,
                           reference_metrics, write_kitti_archives, write_nyu_labeled)

pytestmark = pytest.mark.slow

PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
METHODS = ["ig", "random", "rollout", "saliency"]
DATASETS = ["kitti", "nyu"]
MODEL = "meter_xxs"
# downloads keys of the real files the preset pins, by their name in ../shared/mirror
REAL_DOWNLOADS = {"meter_xxs_nyu": "build_model_best_nyu_xxs", "meter_xxs_kitti": "build_model_best_kitti_xxs",
                  "nyu_splits": "splits.mat", "nyu_test_files": "nyudepthv2_test_files_with_gt.txt",
                  "kitti_eigen_test_split": "eigen_test_files_with_gt.txt"}
RAW_KEY = f"kitti_raw_{KITTI_DRIVE}"
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
    write_nyu_labeled(shared_dir, labeled, NYU_LABELED_FRAMES)
    archives = write_kitti_archives(shared_dir, mirror)
    fixtures = {"nyu_labeled": labeled, "kitti_depth_annotated": archives["depth"], RAW_KEY: archives["raw"]}
    for key, path in fixtures.items():  # the archives must carry the names the preset downloads them as
        assert path.name == PAPER["downloads"][key]["filename"], key
    return fixtures


def _test_config(mirror: Path, fixtures: dict[str, Path], samples: list[RealSample]) -> dict:
    config = copy.deepcopy(PAPER)
    config.update(mirror=str(mirror), device="cpu", threads=1)
    config["models"] = {MODEL: PAPER["models"][MODEL]}
    config["methods"] = {"saliency": PAPER["methods"]["saliency"], "ig": dict(PAPER["methods"]["ig"], n_steps=4),
                         "rollout": PAPER["methods"]["rollout"], "random": PAPER["methods"]["random"]}
    config["science"] = {"enabled": False}
    config["evaluation"]["fractions"] = [0.0, 0.1, 0.5]
    config["evaluation"]["infidelity"]["n_perturb_samples"] = 2
    config["report"]["formats"] = ["png"]
    for dataset in DATASETS:
        config["datasets"][dataset]["ids"] = [s.image_id for s in samples if s.dataset == dataset]
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
def paper_run(shared_dir: Path, samples: list[RealSample], tmp_path_factory: pytest.TempPathFactory) -> Path:
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


def test_prepared_datasets_hold_the_real_frames(paper_run, samples):
    for sample in samples:
        root = paper_run / "results" / "data" / sample.dataset
        assert np.array_equal(read_png(root / "rgb" / f"{sample.image_id}.png"), read_png(sample.rgb))
        assert np.array_equal(read_png(root / "depth" / f"{sample.image_id}.png"), read_png(sample.depth))
    for dataset in DATASETS:
        index = pd.read_csv(paper_run / "results" / "data" / dataset / "index.csv", dtype=str)
        assert sorted(index["id"]) == sorted(s.image_id for s in samples if s.dataset == dataset)


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
            for metric in ("attribution_fidelity", "infidelity", "morf_auc_depth_rmse"):
                scored = rows[rows["metric"] == metric]
                assert sorted(scored["image_id"]) == ids, (dataset, method, metric)
                assert np.isfinite(scored["value"]).all(), (dataset, method, metric)
    curves = pd.read_csv(paper_run / "results" / "evaluation" / "curves.csv", dtype={"image_id": str})
    assert sorted(curves["fraction"].unique()) == [0.0, 0.1, 0.5]
