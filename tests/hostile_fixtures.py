"""The hostile-inputs tests' workspace: a tiny prepared dataset, random METER-XXS weights and the stage outputs on
them (the ``workspace`` fixture of conftest.py), and the CLI argument lists and checks both test modules use."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from depthxai.cli import main
from depthxai.data.io import DatasetInfo, read_index, write_dataset_info, write_depth, write_index, write_rgb
from depthxai.models import build_model, save_state_dict

MODEL = "meter_xxs_synthindoor"
FRAME = (48, 64)
IDS = ["img0", "img1"]
BROKEN = "img1"  # the image each case damages; img0 stays good, so a stage fails midway, not at the start


def relink(root: Path, image_id: str, column: str, rel: str) -> None:
    """Point the index entry of ``image_id`` at another file (e.g. a .jpg or .tiff written by a case)."""
    index = read_index(root)
    index.loc[index["id"] == image_id, column] = rel
    write_index(root, index)


def write_dataset(root: Path) -> Path:
    """A prepared dataset: two 48x64 test images with smooth colour and a depth ramp (1-4 m)."""
    gen = np.random.default_rng(0)
    write_dataset_info(root, DatasetInfo(name="synthindoor", kind="synthetic", depth_scale=1000.0, min_depth=1e-3,
                                         max_depth=10.0, eval_crop="none", image_size=FRAME))
    yy, xx = np.mgrid[0 : FRAME[0], 0 : FRAME[1]]
    rows = []
    for image_id in IDS:
        rgb = np.stack([(np.sin(xx / (3 + k) + gen.uniform(0, 6)) + 1) * 120 for k in range(3)], -1).astype(np.uint8)
        write_rgb(root / "rgb" / f"{image_id}.png", rgb)
        write_depth(root / "depth" / f"{image_id}.png", 1.0 + 3.0 * yy / FRAME[0], 1000.0)
        rows.append({"id": image_id, "split": "test", "rgb": f"rgb/{image_id}.png", "depth": f"depth/{image_id}.png"})
    write_index(root, pd.DataFrame(rows))
    return root


def build_workspace(root: Path) -> dict[str, Path]:
    """The clean dataset under ``root``, seeded random METER-XXS weights, and the predict / attribute / mean-rgb
    outputs on them (the ``workspace`` fixture)."""
    data = write_dataset(root / "data")
    torch.manual_seed(0)
    weights = root / "weights.pt"
    save_state_dict(weights, build_model(MODEL).state_dict())
    paths = {"root": root, "data": data, "weights": weights, "predictions": root / "pred.npz",
             "accuracy": root / "acc.csv", "attributions": root / "attr.npz", "mean_rgb": root / "mean_rgb.json"}
    assert main(predict_args(data, weights, paths["predictions"], paths["accuracy"])) == 0
    assert main(["mean-rgb", "--data", str(data), "--out", str(paths["mean_rgb"]), "-q"]) == 0
    assert main(["attribute", "--model", MODEL, "--weights", str(weights), "--data", str(data), "--predictions",
                 str(paths["predictions"]), "--method", "random", "--out", str(paths["attributions"]), "-q"]) == 0
    return paths


def predict_args(data: Path, weights: Path, out: Path, metrics: Path) -> list[str]:
    return ["predict-split", "--model", MODEL, "--weights", str(weights), "--data", str(data), "--dataset",
            "synthindoor", "--arch", "meter_xxs", "--out", str(out), "--out-metrics", str(metrics), "-q"]


def evaluate_args(paths: dict[str, Path], data: Path, out_dir: Path, **override: Path) -> list[str]:
    p = {**paths, **override}
    return ["evaluate", "--model", MODEL, "--weights", str(p["weights"]), "--data", str(data), "--predictions",
            str(p["predictions"]), "--attributions", str(p["attributions"]), "--mean-rgb", str(p["mean_rgb"]),
            "--evaluation", '{"fractions": [0.0, 0.5], "infidelity": {"n_perturb_samples": 2}}', "--dataset",
            "synthindoor", "--arch", "meter_xxs", "--out-scores", str(out_dir / "scores.csv"), "--out-curves",
            str(out_dir / "curves.csv"), "-q"]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The CLI's error: exactly one line on stderr starting 'depthxai <command>: error:', no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, err
    return lines[0]


def damaged_copy(paths: dict[str, Path], tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    data = tmp_path / "data"
    shutil.copytree(paths["data"], data)
    damage(data)
    return data
