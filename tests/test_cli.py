"""The command line, and the stage functions its subcommands run (predict_split, attribute_split, evaluate_split)
on a tiny prepared dataset written here, with a tiny stand-in network (and METER for rollout)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from depthxai.attribution import IntegratedGradients, RandomRanking, Saliency, TargetSpec, image_seed, reduce_channels
from depthxai.attribution.rollout import AttentionRollout
from depthxai.attribution.run import attribute_split, read_attributions, write_attributions
from depthxai.cli import main
from depthxai.config import section_defaults
from depthxai.data.io import DatasetInfo, read_depth, read_rgb, write_dataset_info, write_depth, write_index, write_rgb
from depthxai.errors import DataError
from depthxai.evaluation.fidelity import attribution_fidelity
from depthxai.evaluation.perturbation import normalised_auc
from depthxai.evaluation.run import CURVE_COLUMNS, IMAGE_SCORE_COLUMNS, EvaluationConfig, evaluate_split
from depthxai.models import build_model, get_card, load_depth_model, predict_image, prepare_input
from depthxai.models.predict import predict_split, read_predictions, write_predictions
from depthxai.models.wrapper import DepthModel
from depthxai.tidy import concat_tidy

# ---------------------------------------------------------------------------------------------------- CLI


def test_module_help() -> None:
    done = subprocess.run([sys.executable, "-m", "depthxai", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("predict", "predict-split", "attribute", "evaluate", "merge"):
        assert command in done.stdout


def test_predict_writes_metres_equal_to_predict_image(shared_dir: Path, tmp_path: Path) -> None:
    weights = shared_dir / "mirror" / "build_model_best_nyu_xxs"
    image = shared_dir / "data" / "nyu_test" / "00000_colors.png"
    out = tmp_path / "depth.npy"
    assert main(["predict", "--model", "meter_xxs_nyu", "--weights", str(weights), "--out", str(out), str(image),
                 "-q"]) == 0
    depth = np.load(out)
    assert depth.dtype == np.float32 and depth.shape == (480, 640)
    expected = predict_image(load_depth_model("meter_xxs_nyu", weights), read_rgb(image))
    np.testing.assert_array_equal(depth, expected)
    # metres: the prediction agrees with the ground truth in scale (centimetres would be 100x off)
    gt = read_depth(shared_dir / "data" / "nyu_test" / "00000_depth.png", 1000.0)[45:471, 41:601]
    pred = depth[45:471, 41:601]
    valid = (gt > 1e-3) & (gt < 10)
    assert 0.6 < float(np.median(pred[valid] / gt[valid])) < 1.6
    assert float(np.mean(np.abs(pred[valid] - gt[valid]) / gt[valid])) < 0.4
    assert [p.name for p in tmp_path.iterdir()] == ["depth.npy"]  # no temporary file left


def test_predict_errors_exit_2_and_write_nothing(shared_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    image = shared_dir / "data" / "nyu_test" / "00000_colors.png"
    out = tmp_path / "out" / "depth.npy"
    missing = tmp_path / "no_such_checkpoint.pth"
    assert main(["predict", "--model", "meter_xxs_nyu", "--weights", str(missing), "--out", str(out), str(image),
                 "-q"]) == 2
    assert str(missing) in capsys.readouterr().err
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(image.read_bytes()[:5000])
    weights = shared_dir / "mirror" / "build_model_best_nyu_xxs"
    assert main(["predict", "--model", "meter_xxs_nyu", "--weights", str(weights), "--out", str(out), str(truncated),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert str(truncated) in err and "error" in err
    assert main(["predict", "--model", "meter_xxl_nyu", "--weights", str(weights), "--out", str(out), str(image),
                 "-q"]) == 2
    assert "meter_xxl_nyu" in capsys.readouterr().err
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_merge_is_independent_of_input_order(tmp_path: Path) -> None:
    first = pd.DataFrame({"method": ["ig", "ig"], "image_id": ["00002", "00001"], "metric": ["b", "a"],
                          "value": [1.5, 2.0]})
    second = pd.DataFrame({"method": ["saliency", "ig"], "image_id": ["00001", "00001"], "metric": ["a", "b"],
                           "value": [3.0, 0.25]})
    first.to_csv(tmp_path / "one.csv", index=False)
    second.to_csv(tmp_path / "two.csv", index=False)
    assert main(["merge", "--out", str(tmp_path / "ab.csv"), str(tmp_path / "one.csv"), str(tmp_path / "two.csv")]) == 0
    assert main(["merge", "--out", str(tmp_path / "ba.csv"), str(tmp_path / "two.csv"), str(tmp_path / "one.csv")]) == 0
    assert (tmp_path / "ab.csv").read_bytes() == (tmp_path / "ba.csv").read_bytes()
    merged = pd.read_csv(tmp_path / "ab.csv", dtype={"image_id": str})
    assert merged[["method", "image_id", "metric"]].values.tolist() == [
        ["ig", "00001", "a"], ["ig", "00001", "b"], ["ig", "00002", "b"], ["saliency", "00001", "a"]]
    assert merged["value"].tolist() == [2.0, 0.25, 1.5, 3.0]
    with pytest.raises(DataError, match="missing.csv"):
        concat_tidy([tmp_path / "one.csv", tmp_path / "missing.csv"])
    first.rename(columns={"value": "score"}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DataError, match="other.csv: columns"):
        concat_tidy([tmp_path / "one.csv", tmp_path / "other.csv"])


# ---------------------------------------------------------------------------------------------------- stages

IDS = ["00000", "00001", "00002"]
FRAME = (40, 48)  # dataset frames
INPUT = (32, 40)  # the stand-in network's input size


#: the stand-in network: 3x3 conv, tanh, 2x2 average pool, 1x1 conv, softplus: centimetres at half the input
#: resolution, weights drawn from N(0, 1) (the ``tiny_model`` fixture builds it)
TINY = {"input_size": INPUT, "imagenet_norm": True, "output_unit_m": 0.01, "width": 4, "activation": "tanh", "pool": 2,
        "body": 0, "head_kernel": 1, "offset": 1.0, "scale": 100.0, "seed": 0, "init_std": 1.0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny_dataset")
    gen = np.random.default_rng(0)
    write_dataset_info(root, DatasetInfo(name="synthindoor", kind="synthetic", depth_scale=1000.0, min_depth=1e-3,
                                         max_depth=10.0, eval_crop="none", image_size=FRAME))
    rows = []
    for image_id in IDS:
        yy, xx = np.mgrid[0 : FRAME[0], 0 : FRAME[1]]
        rgb = np.stack([(np.sin(xx / (3 + k) + gen.uniform(0, 6)) + 1) * 120 + gen.uniform(0, 15, FRAME)
                        for k in range(3)], axis=-1).astype(np.uint8)
        depth = 1.0 + 3.0 * yy / FRAME[0] + gen.uniform(0, 0.2, FRAME)
        depth[gen.uniform(size=FRAME) < 0.1] = 0.0  # holes: no ground truth
        write_rgb(root / "rgb" / f"{image_id}.png", rgb)
        write_depth(root / "depth" / f"{image_id}.png", depth, 1000.0)
        rows.append({"id": image_id, "split": "test", "rgb": f"rgb/{image_id}.png", "depth": f"depth/{image_id}.png"})
    write_index(root, pd.DataFrame(rows))
    return root


def subset(arrays: dict, ids: list[str]) -> dict:
    """The rows of a stage's arrays for ``ids`` (what a shard holding only these images would contain)."""
    index = [list(arrays["ids"]).index(i) for i in ids]
    out = {k: (v[index] if isinstance(v, np.ndarray) and v.ndim and len(v) == len(arrays["ids"]) else v)
           for k, v in arrays.items()}
    return out


