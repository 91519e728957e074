"""The progress lines of ``depthxai run``: stages from the rule files, the time left from job times, on a
Snakemake log whose clock the test drives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from depthxai.progress import PRIOR_FILE, ProgressTracker, _option, format_duration, read_history, rule_stages

REPO = Path(__file__).resolve().parents[1]

LOG_HEAD = """Provided cores: 2
Job stats:
job            count
-----------  -------
train_model        2
attribute          4
tables             1
all                1
total              8
"""


def job(rule: str, jobid: int) -> list[str]:
    return ["[Mon Dec  7 07:46:17 2026]", f"localrule {rule}:", "    output: x", f"    jobid: {jobid}",
            "    reason: Missing output files: x"]


def finish(rule: str, jobid: int, done: int, total: int = 8) -> list[str]:
    return [f"Finished jobid: {jobid} (Rule: {rule})", f"{done} of {total} steps ({100 * done // total}%) done"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(tracker: ProgressTracker, lines: list[str]) -> list[str]:
    return [status for line in lines if (status := tracker.feed(line)) is not None]


def test_every_rule_of_the_workflow_has_the_stage_of_its_file() -> None:
    stages = rule_stages(REPO / "workflow" / "rules")
    assert stages["train_model"] == "models" and stages["attribute"] == "attribute"
    assert stages["render_synthetic"] == "data" and stages["tables"] == "report" and stages["sanity"] == "sanity"
    assert stages["retrain_model"] == "retest"  # a "use rule ... as" rule belongs to the file that declares it
    # every rule Snakemake knows, but the target rule `all` (in the Snakefile)
    listed = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split()
    assert set(stages) == set(listed) - {"all"} and len(stages) > 30


def test_without_history_the_time_left_scales_the_elapsed_time_by_the_jobs_left() -> None:
    clock = Clock()
    tracker = ProgressTracker({"train_model": "models", "attribute": "attribute"}, clock=clock)
    assert feed(tracker, LOG_HEAD.splitlines()) == []
    assert tracker.cores == 2 and tracker.planned == {"train_model": 2, "attribute": 4, "tables": 1, "all": 1}
    feed(tracker, job("train_model", 5) + job("train_model", 6))
    clock.now = 100.0
    [status] = feed(tracker, finish("train_model", 5, 1))
    # one job of train_model took 100 s: with history now, the rest is 7 jobs x 100 s over 2 cores, minus the
    # 100 s the other running job has spent
    assert tracker.expected_seconds("attribute") == 100.0
    assert tracker.seconds_left() == pytest.approx((7 * 100.0 - 100.0) / 2)
    assert status == "[depthxai] 1/8 jobs (12%) | stage: models | 2 min elapsed | about 5 min left"


def test_history_of_earlier_runs_sets_each_rules_expected_time() -> None:
    clock = Clock()
    history = {"train_model": [300.0, 100.0, 200.0], "attribute": [10.0], "tables": [4.0], "all": [0.0]}
    tracker = ProgressTracker({"train_model": "models", "attribute": "attribute"}, history=history, clock=clock)
    feed(tracker, LOG_HEAD.splitlines())
    # nothing has run: 2 x 200 + 4 x 10 + 4 + 0 seconds of work over 2 cores
    assert tracker.seconds_left() == pytest.approx((2 * 200 + 4 * 10 + 4) / 2)
    feed(tracker, job("train_model", 1))
    clock.now = 50.0
    feed(tracker, job("attribute", 2))
    clock.now = 60.0
    [status] = feed(tracker, finish("attribute", 2, 1))
    assert tracker.history["attribute"] == [10.0, 10.0]
    # left: 2 train (200 each) + 3 attribute (10) + tables 4, minus the 60 s the running train job has spent
    assert tracker.seconds_left() == pytest.approx((400 + 30 + 4 - 60) / 2)
    assert "stage: models" in status and "60 s elapsed" in status


def test_the_reference_run_fills_rules_not_yet_run_here_at_this_machines_speed() -> None:
    clock = Clock()
    prior = {"train_model": [100.0], "attribute": [10.0, 30.0, 20.0], "tables": [2.0], "all": [0.0]}
    tracker = ProgressTracker({"train_model": "models"}, prior=prior, clock=clock)
    feed(tracker, LOG_HEAD.splitlines())
    # nothing run here yet: the reference run's medians as they are (ratio 1)
    assert tracker.speed_ratio() == 1.0 and tracker.expected_seconds("attribute") == 20.0
    assert tracker.seconds_left() == pytest.approx((2 * 100 + 4 * 20 + 2 + 0) / 2)
    feed(tracker, job("train_model", 5))
    clock.now = 300.0
    feed(tracker, finish("train_model", 5, 1))
    # train_model took 300 s here against 100 s there: this machine is 3x slower, for every rule not yet run here
    assert tracker.speed_ratio() == 3.0
    assert tracker.expected_seconds("train_model") == 300.0 and tracker.expected_seconds("attribute") == 60.0
    assert tracker.expected_seconds("tables") == 6.0
    assert tracker.expected_seconds("merge") == 300.0  # in neither: the median of the rules seen here


def test_without_any_job_time_the_estimate_is_unknown() -> None:
    tracker = ProgressTracker({}, clock=Clock())
    assert tracker.seconds_left() is None
    assert tracker.status().endswith("time left: unknown yet")


def test_history_file_and_options_are_read_defensively(tmp_path: Path) -> None:
    (tmp_path / "h.json").write_text('{"train_model": [1, 2.5]}')
    assert read_history(tmp_path / "h.json") == {"train_model": [1.0, 2.5]}
    (tmp_path / "bad.json").write_text("[1, 2")
    assert read_history(tmp_path / "bad.json") == {} and read_history(tmp_path / "none.json") == {}
    assert _option(["--cores", "2", "--directory", "out", "-s", "S"], ("-d", "--directory")) == "out"
    assert _option(["--directory=a/b"], ("-d", "--directory")) == "a/b"
    assert _option(["--cores", "2"], ("-s", "--snakefile")) is None


@pytest.mark.parametrize(("seconds", "text"), [(42, "42 s"), (89.4, "89 s"), (420, "7 min"), (3900, "1 h 05 min")])
def test_durations_read_as_a_person_says_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_run_names_a_config_folder_or_a_missing_file_in_one_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from depthxai.cli import main
    from depthxai.cli.run import config_files

    assert config_files(["--cores", "2", "--configfile", "a.yaml", "b.yaml", "-n", "--configfile=c.yaml"]) == [
        "a.yaml", "b.yaml", "c.yaml"]
    assert main(["run", "--", "--cores", "1", "--configfile", str(tmp_path)]) == 2  # before Snakemake starts
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"{tmp_path}: is a directory, not a config file")
    assert main(["run", "--", "--configfile", str(tmp_path / "absent.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_the_shipped_reference_times_name_rules_of_this_workflow(repo_root: Path) -> None:
    prior = read_history(repo_root / PRIOR_FILE)
    stages = rule_stages(repo_root / "workflow" / "rules")
    assert {"train_model", "evaluate", "attribute"} <= set(prior)
    assert set(prior) <= set(stages), sorted(set(prior) - set(stages))  # a renamed rule would leave a stale entry
    assert all(times and all(t >= 0 for t in times) for times in prior.values())
