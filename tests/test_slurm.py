"""The SLURM profile (profiles/slurm) on a real, throw-away, single-node SLURM cluster.

The cluster is Debian's slurm-wlm and munge (`make test` installs them when run as root): the test writes a
slurm.conf for this host (no cgroups: proctrack/linuxproc and task/none; no accounting, so the executor must
poll with squeue), starts munged, slurmctld and slurmd in the foreground as children of the test, waits for the
node to be idle, and stops them by PID afterwards. The workflow then runs a tiny configuration through
``--executor slurm --profile profiles/slurm``, and its tidy tables must equal, byte for byte, those of a local
``--cores 2`` run of the same configuration. Skips (saying why) where that cannot work: not Linux, not root, the
packages or the executor plugin absent, an existing /etc/slurm/slurm.conf that is not ours, too little memory.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
# srun inside a job reads the configuration from the default path only (the plugin clears SLURM_* variables).
SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by depthxai tests/test_slurm.py for a throw-away test cluster; removed when the test ends"
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
# The cluster has a default partition and the partition the test selects through DEPTHXAI_SLURM_PARTITION, so a
# job that lands in the second one proves that the profile's site setting reached sbatch.
DEFAULT_PARTITION, TEST_PARTITION = "debug", "depthxai"

# The tiny study: one synthetic dataset, METER-XXS trained for one epoch, two methods, three fractions.
TINY_CONFIG = {
    "seed": 0,
    "device": "cpu",
    "threads": 1,
    "shards": 1,
    "datasets": {"synthindoor": {"source": "synthetic", "setup": "indoor", "n_train": 4, "n_test": 2,
                                 "size": [60, 80]}},
    "models": {"meter_xxs": {"weights": {"synthindoor": "train"},
                             "train": {"epochs": 1, "batch_size": 2, "lr": 0.002, "weight_decay": 0.0001,
                                       "max_minutes": 10.0}}},
    "methods": {"saliency": {"abs": True}, "random": {}},
    "evaluation": {"fractions": [0.0, 0.1, 0.5],
                   "infidelity": {"n_perturb_samples": 2, "noise_std": 0.05, "normalize": True}},
    "stats": {"bootstrap_resamples": 200},
    "report": {"qualitative_images": 1, "formats": ["png"]},
    # the science stage and the training-seed repeat are exercised by the local integration test
    "science": {"enabled": False, "retest": {"repeats": 1}},
}
# Every output of the two runs must be the same bytes (weights included: they are saved through a file handle, so
# equal tensors give equal bytes), except wall times (benchmarks, train_seconds).
NOT_COMPARED = ("results/benchmarks/*", "results/*/train_metrics.json")  # fnmatch's * spans folders
# Arguments for the tiny study on the test cluster: first status check 10 s after submission (default 40 s;
# a job here takes about 20 s, mostly the two Snakemake start-ups of the job step, and the plugin then waits
# 10 s longer each time nothing finished), keep the SLURM logs of successful jobs as evidence.
SLURM_TEST_ARGS = ("--slurm-init-seconds-before-status-checks", "10", "--slurm-keep-successful-logs")

pytestmark = pytest.mark.slow


def _largest_profile_memory_mb() -> int:
    """The largest mem_mb the SLURM profile requests for a first attempt (the node must offer that much)."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    values = [profile["default-resources"]["mem_mb"]]
    values += [resources["mem_mb"] for resources in profile["set-resources"].values() if "mem_mb" in resources]
    return max(int(eval(str(value), {"attempt": 1})) for value in values)  # noqa: S307 -- our own profile


