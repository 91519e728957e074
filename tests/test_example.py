"""The minimal working example (``make example``): the Makefile's arguments, run through Snakemake into a temporary
folder, give every table and figure it promises, on the images and methods of config/example.yaml."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def example_args() -> list[str]:
    """``EXAMPLE_ARGS`` of the Makefile, as ``make example`` passes them to Snakemake."""
    match = re.search(r"^EXAMPLE_ARGS := (.+)$", (REPO / "Makefile").read_text(), flags=re.MULTILINE)
    assert match, "the Makefile defines no EXAMPLE_ARGS"
    return shlex.split(match.group(1))


def test_make_example_runs_the_example_config_in_its_own_folder() -> None:
    args = example_args()
    assert args[args.index("--configfile") + 1] == "config/example.yaml"
    assert args[args.index("--directory") + 1] == "results/example"  # never mixed with the main run's results/
    recipe = re.search(r"^example: .*\n\t(.+)$", (REPO / "Makefile").read_text(), flags=re.MULTILINE)
    assert recipe and "python -m depthxai run -- $(SNAKEMAKE_ARGS) $(EXAMPLE_ARGS)" in recipe.group(1)


@pytest.mark.slow
def test_the_example_gives_every_table_and_figure(tmp_path: Path) -> None:
    args = example_args()
    args[args.index("--directory") + 1] = str(tmp_path)
    args[args.index("--configfile") + 1] = str(REPO / "config" / "example.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "depthxai", "run", "--", "-s", str(REPO / "Snakefile"), "--cores",
                             "2", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"make example: {seconds:.0f} s")  # the README records the time on an idle machine
    # a progress line after every job, the last one at 100%; the job times are kept for the next run's estimate
    progress = [line for line in result.stdout.splitlines() if line.startswith("[depthxai]")]
    assert progress and progress[-1].startswith("[depthxai] 26/26 jobs (100%)"), progress[-3:]
    assert all("| stage: " in line and " elapsed | " in line for line in progress)
    history = yaml.safe_load((tmp_path / ".snakemake" / "depthxai-job-times.json").read_text())
    assert {"train_model", "attribute", "evaluate", "tables"} <= set(history)
    config = yaml.safe_load((REPO / "config" / "example.yaml").read_text())
    methods = set(config["methods"])
    results = tmp_path / "results"
    scores = pd.read_csv(results / "evaluation" / "scores.csv")
    assert set(scores["method"]) == methods
    assert scores["image_id"].nunique() == config["datasets"]["synthindoor"]["n_test"]
    assert scores["value"].notna().mean() > 0.9
    table1 = pd.read_csv(results / "tables" / "table1.csv")
    assert list(table1["method"]) == ["saliency", "ig", "rollout", "random_smooth", "random"]  # baselines last
    assert (table1["n"] == 4).all() and table1["gap_pixel_mean"].notna().all()
    # the paired differences to the smooth baseline (the reference itself has none)
    assert table1.set_index("method")["delta_pixel_mean"].notna().to_dict() == {
        "saliency": True, "ig": True, "rollout": True, "random_smooth": False, "random": True}
    accuracy = pd.read_csv(results / "tables" / "accuracy.csv")
    assert list(accuracy["model"]) == ["meter_xxs"]
    for figure in ("figure1_synthindoor_meter_xxs", "figure2", "figure3"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 10_000
    assert not (results / "science").exists() and not (results / "claims.md").exists()  # off in the example
