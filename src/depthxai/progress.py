"""Follow a Snakemake run as a person would: which stage it is in and about how long is left.

Snakemake prints a step counter; this reads its log lines (the job table, each job's start and finish) and adds,
after every finished job, one line with the stage (the rule file the job's rule lives in: data, models, predict,
attribute, evaluate, sanity, retest, stats, report) and an estimate of the time left:

* with the job times of earlier runs (kept per rule in ``.snakemake/depthxai-job-times.json`` of the working
  folder, updated as jobs finish): the expected seconds of the jobs still to run, over the cores, minus what the
  running jobs have already spent (each rule's median of its last runs);
* for a rule not yet run here, the job times of the reference run shipped with the workflow
  (``workflow/job-times.json``: the default study's cold run of the README), scaled by how much faster or slower
  this machine ran the rules both have seen (the median ratio; 1 before any); a rule in neither gets the median of
  all rules seen here;
* without any of these: the elapsed time scaled by the share of jobs still to run.

Both ignore the DAG's shape (a long chain on a wide machine finishes later than work / cores), so the estimate is
a lower bound late in a run; it is printed as "about".
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from depthxai.fileio import write_json

HISTORY_FILE = Path(".snakemake") / "depthxai-job-times.json"
#: the reference run's job times, beside the rule files (relative to the Snakefile's folder)
PRIOR_FILE = Path("workflow") / "job-times.json"
#: job times kept per rule (the most recent ones)
HISTORY_PER_RULE = 20

_RULE_START = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
_STEPS = re.compile(r"^(\d+) of (\d+) steps \(\d+%\) done$")
_CORES = re.compile(r"^Provided cores: (\d+)$")
_TABLE_ROW = re.compile(r"^(\w+)\s+(\d+)$")


def rule_stages(rules_dir: str | os.PathLike[str]) -> dict[str, str]:
    """``{rule: stage}``: each rule's stage is the stem of the ``.smk`` file that defines it (``rule x:`` or
    ``use rule y as x with:``)."""
    stages = {}
    for path in sorted(Path(rules_dir).glob("*.smk")):
        for line in path.read_text().splitlines():
            match = re.match(r"^(?:rule (\w+):|use rule \w+ as (\w+))", line)
            if match:
                stages[match.group(1) or match.group(2)] = path.stem
    return stages


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``1 h 05 min``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass
class ProgressTracker:
    """Reads Snakemake's log lines (:meth:`feed`) and says where the run stands (:meth:`status`).

    Args:
        stages: ``{rule: stage}`` (:func:`rule_stages`).
        history: ``{rule: [seconds, ...]}`` of earlier runs here.
        prior: ``{rule: [seconds, ...]}`` of the reference run (:data:`PRIOR_FILE`).
        clock: seconds, monotonic (a test passes its own).
    """

    stages: Mapping[str, str]
    history: dict[str, list[float]] = field(default_factory=dict)
    prior: Mapping[str, list[float]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    cores: int = 1
    planned: dict[str, int] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=dict)
    running: dict[int, tuple[str, float]] = field(default_factory=dict)
    done: int = 0
    total: int = 0
    _started: float | None = None
    _in_table: bool = False
    _pending_rule: str | None = None

    def feed(self, line: str) -> str | None:
        """Take one log line; returns a status line after a job finished, else ``None``."""
        line = line.rstrip("\n")
        now = self.clock()
        if self._started is None:
            self._started = now
        if (match := _CORES.match(line)) is not None:
            self.cores = int(match.group(1))
        elif line.startswith("Job stats:"):
            self._in_table, self.planned = True, {}
        elif self._in_table:
            if (match := _TABLE_ROW.match(line)) is not None:
                if match.group(1) == "total":
                    self._in_table = False
                    self.total = max(self.total, int(match.group(2)))
                else:
                    self.planned[match.group(1)] = int(match.group(2))
        elif (match := _RULE_START.match(line)) is not None:
            self._pending_rule = match.group(1)
        elif (match := _JOBID.match(line)) is not None and self._pending_rule is not None:
            self.running[int(match.group(1))] = (self._pending_rule, now)
            self._pending_rule = None
        elif (match := _FINISHED.match(line)) is not None:
            jobid, rule = int(match.group(1)), match.group(2)
            started = self.running.pop(jobid, (rule, now))[1]
            self.finished[rule] = self.finished.get(rule, 0) + 1
            self.history.setdefault(rule, []).append(now - started)
            del self.history[rule][:-HISTORY_PER_RULE]
        elif (match := _STEPS.match(line)) is not None:
            self.done, self.total = int(match.group(1)), int(match.group(2))
            return self.status()
        return None

    def speed_ratio(self) -> float:
        """How long this machine takes against the reference run: the median over the rules both have seen of
        (median here / median there); 1.0 before any."""
        ratios = [statistics.median(self.history[r]) / statistics.median(self.prior[r]) for r in self.history
                  if self.history[r] and self.prior.get(r) and statistics.median(self.prior[r]) > 0]
        return statistics.median(ratios) if ratios else 1.0

    def expected_seconds(self, rule: str) -> float | None:
        """The median of the rule's job times here; else the reference run's median scaled by
        :meth:`speed_ratio`; else the median of all rules' medians here; ``None`` without any of these."""
        if self.history.get(rule):
            return statistics.median(self.history[rule])
        if self.prior.get(rule):
            return statistics.median(self.prior[rule]) * self.speed_ratio()
        medians = [statistics.median(v) for v in self.history.values() if v]
        return statistics.median(medians) if medians else None

    def seconds_left(self) -> float | None:
        """The estimate of the time left (module docstring), ``None`` before anything is known."""
        now = self.clock()
        elapsed = now - (self._started if self._started is not None else now)
        remaining = {rule: count - self.finished.get(rule, 0) for rule, count in self.planned.items()}
        work = 0.0
        for rule, count in remaining.items():
            if count <= 0:
                continue
            expected = self.expected_seconds(rule)
            if expected is None:
                work = -1.0
                break
            work += count * expected
        if work >= 0 and self.planned:
            spent = sum(now - started for _, started in self.running.values())
            return max(0.0, work - spent) / max(1, self.cores)
        if self.done and self.total:
            return elapsed * (self.total - self.done) / self.done
        return None

    def stage(self) -> str:
        """The stages of the running jobs (or of the last finished one), in the order of the rule files."""
        rules = [rule for rule, _ in self.running.values()]
        names = sorted({self.stages.get(rule, rule) for rule in rules})
        return ", ".join(names) if names else "-"

    def status(self) -> str:
        """``[depthxai] 37/200 jobs (18%) | stage: attribute | 5 min elapsed | about 14 min left``."""
        elapsed = self.clock() - (self._started if self._started is not None else self.clock())
        left = self.seconds_left()
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        estimate = f"about {format_duration(left)} left" if left is not None else "time left: unknown yet"
        return (f"[depthxai] {self.done}/{self.total} jobs{share} | stage: {self.stage()} | "
                f"{format_duration(elapsed)} elapsed | {estimate}")