def _node_memory_mb() -> int:
    """RealMemory for the node: MemTotal less a margin for the OS and the test itself (10 %, at least 1 GiB)."""
    total_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal:"))
    total_mb = total_kb // 1024
    return total_mb - max(1024, total_mb // 10)


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux (Debian's slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "needs root to start munged, slurmctld and slurmd and to write /etc/slurm/slurm.conf"
    missing = [name for name in SLURM_BINARIES if shutil.which(name) is None]
    if missing:
        return (f"SLURM/munge programs not found: {', '.join(missing)} "
                "(apt-get install slurm-wlm munge; `make test` does it as root)")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401, PLC0415
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')"
    if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text(errors="replace"):
        return f"{SLURM_CONF} exists and was not written by this test (a real SLURM installation?): leaving it alone"
    if _node_memory_mb() < _largest_profile_memory_mb():
        return (f"this machine offers {_node_memory_mb()} MB to jobs, "
                f"the SLURM profile asks up to {_largest_profile_memory_mb()} MB")
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalSlurm:
    root: Path
    host: str
    processes: dict[str, subprocess.Popen]

    def logs(self) -> str:
        """The tail of every daemon log, for failure messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(parts)


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def _write_slurm_conf(root: Path, host: str) -> None:
    cpus = os.cpu_count() or 1
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(f"""{MARKER}
ClusterName=depthxaitest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.sock
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
# no cgroups here: track job processes through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# no slurmdbd: squeue is the only source of job states; keep finished jobs visible for an hour
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_node_memory_mb()} State=UNKNOWN
PartitionName={DEFAULT_PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName={TEST_PARTITION} Nodes={host} Default=NO MaxTime=INFINITE State=UP
""")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[LocalSlurm]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # a private folder under /tmp: munged wants every folder above its socket searchable by all
    root = Path(tempfile.mkdtemp(prefix="depthxai-slurm-", dir="/tmp"))
    root.chmod(0o755)
    for sub in ("state", "spool", "log", "munge"):
        (root / sub).mkdir()
    (root / "munge").chmod(0o755)
    host = socket.gethostname().split(".")[0]
    cluster = LocalSlurm(root=root, host=host, processes={})
    try:
        # our own munge key and socket: a system munged (if any) is neither used nor disturbed
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        _write_slurm_conf(root, host)
        logs = open(root / "log" / "daemons.out", "w")  # noqa: SIM115 -- closed with the daemons
        cluster.processes["munged"] = subprocess.Popen(
            ["munged", "--foreground", f"--socket={root}/munge/munge.sock", f"--key-file={key}",
             f"--pid-file={root}/munge/munged.pid", f"--log-file={root}/log/munged.log",
             f"--seed-file={root}/munge/munged.seed"], stdout=logs, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for(lambda: (root / "munge" / "munge.sock").exists(), 30, "munged socket", cluster)
        cluster.processes["slurmctld"] = subprocess.Popen(["slurmctld", "-D", "-f", str(SLURM_CONF)], stdout=logs,
                                                          stderr=subprocess.STDOUT, start_new_session=True)
        cluster.processes["slurmd"] = subprocess.Popen(["slurmd", "-D", "-N", host, "-f", str(SLURM_CONF)], stdout=logs,
                                                       stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for(lambda: _run(["sinfo", "-h", "-N", "-o", "%T"]).stdout.split() == ["idle", "idle"], 90,
                  "the node to be idle in both partitions (sinfo)", cluster)
        yield cluster
    finally:
        if "slurmctld" in cluster.processes:
            _run(["scancel", "--partition", f"{DEFAULT_PARTITION},{TEST_PARTITION}"])
            _wait_for(lambda: not _run(["squeue", "-h", "-t", "RUNNING,COMPLETING,PENDING"]).stdout.strip(), 60,
                      None, cluster)
        for name in ("slurmd", "slurmctld", "munged"):
            if name in cluster.processes:
                _stop(cluster.processes[name])
        if SLURM_CONF.exists() and MARKER in SLURM_CONF.read_text(errors="replace"):
            SLURM_CONF.unlink()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for(condition, timeout_s: float, what: str | None, cluster: LocalSlurm) -> bool:
    """Poll until condition() is true; fail the test naming `what` (if given) after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        dead = [name for name, process in cluster.processes.items() if process.poll() is not None]
        if dead and what:
            pytest.fail(f"{', '.join(dead)} exited while waiting for {what}:\n{cluster.logs()}")
        time.sleep(0.5)
    if what:
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}:\n{cluster.logs()}")
    return False


# ---------------------------------------------------------------------------------------------- workflow


def _prepare_workdir(dest: Path, copy_checkout: Callable[[Path], Path]) -> None:
    copy_checkout(dest)
    (dest / "tiny.yaml").write_text(yaml.safe_dump(TINY_CONFIG, sort_keys=False))


@dataclass
class SnakemakeRun:
    """A Snakemake run of the tiny configuration in a workdir, started in the background."""

    workdir: Path
    args: tuple[str, ...]
    process: subprocess.Popen
    started: float

    @classmethod
    def start(cls, workdir: Path, *args: str, env: dict[str, str] | None = None) -> SnakemakeRun:
        log = open(workdir / "snakemake.out", "w")  # noqa: SIM115 -- the child writes it; read after wait()
        process = subprocess.Popen([sys.executable, "-m", "snakemake", "--configfile", "tiny.yaml", *args],
                                   cwd=workdir, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, **(env or {})})
        log.close()
        return cls(workdir, args, process, time.monotonic())

    def finish(self, timeout_s: float = 1500) -> tuple[str, float]:
        """Wait for the run; its log and its wall time in seconds. Fails the test if Snakemake failed."""
        try:
            self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        seconds = time.monotonic() - self.started
        log = (self.workdir / "snakemake.out").read_text(errors="replace")
        if self.process.returncode != 0:
            pytest.fail(f"snakemake {' '.join(self.args)} failed in {self.workdir}:\n{_failure_summary(log)}")
        return log, seconds


