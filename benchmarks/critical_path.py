"""The critical path of a workflow run: the longest chain of job wall times through the DAG, and each stage's share.

Jobs and their dependencies come from Snakemake's dry run of the whole DAG (``snakemake --dry-run --forceall``:
every job's rule, wildcards, input, output and benchmark file; job B depends on job A when an input of B is an
output of A). Job times come from the run's benchmark files (``results/benchmarks/<stage>/<job>.tsv``, column
``s``: wall seconds; the mean if a file has several rows). A job without a benchmark file counts 0 s and is
listed. The stage of a job is its benchmark folder (data, models, predict, attribute, evaluate, science, stats,
...).

Printed: the critical path job by job, its length, each stage's share of it, and each stage's share of the summed
job time (what the cores spend) -- with ``--cores`` the lower bound ``max(critical path, total / cores)`` on the
wall time of a run.

Usage (inside the workflow directory, after a run)::

    python benchmarks/critical_path.py                       # runs snakemake -n -F itself (config.yaml)
    python benchmarks/critical_path.py --snakemake-args "--configfile config/paper.yaml" --cores 2
    python benchmarks/critical_path.py --cores 2 --column cpu_time    # CPU seconds: a run that shared its cores
    snakemake -n -F > dag.txt; python benchmarks/critical_path.py --dry-run dag.txt --json path.json
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Job:
    """One job of the dry run."""

    jobid: int
    rule: str
    wildcards: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    benchmark: str | None = None

    @property
    def label(self) -> str:
        return f"{self.rule}[{self.wildcards}]" if self.wildcards else self.rule


_RULE = re.compile(r"^(?:local)?rule (\S+):$")
_FIELD = re.compile(r"^\s+(input|output|jobid|benchmark|wildcards): (.*)$")


def parse_dry_run(text: str) -> list[Job]:
    """Jobs of a ``snakemake --dry-run`` listing (Snakemake 8/9 format: ``rule <name>:`` then indented fields)."""
    jobs: list[Job] = []
    current: dict[str, str] | None = None
    rule = ""

    def close() -> None:
        if current is not None and "jobid" in current:
            split = lambda key: [p.strip() for p in current.get(key, "").split(", ") if p.strip()]  # noqa: E731
            jobs.append(Job(int(current["jobid"]), rule, current.get("wildcards", ""), split("input"),
                            split("output"), current.get("benchmark")))

    for line in text.splitlines():
        if match := _RULE.match(line):
            close()
            current, rule = {}, match.group(1)
        elif current is not None and (match := _FIELD.match(line)):
            current[match.group(1)] = match.group(2).strip()
        elif current is not None and line and not line.startswith(" "):
            close()
            current = None
    close()
    return jobs


def dependencies(jobs: list[Job]) -> dict[int, set[int]]:
    """jobid -> the jobids whose outputs it reads (an input equal to an output, or inside an output folder)."""
    producer: dict[str, int] = {}
    for job in jobs:
        for out in job.outputs:
            producer[out.rstrip("/")] = job.jobid
    deps: dict[int, set[int]] = {job.jobid: set() for job in jobs}
    for job in jobs:
        for path in job.inputs:
            path = path.rstrip("/")
            parts = path.split("/")
            for end in range(len(parts), 0, -1):  # the file itself, then each enclosing folder
                source = producer.get("/".join(parts[:end]))
                if source is not None and source != job.jobid:
                    deps[job.jobid].add(source)
                    break
    return deps


def read_seconds(path: Path, column: str = "s") -> float:
    """Mean of a column of a Snakemake benchmark file: ``s`` (wall seconds) or ``cpu_time`` (CPU seconds)."""
    with path.open(newline="") as handle:
        rows = [float(row[column]) for row in csv.DictReader(handle, delimiter="\t")
                if row.get(column) not in (None, "", "NA")]
    if not rows:
        raise ValueError(f"{path}: no {column!r} values")
    return sum(rows) / len(rows)


def stage_of(job: Job) -> str:
    """The benchmark folder below ``benchmarks/`` (``unbenchmarked`` without a benchmark file)."""
    if not job.benchmark:
        return "unbenchmarked"
    parts = Path(job.benchmark).parts
    return parts[parts.index("benchmarks") + 1] if "benchmarks" in parts[:-1] else Path(job.benchmark).parent.name


def critical_path(jobs: list[Job], seconds: dict[int, float]) -> tuple[float, list[int]]:
    """Length and jobids (first to last) of the longest chain, by job seconds, through the dependency DAG.

    Raises:
        ValueError: if the dependencies contain a cycle.
    """
    deps = dependencies(jobs)
    finish: dict[int, float] = {}
    via: dict[int, int | None] = {}
    state: dict[int, int] = {}

    def visit(jid: int) -> float:
        # Iterative depth-first search (DAGs of thousands of jobs exceed Python's recursion limit).
        stack = [(jid, iter(sorted(deps[jid])))]
        state[jid] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is not None:
                if state.get(child) == 1:
                    raise ValueError(f"dependency cycle through job {child}")
                if child not in finish:
                    state[child] = 1
                    stack.append((child, iter(sorted(deps[child]))))
                continue
            stack.pop()
            best = max(deps[node], key=lambda d: (finish[d], -d), default=None)
            finish[node] = seconds.get(node, 0.0) + (finish[best] if best is not None else 0.0)
            via[node] = best
            state[node] = 2
        return finish[jid]

    for job in jobs:
        if job.jobid not in finish:
            visit(job.jobid)
    if not finish:
        return 0.0, []
    end = max(finish, key=lambda j: (finish[j], -j))
    chain = []
    node: int | None = end
    while node is not None:
        chain.append(node)
        node = via[node]
    return finish[end], chain[::-1]


def analyse(jobs: list[Job], root: Path, column: str = "s") -> dict[str, object]:
    """Seconds per job from the benchmark files under ``root``, the critical path and the stage shares.

    ``column="cpu_time"`` counts each job's CPU seconds instead of its wall seconds: for the single-threaded jobs
    of the default study, the wall time the job would take on an idle core, whatever else shared the machine.
    """
    seconds: dict[int, float] = {}
    missing = []
    for job in jobs:
        path = root / job.benchmark if job.benchmark else None
        if path is not None and path.exists():
            seconds[job.jobid] = read_seconds(path, column)
        elif job.rule != "all":
            missing.append(job.label)
    length, chain = critical_path(jobs, seconds)
    by_id = {job.jobid: job for job in jobs}
    path_by_stage: dict[str, float] = defaultdict(float)
    total_by_stage: dict[str, float] = defaultdict(float)
    for jid in chain:
        path_by_stage[stage_of(by_id[jid])] += seconds.get(jid, 0.0)
    for job in jobs:
        total_by_stage[stage_of(job)] += seconds.get(job.jobid, 0.0)
    total = sum(total_by_stage.values())
    return {
        "critical_path_s": length,
        "total_job_s": total,
        "path": [{"job": by_id[j].label, "stage": stage_of(by_id[j]), "s": seconds.get(j, 0.0)} for j in chain],
        "path_share": {k: v / length if length else 0.0 for k, v in sorted(path_by_stage.items())},
        "total_share": {k: v / total if total else 0.0 for k, v in sorted(total_by_stage.items())},
        "without_benchmark": sorted(missing),
    }


def report(result: dict[str, object], cores: int | None) -> str:
    lines = [f"critical path: {result['critical_path_s']:.1f} s ({result['critical_path_s'] / 60:.1f} min) "
             f"through {len(result['path'])} jobs; all jobs: {result['total_job_s']:.1f} s"]
    if cores:
        bound = max(float(result["critical_path_s"]), float(result["total_job_s"]) / cores)
        lines.append(f"wall time lower bound on {cores} cores: {bound:.1f} s ({bound / 60:.1f} min)")
    lines.append("")
    lines.extend(f"  {step['s']:9.1f} s  {step['stage']:<13} {step['job']}" for step in result["path"])
    lines.append("")
    lines.append(f"  {'stage':<14} {'path share':>10} {'job-time share':>15}")
    for stage in sorted(set(result["path_share"]) | set(result["total_share"])):
        lines.append(f"  {stage:<14} {result['path_share'].get(stage, 0.0):10.1%} "
                     f"{result['total_share'].get(stage, 0.0):15.1%}")
    if result["without_benchmark"]:
        lines.append(f"\n{len(result['without_benchmark'])} jobs have no benchmark file (counted 0 s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", type=Path, default=None,
                   help="a saved 'snakemake -n -F' listing (default: run it here)")
    p.add_argument("--snakemake-args", default="", help="extra snakemake arguments, e.g. '--configfile x.yaml'")
    p.add_argument("--root", type=Path, default=Path("."), help="workflow directory (default: .)")
    p.add_argument("--cores", type=int, default=None, help="also print max(critical path, total / cores)")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    p.add_argument("--column", choices=("s", "cpu_time"), default="s",
                   help="job time: wall seconds (s, default) or CPU seconds (cpu_time: the job's own cost on a "
                        "machine that other work shared)")
    args = p.parse_args(argv)
    if args.dry_run is not None:
        text = args.dry_run.read_text()
    else:
        cmd = ["snakemake", "--dry-run", "--forceall", *shlex.split(args.snakemake_args)]
        proc = subprocess.run(cmd, cwd=args.root, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        text = proc.stdout
    jobs = parse_dry_run(text)
    if not jobs:
        print("no jobs found in the dry run", file=sys.stderr)
        return 1
    result = analyse(jobs, args.root, args.column)
    print(report(result, args.cores))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
