"""The Depth Anything preset (config/depth-anything.yaml) through the whole DAG, offline: the preset as it is, with
a tiny randomly initialised Depth Anything saved to a temporary folder (tests/hf_fixtures.py: a DINOv2 backbone of
2 layers, relative inverse depth) in place of the hub model and the embedded synthetic indoor scenes (4 test images,
60x80) in place of NYU; every method of the preset (Saliency, IG, Rollout, Captum's Occlusion and
NoiseTunnel(Saliency), the random baselines) at tiny settings, no test-retest repeat.

It checks real values: every table has the hf model with every method; every map is finite at the card's input
size and recorded under its config id; the accuracy of the relative model is the one of its predictions aligned to
the ground truth (recomputed here for one image with depthxai.evaluation.align, and far from the unaligned one);
the ground-truth curves start at that accuracy (the same alignment); the sanity cascade runs over the
transformers model's layers; claims 1-2 are "not evaluated" and claim 3 is decided.

Run time: about 3 minutes on 2 CPU cores (each of the ~20 model jobs spends most of its time importing PyTorch and
transformers).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from depthxai.data.io import read_dataset_info, read_depth, sample_paths
from depthxai.evaluation.align import align_to_ground_truth
from depthxai.metrics.depth import clip_prediction, compute_depth_metrics, eval_mask
from depthxai.models.wrapper import resize_depth

pytestmark = pytest.mark.slow

PRESET = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "depth-anything.yaml").read_text())
MODEL = "depth_anything_tiny"
DATASET = "synthindoor"
N_TEST = 4
INPUT_SIZE = [42, 56]  # 3x4 patches of 14 pixels
METHODS = sorted(PRESET["methods"])
CAPTUM = {"occlusion": "captum:Occlusion", "smoothgrad": "captum:NoiseTunnel(Saliency)"}


def tiny_preset(model_dir: Path) -> dict:
    """The preset with the tiny model on the synthetic scenes, at tiny settings (nothing else changed)."""
    config = copy.deepcopy(PRESET)
    (preset_model,) = config["models"].values()
    assert preset_model["source"].startswith("hf:") and preset_model["weights"] == {"nyu": None}
    config.update(device="cpu", threads=1, downloads={})
    config["datasets"] = {DATASET: {"source": "synthetic", "setup": "indoor", "n_test": N_TEST, "size": [60, 80]}}
    config["models"] = {MODEL: {"source": f"hf:{model_dir}", "card": {"input_size": INPUT_SIZE},
                                "weights": {DATASET: None}}}
    methods = config["methods"]
    assert {m: methods[m]["method"] for m in CAPTUM} == CAPTUM
    methods["ig"]["n_steps"] = 4
    methods["occlusion"].update(sliding_window_shapes=[3, 14, 14], strides=[3, 14, 14])
    methods["smoothgrad"]["nt_samples"] = 2
    config["evaluation"].update(fractions=[0.0, 0.1, 0.5], infidelity={"n_perturb_samples": 2})
    config["science"] = {"sanity": {"n_images": 2, "ig_steps": 2}, "localisation": {"n_mosaics": 4},
                         "object_shift": {"n_pairs": 1}, "retest": {"repeats": 1}}
    config["stats"]["bootstrap_resamples"] = 200
    config["report"] = {"qualitative_images": 2, "formats": ["png"]}
    return config


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "hf_config.yaml",
                           *args], cwd=workdir, capture_output=True, text=True, timeout=1500, check=False)


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory: pytest.TempPathFactory, copy_checkout: Callable[[Path], Path]) -> Path:
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from hf_fixtures import save_tiny_depth_anything

    model_dir = save_tiny_depth_anything(tmp_path_factory.mktemp("tiny_depth_anything"))
    workdir = copy_checkout(tmp_path_factory.mktemp("workflow_hf"))
    (workdir / "hf_config.yaml").write_text(yaml.safe_dump(tiny_preset(model_dir)))
    result = _snakemake(workdir)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return workdir


def test_tables_hold_the_hf_model_with_every_method(hf_run: Path) -> None:
    tables = hf_run / "results" / "tables"
    for name in ("table1", "table1_depth", "table2"):
        table = pd.read_csv(tables / f"{name}.csv")
        assert sorted(zip(table["dataset"], table["model"], table["method"])) == [(DATASET, MODEL, m) for m in METHODS]
        assert (table["n"] == N_TEST).all(), name
    accuracy = pd.read_csv(tables / "accuracy.csv")
    assert list(zip(accuracy["dataset"], accuracy["model"])) == [(DATASET, MODEL)]
    scores = pd.read_csv(hf_run / "results" / "evaluation" / "scores.csv", dtype={"image_id": str})
    assert set(scores["method"]) == set(METHODS) and set(scores["model"]) == {MODEL}
    for method in CAPTUM:  # the Captum methods are scored like every other one
        rows = scores[scores["method"] == method].set_index(["image_id", "metric"])["value"]
        for metric in ("morf_auc_target_change", "lerf_auc_target_change", "morf_auc_gt_absrel_change",
                       "attribution_fidelity", "infidelity"):  # both are signed: Infidelity applies
            values = rows.xs(metric, level="metric")
            assert len(values) == N_TEST and np.isfinite(values).all(), (method, metric)
    friedman = pd.read_csv(hf_run / "results" / "stats" / "friedman.csv")
    assert set(friedman["model"]) == {MODEL}
    card = json.loads((hf_run / "results" / "models" / DATASET / MODEL / "card.json").read_text())
    assert card["output_kind"] == "relative" and card["input_size"] == INPUT_SIZE
    assert card["accuracy_alignment"] == {"method": "lstsq", "space": "disparity"}
    assert card["weights_sha256"] is None and card["weights_source"].startswith("hf:")
    # the model is never trained by the DAG
    assert not (hf_run / "results" / "models" / DATASET / MODEL / "weights.pt").exists()


def test_maps_are_finite_and_recorded_under_their_ids(hf_run: Path) -> None:
    for method in METHODS:
        with np.load(hf_run / "results" / "attributions" / DATASET / MODEL / method / "shard-0.npz") as data:
            meta = json.loads(str(data["meta"]))
            maps = [data[k] for k in data.files if k.startswith("maps/")]
        assert meta["method"] == method and meta.get("method_name", method) == CAPTUM.get(method, method)
        assert len(maps) == N_TEST
        for pixel_map in maps:
            assert pixel_map.shape == tuple(INPUT_SIZE) and np.isfinite(pixel_map).all(), method
            assert pixel_map.std() > 0, method


def test_relative_accuracy_is_computed_after_alignment(hf_run: Path) -> None:
    data = hf_run / "results" / "data" / DATASET
    info = read_dataset_info(data)
    accuracy = pd.read_csv(hf_run / "results" / "predictions" / DATASET / MODEL / "shard-0.accuracy.csv",
                           dtype={"image_id": str})
    with np.load(hf_run / "results" / "predictions" / DATASET / MODEL / "shard-0.npz") as predictions:
        image_id = str(predictions["ids"][1])
        native = predictions[f"native/{image_id}"]
    gt = read_depth(sample_paths(data, image_id)[1], info.depth_scale)
    full = resize_depth(torch.from_numpy(native)[None], gt.shape)[0, 0].numpy()
    mask = eval_mask(gt, info.min_depth, info.max_depth, info.eval_crop)
    aligned = align_to_ground_truth(full, gt, mask, method="lstsq", space="disparity", max_depth=info.max_depth)
    expected = compute_depth_metrics(clip_prediction(aligned, info.min_depth, info.max_depth), gt, mask)
    reported = accuracy[accuracy["image_id"] == image_id].set_index("metric")["value"]
    for metric in ("abs_rel", "rmse", "delta1"):
        assert reported[metric] == pytest.approx(expected[metric], rel=1e-9, abs=1e-12), metric
    unaligned = compute_depth_metrics(clip_prediction(full, info.min_depth, info.max_depth), gt, mask)
    assert abs(unaligned["abs_rel"] - expected["abs_rel"]) > 0.1  # the raw inverse depth is far from metres
    # the curves against the ground truth score the same aligned prediction: at fraction 0 they are its accuracy
    curves = pd.read_csv(hf_run / "results" / "evaluation" / "curves.csv", dtype={"image_id": str})
    start = curves[(curves["image_id"] == image_id) & (curves["fraction"] == 0) & (curves["curve"] == "gt_absrel")
                   & (curves["method"] == "saliency")]["value"]
    assert len(start) == 2 and np.allclose(start, expected["abs_rel"], rtol=1e-5)


def test_science_stage_applies_to_the_hf_model(hf_run: Path) -> None:
    results = hf_run / "results"
    sanity = pd.read_csv(results / "science" / DATASET / MODEL / "sanity.csv", dtype={"image_id": str})
    layers = list(dict.fromkeys(sanity.sort_values("step")["layer"]))
    # the cascade from the output side: the head's layers first, each DINOv2 layer a step, the embeddings last
    assert layers[0] == "none" and layers[1] == "model.head.conv3" and layers[-1] == "model.backbone.embeddings"
    assert {"model.backbone.encoder.layer.1", "model.backbone.encoder.layer.0"} <= set(layers)
    assert set(sanity["method"]) == set(METHODS) - {"random_smooth"}
    step0 = sanity[(sanity["step"] == 0) & (sanity["metric"] == "spearman")]
    assert np.allclose(step0["value"], 1.0)  # the intact model reproduces its own maps
    localisation = pd.read_csv(results / "science" / DATASET / MODEL / "localisation.csv")
    assert set(CAPTUM) <= set(localisation["method"])
    assert len(pd.read_csv(results / "science" / DATASET / MODEL / "object_shift.csv")) > 0
    claims = pd.read_csv(results / "claims.csv")
    overall = claims[(claims["scope"] == "all") & (claims["role"] == "primary")].set_index("claim")["verdict"]
    assert overall[1] == "not evaluated" and overall[2] == "not evaluated"  # about METER and PixelFormer
    assert overall[3] in ("supported", "not supported", "inconclusive")
    alpha = pd.read_csv(results / "science" / "reliability" / "alpha.csv")
    explained = alpha[(alpha["methods_set"] == "explanations") & (alpha["metric"] == "morf_auc_target_change")]
    assert int(explained["n_methods"].iloc[0]) == 5  # saliency, ig, rollout and the two Captum methods


def test_figures_are_real_images(hf_run: Path) -> None:
    figures = hf_run / "results" / "figures"
    for name in (f"figure1_{DATASET}_{MODEL}", "figure2", "figure3", "randomisation", "violins",
                 "method_correlation"):
        with Image.open(figures / f"{name}.png") as image:
            pixels = np.asarray(image.convert("L"))
        assert min(pixels.shape) > 300, name
        assert pixels.std() > 10, f"{name} looks blank"
