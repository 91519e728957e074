"""``depthxai explain``: a real NYU frame through the official METER-XXS, a tiny Depth Anything, and the errors a
person meets (each one line, exit status 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from depthxai.cli import main
from depthxai.cli.explain import method_file_name

FAST_EVALUATION = json.dumps({"fractions": [0.0, 0.25, 0.5, 1.0], "infidelity": {"n_perturb_samples": 2}})


def _explain(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["explain", "-q", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def nyu_explained(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> tuple[Path, str]:
    """The official METER-XXS NYU checkpoint explained on NYU test frame 00000 (four methods, evaluated)."""
    out = tmp_path_factory.mktemp("explain") / "out"
    code = main(["explain", "-q", str(shared_dir / "data" / "nyu_test" / "00000_colors.png"),
                 "--model", "meter_xxs_nyu", "--weights", str(shared_dir / "mirror" / "build_model_best_nyu_xxs"),
                 "--method", "saliency", "--method", "ig", "--method-params", 'ig={"n_steps": 8}',
                 "--method", "rollout", "--method", "captum:InputXGradient",
                 "--evaluate", "--evaluation", FAST_EVALUATION, "--out", str(out)])
    assert code == 0
    return out, "00000_colors"


def test_prediction_is_the_official_one(nyu_explained: tuple[Path, str], shared_dir: Path) -> None:
    out, stem = nyu_explained
    depth = np.load(out / stem / "depth.npy")
    # the official network's output (centimetres at 48x64), in metres, bilinearly at the input frame 192x256
    official = np.load(shared_dir / "reference" / "meter" / "nyu_xxs_00000.npz")["output"]
    expected = F.interpolate(torch.from_numpy(official) * 0.01, size=(192, 256), mode="bilinear",
                             align_corners=False)[0, 0].numpy()
    assert depth.dtype == np.float32 and depth.shape == (192, 256)
    np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-5)


def test_saliency_map_is_the_gradient_of_the_mean_depth(nyu_explained: tuple[Path, str], shared_dir: Path) -> None:
    """Signed saliency of the mean depth, recomputed with autograd alone (no Captum, no depthxai attribution)."""
    from depthxai.models import load_depth_model
    from depthxai.models.wrapper import prepare_input

    out, stem = nyu_explained
    model = load_depth_model("meter_xxs_nyu", shared_dir / "mirror" / "build_model_best_nyu_xxs")
    rgb = np.asarray(Image.open(shared_dir / "data" / "nyu_test" / "00000_colors.png").convert("RGB"))
    x = prepare_input(rgb, model.card)[None].requires_grad_(True)
    model(x).mean().backward()
    expected = x.grad[0].sum(dim=0).numpy()
    saliency = np.load(out / stem / "saliency.npy")
    assert saliency.shape == (192, 256) and (saliency < 0).any() and (saliency > 0).any()  # signed
    np.testing.assert_allclose(saliency, expected, rtol=1e-4, atol=1e-7 * np.abs(expected).max())


def test_every_method_writes_a_finite_map_and_the_panel(nyu_explained: tuple[Path, str]) -> None:
    out, stem = nyu_explained
    for method in ("saliency", "ig", "rollout", "captum:InputXGradient"):
        relevance = np.load(out / stem / f"{method_file_name(method)}.npy")
        assert relevance.shape == (192, 256) and np.isfinite(relevance).all() and np.abs(relevance).max() > 0
    # one row of panels: input, prediction, four maps, at 150 dpi; not blank
    with Image.open(out / stem / "panel.png") as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape[1] > 3 * pixels.shape[0] and pixels.std() > 20


def test_scores_are_the_workflow_scores_and_the_summary_their_gap(nyu_explained: tuple[Path, str],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out, stem = nyu_explained
    scores = pd.read_csv(out / stem / "scores.csv")
    assert set(scores["method"]) == {"saliency", "ig", "rollout", "captum:InputXGradient"}
    # the default removal schemes (pixels by the mean colour, ROAD), AF, and Infidelity named by the map's sign;
    # no ground truth, so no error-change curves
    by_method = scores.groupby("method")["metric"].apply(set)
    for method in by_method.index:
        assert {"morf_auc_target_change", "lerf_auc_target_change@road", "attribution_fidelity"} <= by_method[method]
        assert not any(m.startswith(("morf_auc_gt", "lerf_auc_gt")) for m in by_method[method])
    assert "infidelity" in by_method["saliency"] and "infidelity_unsigned" in by_method["rollout"]
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["method"]) == ["saliency", "ig", "rollout", "captum:InputXGradient"]
    wide = scores.pivot(index="method", columns="metric", values="value").loc[summary["method"]]
    np.testing.assert_allclose(summary["gap_auc_target_change"],
                               wide["morf_auc_target_change"] - wide["lerf_auc_target_change"],
                               rtol=1e-7)  # CSV: 9 digits
    assert summary["attribution_fidelity"].between(-1, 1).all()
    assert (summary["morf_auc_target_change"] > 0).all()  # removing pixels moves the mean depth


def test_the_printed_table_names_methods_and_values(tmp_path: Path, shared_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    image = shared_dir / "data" / "nyu_test" / "00001_colors.png"
    code, stdout, _ = _explain([str(image), "--model", "meter_xxs_nyu", "--weights",
                                str(shared_dir / "mirror" / "build_model_best_nyu_xxs"), "--method", "saliency",
                                "--evaluate", "--evaluation", FAST_EVALUATION, "--out", str(tmp_path)], capsys)
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0] == "00001_colors:" and lines[1].split() == ["Method", "MoRF", "AUC", "LeRF", "AUC", "MoRF", "-",
                                                                "LeRF", "AF"]
    summary = pd.read_csv(tmp_path / "summary.csv")
    printed = [float(v) for v in lines[2].split()[1:]]
    np.testing.assert_allclose(printed, summary.iloc[0, 2:].to_numpy(dtype=float), atol=5e-5)


def test_tiny_depth_anything_is_explained_in_relative_units(tmp_path: Path, shared_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers", reason="the hf extra (pip install -e '.[hf]') is not installed")
    from hf_fixtures import save_tiny_depth_anything

    folder = save_tiny_depth_anything(tmp_path / "tiny_da")
    image = shared_dir / "data" / "nyu_test" / "00008_colors.png"
    code, _, stderr = _explain([str(image), "--model", f"hf:{folder}", "--method", "saliency", "--method", "rollout",
                                "--method", "captum:NoiseTunnel(Saliency)", "--method-params",
                                'captum:NoiseTunnel(Saliency)={"nt_samples": 2, "stdevs": 0.05}',
                                "--out", str(tmp_path / "out")], capsys)
    assert code == 0, stderr
    result = tmp_path / "out" / "00008_colors"
    depth = np.load(result / "depth.npy")
    assert depth.shape == (56, 56) and np.isfinite(depth).all() and depth.std() > 0
    for name in ("saliency", "rollout", "captum-NoiseTunnel-Saliency"):
        relevance = np.load(result / f"{name}.npy")
        assert relevance.shape == (56, 56) and np.isfinite(relevance).all() and np.abs(relevance).max() > 0
    rollout = np.load(result / "rollout.npy")
    assert (rollout >= 0).all() and len(np.unique(rollout)) > 4  # patch-level relevance, 4x4 patches of 14 px
    assert (result / "panel.png").stat().st_size > 5000


# ---------------------------------------------------------------------------------------------------- errors


@pytest.fixture()
def nyu_frame(shared_dir: Path) -> Path:
    return shared_dir / "data" / "nyu_test" / "00013_colors.png"


def _one_line_error(code: int, stderr: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in stderr.strip().splitlines() if "error" in line]
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_unknown_method_lists_the_known_ones(nyu_frame: Path, tmp_path: Path, shared_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = _explain([str(nyu_frame), "--model", "meter_xxs_nyu", "--weights",
                                str(shared_dir / "mirror" / "build_model_best_nyu_xxs"), "--method", "gradcam",
                                "--out", str(tmp_path)], capsys)
    _one_line_error(code, stderr, "gradcam", "saliency, ig, rollout", "captum:<Method>")
    code, _, stderr = _explain([str(nyu_frame), "--model", "meter_xxs_nyu", "--weights",
                                str(shared_dir / "mirror" / "build_model_best_nyu_xxs"), "--method",
                                "captum:NoSuchMethod", "--out", str(tmp_path)], capsys)
    _one_line_error(code, stderr, "NoSuchMethod", "IntegratedGradients")


def test_a_method_missing_an_argument_says_which(nyu_frame: Path, tmp_path: Path, shared_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = [str(nyu_frame), "--model", "meter_xxs_nyu", "--weights",
            str(shared_dir / "mirror" / "build_model_best_nyu_xxs"), "--out", str(tmp_path)]
    code, _, stderr = _explain([*base, "--method", "explainer"], capsys)
    _one_line_error(code, stderr, "--method explainer", "weights", "--method-params")
    code, _, stderr = _explain([*base, "--method", "ig", "--method-params", 'ig={"baseline": "mean"}'], capsys)
    _one_line_error(code, stderr, "--method ig", "mean_rgb")
    code, _, stderr = _explain([*base, "--method", "saliency", "--method-params", 'ig={"n_steps": 4}'], capsys)
    _one_line_error(code, stderr, "--method-params", "ig")
    assert not any(tmp_path.iterdir())  # refused before any work


def test_bad_model_and_weights_name_them(nyu_frame: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = _explain([str(nyu_frame), "--model", "meter_huge_nyu", "--weights", str(nyu_frame),
                                "--method", "saliency", "--out", str(tmp_path / "a")], capsys)
    _one_line_error(code, stderr, "meter_huge_nyu")
    code, _, stderr = _explain([str(nyu_frame), "--model", "meter_xxs_nyu", "--method", "saliency",
                                "--out", str(tmp_path / "b")], capsys)
    _one_line_error(code, stderr, "--weights is required")
    code, _, stderr = _explain([str(nyu_frame), "--model", "meter_xxs_nyu", "--weights", str(tmp_path / "none.pth"),
                                "--method", "saliency", "--out", str(tmp_path / "c")], capsys)
    _one_line_error(code, stderr, "none.pth")


def test_a_module_of_the_wrong_shape_and_a_corrupt_image_are_named(tmp_path: Path, shared_dir: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tiny_nets import build_wrong_shape_net

    from depthxai.models.checkpoint import save_state_dict

    weights = tmp_path / "wrong.pt"
    save_state_dict(weights, build_wrong_shape_net().state_dict())
    (tmp_path / "wrong.yaml").write_text("input_size: [16, 16]\n")
    image = shared_dir / "data" / "nyu_test" / "00014_colors.png"
    code, _, stderr = _explain([str(image), "--model", "module:tiny_nets:build_wrong_shape_net", "--weights",
                                str(weights), "--method", "saliency", "--out", str(tmp_path / "out")], capsys)
    _one_line_error(code, stderr, "build_wrong_shape_net", "shape")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, _, stderr = _explain([str(broken), "--model", "meter_xxs_nyu", "--weights",
                                str(shared_dir / "mirror" / "build_model_best_nyu_xxs"), "--method", "saliency",
                                "--out", str(tmp_path / "out2")], capsys)
    _one_line_error(code, stderr, "broken.png")


def test_two_images_of_one_name_are_refused(tmp_path: Path, shared_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.png").write_bytes((shared_dir / "data" / "nyu_test" / "00000_colors.png").read_bytes())
    code, _, stderr = _explain([str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"), "--model",
                                "meter_xxs_nyu", "--weights", str(shared_dir / "mirror" / "build_model_best_nyu_xxs"),
                                "--method", "saliency", "--out", str(tmp_path / "out")], capsys)
    _one_line_error(code, stderr, "['x']")


def test_captum_methods_display_without_their_prefix() -> None:
    from depthxai.report.labels import display_name

    assert display_name("method", "captum:NoiseTunnel(Saliency)") == "NoiseTunnel(Saliency)"
    assert display_name("method", "captum:Occlusion") == "Occlusion" and display_name("method", "ig") == "IG"
    assert method_file_name("captum:NoiseTunnel(Saliency)") == "captum-NoiseTunnel-Saliency"