def _failure_summary(log: str) -> str:
    """The failed rules and the error lines of a Snakemake log (which also repeats whole job logs)."""
    lines = log.splitlines()
    picked: list[str] = []
    for index, line in enumerate(lines):
        if line.startswith("Error in rule") or re.search(r"(^|\s)(error|Error|Exception)\b", line):
            block = lines[index:index + 8] if line.startswith("Error in rule") else [line]
            picked += [item for item in block if item not in picked]
    return "\n".join(picked[:80] + ["...", *lines[-10:]])


def _job_counts(log: str) -> Counter:
    """rule -> jobs, from the 'Job stats' table Snakemake prints before running."""
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return Counter({match[1]: int(match[2]) for match in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)})


def test_profile_resolves_site_settings_and_resources() -> None:
    # dry run with the profile: every key must be known to Snakemake and to the plugin, and the site
    # settings from the environment must end up in the jobs' resources
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401, PLC0415
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')")
    env = {**os.environ, "DEPTHXAI_SLURM_PARTITION": "cpu-part", "DEPTHXAI_SLURM_GPU_PARTITION": "gpu-part",
           "DEPTHXAI_SLURM_ACCOUNT": "proj42"}
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/slurm",
                             "--configfile", "config/paper.yaml"], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    resources = {}
    for block in re.split(r"\n(?=rule \w+:)", result.stdout + result.stderr):
        match = re.match(r"rule (\w+):", block)
        found = re.search(r"resources: (.*)", block)
        if match and found:
            resources[match[1]] = dict(item.split("=", 1) for item in found[1].split(", "))
    assert {"prepare_nyu", "predict", "attribute", "evaluate", "statistics"} <= set(resources), sorted(resources)
    # every job of a rule that takes a GPU in the paper preset lands in the GPU partition
    gpu_rules = {rule for rule, values in resources.items() if values.get("gpu") == "1"}
    # (object_shift renders synthetic scenes: it has no job in the paper preset)
    assert {"predict", "attribute", "evaluate", "sanity", "localisation", "attribute_repeat",
            "evaluate_repeat"} <= gpu_rules, sorted(gpu_rules)
    for rule in gpu_rules:
        assert resources[rule]["slurm_partition"] == "gpu-part", (rule, resources[rule])
    assert resources["prepare_nyu"]["slurm_partition"] == "cpu-part"
    assert {r["slurm_account"] for r in resources.values()} == {"proj42"}
    assert resources["attribute"]["mem_mb"] == "16000" and resources["attribute"]["runtime"] == "480"
    assert resources["prepare_nyu"]["mem_mb"] == "8000" and resources["statistics"]["runtime"] == "60"
    # cpus_per_task follows the config's threads (4 in the paper preset), which Snakemake caps at --cores:
    # all cores of the submit host, from the workflow profile profiles/default
    assert resources["attribute"]["cpus_per_task"] == str(min(4, os.cpu_count() or 1))
    # (that downloads stay on the submit host, as localrules, is checked in tests/test_envs.py)


