"""Depth metrics: parity with the official evaluation (reference sidecars), hand-computed cases, crops,
and the batched torch version against the NumPy one."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from depthxai.data.io import DatasetInfo, read_depth
from depthxai.metrics.batched import batched_errors
from depthxai.metrics.depth import (
    METRIC_NAMES,
    EvalProtocol,
    clip_prediction,
    compute_depth_metrics,
    crop_mask,
    eval_mask,
    evaluate_depth,
)

REL_TOL = 1e-6


def _reference_cases(shared_dir: Path) -> list[tuple[Path, dict, Path]]:
    """(npz, sidecar, ground-truth PNG) for every per-image METER reference; GT matched by sha256."""
    data = shared_dir / "data"
    candidates = [*(data / "nyu_test").glob("*_depth.png"), *(data / "kitti" / "depth").glob("*.png")]
    by_hash = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in candidates}
    cases = []
    for sidecar_path in sorted((shared_dir / "reference" / "meter").glob("*_xxs_*.json")):
        sidecar = json.loads(sidecar_path.read_text())
        if "metrics" not in sidecar:
            continue
        gt_path = by_hash.get(sidecar["gt_sha256"])
        assert gt_path is not None, f"{sidecar_path}: no GT file with sha256 {sidecar['gt_sha256']}"
        assert gt_path.name == Path(sidecar["gt_file"]).name
        cases.append((sidecar_path.with_suffix(".npz"), sidecar, gt_path))
    return cases


def _protocol_of(sidecar: dict) -> EvalProtocol:
    settings = sidecar["eval"]
    crop = "eigen" if settings["crop"].startswith("eigen") else settings["crop"]
    return EvalProtocol(settings["min_depth"], settings["max_depth"], crop)


def test_reference_metrics_match_official(shared_dir: Path) -> None:
    cases = _reference_cases(shared_dir)
    assert {sc["dataset"] for _, sc, _ in cases} == {"nyu", "kitti"} and len(cases) >= 10
    worst = 0.0
    for npz_path, sidecar, gt_path in cases:
        gt = read_depth(gt_path, sidecar["gt_depth_scale"])
        pred = np.load(npz_path)["depth_m"]
        protocol = _protocol_of(sidecar)
        mask = eval_mask(gt, protocol.min_depth, protocol.max_depth, protocol.crop)
        assert int(mask.sum()) == sidecar["eval"]["n_valid"], npz_path.name
        metrics = evaluate_depth(pred, gt, protocol)
        assert set(metrics) == set(METRIC_NAMES) == set(sidecar["metrics"])
        for name, expected in sidecar["metrics"].items():
            deviation = abs(metrics[name] - expected) / max(abs(expected), 1e-12)
            worst = max(worst, deviation)
            assert deviation < REL_TOL, f"{npz_path.name} {name}: {metrics[name]} vs official {expected}"
    print(f"max relative deviation from official metrics over {len(cases)} files: {worst:.3g}")


def test_reference_summary_is_mean_of_images(shared_dir: Path) -> None:
    cases = _reference_cases(shared_dir)
    for dataset in ("nyu", "kitti"):
        summary = json.loads((shared_dir / "reference" / "meter" / f"summary_{dataset}_xxs.json").read_text())
        per_image = [
            evaluate_depth(np.load(npz)["depth_m"], read_depth(gt, sc["gt_depth_scale"]), _protocol_of(sc))
            for npz, sc, gt in cases
            if sc["dataset"] == dataset
        ]
        assert len(per_image) == summary["n_images"]
        for name, expected in summary["mean_of_per_image_metrics"].items():
            assert np.mean([m[name] for m in per_image]) == pytest.approx(expected, rel=REL_TOL)


def test_eval_from_dataset_info_equals_protocol(shared_dir: Path) -> None:
    npz, sidecar, gt_path = next(c for c in _reference_cases(shared_dir) if c[1]["dataset"] == "nyu")
    info = DatasetInfo(name="nyu", kind="nyu", depth_scale=1000.0, min_depth=1e-3, max_depth=10.0,
                       eval_crop="eigen", image_size=(480, 640))
    gt = read_depth(gt_path, 1000.0)
    assert evaluate_depth(np.load(npz)["depth_m"], gt, info) == pytest.approx(sidecar["metrics"], rel=REL_TOL)


def test_hand_computed_double_prediction() -> None:
    gt = np.array([[1.0, 2.0], [4.0, 0.5]])
    m = compute_depth_metrics(2 * gt, gt)
    # |gt - 2gt| / gt = 1 everywhere; (gt - 2gt)^2 / gt = gt -> mean 1.875; rmse = sqrt(mean(gt^2)) = sqrt(21.25/4).
    assert m["abs_rel"] == pytest.approx(1.0)
    assert m["sq_rel"] == pytest.approx(7.5 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(21.25 / 4))
    assert m["rmse_log"] == pytest.approx(math.log(2))
    assert m["log10"] == pytest.approx(math.log10(2))
    assert m["silog"] == pytest.approx(0.0, abs=1e-6)  # constant log error: no scale-invariant error
    # ratio 2 everywhere exceeds 1.25, 1.25^2 = 1.5625 and 1.25^3 = 1.953125 -> all deltas 0.
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.0, 0.0, 0.0)


def test_hand_computed_mixed_case() -> None:
    gt = np.array([2.0, 2.0, 4.0, 4.0])
    pred = np.array([2.0, 2.4, 3.0, 8.0])  # ratios 1, 1.2, 1.333, 2
    m = compute_depth_metrics(pred, gt)
    assert m["abs_rel"] == pytest.approx((0 + 0.2 + 0.25 + 1.0) / 4)
    assert m["sq_rel"] == pytest.approx((0 + 0.16 / 2 + 1 / 4 + 16 / 4) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 0.16 + 1 + 16) / 4))
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.5, 0.75, 0.75)
    e = np.log(pred / gt)
    assert m["silog"] == pytest.approx(100 * math.sqrt(np.mean(e**2) - np.mean(e) ** 2))
    assert compute_depth_metrics(gt, gt) == pytest.approx(
        {"abs_rel": 0, "sq_rel": 0, "rmse": 0, "rmse_log": 0, "log10": 0, "silog": 0,
         "delta1": 1, "delta2": 1, "delta3": 1}
    )


def test_mask_selects_pixels() -> None:
    gt = np.array([[1.0, 2.0], [3.0, 4.0]])
    pred = np.array([[1.0, 100.0], [3.0, 100.0]])
    mask = np.array([[True, False], [True, False]])
    assert compute_depth_metrics(pred, gt, mask)["rmse"] == 0.0
    with pytest.raises(ValueError, match="empty mask"):
        compute_depth_metrics(pred, gt, np.zeros_like(mask))
    with pytest.raises(ValueError, match="clip"):
        compute_depth_metrics(np.zeros_like(gt), gt)


def test_eigen_crop_is_the_official_nyu_rectangle() -> None:
    eigen = crop_mask(480, 640, "eigen")
    assert eigen.sum() == (471 - 45) * (601 - 41)
    assert eigen[45, 41] and eigen[470, 600] and not eigen[44, 41] and not eigen[45, 601]


def test_eigen_crop_refuses_frames_other_than_480x640() -> None:
    with pytest.raises(ValueError, match="240x320"):
        crop_mask(240, 320, "eigen")


def test_garg_crop_is_the_kitti_rectangle_relative_to_the_frame() -> None:
    garg = crop_mask(375, 1242, "garg")
    rows, cols = np.nonzero(garg)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    assert garg.sum() == (371 - 153) * (1197 - 44)  # the whole rectangle, no holes


def test_no_crop_keeps_every_pixel() -> None:
    assert crop_mask(3, 4, "none").all()


def test_an_unknown_crop_is_refused() -> None:
    with pytest.raises(ValueError, match="crop"):
        crop_mask(3, 4, "kb")


def test_eval_mask_range_is_exclusive() -> None:
    gt = np.array([[0.0, 1e-3, 0.5], [10.0, 9.99, np.nan]])
    expected = np.array([[False, False, True], [False, True, False]])
    np.testing.assert_array_equal(eval_mask(gt, 1e-3, 10.0, "none"), expected)


def test_clip_prediction_like_official() -> None:
    pred = np.array([-1.0, 0.0, 5.0, 20.0], dtype=np.float32)
    expected = np.array([1e-3, 1e-3, 5.0, 10.0], dtype=np.float32)
    out = clip_prediction(pred, 1e-3, 10.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    assert pred[0] == -1.0  # input untouched
    np.testing.assert_array_equal(clip_prediction(torch.from_numpy(pred), 1e-3, 10.0).numpy(), expected)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_prediction_is_never_clipped_into_a_plausible_depth(bad: float) -> None:
    """The official code clips NaN to the minimum depth (believable AbsRel and RMSE from a broken model): refused."""
    pred = np.array([1.0, bad, 3.0], dtype=np.float32)
    for value in (pred, torch.from_numpy(pred)):
        with pytest.raises(ValueError, match="NaN or inf"):
            clip_prediction(value, 1e-3, 10.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_equals_numpy(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(3)
    ref = rng.uniform(0.5, 10.0, size=(24, 32))
    preds = ref[None] * rng.lognormal(0.0, 0.3, size=(5, 24, 32))
    mask = rng.random((24, 32)) > 0.3
    preds_t = torch.from_numpy(preds).to(dtype)
    batched = batched_errors(preds_t, torch.from_numpy(ref).to(dtype), torch.from_numpy(mask))
    assert set(batched) == set(METRIC_NAMES)
    for b in range(preds.shape[0]):
        expected = compute_depth_metrics(preds_t[b].numpy(), torch.from_numpy(ref).to(dtype).numpy(), mask)
        for name in METRIC_NAMES:
            assert batched[name].dtype == torch.float64 and batched[name].shape == (5,)
            assert batched[name][b].item() == pytest.approx(expected[name], rel=1e-12, abs=1e-14), name
    # the draws differ, so the rows must differ: the batch dimension is really per row
    assert len(set(batched["rmse"].tolist())) == 5


def test_batched_validates_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        batched_errors(torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        batched_errors(torch.ones(2, 4, 4), torch.ones(4, 4), torch.ones(4, 4))
    with pytest.raises(ValueError, match="empty mask"):
        batched_errors(torch.ones(2, 4, 4), torch.ones(4, 4), torch.zeros(4, 4, dtype=torch.bool))


def test_protocol_validation() -> None:
    with pytest.raises(ValueError, match="crop"):
        EvalProtocol(1e-3, 10.0, "kb")
    with pytest.raises(ValueError, match="min_depth"):
        EvalProtocol(10.0, 1.0)