def read_history(path: str | os.PathLike[str]) -> dict[str, list[float]]:
    """The job times of earlier runs; an unreadable file counts as none (it is only an estimate)."""
    try:
        data = json.loads(Path(path).read_text())
        return {str(rule): [float(t) for t in times] for rule, times in data.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def follow(lines: Iterable[str], tracker: ProgressTracker, out: Callable[[str], None]) -> None:
    """Pass every line to ``out``, each status line after the line that triggered it."""
    for line in lines:
        out(line.rstrip("\n"))
        status = tracker.feed(line)
        if status is not None:
            out(status)


def _option(args: Sequence[str], names: tuple[str, ...]) -> str | None:
    """The value of the last of Snakemake's ``names`` options in ``args`` (``--opt VALUE`` or ``--opt=VALUE``)."""
    value = None
    for k, arg in enumerate(args):
        if arg in names and k + 1 < len(args):
            value = args[k + 1]
        elif arg.startswith(tuple(f"{n}=" for n in names if n.startswith("--"))):
            value = arg.split("=", 1)[1]
    return value


def run_with_progress(snakemake_args: Sequence[str]) -> int:
    """Run ``snakemake <args>`` and print its output with the progress lines; returns its exit status.

    The stages come from the rule files beside the Snakefile (``-s``/``--snakefile``, default ``./Snakefile``);
    the job times are saved to :data:`HISTORY_FILE` in the working folder (``-d``/``--directory``, default ``.``)
    as the run goes, so an interrupted run keeps what it measured.
    """
    snakefile = Path(_option(snakemake_args, ("-s", "--snakefile")) or "Snakefile")
    history_path = Path(_option(snakemake_args, ("-d", "--directory")) or ".") / HISTORY_FILE
    tracker = ProgressTracker(rule_stages(snakefile.parent / "workflow" / "rules"), read_history(history_path),
                              prior=read_history(snakefile.parent / PRIOR_FILE))
    command = [sys.executable, "-m", "snakemake", *snakemake_args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None

        def emit(text: str) -> None:
            print(text, flush=True)
            if text.startswith("[depthxai]"):
                history_path.parent.mkdir(parents=True, exist_ok=True)
                write_json(history_path, tracker.history)

        try:
            follow(proc.stdout, tracker, emit)
        except KeyboardInterrupt:
            proc.terminate()
        return proc.wait()