def test_workflow_through_slurm_equals_local_run(slurm_cluster: LocalSlurm, tmp_path: Path,
                                                copy_checkout: Callable[[Path], Path]) -> None:
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    _prepare_workdir(slurm_dir, copy_checkout)
    _prepare_workdir(local_dir, copy_checkout)

    # both at once: the SLURM run mostly waits between status checks, the local run uses that time
    slurm_run = SnakemakeRun.start(slurm_dir, "--executor", "slurm", "--profile", "profiles/slurm", *SLURM_TEST_ARGS,
                                   env={"DEPTHXAI_SLURM_PARTITION": TEST_PARTITION})
    local_run = SnakemakeRun.start(local_dir, "--cores", "2")
    try:
        local_log, local_seconds = local_run.finish()
    except BaseException:
        slurm_run.process.terminate()  # Snakemake cancels its SLURM jobs on SIGTERM
        slurm_run.process.wait(timeout=120)
        raise
    slurm_log, slurm_seconds = slurm_run.finish()

    # every job but the target rule `all` ran as a SLURM job: the executor's submission lines, one per job of
    # the local run, each with a SLURM job id and the log file named after the rule
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", slurm_log)
    rules_by_id = {job_id: re.search(r"/rule_(\w+)/", log_path)[1] for job_id, log_path in submitted}
    expected = _job_counts(local_log) - Counter({"all": 1})
    assert expected["train_model"] == 1 and expected["predict"] >= 1, expected  # the local run's jobs were read
    assert Counter(rules_by_id.values()) == expected, (Counter(rules_by_id.values()), expected)
    assert _job_counts(slurm_log) == _job_counts(local_log)

    # SLURM's own records (no accounting database: squeue keeps finished jobs for MinJobAge): each job id
    # completed, in the partition the profile took from DEPTHXAI_SLURM_PARTITION, with the rule in its comment
    queue = _run(["squeue", "-h", "--states=all", "-o", "%i|%T|%P|%k|%j"]).stdout
    records = {fields[0]: fields[1:] for fields in (line.split("|") for line in queue.splitlines())}
    for job_id, rule in rules_by_id.items():
        state, partition, comment, name = records[job_id]
        assert (state, partition) == ("COMPLETED", TEST_PARTITION), (job_id, rule, records[job_id])
        assert comment.startswith(f"rule_{rule}") and name.startswith("depthxai_"), (job_id, rule, comment, name)
    # and each SLURM job log (kept for successful jobs here) shows the job step running that rule
    for job_id, log_path in submitted:
        text = Path(log_path).read_text()
        assert Path(log_path).is_relative_to(slurm_dir / "logs" / "slurm")
        assert f"rule {rules_by_id[job_id]}:" in text and "--executor slurm-jobstep" in text, log_path

    # the study's outputs (tidy tables, statistics, tables, figures, predictions, attributions) are the same
    # bytes, wherever the jobs ran
    def outputs(workdir: Path) -> set[str]:
        files = {str(path.relative_to(workdir)) for path in (workdir / "results").rglob("*") if path.is_file()}
        return {name for name in files if not any(fnmatch.fnmatch(name, pattern) for pattern in NOT_COMPARED)}

    compared = outputs(local_dir)
    assert outputs(slurm_dir) == compared
    assert {"results/evaluation/scores.csv", "results/stats/summary.csv", "results/tables/table1.csv",
            "results/tables/table2.csv", "results/tables/accuracy.csv"} <= compared
    different = [name for name in sorted(compared)
                 if (slurm_dir / name).read_bytes() != (local_dir / name).read_bytes()]
    assert not different, f"outputs differ between the SLURM and the local run: {different}"
    trained = sorted(local_dir.glob("results/models/*/*/weights.pt"))
    assert len(trained) == 1, trained  # METER-XXS trained on synthindoor
    for weights in trained:
        local_state = torch.load(weights, weights_only=True)
        slurm_state = torch.load(slurm_dir / weights.relative_to(local_dir), weights_only=True)
        assert local_state.keys() == slurm_state.keys()
        assert all(torch.equal(local_state[key], slurm_state[key]) for key in local_state), weights
    print(f"\nSLURM run: {len(submitted)} SLURM jobs in {slurm_seconds:.0f} s; local run (--cores 2, at the same "
          f"time): {local_seconds:.0f} s; {len(compared)} outputs compared")
