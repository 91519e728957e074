"""Interrupted runs: the workflow killed with SIGKILL (the whole Snakemake process group, as a cluster's time limit
or an out-of-memory killer would) during training, during attribution and during evaluation, then rerun
(``--unlock``, then ``--rerun-incomplete``), ends with the same bytes as a run that was never interrupted.

After every kill, nothing under results/ may look complete while being truncated: every .npz loads with all its
members (CRC checked), every CSV/TSV parses, every JSON parses, every checkpoint loads, every PNG decodes, every
PDF ends with %%EOF. Temporary files of killed writers are allowed at that point (hidden ``.<name>.<random>.tmp.*``,
they never look complete); after the final run none is left.

One sequence in one workdir: kill in training -> rerun, kill in attribution -> rerun, kill in evaluation -> rerun to
the end; compared with one uninterrupted reference run. On 2 cores: about 2 x 1 min.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from depthxai.models import read_state_dict

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONFIG_NAME = "interrupt_config.yaml"
MODEL_DIR = "results/models/synthindoor/meter_xxs"
TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.\w+)?$")


def interrupt_config() -> dict:
    """tests/data/tiny_config.yaml cut to one model, two methods, no science stage and no training-seed repeat (its
    jobs would be killed in place of the main run's, under other rule names)."""
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
    config["models"] = {"meter_xxs": config["models"]["meter_xxs"]}
    config["methods"] = {"saliency": {"abs": True}, "random": {}}
    config["science"] = {"enabled": False, "retest": {"repeats": 1}}
    config["report"]["formats"] = ["png"]
    return config


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", CONFIG_NAME, *args]


def run_to_end(workdir: Path, log_name: str) -> None:
    with open(workdir / log_name, "w") as log:
        done = subprocess.run(_command(), cwd=workdir, stdout=log, stderr=subprocess.STDOUT, timeout=1200, check=False)
    assert done.returncode == 0, (workdir / log_name).read_text()[-6000:]


def unlock(workdir: Path) -> None:
    """A killed Snakemake leaves its lock behind; a rerun refuses to start until it is removed."""
    done = subprocess.run(_command("--unlock"), cwd=workdir, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def _session_processes(session: int) -> dict[int, list[str]]:
    """pid -> argv of the live processes of a session (Snakemake, its job shells and their Python processes)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
            if int(fields[3]) != session or fields[0] == "Z":
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            found[int(entry.name)] = [a.decode(errors="replace") for a in argv if a]
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue  # the process ended while we looked
    return found


@dataclass
class Kill:
    """Where a run was killed: the depthxai subcommand that was running, for how long, and the run's elapsed time."""

    command: str
    job_seconds: float
    run_seconds: float
    outputs_present: list[str]
    n_outputs: int


def run_and_kill(workdir: Path, log_name: str, command: str, outputs: list[str], job_seconds: float) -> Kill:
    """Start the workflow in its own session and SIGKILL the whole process group while the ``depthxai <command>``
    job runs: once the job has run ``job_seconds`` (imports done, work under way), or at once when a temporary
    file of one of its ``outputs`` appears (a writer mid-write, the most delicate moment)."""
    log = open(workdir / log_name, "w")
    start = time.monotonic()
    proc = subprocess.Popen(_command(), cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    seen_since: float | None = None
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the run ended (status {proc.returncode}) before the kill point in '{command}': "
                            + (workdir / log_name).read_text()[-3000:])
            if time.monotonic() - start > 900:
                pytest.fail(f"'{command}' never ran")
            jobs = [argv for argv in _session_processes(proc.pid).values() if argv[1:4] == ["-m", "depthxai", command]]
            if jobs and seen_since is None:
                seen_since = time.monotonic()
            if not jobs:
                seen_since = None
            writing = any(TEMPORARY.match(p.name) for out in outputs for p in (workdir / out).parent.glob(".*"))
            done = all((workdir / out).exists() for out in outputs)
            if seen_since is not None and not done and (writing or time.monotonic() - seen_since >= job_seconds):
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        killed_after = time.monotonic()
        proc.wait(timeout=60)
    finally:
        log.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while _session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _session_processes(proc.pid) == {}, "processes of the killed run survived the process-group kill"
    return Kill(command, killed_after - seen_since, killed_after - start,
                [out for out in outputs if (workdir / out).exists()], len(outputs))


def check_npz_complete(path: Path) -> None:
    """Every member of a stage's ``.npz`` reads to its end, and the file holds what its ``ids`` promise.

    Each member is read in full (the zip's CRC is checked on the way); an ``ids`` array names the images, unique;
    each per-image array ``<name>/<id>`` is there for every id and no other, one shape for all, finite (the stages
    refuse non-finite maps and predictions); stacked arrays with a row per image have one row per id.
    """
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: np.asarray(data[name]) for name in data.files}
    assert "ids" in arrays, f"no ids array among {sorted(arrays)}"
    ids = [str(i) for i in arrays["ids"]]
    assert ids and len(set(ids)) == len(ids), f"ids {ids}"
    per_image = {name for name in arrays if "/" in name}
    row_names = sorted({name.split("/", 1)[0] for name in per_image})
    assert per_image == {f"{row}/{i}" for row in row_names for i in ids}, f"per-image arrays {sorted(per_image)}"
    for row in row_names:
        rows = [arrays[f"{row}/{i}"] for i in ids]
        assert len({r.shape for r in rows}) == 1 and rows[0].size > 0, f"{row}: shapes {[r.shape for r in rows]}"
        assert all(np.isfinite(r).all() for r in rows), f"{row}: non-finite values"
    for name in ("convergence_delta", "rgb", "prediction", "relevance", "ground_truth", "has_ground_truth"):
        if name in arrays:
            assert len(arrays[name]) == len(ids), f"{name}: {arrays[name].shape} for {len(ids)} ids"


def check_nothing_truncated(workdir: Path) -> list[str]:
    """Load every file under results/ by its type; return the temporary files of killed writers found."""
    temporaries = []
    for path in sorted((workdir / "results").rglob("*")):
        if not path.is_file():
            continue
        if TEMPORARY.match(path.name):
            temporaries.append(str(path.relative_to(workdir)))
            continue
        try:
            if path.suffix == ".npz":
                check_npz_complete(path)
            elif path.suffix in (".csv", ".tsv"):
                assert len(pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",").columns) > 0
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".pt":
                assert read_state_dict(path)
            elif path.suffix == ".png":
                with Image.open(path) as image:
                    image.load()
            elif path.suffix == ".pdf":
                assert path.read_bytes().rstrip().endswith(b"%%EOF")
            elif path.suffix in (".md", ".tex"):
                assert path.read_text().strip()
        except Exception as exc:  # noqa: BLE001 -- any failure to load is the finding
            raise AssertionError(f"{path.relative_to(workdir)} looks complete but does not load: {exc!r}") from exc
    return temporaries


