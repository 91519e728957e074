"""benchmarks/critical_path.py on a hand-made dry run and benchmark files with a known longest chain."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "critical_path.py"
_SPEC = importlib.util.spec_from_file_location("critical_path", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
CP = importlib.util.module_from_spec(_SPEC)
sys.modules["critical_path"] = CP
_SPEC.loader.exec_module(CP)


def _job(rule: str, jobid: int, inputs: list[str], outputs: list[str], bench: str | None, wildcards: str = "") -> str:
    lines = ["[Mon Dec  7 06:08:48 2026]", f"rule {rule}:"]
    if inputs:
        lines.append(f"    input: {', '.join(inputs)}")
    if outputs:
        lines.append(f"    output: {', '.join(outputs)}")
    lines.append(f"    jobid: {jobid}")
    if bench:
        lines.append(f"    benchmark: {bench}")
    lines.append("    reason: Forced execution")
    if wildcards:
        lines.append(f"    wildcards: {wildcards}")
    lines.append("    resources: tmpdir=/tmp")
    lines.append(f"Shell command: python -m depthxai {rule}")
    return "\n".join(lines) + "\n"


# render (10 s) -> train_a (100 s) -> evaluate (5 s) -> stats (1 s)
#              -> train_b (50 s)   -^
#              -> science (200 s, reads a file inside the rendered folder) -> stats
# The longest chain: render, science, stats = 211 s.
DRY_RUN = "Building DAG of jobs...\nJob stats:\njob count\n" + "".join([
    _job("render_synthetic", 3, [], ["results/data/d"], "results/benchmarks/data/render_d.tsv", "dataset=d"),
    _job("train_model", 5, ["results/data/d"], ["results/models/d/a/weights.pt", "results/models/d/a/m.json"],
         "results/benchmarks/models/train_a.tsv", "dataset=d, model=a"),
    _job("train_model", 6, ["results/data/d"], ["results/models/d/b/weights.pt"],
         "results/benchmarks/models/train_b.tsv", "dataset=d, model=b"),
    _job("evaluate", 8, ["results/models/d/a/weights.pt", "results/models/d/b/weights.pt"],
         ["results/evaluation/s.csv"], "results/benchmarks/evaluate/e.tsv"),
    _job("sanity", 9, ["results/data/d/index.csv"], ["results/science/x.csv"], "results/benchmarks/science/x.tsv"),
    _job("statistics", 11, ["results/evaluation/s.csv", "results/science/x.csv"], ["results/stats/s.csv"],
         "results/benchmarks/stats/s.tsv"),
    _job("merge", 12, ["results/stats/s.csv"], ["results/tables/t.csv"], None),
]) + "localrule all:\n    input: results/tables/t.csv\n    jobid: 0\n    reason: Forced execution\n"

SECONDS = {"data/render_d.tsv": [10.0], "models/train_a.tsv": [90.0, 110.0], "models/train_b.tsv": [50.0],
           "evaluate/e.tsv": [5.0], "science/x.tsv": [200.0], "stats/s.tsv": [1.0]}


def _write_benchmarks(root: Path) -> None:
    for rel, values in SECONDS.items():
        path = root / "results" / "benchmarks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = ["s\th:m:s\tmax_rss\tcpu_time"] + [f"{v}\t0:00:00\t100.0\t{v / 2}" for v in values]
        path.write_text("\n".join(rows) + "\n")


def test_parse_reads_every_job_and_its_fields() -> None:
    jobs = {job.jobid: job for job in CP.parse_dry_run(DRY_RUN)}
    assert sorted(jobs) == [0, 3, 5, 6, 8, 9, 11, 12]
    assert jobs[5].outputs == ["results/models/d/a/weights.pt", "results/models/d/a/m.json"]
    assert jobs[5].label == "train_model[dataset=d, model=a]" and jobs[12].benchmark is None
    assert jobs[0].rule == "all" and jobs[0].inputs == ["results/tables/t.csv"]


def test_dependencies_follow_files_and_folders() -> None:
    deps = CP.dependencies(CP.parse_dry_run(DRY_RUN))
    assert deps == {3: set(), 5: {3}, 6: {3}, 8: {5, 6}, 9: {3}, 11: {8, 9}, 12: {11}, 0: {12}}


def test_critical_path_known_answer(tmp_path: Path) -> None:
    _write_benchmarks(tmp_path)
    result = CP.analyse(CP.parse_dry_run(DRY_RUN), tmp_path)
    assert result["critical_path_s"] == pytest.approx(211.0)
    assert [step["job"] for step in result["path"]] == [
        "render_synthetic[dataset=d]", "sanity", "statistics", "merge", "all"]
    # Path shares: data 10, science 200, stats 1 (merge and all have no benchmark: 0 s).
    assert result["path_share"] == pytest.approx({"data": 10 / 211, "science": 200 / 211, "stats": 1 / 211,
                                                  "unbenchmarked": 0.0})
    # All jobs: 10 + 100 (mean of 90 and 110) + 50 + 5 + 200 + 1 = 366 s.
    assert result["total_job_s"] == pytest.approx(366.0)
    assert result["total_share"]["models"] == pytest.approx(150 / 366)
    assert result["without_benchmark"] == ["merge"]
    text = CP.report(result, cores=2)
    assert "wall time lower bound on 2 cores: 211.0 s" in text  # max(211, 366 / 2)


def test_a_slower_branch_takes_over(tmp_path: Path) -> None:
    _write_benchmarks(tmp_path)
    (tmp_path / "results" / "benchmarks" / "models" / "train_b.tsv").write_text("s\tcpu_time\n500\t400\n")
    result = CP.analyse(CP.parse_dry_run(DRY_RUN), tmp_path)
    assert result["critical_path_s"] == pytest.approx(10 + 500 + 5 + 1)
    assert [step["job"] for step in result["path"]][:3] == [
        "render_synthetic[dataset=d]", "train_model[dataset=d, model=b]", "evaluate"]


def test_cpu_time_column_gives_the_cpu_seconds(tmp_path: Path) -> None:
    # _write_benchmarks writes cpu_time = s / 2 on every row: every job, the path and the total halve
    _write_benchmarks(tmp_path)
    result = CP.analyse(CP.parse_dry_run(DRY_RUN), tmp_path, column="cpu_time")
    assert result["critical_path_s"] == pytest.approx(211.0 / 2)
    assert result["total_job_s"] == pytest.approx(366.0 / 2)
    (tmp_path / "results" / "benchmarks" / "stats" / "s.tsv").write_text("s\tcpu_time\n1\tNA\n")
    with pytest.raises(ValueError, match="no 'cpu_time' values"):
        CP.analyse(CP.parse_dry_run(DRY_RUN), tmp_path, column="cpu_time")


def test_cycles_are_refused() -> None:
    text = _job("a", 1, ["y"], ["x"], None) + _job("b", 2, ["x"], ["y"], None)
    with pytest.raises(ValueError, match="cycle"):
        CP.critical_path(CP.parse_dry_run(text), {1: 1.0, 2: 1.0})
