"""Relative depth models in the prediction and evaluation stages (depthxai.evaluation.relative): the accuracy is
that of the predictions aligned to the ground truth, recomputed independently with depthxai.evaluation.align; the
curves against depth and Attribution Fidelity score the same alignment, the explained scalar stays raw; an image
without ground truth keeps the scale-free rows only; metric models are never aligned; no metre-based warning and
no near/far target for relative output."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depthxai.attribution import Saliency, TargetSpec
from depthxai.attribution.run import attribute_split
from depthxai.data.io import DatasetInfo, write_dataset_info, write_depth, write_index, write_rgb
from depthxai.errors import ConfigError
from depthxai.evaluation.align import align_to_ground_truth
from depthxai.evaluation.fidelity import attribution_fidelity
from depthxai.evaluation.perturbation import PerturbationConfig
from depthxai.evaluation.relative import AlignmentSpec, check_target, fit_alignment
from depthxai.evaluation.run import EvaluationConfig, evaluate_split
from depthxai.metrics.depth import clip_prediction, compute_depth_metrics, eval_mask
from depthxai.models.predict import implausible_depth_warning, predict_split
from depthxai.models.registry import ModelCard
from depthxai.models.wrapper import DepthModel, resize_depth

IDS = ["a0", "a1", "a2", "n3"]  # n3 has no ground truth
FRAME = (20, 24)
INPUT = (16, 20)
MAX_DEPTH = 10.0


class DisparityNet(nn.Module):
    """A positive, inverse-depth-like output at half resolution, far from metres (values around 20-40)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 1, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def forward(self, x: Tensor) -> Tensor:
        return 20.0 + 5.0 * F.softplus(F.avg_pool2d(self.conv(x), 2))


def model_of(kind: str) -> DepthModel:
    card = ModelCard(name=f"hf:tiny-{kind}", arch="hf", variant="tiny", dataset="unspecified", input_size=INPUT,
                     imagenet_norm=False, output_unit_m=1.0, min_depth=0.0 if kind == "relative" else 1e-3,
                     max_depth=float("inf") if kind == "relative" else 100.0, builder="unused:unused",
                     output_kind=kind)
    return DepthModel(DisparityNet(), card).eval()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("relative_dataset")
    gen = np.random.default_rng(3)
    write_dataset_info(root, DatasetInfo(name="synthindoor", kind="synthetic", depth_scale=1000.0, min_depth=1e-3,
                                         max_depth=MAX_DEPTH, eval_crop="none", image_size=FRAME))
    rows = []
    for image_id in IDS:
        write_rgb(root / "rgb" / f"{image_id}.png", gen.integers(0, 256, (*FRAME, 3), dtype=np.uint8))
        depth = ""
        if not image_id.startswith("n"):
            gt = gen.uniform(1, 6, FRAME)
            gt[:2] = 0.0  # invalid rows: never fitted, never scored
            write_depth(root / "depth" / f"{image_id}.png", gt, 1000.0)
            depth = f"depth/{image_id}.png"
        rows.append({"id": image_id, "split": "test", "rgb": f"rgb/{image_id}.png", "depth": depth})
    write_index(root, pd.DataFrame(rows))
    return root


def _ground_truth(dataset: Path, image_id: str) -> np.ndarray:
    from depthxai.data.io import read_depth

    return read_depth(dataset / "depth" / f"{image_id}.png", 1000.0)


@pytest.mark.parametrize(("method", "space"), [("lstsq", "disparity"), ("lstsq", "depth"), ("median", "depth")])
def test_fitted_alignment_is_align_to_ground_truth(method: str, space: str) -> None:
    gen = np.random.default_rng(0)
    gt = gen.uniform(0.5, 8.0, (30, 40))
    pred = 1.0 / gt * 3.0 + 0.2 + gen.normal(0, 0.02, gt.shape) if space == "disparity" else 2.0 * gt + gen.normal(
        0, 0.1, gt.shape)
    mask = gen.random(gt.shape) > 0.3
    spec = AlignmentSpec(method, space)
    fitted = fit_alignment(pred, gt, mask, spec, 1e-3, 10.0)
    expected = align_to_ground_truth(pred, gt, mask, method=method, space=space, max_depth=10.0)
    np.testing.assert_allclose(fitted.apply(torch.from_numpy(pred)).numpy(), expected, rtol=1e-12)
    assert spec.aligner()(pred, gt, mask, 10.0).tolist() == expected.tolist()
    with pytest.raises(ConfigError, match=r"config key evaluation\.alignment\.space: median scaling"):
        AlignmentSpec("median", "disparity")