def job_seconds_in(reference: Path, benchmark_glob: str) -> float:
    """How long the shortest job of a rule took in the reference run (its Snakemake benchmark file), in seconds."""
    files = sorted((reference / "results" / "benchmarks").glob(benchmark_glob))
    assert files, benchmark_glob
    return min(float(pd.read_csv(f, sep="\t")["s"].iloc[0]) for f in files)


def final_tables(workdir: Path) -> dict[str, bytes]:
    results = workdir / "results"
    paths = [*results.glob("evaluation/*.csv"), *results.glob("stats/*.csv"), *results.glob("tables/*")]
    return {str(p.relative_to(results)): p.read_bytes() for p in sorted(paths)}


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory: pytest.TempPathFactory, copy_checkout: Callable[[Path], Path]) -> tuple[Path, Path]:
    """Two copies of the same checkout snapshot: one for the reference run, one for the interrupted runs."""
    reference = copy_checkout(tmp_path_factory.mktemp("reference"))
    (reference / CONFIG_NAME).write_text(yaml.safe_dump(interrupt_config()))
    interrupted = tmp_path_factory.mktemp("interrupted") / "checkout"
    shutil.copytree(reference, interrupted)
    return reference, interrupted


def test_killed_runs_resume_to_the_same_bytes(workdirs: tuple[Path, Path]) -> None:
    reference, workdir = workdirs
    timings: dict[str, float] = {}
    start = time.monotonic()
    run_to_end(reference, "reference.log")
    timings["reference run"] = time.monotonic() - start

    # Kill 40% into each job as the reference run timed it: past the imports, inside the work.
    kill_after = {rule: 0.4 * job_seconds_in(reference, pattern) for rule, pattern in
               (("train", "models/train_*.tsv"), ("attribute", "attribute/*.tsv"), ("evaluate", "evaluate/*.tsv"))}
    start = time.monotonic()
    kills = [
        run_and_kill(workdir, "run1.log", "train", [f"{MODEL_DIR}/weights.pt", f"{MODEL_DIR}/train_metrics.json"],
                     job_seconds=kill_after["train"]),
        None, None,
    ]
    stages = [("attribute", ["results/attributions/synthindoor/meter_xxs/saliency/shard-0.npz",
                             "results/attributions/synthindoor/meter_xxs/random/shard-0.npz"]),
              ("evaluate", [f"results/evaluation/synthindoor/meter_xxs/{m}/shard-0.scores.csv"
                            for m in ("random", "saliency")])]
    leftovers = [check_nothing_truncated(workdir)]
    incomplete = [sorted((workdir / ".snakemake" / "incomplete").iterdir())]
    for k, (command, outputs) in enumerate(stages, start=1):
        unlock(workdir)
        kills[k] = run_and_kill(workdir, f"run{k + 1}.log", command, outputs, job_seconds=kill_after[command])
        leftovers.append(check_nothing_truncated(workdir))
        incomplete.append(sorted((workdir / ".snakemake" / "incomplete").iterdir()))
    unlock(workdir)
    run_to_end(workdir, "run4.log")
    timings["killed sequence (3 kills, 4 runs)"] = time.monotonic() - start

    # every kill hit a running job whose outputs were not all written, and Snakemake recorded it as incomplete
    for kill, markers in zip(kills, incomplete):
        assert kill is not None and len(kill.outputs_present) < kill.n_outputs
        assert markers, f"no incomplete marker after the kill in {kill.command}"
    # each killed job ran again in the next run
    for log_name, rule in (("run2.log", "train_model"), ("run3.log", "attribute"), ("run4.log", "evaluate")):
        assert f"rule {rule}:" in (workdir / log_name).read_text(), (log_name, rule)
    assert check_nothing_truncated(workdir) == []  # the reruns cleared the killed writers' temporary files
    assert not list((workdir / ".snakemake" / "incomplete").glob("*"))
    # the final tables are byte-identical to the uninterrupted run
    expected, got = final_tables(reference), final_tables(workdir)
    assert len(expected) >= 12 and sorted(got) == sorted(expected)
    differ = [name for name in expected if expected[name] != got[name]]
    assert differ == [], f"tables differ after interrupted runs: {differ}"
    summary = "; ".join(f"{k.command}: killed {k.job_seconds:.1f} s into the job (reference job "
                        f"{kill_after[k.command] / 0.4:.1f} s; {k.run_seconds:.1f} s into the run)"
                        f", outputs present {k.outputs_present}" for k in kills if k)
    print(f"\n{summary}\nleftover temporaries after each kill: {leftovers}\n"
          + "; ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()))
