"""Hostile inputs, second round: no input is destroyed, no NaN passes silently, and every error is one line.

Each class of the issue is fixed at its root by one mechanism, and each test here probes it from the outside:

* data loss: :func:`depthxai.cli.guard_paths` (every command, before any work) refuses an output that is an input
  (same path, symbolic or hard link), replaces a file of an input folder, or holds an input;
* numbers: weights with NaN/inf are refused at load, a non-finite prediction or map is an error naming the image,
  a diverging training stops naming the epoch and the setting, JSON is strict, a constant map is flagged, and a
  prediction far from the model card's range warns;
* one line: unwritable or folder outputs, ``--threads 0``, maps of the wrong shape, a shard merged twice, maps of
  another model, a FIFO or a device given as an image, a full disk; EXIF orientation is applied.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hostile_fixtures import BROKEN, IDS, MODEL, damaged_copy, error_line, evaluate_args, predict_args, relink
from PIL import Image

from depthxai.attribution.run import read_attributions, write_attributions
from depthxai.cli import main
from depthxai.data.io import read_rgb
from depthxai.errors import CheckpointError, DataError, TrainingError
from depthxai.fileio import write_json
from depthxai.models import build_model, load_depth_model, save_state_dict
from depthxai.models.predict import implausible_depth_warning

# ------------------------------------------------------------------------------------------------ data loss


def test_predict_refuses_to_write_over_its_input_image(workspace, tmp_path, capsys) -> None:
    image = tmp_path / "photo.png"
    shutil.copy(workspace["data"] / "rgb" / "img0.png", image)
    before = image.read_bytes()
    link = tmp_path / "link.npy"
    link.symlink_to(image)
    hard = tmp_path / "hard.npy"
    os.link(image, hard)
    for out in (image, link, hard, tmp_path / "." / "photo.png"):
        code = main(["predict", "--model", MODEL, "--weights", str(workspace["weights"]), "--out", str(out), str(image),
                     "-q"])
        assert code == 2
        line = error_line(capsys)
        assert "is also an input" in line and str(image) in line and str(out) in line, line
    assert image.read_bytes() == before  # nothing written
    assert main(["predict", "--model", MODEL, "--weights", str(workspace["weights"]), "--out",
                 str(tmp_path / "depth.npy"), str(image), "-q"]) == 0
    assert np.load(tmp_path / "depth.npy").shape == (48, 64) and image.read_bytes() == before


def test_outputs_never_replace_a_file_of_an_input_folder(workspace, tmp_path, capsys) -> None:
    data = damaged_copy(workspace, tmp_path, lambda d: None)
    index = data / "index.csv"
    before = index.read_bytes()
    assert main(["mean-rgb", "--data", str(data), "--out", str(index), "-q"]) == 2
    assert "would replace a file of the input folder" in error_line(capsys)
    assert index.read_bytes() == before
    # scores written over the attributions they are computed from
    args = evaluate_args(workspace, data, tmp_path)
    args[args.index("--out-scores") + 1] = str(workspace["attributions"])
    assert main(args) == 2
    assert "is also an input" in error_line(capsys)
    assert read_attributions(workspace["attributions"])["ids"].tolist() == IDS


def test_a_dataset_folder_is_not_written_over_its_own_sources(tmp_path, capsys) -> None:
    source = tmp_path / "raw"
    source.mkdir()
    (source / "nyu_depth_v2_labeled.mat").write_bytes(b"not really")
    (source / "splits.mat").write_bytes(b"not really")
    code = main(["prepare-nyu", "--labeled", str(source / "nyu_depth_v2_labeled.mat"), "--splits",
                 str(source / "splits.mat"), "--out", str(source), "-q"])
    assert code == 2 and "holds the input" in error_line(capsys)
    assert (source / "splits.mat").read_bytes() == b"not really"


# ------------------------------------------------------------------------------------------------ numbers


def test_weights_with_nan_are_refused_at_load_naming_the_tensor(workspace, tmp_path, capsys) -> None:
    state = build_model(MODEL).state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 4)
    state[name].view(-1)[0] = float("nan")
    broken = tmp_path / "broken.pt"
    save_state_dict(broken, state)
    with pytest.raises(CheckpointError, match=rf"{broken}: tensor {name!r} holds 1 NaN/inf value"):
        load_depth_model(MODEL, broken)
    assert main(predict_args(workspace["data"], broken, tmp_path / "p.npz", tmp_path / "a.csv")) == 2
    assert f"tensor {name!r}" in error_line(capsys) and not (tmp_path / "p.npz").exists()


def test_a_non_finite_prediction_is_an_error_naming_the_image(workspace, tmp_path, capsys) -> None:
    """Finite weights that still predict NaN (a negative running variance: the square root of a negative number)
    are not clipped into a plausible depth: the image is named and no prediction file is left."""
    state = build_model(MODEL).state_dict()
    variance = next(k for k in state if k.endswith("running_var"))
    state[variance].fill_(-1.0)
    weights = tmp_path / "negative_variance.pt"
    save_state_dict(weights, state)
    assert main(predict_args(workspace["data"], weights, tmp_path / "p.npz", tmp_path / "a.csv")) == 2
    line = error_line(capsys)
    assert "predicts non-finite depth (NaN/inf) for image img0" in line and str(weights) in line, line
    assert not (tmp_path / "p.npz").exists() and not (tmp_path / "a.csv").exists()
    image = tmp_path / "one.png"
    shutil.copy(workspace["data"] / "rgb" / "img0.png", image)
    assert main(["predict", "--model", MODEL, "--weights", str(weights), "--out", str(tmp_path / "d.npy"), str(image),
                 "-q"]) == 2
    assert f"{image}: the model {MODEL} predicts non-finite depth" in error_line(capsys)


def _maps_with(workspace, tmp_path: Path, change) -> Path:
    arrays = read_attributions(workspace["attributions"])
    arrays = {"ids": arrays["ids"], "maps": np.asarray(arrays["maps"]).copy(),
              "convergence_delta": arrays["convergence_delta"], "meta": arrays["meta"]}
    change(arrays)
    out = tmp_path / "maps.npz"
    write_attributions(out, arrays)
    return out


@pytest.mark.parametrize(("case", "change", "message"), [
    ("NaN in a map", lambda a: a["maps"].__setitem__((1, 3, 4), np.nan),
     r"{maps}: the map of image img1 holds 1 NaN/inf value\(s\); rerun the attribute rule"),
    ("a map of the wrong size", lambda a: a.__setitem__("maps", a["maps"][:, :-1, :]),
     r"{maps}: the map of image img0 has shape \(191, 256\); expected \(192, 256\)"),
    ("a map of the wrong rank", lambda a: a.__setitem__("maps", a["maps"][:, None]),
     r"{maps}: the map of image img0 has shape \(1, 192, 256\)"),
    ("maps of another model", lambda a: a["meta"].__setitem__("model", "pixelformer_nano07_synthindoor"),
     r"{maps}: the maps explain the model 'pixelformer_nano07_synthindoor', not 'meter_xxs_synthindoor'"),
])
def test_bad_maps_are_refused_by_the_evaluation(workspace, tmp_path, capsys, case, change, message) -> None:
    maps = _maps_with(workspace, tmp_path, change)
    assert main(evaluate_args(workspace, workspace["data"], tmp_path, attributions=maps)) == 2, case
    assert re_search(message.format(maps=maps), error_line(capsys))
    assert not (tmp_path / "scores.csv").exists()


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_a_constant_map_is_evaluated_and_flagged(workspace, tmp_path, caplog) -> None:
    maps = _maps_with(workspace, tmp_path, lambda a: a["maps"].__setitem__(1, 0.5))
    with caplog.at_level("WARNING", logger="depthxai"):
        assert main(evaluate_args(workspace, workspace["data"], tmp_path, attributions=maps)) == 0
    assert f"{maps}: the map of image img1 is constant" in caplog.text
    scores = pd.read_csv(tmp_path / "scores.csv", dtype={"image_id": str})
    flags = scores[scores["metric"] == "constant_map"].set_index("image_id")["value"]
    assert flags.to_dict() == {"img0": 0.0, "img1": 1.0}
    fidelity = scores[scores["metric"] == "attribution_fidelity"].set_index("image_id")["value"]
    assert np.isnan(fidelity["img1"]) and np.isfinite(fidelity["img0"])  # undefined, reported as missing
    morf = scores[scores["metric"].str.startswith("morf_auc")]
    morf_img1 = morf[morf["image_id"] == "img1"]
    assert len(morf_img1) > 0 and set(morf_img1["metric"]) == set(morf.loc[morf["image_id"] == "img0", "metric"])
    assert morf_img1["value"].notna().all()


def test_json_is_strict_naming_the_key(tmp_path) -> None:
    with pytest.raises(DataError, match=r"m\.json: refusing to write the non-finite number at test\.delta1"):
        write_json(tmp_path / "m.json", {"test": {"delta1": float("nan"), "rmse": 1.0}})
    with pytest.raises(DataError, match=r"at history\.1\.loss"):
        write_json(tmp_path / "m.json", {"history": [{"loss": 1.0}, {"loss": np.float32("inf")}]})
    assert not (tmp_path / "m.json").exists()
    write_json(tmp_path / "m.json", {"ok": None, "x": np.float64(2.0)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"ok": None, "x": 2.0}


def test_a_diverging_explainer_training_names_the_epoch_and_the_setting(workspace, monkeypatch) -> None:
    from depthxai.attribution.explainer import training as module  # the module whose _step_losses fit_explainer calls

    model = load_depth_model(MODEL, workspace["weights"])
    original = module._step_losses

    def diverging(*args, **kwargs):  # type: ignore[no-untyped-def]
        loss, terms = original(*args, **kwargs)
        return loss * float("nan"), terms

    monkeypatch.setattr(module, "_step_losses", diverging)
    data = workspace["root"] / "with_train"
    if not data.exists():
        shutil.copytree(workspace["data"], data)
        index = pd.read_csv(data / "index.csv", dtype=str)
        index.loc[index["id"] == "img0", "split"] = "train"
        index.to_csv(data / "index.csv", index=False)
    config = module.ExplainerConfig.from_config({"epochs": 1, "batch_size": 1, "lr": 0.005, "seed": 0})
    with pytest.raises(TrainingError, match=r"diverged in epoch 1, step 1 \(loss nan\); lower methods\.explainer\.lr "
                                        r"\(now 0\.005\)"):
        module.fit_explainer(model, data, config, progress=False)


def test_implausible_medians_warn_against_the_model_card() -> None:
    model = load_depth_model(MODEL)
    model.weights_path = "nyu_as_kitti.pth"
    assert implausible_depth_warning(model, [2.0, 3.0, 4.5]) == ""  # indoor depths
    warning = implausible_depth_warning(model, [17.0, 25.0, 34.0])  # NYU weights run as KITTI: 17-34 m indoors
    assert warning.startswith("nyu_as_kitti.pth: the median predicted depth over 3 image(s) is 25.00 m, outside the "
                              "0.5-8 m expected of meter_xxs_synthindoor")
    road = load_depth_model("meter_xxs_synthroad")
    assert implausible_depth_warning(road, [0.8, 1.0]) != "" and implausible_depth_warning(road, [12.0]) == ""
    # within a road model's range, beyond an indoor dataset's cap
    assert "beyond the 10 m depth cap" in implausible_depth_warning(road, [17.0, 34.0], depth_cap=10.0)


def test_official_nyu_weights_run_as_the_kitti_model_warn(shared_dir, tmp_path, caplog) -> None:
    """The issue's case end to end: METER's NYU checkpoint under the KITTI card (decimetres, no normalisation) on a
    real NYU frame predicts tens of metres indoors; predict-split says so."""
    from depthxai.data.io import DatasetInfo, write_dataset_info, write_index, write_rgb

    frames = sorted((shared_dir / "data" / "nyu_test").glob("*_colors.png"))[:2]
    data = tmp_path / "nyu_as_kitti"
    write_dataset_info(data, DatasetInfo(name="nyu", kind="nyu", depth_scale=1000.0, min_depth=1e-3,
                                         max_depth=10.0, eval_crop="none", image_size=(480, 640)))
    rows = []
    for k, frame in enumerate(frames):
        write_rgb(data / "rgb" / f"f{k}.png", read_rgb(frame))
        rows.append({"id": f"f{k}", "split": "test", "rgb": f"rgb/f{k}.png", "depth": ""})
    write_index(data, pd.DataFrame(rows))
    with caplog.at_level("WARNING", logger="depthxai"):
        code = main(["predict-split", "--model", "meter_xxs_kitti", "--weights",
                     str(shared_dir / "mirror" / "build_model_best_nyu_xxs"), "--data", str(data), "--dataset", "nyu",
                     "--arch", "meter_xxs", "--out", str(tmp_path / "p.npz"), "--out-metrics", str(tmp_path / "a.csv"),
                     "-q"])
    assert code == 0
    assert "build_model_best_nyu_xxs: the median predicted depth over 2 image(s) is" in caplog.text
    assert "beyond the 10 m depth cap of the images' dataset" in caplog.text


# ------------------------------------------------------------------------------------------------ one line


def test_unwritable_or_folder_outputs_fail_before_the_model_runs(workspace, tmp_path, capsys) -> None:
    args = predict_args(workspace["data"], workspace["weights"], tmp_path, tmp_path / "a.csv")
    assert main(args) == 2
    assert f"{tmp_path} (--out): is a folder; give the path of the file to write" in error_line(capsys)
    readonly = Path("/proc/depthxai-cannot-exist/p.npz")  # /proc refuses new files, even to root
    args = predict_args(workspace["data"], workspace["weights"], readonly, tmp_path / "a.csv")
    assert main(args) == 2
    assert f"{readonly} (--out): cannot write in /proc" in error_line(capsys)


def test_threads_below_one_are_refused(workspace, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--model", MODEL, "--weights", str(workspace["weights"]), "--threads", "0", "--out", "x.npy",
              "y.png"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads: must be at least 1, got 0" in err and "Traceback" not in err


def test_a_shard_merged_twice_is_refused(tmp_path, capsys) -> None:
    table = pd.DataFrame({"dataset": "d", "model": "m", "method": "ig", "image_id": ["a", "b"], "metric": "x",
                          "value": [1.0, 2.0]})
    table.to_csv(tmp_path / "s0.csv", index=False)
    table.iloc[1:].to_csv(tmp_path / "s1.csv", index=False)  # image b in two shards
    assert main(["merge", "--out", str(tmp_path / "all.csv"), str(tmp_path / "s0.csv"), str(tmp_path / "s0.csv")]) == 2
    assert "occurs more than once" in error_line(capsys)
    assert main(["merge", "--out", str(tmp_path / "all.csv"), str(tmp_path / "s0.csv"), str(tmp_path / "s1.csv")]) == 2
    line = error_line(capsys)
    assert "s0.csv and" in line and "s1.csv" in line and "image_id=b" in line
    assert not (tmp_path / "all.csv").exists()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_given_as_an_image_is_refused_without_blocking(workspace, tmp_path, capsys, kind) -> None:
    if kind == "fifo":
        special = tmp_path / "pipe.png"
        os.mkfifo(special)
    else:
        special = Path("/dev/zero")
    code = main(["predict", "--model", MODEL, "--weights", str(workspace["weights"]), "--out",
                 str(tmp_path / "d.npy"), str(special), "-q"])
    assert code == 2
    assert f"{special}: not a regular file or folder (a FIFO, device or socket)" in error_line(capsys)
    # in a dataset's index too (the path reaches the image reader, not the command line)
    data = damaged_copy(workspace, tmp_path, lambda d: None)
    if kind == "fifo":
        os.mkfifo(data / "rgb" / "pipe.png")
        relink(data, BROKEN, "rgb", "rgb/pipe.png")
    else:
        relink(data, BROKEN, "rgb", "/dev/zero")
    assert main(predict_args(data, workspace["weights"], tmp_path / "p.npz", tmp_path / "a.csv")) == 2
    assert "is not a regular file (a FIFO, device or socket)" in error_line(capsys)


def test_a_full_disk_gives_one_line_and_no_output(workspace, tmp_path, capsys) -> None:
    """A tiny tmpfs stands for a full disk (as root; elsewhere the write is made to fail the same way)."""
    mount = tmp_path / "full"
    mount.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                                   capture_output=True, check=False).returncode == 0
    if not mounted:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        with open(mount / "filler", "wb", buffering=0) as filler:  # fill it up: the next write of any size fails
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass
        out = mount / "pred.npz"
        assert main(predict_args(workspace["data"], workspace["weights"], out, tmp_path / "a.csv")) == 2
        line = error_line(capsys)
        assert line == f"depthxai predict-split: error: {out}: No space left on device", line
        assert [p.name for p in mount.iterdir()] == ["filler"]  # no partial file, no temporary left
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_exif_orientation_is_applied(tmp_path) -> None:
    pixels = np.zeros((32, 48, 3), np.uint8)
    pixels[:8, :, 0] = 255  # a red top band
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    image.save(path, format="JPEG", exif=exif.tobytes(), quality=95, subsampling=0)
    upright = read_rgb(path)
    assert upright.shape == (48, 32, 3)  # turned as a viewer shows it
    assert upright[:, -4:, 0].mean() > 200 and upright[:, :4, 0].mean() < 50  # the red band is now on the right


# ------------------------------------------------------------------------------------------------ planning time


@pytest.mark.slow
def test_snakemake_refuses_duplicate_keys_and_cuda_without_a_gpu_before_any_job(tmp_path, repo_root,
                                                                                copy_checkout) -> None:
    workdir = copy_checkout(tmp_path / "checkout")
    text = (repo_root / "config.yaml").read_text()
    (workdir / "twice.yaml").write_text(text.replace("seed: 0\n", "seed: 0\nseed: 1\n", 1))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "twice.yaml"], cwd=workdir,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0 and "key 'seed' is given twice" in result.stdout + result.stderr
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--config", "device=cuda"], cwd=workdir,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert "config key device: 'cuda', but this machine has no CUDA" in result.stdout + result.stderr
    assert not (workdir / "results").exists()  # refused before the first job
