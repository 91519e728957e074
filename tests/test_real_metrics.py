"""Accuracy of the official METER XXS checkpoints on the real developer samples, through the ``depthxai`` CLI.

``depthxai predict`` (and ``depthxai predict-split``, the workflow's prediction rule) runs the official
checkpoints of ../shared/mirror (build_model_best_nyu_xxs, build_model_best_kitti_xxs) on the 8 NYU Depth v2
test frames and the 2 KITTI frames of ../shared/data. The metrics are recomputed here from the source PNGs
(tests/real_fixtures.py: Eigen crop rows 45:471, cols 41:601 and 1e-3 < gt < 10 m for NYU; Garg crop and
1e-3 < gt < 80 m for KITTI; prediction clipped to the same range) and compared with

(a) what the project reports (``depthxai.metrics.depth`` and the per-image accuracy CSV of
    ``predict-split``), to 1e-6;
(b) the accuracy documented for these checkpoints in ../shared/data/README.md (NYU, 16 test frames: AbsRel
    0.183, RMSE 0.600 m, delta1 0.759; KITTI, 3 frames: AbsRel 0.068, delta1 0.977), within tolerances
    justified below.

Measured on these samples (CPU, torch 2.13; means of the per-image metrics, as the official eval averages):

    NYU, 8 frames:   AbsRel 0.1990  RMSE 0.5821 m  delta1 0.7310
                     per image AbsRel 0.086 0.229 0.333 0.127 0.134 0.139 0.454 0.090
                     (frames 00000 00001 00008 00013 00014 00020 00028 00038)
    KITTI, 2 frames: AbsRel 0.0686  RMSE 2.510 m   delta1 0.9742
                     (0000000005: AbsRel 0.0762, delta1 0.9635; 0000000050: AbsRel 0.0610, delta1 0.9849)

For contrast (not tested): the NYU checkpoint fed RGB without the ImageNet normalisation gives AbsRel 0.181,
RMSE 0.895 m, delta1 0.716 on the same 8 frames (median scale off by 21%); the KITTI checkpoint fed
ImageNet-normalised RGB gives AbsRel 0.435, delta1 0.173.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from real_fixtures import (
    CHECKPOINTS,
    DEPTH_SCALE,
    RealSample,
    predict_with_cli,
    read_png,
    real_samples,
    reference_metrics,
)

from depthxai.cli import main
from depthxai.data.io import DatasetInfo, write_dataset_info, write_index
from depthxai.metrics.depth import METRIC_NAMES, EvalProtocol, evaluate_depth

PROTOCOLS = {"nyu": EvalProtocol(1e-3, 10.0, "eigen"), "kitti": EvalProtocol(1e-3, 80.0, "garg")}

# Means measured on these samples (module docstring). A regression guard: the tolerance (2e-3 absolute, about
# 1% of NYU AbsRel) absorbs float differences between CPUs and torch builds, which change these metrics in the
# 5th decimal at most, but not a change of preprocessing, resizing or units.
MEASURED = {"nyu": {"abs_rel": 0.1990, "rmse": 0.5821, "delta1": 0.7310},
            "kitti": {"abs_rel": 0.0686, "rmse": 2.5099, "delta1": 0.9742}}


@pytest.fixture(scope="module")
def samples(shared_dir: Path) -> list[RealSample]:
    return real_samples(shared_dir)


@pytest.fixture(scope="module")
def predictions(shared_dir: Path, samples: list[RealSample], tmp_path_factory: pytest.TempPathFactory
                ) -> dict[str, np.ndarray]:
    return predict_with_cli(shared_dir, samples, tmp_path_factory.mktemp("predict"))


@pytest.fixture(scope="module")
def reference(samples: list[RealSample], predictions: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {s.image_id: reference_metrics(predictions[s.image_id], s.depth_m(), s.dataset) for s in samples}


def _dataset_mean(samples: list[RealSample], per_image: dict[str, dict[str, float]], dataset: str,
                  metric: str) -> float:
    return float(np.mean([per_image[s.image_id][metric] for s in samples if s.dataset == dataset]))


def test_predictions_are_full_frame_metres(samples, predictions):
    for sample in samples:
        depth = predictions[sample.image_id]
        assert depth.dtype == np.float32 and depth.shape == read_png(sample.depth).shape
        # inside the range each checkpoint was trained for (NYU up to 10 m, KITTI up to 80 m), never degenerate
        assert 0.5 < depth.min() and depth.max() < {"nyu": 10.0, "kitti": 80.0}[sample.dataset]
        assert depth.std() > 0.1


def test_library_metrics_equal_the_independent_computation(samples, predictions, reference):
    for sample in samples:
        reported = evaluate_depth(predictions[sample.image_id], sample.depth_m(), PROTOCOLS[sample.dataset])
        assert set(reported) == set(METRIC_NAMES)
        for name in METRIC_NAMES:
            assert reported[name] == pytest.approx(reference[sample.image_id][name], rel=1e-6, abs=1e-6), \
                (sample.image_id, name)


def _prepared_layout(root: Path, samples: list[RealSample], dataset: str) -> Path:
    """The samples of one dataset in the prepared-dataset layout (the PNGs as they are; protocol of the paper)."""
    chosen = [s for s in samples if s.dataset == dataset]
    for sample in chosen:
        (root / "rgb").mkdir(parents=True, exist_ok=True)
        (root / "depth").mkdir(exist_ok=True)
        shutil.copyfile(sample.rgb, root / "rgb" / f"{sample.image_id}.png")
        shutil.copyfile(sample.depth, root / "depth" / f"{sample.image_id}.png")
    write_index(root, pd.DataFrame([{"id": s.image_id, "split": "test", "rgb": f"rgb/{s.image_id}.png",
                                     "depth": f"depth/{s.image_id}.png"} for s in chosen]))
    protocol = PROTOCOLS[dataset]
    write_dataset_info(root, DatasetInfo(name=dataset, kind=dataset, depth_scale=DEPTH_SCALE[dataset],
                                         min_depth=protocol.min_depth, max_depth=protocol.max_depth,
                                         eval_crop=protocol.crop, image_size=read_png(chosen[0].depth).shape))
    return root


@pytest.mark.parametrize("dataset", ["nyu", "kitti"])
def test_predict_split_reports_the_independent_metrics(dataset, shared_dir, samples, reference, tmp_path):
    data = _prepared_layout(tmp_path / dataset, samples, dataset)
    out_metrics = tmp_path / "accuracy.csv"
    status = main(["predict-split", "--model", f"meter_xxs_{dataset}", "--weights",
                   str(shared_dir / "mirror" / CHECKPOINTS[dataset]), "--data", str(data), "--dataset", dataset,
                   "--arch", "meter_xxs", "--threads", "1", "--out", str(tmp_path / "pred.npz"),
                   "--out-metrics", str(out_metrics), "-q"])
    assert status == 0
    table = pd.read_csv(out_metrics, dtype={"image_id": str})
    ids = [s.image_id for s in samples if s.dataset == dataset]
    assert sorted(set(table["image_id"])) == ids and len(table) == len(ids) * len(METRIC_NAMES)
    assert set(table["dataset"]) == {dataset} and set(table["model"]) == {"meter_xxs"}
    for row in table.itertuples():
        assert row.value == pytest.approx(reference[row.image_id][row.metric], rel=1e-6, abs=1e-6), row


def test_nyu_accuracy_matches_the_documented_checkpoint(samples, reference):
    abs_rel = _dataset_mean(samples, reference, "nyu", "abs_rel")
    rmse = _dataset_mean(samples, reference, "nyu", "rmse")
    delta1 = _dataset_mean(samples, reference, "nyu", "delta1")
    # Documented on 16 test frames: AbsRel 0.183, RMSE 0.600, delta1 0.759. Ours are 8 frames of the same split,
    # and per-image values scatter widely (sd over our 8: AbsRel 0.13, RMSE 0.38 m, delta1 0.26), so an 8-frame
    # mean has a standard error of about 0.047 / 0.135 m / 0.092: each band spans 1.35-1.65 standard errors on
    # either side of the documented value. RMSE is the sharpest check of the preprocessing: without the
    # ImageNet normalisation it is 0.90 m here, outside its band.
    assert 0.12 <= abs_rel <= 0.26
    assert 0.40 <= rmse <= 0.80
    assert 0.62 <= delta1 <= 0.89
    for name, value in (("abs_rel", abs_rel), ("rmse", rmse), ("delta1", delta1)):
        assert value == pytest.approx(MEASURED["nyu"][name], abs=2e-3), name


def test_kitti_accuracy_matches_the_documented_checkpoint(samples, reference):
    abs_rel = _dataset_mean(samples, reference, "kitti", "abs_rel")
    delta1 = _dataset_mean(samples, reference, "kitti", "delta1")
    # Documented on 3 frames: AbsRel 0.068, delta1 0.977. Outdoor KITTI frames vary far less than NYU rooms
    # (our two: AbsRel 0.076 / 0.061, delta1 0.964 / 0.985), so the bands are tight: delta1 >= 0.93 and
    # AbsRel <= 0.10 leave room for a harder frame, while the wrong normalisation (delta1 0.17) or a wrong unit
    # (decimetres read as metres: everything x10) fails by far.
    assert delta1 >= 0.93
    assert 0.03 <= abs_rel <= 0.10
    for name in ("abs_rel", "rmse", "delta1"):
        assert _dataset_mean(samples, reference, "kitti", name) == pytest.approx(MEASURED["kitti"][name], abs=2e-3), \
            name