def test_predict_split(dataset: Path, tmp_path: Path, tiny_model: Callable[..., DepthModel]) -> None:
    model = tiny_model(**TINY)
    order = ["00002", "00000", "00001"]
    arrays, metrics = predict_split(model, dataset, order, progress=False)
    assert arrays["ids"].tolist() == order
    assert arrays["native"].shape == (3, 1, 16, 20) and arrays["native"].dtype == np.float32
    for k, image_id in enumerate(order):
        rgb = read_rgb(dataset / "rgb" / f"{image_id}.png")
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255
        x = F.interpolate(x, size=INPUT, mode="bilinear", align_corners=False)
        x = ((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
             / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        with torch.no_grad():
            expected = 0.01 * model.net(x)
        np.testing.assert_allclose(arrays["native"][k], expected[0].numpy(), rtol=1e-6)
        # the accuracy rows: upsampled to the frame, clipped, on valid ground truth
        full = F.interpolate(torch.from_numpy(arrays["native"][k : k + 1]), size=FRAME, mode="bilinear",
                             align_corners=False)[0, 0].numpy().clip(1e-3, 10.0)
        gt = read_depth(dataset / "depth" / f"{image_id}.png", 1000.0)
        valid = (gt > 1e-3) & (gt < 10.0)
        rows = metrics[metrics["image_id"] == image_id].set_index("metric")["value"]
        assert rows["abs_rel"] == pytest.approx(np.mean(np.abs(full[valid] - gt[valid]) / gt[valid]), rel=1e-5)
        assert rows["rmse"] == pytest.approx(np.sqrt(np.mean((full[valid] - gt[valid]) ** 2)), rel=1e-5)
    assert list(metrics.columns) == ["image_id", "metric", "value"] and len(metrics) == 3 * 9
    # one image alone gives bit-identical rows
    alone, alone_metrics = predict_split(model, dataset, ["00001"], progress=False)
    np.testing.assert_array_equal(alone["native"][0], arrays["native"][2])
    pd.testing.assert_frame_equal(alone_metrics.reset_index(drop=True),
                                  metrics[metrics["image_id"] == "00001"].reset_index(drop=True))
    write_predictions(tmp_path / "p.npz", arrays)
    back = read_predictions(tmp_path / "p.npz")
    assert back["ids"].tolist() == order and np.array_equal(back["native"], arrays["native"])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        read_predictions(tmp_path / "bad.npz")


@pytest.fixture(scope="module")
def predictions(dataset: Path, tiny_model: Callable[..., DepthModel]) -> dict[str, np.ndarray]:
    return predict_split(tiny_model(**TINY), dataset, IDS, progress=False)[0]


METHODS = {
    "saliency": lambda: Saliency(),
    "ig": lambda: IntegratedGradients(n_steps=4, baseline="noise", internal_batch_size=2),
    "random": lambda: RandomRanking(),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_attribute_split(dataset: Path, predictions: dict[str, np.ndarray], name: str, tmp_path: Path,
                         tiny_model: Callable[..., DepthModel]) -> None:
    model = tiny_model(**TINY)
    target = TargetSpec("near", 0.3)
    arrays = attribute_split(model, METHODS[name](), dataset, predictions, target, channel_reduction="sum", seed=3,
                             meta={"params": {"x": 1}}, progress=False)
    assert arrays["ids"].tolist() == IDS
    assert arrays["maps"].shape == (3, *INPUT) and arrays["maps"].dtype == np.float32
    assert arrays["convergence_delta"].shape == (3,)
    assert np.isfinite(arrays["convergence_delta"]).all() == (name == "ig")
    if name == "ig":
        assert np.abs(arrays["convergence_delta"]).max() < 0.05
    # an image's map does not depend on the other images of its shard
    alone = attribute_split(model, METHODS[name](), dataset, subset(predictions, ["00001"]), target, seed=3,
                            progress=False)
    np.testing.assert_array_equal(alone["maps"][0], arrays["maps"][1])
    np.testing.assert_array_equal(alone["convergence_delta"], arrays["convergence_delta"][1:2])
    # the map explains the target computed from the stored prediction, for this image's seed
    image = prepare_input(read_rgb(dataset / "rgb" / "00002.png"), model.card)[None]
    clean = F.interpolate(torch.from_numpy(predictions["native"][2:3]), size=INPUT, mode="bilinear",
                          align_corners=False)
    flat = clean.flatten()
    mask = (clean <= torch.quantile(flat.double(), 0.3).float()).float()
    weights = mask / mask.sum()
    direct = METHODS[name]().attribute(model, image, weights, seeds=[image_seed(3, "00002", name)])
    np.testing.assert_allclose(arrays["maps"][2], reduce_channels(direct.maps, "sum")[0].numpy(), rtol=1e-5, atol=1e-9)
    # other seeds change stochastic maps only
    reseeded = attribute_split(model, METHODS[name](), dataset, subset(predictions, ["00001"]), target, seed=4,
                               progress=False)
    assert np.array_equal(reseeded["maps"][0], arrays["maps"][1]) == (name == "saliency")
    write_attributions(tmp_path / "a.npz", arrays)
    back = read_attributions(tmp_path / "a.npz")
    assert back["ids"].tolist() == IDS and np.array_equal(back["maps"], arrays["maps"])
    assert back["meta"] == {"method": name, "model": "tiny_test_synthindoor", "channel_reduction": "sum", "seed": 3,
                            "params": {"x": 1}, "target": {"kind": "near", "quantile": 0.3, "box": None},
                            "signed": True}


def test_attribute_split_rollout_on_meter(dataset: Path) -> None:
    torch.manual_seed(0)
    model = DepthModel(build_model("meter_xxs_synthindoor"), get_card("meter_xxs_synthindoor")).eval()
    preds = predict_split(model, dataset, IDS, progress=False)[0]
    assert preds["native"].shape == (3, 1, 48, 64)
    arrays = attribute_split(model, AttentionRollout(), dataset, preds, TargetSpec(), progress=False)
    assert arrays["maps"].shape == (3, 192, 256)
    np.testing.assert_allclose(arrays["maps"].sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert (arrays["maps"] >= 0).all()
    alone = attribute_split(model, AttentionRollout(), dataset, subset(preds, ["00002"]), TargetSpec(), progress=False)
    np.testing.assert_array_equal(alone["maps"][0], arrays["maps"][2])


def evaluation_config() -> EvaluationConfig:
    section = section_defaults("evaluation", {"fractions": [0.0, 0.1, 0.5], "batch_size": 4,
                                              "infidelity": {"n_perturb_samples": 4}})
    return EvaluationConfig.from_config(section)


@pytest.mark.parametrize("name", ["ig", "saliency"])
def test_evaluate_split(dataset: Path, predictions: dict[str, np.ndarray], name: str,
                        tiny_model: Callable[..., DepthModel]) -> None:
    model = tiny_model(**TINY)
    target = TargetSpec()
    attributions = attribute_split(model, METHODS[name](), dataset, predictions, target, seed=1, progress=False)
    attributions["meta"] = json.loads(str(attributions["meta"]))
    config = evaluation_config()
    scores, curves = evaluate_split(model, dataset, predictions, attributions, config, target, (0.5, 0.4, 0.3), seed=2,
                                    progress=False)
    assert list(scores.columns) == IMAGE_SCORE_COLUMNS == ["image_id", "metric", "value"]
    assert list(curves.columns) == CURVE_COLUMNS == ["image_id", "order", "fraction", "curve", "value"]
    # every curve under both default removal schemes: the primary (pixel, mean colour) unsuffixed, then "@road"
    expected_metrics = {f"{o}_auc_{c}{s}" for o in ("morf", "lerf") for s in ("", "@road")
                        for c in ("target_change", "depth_rmse", "depth_absrel", "gt_absrel_change", "gt_rmse_change")}
    expected_metrics |= {"attribution_fidelity", "infidelity", "constant_map"}
    expected_metrics |= {"convergence_delta"} if name == "ig" else set()
    for image_id in IDS:
        assert set(scores[scores["image_id"] == image_id]["metric"]) == expected_metrics
    assert (scores[scores["metric"] == "constant_map"]["value"] == 0.0).all()
    assert sorted(scores["image_id"].unique()) == IDS
    assert len(curves) == 3 * 2 * 3 * 5 * 2  # images x orders x fractions x curves x schemes
    assert set(curves["curve"]) == {f"{c}{s}" for c in ("target_change", "depth_rmse", "depth_absrel", "gt_absrel",
                                                         "gt_rmse") for s in ("", "@road")}
    # the AUCs are those of the curves (minus their start for the ground-truth error curves)
    for (image_id, order, curve), rows in curves.groupby(["image_id", "order", "curve"]):
        values, fractions = rows["value"].to_numpy(), rows["fraction"].to_numpy()
        assert fractions.tolist() == [0.0, 0.1, 0.5]
        start = values[0] if curve.startswith("gt_") else 0.0
        if not curve.startswith("gt_"):
            assert values[0] == 0.0
        base, _, scheme = curve.partition("@")
        name_ = (f"{order}_auc_{base}" + ("_change" if curve.startswith("gt_") else "")
                 + (f"@{scheme}" if scheme else ""))
        auc = scores[(scores["image_id"] == image_id) & (scores["metric"] == name_)]["value"].item()
        by_hand = ((values[0] + values[1]) / 2 * 0.1 + (values[1] + values[2]) / 2 * 0.4 - start * 0.5) / 0.5
        assert auc == pytest.approx(by_hand, rel=1e-9, abs=1e-12)
        assert auc == pytest.approx(normalised_auc(values - start, fractions), rel=1e-12, abs=1e-15)
    # Attribution Fidelity at the native resolution; the convergence delta passed through
    for k, image_id in enumerate(IDS):
        fid = scores[(scores["image_id"] == image_id) & (scores["metric"] == "attribution_fidelity")]["value"].item()
        assert fid == pytest.approx(attribution_fidelity(torch.from_numpy(attributions["maps"][k]),
                                                         torch.from_numpy(predictions["native"][k, 0])), rel=1e-9)
        if name == "ig":
            delta = scores[(scores["image_id"] == image_id) & (scores["metric"] == "convergence_delta")]["value"].item()
            assert delta == float(attributions["convergence_delta"][k])
    assert (scores[scores["metric"] == "infidelity"]["value"] >= 0).all()
    # an image's scores and curves do not depend on the other images of the shard
    one = ["00001"]
    alone_scores, alone_curves = evaluate_split(model, dataset, subset(predictions, one), subset(attributions, one),
                                                config, target, (0.5, 0.4, 0.3), seed=2, progress=False)
    pd.testing.assert_frame_equal(alone_scores, scores[scores["image_id"] == "00001"].reset_index(drop=True))
    pd.testing.assert_frame_equal(alone_curves, curves[curves["image_id"] == "00001"].reset_index(drop=True))
    with pytest.raises(DataError, match="different images"):
        evaluate_split(model, dataset, subset(predictions, one), attributions, config, target, (0.5, 0.4, 0.3),
                       progress=False)


# ---------------------------------------------------------------------------------------------------- CLI chain


@pytest.mark.slow
def test_cli_stages_merge_to_the_same_tables_whatever_the_sharding(dataset: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "meter.pth"
    torch.save(build_model("meter_xxs_synthindoor").state_dict(), weights)
    model = ["--model", "meter_xxs_synthindoor", "--weights", str(weights), "--threads", "1", "-q"]
    evaluation = json.dumps({"fractions": [0.0, 0.2], "batch_size": 2, "infidelity": {"n_perturb_samples": 2}})
    assert main(["mean-rgb", "--data", str(dataset), "--out", str(tmp_path / "mean.json")]) == 0
    mean = json.loads((tmp_path / "mean.json").read_text())["mean_rgb"]
    pixels = np.concatenate([read_rgb(dataset / "rgb" / f"{i}.png").reshape(-1, 3) for i in IDS])
    np.testing.assert_allclose(mean, pixels.mean(axis=0) / 255, rtol=1e-12)
    tables: dict[int, list[Path]] = {}
    for shards in (1, 2):
        tables[shards] = []
        for shard in range(shards):
            stem = tmp_path / f"s{shards}_{shard}"
            predictions, attributions = f"{stem}_pred.npz", f"{stem}_attr.npz"
            assert main(["predict-split", *model, "--data", str(dataset), "--shard", str(shard),
                         "--shards", str(shards), "--dataset", "synthindoor", "--arch", "meter_xxs",
                         "--out", predictions, "--out-metrics", f"{stem}_acc.csv"]) == 0
            assert main(["attribute", *model, "--data", str(dataset), "--predictions", predictions,
                         "--method", "random", "--seed", "5", "--out", attributions]) == 0
            assert main(["evaluate", *model, "--data", str(dataset), "--predictions", predictions, "--attributions",
                         attributions, "--evaluation", evaluation, "--mean-rgb", str(tmp_path / "mean.json"),
                         "--dataset", "synthindoor", "--arch", "meter_xxs", "--seed", "5",
                         "--out-scores", f"{stem}_scores.csv", "--out-curves", f"{stem}_curves.csv"]) == 0
            tables[shards].append(stem)
    assert [len(read_predictions(f"{s}_pred.npz")["ids"]) for s in tables[2]] == [2, 1]
    for kind in ("acc", "scores", "curves"):
        merged = {}
        for shards, stems in tables.items():
            out = tmp_path / f"merged{shards}_{kind}.csv"
            assert main(["merge", "--out", str(out), *[f"{s}_{kind}.csv" for s in stems]]) == 0
            merged[shards] = out.read_bytes()
        assert merged[1] == merged[2], kind
    scores = pd.read_csv(tmp_path / "merged1_scores.csv", dtype={"image_id": str})
    assert list(scores.columns) == ["dataset", "model", "method", "image_id", "metric", "value"]
    assert set(scores["method"]) == {"random"} and sorted(scores["image_id"].unique()) == IDS
    curves = pd.read_csv(tmp_path / "merged1_curves.csv", dtype={"image_id": str})
    assert list(curves.columns) == ["dataset", "model", "method", "image_id", "order", "fraction", "curve", "value"]


def test_cli_evaluate_rejects_a_bad_evaluation_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", "--model", "meter_xxs_synthindoor", "--weights", "w.pth", "--data", str(tmp_path),
            "--predictions", "p.npz",
            "--attributions", "a.npz", "--mean-rgb", "m.json", "--dataset", "d", "--arch", "meter_xxs",
            "--out-scores", str(tmp_path / "s.csv"), "--out-curves", str(tmp_path / "c.csv"), "-q"]
    assert main([*args, "--evaluation", '{"fractions": [0.0, 0.5, 0.2]}']) == 2
    assert "evaluation.fractions" in capsys.readouterr().err
    assert main([*args, "--evaluation", '{"fidelity": {"measure": "kendall"}}']) == 2
    assert "evaluation.fidelity.measure" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_reliability_takes_the_main_run_as_repeat_zero_of_every_factor(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(5)
    ids = [f"{i:05d}" for i in range(6)]
    truth = rng.normal(size=6)
    main_scores = pd.DataFrame({"dataset": "d", "model": "m", "method": "ig", "image_id": ids, "metric": "infidelity",
                                "value": truth})
    main_scores.to_csv(tmp_path / "scores.csv", index=False)
    # analysis seed: the same scores again (ICC 1); training seed: unrelated scores (ICC about 0 or below)
    analysis = main_scores.assign(factor="analysis_seed", repeat=1)
    training = main_scores.assign(value=rng.normal(size=6), factor="training_seed", repeat=1)
    analysis.to_csv(tmp_path / "a.csv", index=False)
    training.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "rel"
    assert main(["reliability", "--scores", str(tmp_path / "scores.csv"), "--retest", str(tmp_path / "a.csv"),
                 str(tmp_path / "t.csv"), "--out-dir", str(out), "-q"]) == 0
    icc = pd.read_csv(out / "icc.csv").set_index("factor")
    assert icc.loc["analysis_seed", "icc2_1"] == pytest.approx(1.0)
    assert icc.loc["training_seed", "icc2_1"] < 0.9
    # the training-seed ICC from the two score vectors, by the Shrout & Fleiss formula
    y = np.column_stack([truth, training["value"]])
    n, k = y.shape
    grand = y.mean()
    bms = k * ((y.mean(1) - grand) ** 2).sum() / (n - 1)
    jms = n * ((y.mean(0) - grand) ** 2).sum() / (k - 1)
    ems = ((y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + grand) ** 2).sum() / ((n - 1) * (k - 1))
    assert icc.loc["training_seed", "icc2_1"] == pytest.approx(
        (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n))
    analysis.drop(columns="factor").to_csv(tmp_path / "old.csv", index=False)
    assert main(["reliability", "--scores", str(tmp_path / "scores.csv"), "--retest", str(tmp_path / "old.csv"),
                 "--out-dir", str(tmp_path / "rel2"), "-q"]) == 2
    assert "old.csv" in capsys.readouterr().err and not (tmp_path / "rel2").exists()
