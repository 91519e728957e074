"""Sharding never changes a result: the workflow on a tiny study with the test set in 1 and in 3 shards gives
byte-identical merged tables (evaluation scores, curves, accuracy) and statistics.

Each shard's predictions, maps and scores are computed image by image with per-image seeds, so an image's numbers
do not depend on which other images share its shard; the merge rules sort. Two copies of the checkout run the
workflow from scratch (one model, two methods, science off); it takes about two minutes on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, copy_checkout

pytestmark = pytest.mark.slow

TARGETS = [
    "results/evaluation/scores.csv",
    "results/evaluation/curves.csv",
    "results/evaluation/accuracy.csv",
    "results/stats/summary.csv",
    "results/stats/friedman.csv",
    "results/stats/wilcoxon.csv",
]


def tiny_study(shards: int) -> dict:
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
    config["models"] = {"meter_xxs": config["models"]["meter_xxs"]}
    config["methods"] = {"ig": config["methods"]["ig"], "random": config["methods"]["random"]}
    config["science"] = {"enabled": False}
    config["shards"] = shards
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = {}
    for shards in (1, 3):
        workdir = copy_checkout(tmp_path_factory.mktemp(f"shards{shards}"))
        (workdir / "study.yaml").write_text(yaml.safe_dump(tiny_study(shards)))
        result = subprocess.run([sys.executable, "-m", "snakemake", "--configfile", "study.yaml", "--cores", "2",
                                 *TARGETS], cwd=workdir, capture_output=True, text=True, timeout=1200, check=False)
        assert result.returncode == 0, result.stderr[-6000:]
        out[shards] = workdir
    return out


def test_three_shards_give_the_tables_of_one(runs: dict[int, Path]) -> None:
    one, three = runs[1], runs[3]
    # the same trained model in both runs (else the comparison below would test training, not sharding)
    weights = Path("results/models/synthindoor/meter_xxs/weights.pt")
    trained = [torch.load(run / weights, map_location="cpu", weights_only=True) for run in (one, three)]
    assert trained[0].keys() == trained[1].keys()
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])
    assert len(list((three / "results/predictions/synthindoor/meter_xxs").glob("shard-*.npz"))) == 3
    assert len(list((one / "results/predictions/synthindoor/meter_xxs").glob("shard-*.npz"))) == 1
    for target in TARGETS:
        assert (one / target).read_bytes() == (three / target).read_bytes(), target
    scores = (one / "results/evaluation/scores.csv").read_text().splitlines()
    n_test = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())["datasets"]["synthindoor"]["n_test"]
    for method in ("ig", "random"):
        rows = [line for line in scores if f",{method}," in line and ",infidelity," in line]
        assert len(rows) == n_test, method