def test_relative_accuracy_is_that_of_the_aligned_prediction(dataset: Path) -> None:
    model = model_of("relative")
    arrays, metrics = predict_split(model, dataset, IDS, progress=False, align=AlignmentSpec().aligner())
    assert sorted(set(metrics["image_id"])) == ["a0", "a1", "a2"]  # n3 has no ground truth
    for k, image_id in enumerate(IDS[:3]):
        gt = _ground_truth(dataset, image_id)
        full = resize_depth(torch.from_numpy(arrays["native"][k])[None], FRAME)[0, 0].numpy()
        mask = eval_mask(gt, 1e-3, MAX_DEPTH, "none")
        aligned = align_to_ground_truth(full, gt, mask, method="lstsq", space="disparity", max_depth=MAX_DEPTH)
        expected = compute_depth_metrics(clip_prediction(aligned, 1e-3, MAX_DEPTH), gt, mask)
        got = metrics[metrics["image_id"] == image_id].set_index("metric")["value"]
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-15), (image_id, name)
        raw = compute_depth_metrics(clip_prediction(full, 1e-3, MAX_DEPTH), gt, mask)
        assert raw["abs_rel"] > 1.0 > 0.5 > expected["abs_rel"]  # unaligned, the output (20-40) is clipped to 10 m
    # no alignment given: no accuracy rows, and the log says why
    records: list[logging.LogRecord] = []
    log = logging.getLogger("test_relative")
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        _, unaligned = predict_split(model, dataset, IDS, progress=False, log=log)
    finally:
        log.removeHandler(handler)
    assert unaligned.empty and any("no alignment" in r.getMessage() for r in records)
    # its median (20-40 "m") is far beyond the dataset's 10 m cap, which says nothing for relative output
    assert implausible_depth_warning(model, [30.0]) == ""
    assert "beyond the 10 m depth cap" in implausible_depth_warning(model_of("metric"), [30.0], 10.0)


def test_metric_models_are_never_aligned(dataset: Path) -> None:
    def refuse(*args: object) -> np.ndarray:
        raise AssertionError("a metric model was aligned")

    model = model_of("metric")
    _, with_align = predict_split(model, dataset, IDS, progress=False, align=refuse)
    _, without = predict_split(model, dataset, IDS, progress=False)
    pd.testing.assert_frame_equal(with_align, without)


def test_relative_evaluation_scores_aligned_depth_and_the_raw_target(dataset: Path) -> None:
    relative, metric = model_of("relative"), model_of("metric")
    arrays, accuracy = predict_split(relative, dataset, IDS, progress=False, align=AlignmentSpec().aligner())
    target = TargetSpec("mean")
    maps = attribute_split(relative, Saliency(abs=False), dataset, arrays, target, progress=False)
    maps = {**maps, "meta": json.loads(str(maps["meta"]))}
    config = EvaluationConfig(schemes=(PerturbationConfig(fractions=(0.0, 0.25, 0.5), batch_size=4),),
                              infidelity_samples=2)
    scores, curves = evaluate_split(relative, dataset, arrays, maps, config, target, [0.5, 0.5, 0.5], seed=1,
                                    progress=False)
    # the ground-truth curves start at the accuracy of the aligned prediction (the same fit, float32 sums)
    for image_id in IDS[:3]:
        start = curves[(curves["image_id"] == image_id) & (curves["fraction"] == 0) & (curves["curve"] == "gt_absrel")]
        expected = accuracy[(accuracy["image_id"] == image_id) & (accuracy["metric"] == "abs_rel")]["value"].item()
        assert len(start) == 2 and np.allclose(start["value"], expected, rtol=1e-5)
    # Attribution Fidelity against the aligned (clipped) prediction, at the network's output grid
    gt = torch.from_numpy(_ground_truth(dataset, "a1"))
    native = torch.from_numpy(arrays["native"][1:2])
    fitted = fit_alignment(resize_depth(native, FRAME)[0, 0].numpy(), gt.numpy(),
                           eval_mask(gt.numpy(), 1e-3, MAX_DEPTH, "none"), AlignmentSpec(), 1e-3, MAX_DEPTH)
    af = attribution_fidelity(torch.from_numpy(maps["maps"][1]), fitted.apply(native[0, 0]).clamp(*fitted.clip))
    got = scores[(scores["image_id"] == "a1") & (scores["metric"] == "attribution_fidelity")]["value"].item()
    assert got == pytest.approx(af, rel=1e-9)
    # the explained scalar is the raw output's: the same net under a metric card explains the same numbers
    same_net = DepthModel(relative.net, metric.card).eval()
    raw_scores, _ = evaluate_split(same_net, dataset, arrays,
                                   {**maps, "meta": {**maps["meta"], "model": metric.card.name}},
                                   config, target, [0.5, 0.5, 0.5], seed=1, progress=False)
    pick = ["morf_auc_target_change", "lerf_auc_target_change", "infidelity"]
    ours = scores[scores["metric"].isin(pick)].set_index(["image_id", "metric"])["value"].sort_index()
    theirs = raw_scores[raw_scores["metric"].isin(pick)].set_index(["image_id", "metric"])["value"].sort_index()
    pd.testing.assert_series_equal(ours, theirs)
    # the image without ground truth: the scale-free rows only
    n3 = set(scores[scores["image_id"] == "n3"]["metric"])
    assert n3 == {"morf_auc_target_change", "lerf_auc_target_change", "infidelity", "constant_map"}
    assert {"morf_auc_depth_rmse", "attribution_fidelity"} <= set(scores[scores["image_id"] == "a0"]["metric"])


def test_near_and_far_targets_are_refused_for_relative_models() -> None:
    relative, metric = model_of("relative"), model_of("metric")
    for kind in ("near", "far"):
        with pytest.raises(ConfigError, match=rf"config key attribution\.target\.kind: '{kind}' .* 'hf:tiny-relative'"):
            check_target(relative.card, TargetSpec(kind))
        check_target(metric.card, TargetSpec(kind))
    check_target(relative.card, TargetSpec("mean"))
    check_target(relative.card, TargetSpec("box", box=(0.0, 0.0, 0.5, 0.5)))
