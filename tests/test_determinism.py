"""Determinism and atomic writes.

* Two cold runs of the workflow with the same seeds, in two copies of the same checkout, one with the test set in
  1 shard and one in 3, give byte-identical files under results/ (tables, CSVs, weights, figures in PNG and PDF),
  except the per-shard files themselves, the Snakemake benchmark files and the wall-clock keys (``*_seconds``) of
  the training metrics JSONs, which are compared with those keys removed. One pair of runs proves both claims:
  a run is repeatable, and sharding never changes a result (each image's numbers come from per-image seeds; the
  merge rules sort).
* ``$DEPTHXAI_DETERMINISTIC`` makes :func:`depthxai.device.resolve_device` turn on PyTorch's deterministic mode.
* Every writer of the package goes through :func:`depthxai.fileio.atomic_path` (checked on the source), and a
  writer that fails or is killed halfway leaves no file at the destination.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from depthxai.device import DETERMINISTIC_ENV, deterministic_mode, resolve_device
from depthxai.errors import ConfigError
from depthxai.fileio import NpzStreamWriter, atomic_path, write_csv, write_json, write_npz, write_text
from depthxai.models import read_state_dict, save_state_dict

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------ two cold runs

TIMING_KEY_SUFFIX = "_seconds"


def determinism_config(shards: int) -> dict:
    """tests/data/tiny_config.yaml with one model, Saliency, the random baseline and the explainer with its trained
    weights, both figure formats, the test set in ``shards`` shards, and no science stage nor training-seed repeat
    (their jobs would double the time of a test that already runs the workflow twice)."""
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
    config["models"] = {"meter_xxs": config["models"]["meter_xxs"]}
    config["methods"] = {name: config["methods"][name] for name in ("saliency", "random", "explainer")}
    config["science"] = {"enabled": False, "retest": {"repeats": 1}}
    config["report"]["formats"] = ["png", "pdf"]
    config["shards"] = shards
    return config


def is_per_shard(name: str) -> bool:
    """Files that exist per shard (predictions, maps, per-shard scores): their split differs by design."""
    return "shard-" in Path(name).name


def _start_snakemake(workdir: Path) -> subprocess.Popen[str]:
    # one core each: the two runs go side by side, each filling the other's scheduling gaps
    return subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "config_test.yaml"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _clone(source: Path, dest: Path) -> Path:
    """A second copy of the same checkout snapshot (the working tree may change while the tests run)."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("results", ".snakemake", "logs"))
    return dest


def result_files(workdir: Path) -> dict[str, Path]:
    """Every file under results/ except the benchmark timings, by relative path."""
    results = workdir / "results"
    return {str(p.relative_to(results)): p for p in sorted(results.rglob("*"))
            if p.is_file() and p.relative_to(results).parts[0] != "benchmarks" and not is_per_shard(p.name)}


def without_timings(obj: object) -> object:
    """A JSON value with every ``*_seconds`` key removed (wall-clock time is the one thing allowed to differ)."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if not k.endswith(TIMING_KEY_SUFFIX)}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def differing_files(first: Path, second: Path) -> tuple[list[str], list[str]]:
    """(files compared, files that differ) between two workdirs' results (JSON: compared without timings)."""
    a, b = result_files(first), result_files(second)
    assert sorted(a) == sorted(b), sorted(set(a) ^ set(b))
    differ = []
    for name, path in a.items():
        if path.read_bytes() == b[name].read_bytes():
            continue
        if path.suffix == ".json" and without_timings(json.loads(path.read_text())) == without_timings(
                json.loads(b[name].read_text())):
            continue
        differ.append(name)
    return sorted(a), differ


@pytest.fixture(scope="module")
def two_cold_runs(tmp_path_factory: pytest.TempPathFactory,
                  copy_checkout: Callable[[Path], Path]) -> tuple[Path, Path, float]:
    first = copy_checkout(tmp_path_factory.mktemp("run_a"))
    second = _clone(first, tmp_path_factory.mktemp("run_b") / "checkout")
    for workdir, shards in ((first, 1), (second, 3)):
        (workdir / "config_test.yaml").write_text(yaml.safe_dump(determinism_config(shards)))
    start = time.perf_counter()
    runs = [_start_snakemake(workdir) for workdir in (first, second)]
    for run in runs:
        _, stderr = run.communicate(timeout=1500)
        assert run.returncode == 0, stderr[-6000:]
    return first, second, time.perf_counter() - start


@pytest.mark.slow
def test_two_cold_runs_are_byte_identical(two_cold_runs: tuple[Path, Path, float]) -> None:
    first, second, seconds_per_run = two_cold_runs
    compared, differ = differing_files(first, second)
    kinds = {Path(name).suffix for name in compared}
    assert {".csv", ".pt", ".png", ".pdf", ".md", ".tex", ".json"} <= kinds, kinds
    assert any(name.endswith("explainer.pt") for name in compared)
    assert differ == [], f"{len(differ)} of {len(compared)} files differ between two cold runs: {differ}"
    print(f"\n{len(compared)} result files byte-identical; {seconds_per_run:.0f} s for both cold runs side by side")


def per_image_arrays(stage_dir: Path) -> dict[str, np.ndarray]:
    """Every image's arrays of a stage's shard files, by member (``maps/<id>``, ``native/<id>``), and each image's
    convergence delta (``convergence_delta/<id>``), whatever the shard that holds it."""
    arrays: dict[str, np.ndarray] = {}
    for shard in sorted(stage_dir.glob("shard-*.npz")):
        with np.load(shard, allow_pickle=False) as data:
            ids = data["ids"].astype(str)
            for member in data.files:
                if "/" in member:
                    arrays[member] = data[member]
            if "convergence_delta" in data.files:
                arrays.update({f"convergence_delta/{i}": v for i, v in zip(ids, data["convergence_delta"])})
    return arrays


@pytest.mark.slow
def test_maps_and_predictions_are_bitwise_equal_per_image(two_cold_runs: tuple[Path, Path, float]) -> None:
    one, three, _ = two_cold_runs
    stages = sorted({p.parent.relative_to(one) for p in (one / "results").rglob("shard-*.npz")})
    assert {s.parts[1] for s in stages} == {"predictions", "attributions"} and len(stages) == 4, stages
    for stage in stages:
        a, b = per_image_arrays(one / stage), per_image_arrays(three / stage)
        assert sorted(a) == sorted(b) and a, stage
        for member, array in a.items():
            assert array.dtype == b[member].dtype and np.array_equal(array, b[member], equal_nan=True), (stage, member)
        # and the provenance recorded with the maps does not depend on the sharding
        first_one, first_three = (sorted((run / stage).glob("shard-*.npz"))[0] for run in (one, three))
        with np.load(first_one) as x, np.load(first_three) as y:
            if "meta" in x.files:
                assert json.loads(str(x["meta"])) == json.loads(str(y["meta"])), stage


@pytest.mark.slow
def test_three_shards_give_the_results_of_one(two_cold_runs: tuple[Path, Path, float]) -> None:
    one, three, _ = two_cold_runs
    for stage in ("predictions/synthindoor/meter_xxs", "attributions/synthindoor/meter_xxs/saliency"):
        assert len(list((one / "results" / stage).glob("shard-*.npz"))) == 1, stage
        assert len(list((three / "results" / stage).glob("shard-*.npz"))) == 3, stage
    # the merged tables hold every image once, whatever the sharding (their bytes: the test above)
    scores = pd.read_csv(three / "results" / "evaluation" / "scores.csv")
    n_test = determinism_config(3)["datasets"]["synthindoor"]["n_test"]
    for method in ("saliency", "random", "explainer"):
        # Infidelity of the unsigned explainer masks is scored under its own name (not comparable)
        metric = "infidelity_unsigned" if method == "explainer" else "infidelity"
        rows = scores[(scores["method"] == method) & (scores["metric"] == metric)]
        assert sorted(rows["image_id"]) == sorted(set(rows["image_id"])) and len(rows) == n_test, method


@pytest.mark.slow
def test_only_timings_differ_in_metrics_and_weights_hash_is_stable(two_cold_runs: tuple[Path, Path, float]) -> None:
    first, second, _ = two_cold_runs
    folder = Path("results") / "models" / "synthindoor" / "meter_xxs"
    for name in ("train_metrics.json", "explainer_metrics.json"):
        a, b = (json.loads((w / folder / name).read_text()) for w in (first, second))
        assert a["train_seconds"] > 0 and b["train_seconds"] > 0
        assert without_timings(a) == without_timings(b)
    cards = [json.loads((w / folder / "card.json").read_text()) for w in (first, second)]
    assert cards[0]["weights_sha256"] == cards[1]["weights_sha256"]
    # the model card's hash is the weights file's, and the file holds exactly the tensors it was trained to
    state = read_state_dict(first / folder / "weights.pt")
    assert all(torch.equal(v, w)
               for v, w in zip(state.values(), read_state_dict(second / folder / "weights.pt").values()))


@pytest.mark.slow
def test_figures_carry_no_time_stamp_or_software_version(two_cold_runs: tuple[Path, Path, float]) -> None:
    first, _, _ = two_cold_runs
    figures = sorted(p for p in (first / "results" / "figures").iterdir() if p.is_file())  # panels/: Figure 1's data
    assert {p.suffix for p in figures} == {".png", ".pdf"}
    for figure in figures:
        data = figure.read_bytes()
        for needle in (b"CreationDate", b"Matplotlib v", b"matplotlib version", b"Software"):
            assert needle not in data, f"{figure.name} holds {needle!r}"


# ------------------------------------------------------------------------------------------------ GPU switch


@pytest.fixture
def restore_determinism() -> Iterator[None]:
    """Undo what enabling determinism does to the process (the flag is global to torch)."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
    if saved[4] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


@pytest.mark.parametrize(("value", "strict"), [("1", False), ("strict", True)])
def test_deterministic_flag_is_honoured_by_resolve_device(monkeypatch: pytest.MonkeyPatch, restore_determinism: None,
                                                          value: str, strict: bool) -> None:
    torch.use_deterministic_algorithms(False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.delenv(DETERMINISTIC_ENV, raising=False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert not torch.are_deterministic_algorithms_enabled()  # off unless asked for
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    monkeypatch.setenv(DETERMINISTIC_ENV, value)
    assert resolve_device("cpu") == torch.device("cpu")
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled() is not strict
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    # torch now guards the operations without a deterministic kernel: put_ without accumulate is one, on CPU too
    target, index, values = torch.zeros(4), torch.tensor([1, 1]), torch.tensor([1.0, 2.0])
    if strict:
        with pytest.raises(RuntimeError, match="does not have a deterministic implementation"):
            target.put_(index, values, accumulate=False)
    else:
        with pytest.warns(UserWarning, match="does not have a deterministic implementation"):
            target.put_(index, values, accumulate=False)


def test_deterministic_flag_rejects_unknown_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, mode in (("0", None), ("", None), ("off", None), ("yes", "warn"), ("STRICT", "strict")):
        monkeypatch.setenv(DETERMINISTIC_ENV, value)
        assert deterministic_mode() == mode
    monkeypatch.setenv(DETERMINISTIC_ENV, "always")
    with pytest.raises(ConfigError, match=f"environment variable {DETERMINISTIC_ENV}='always': use 1 .* strict .* 0"):
        resolve_device("cpu")


# ------------------------------------------------------------------------------------------------ atomic writes

SRC = REPO / "src" / "depthxai"
#: Calls that write a file: methods (``x.name(...)``), module functions (``module.name(...)``). ``open`` counts when
#: given a writing mode, the table writers when given a path. (A bare ``write_text(...)`` is fileio's own.)
WRITE_METHODS = {"save", "savefig", "write_text", "write_bytes", "imwrite", "dump", "symlink_to", "hardlink_to"}
WRITE_FUNCTIONS = {("np", "save"), ("np", "savez"), ("np", "savez_compressed"), ("torch", "save"), ("os", "rename"),
                   ("os", "symlink"), ("os", "link"), ("shutil", "copy"), ("shutil", "copy2"), ("shutil", "copyfile"),
                   ("shutil", "copytree"), ("shutil", "move"), ("json", "dump"), ("pickle", "dump"), ("yaml", "dump")}
TABLE_WRITERS = {"to_csv", "to_json", "to_parquet", "to_pickle", "to_excel", "to_hdf"}
#: Writers allowed outside atomic_path, each atomic in its own way: a download's resumable .part file (renamed into
#: place once its hash is verified), archive entries (extracted into a staging folder that is moved in whole), and
#: the members of NpzStreamWriter's zip (the zip itself is an atomic_path temporary, entered through an ExitStack).
WRITE_ALLOWED = {("data/download/fetching.py", "_http_download"), ("data/download/extraction.py", "_extract_into"),
                 ("fileio.py", "add")}
ATOMIC_CONTEXTS = {"atomic_path", "NpzStreamWriter"}


def _is_write_mode(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) <= 3
            and set(node.value) <= set("rwabxt+") and bool(set(node.value) & set("wax+")))


def _is_write(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        if func.id == "open":  # open(p, "wb"), open(p, "ab" if resume else "wb")
            modes = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "mode")]
            return any(_is_write_mode(node) for arg in modes for node in ast.walk(arg))
        return False
    if not isinstance(func, ast.Attribute):
        return False
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    if (owner, func.attr) in WRITE_FUNCTIONS:
        return True
    if func.attr == "open":  # Path.open("w"), ZipFile.open(info, mode="w"); Image.open only reads
        modes = [*call.args, *(k.value for k in call.keywords if k.arg == "mode")]
        return owner != "Image" and any(_is_write_mode(node) for arg in modes for node in ast.walk(arg))
    if func.attr in TABLE_WRITERS:
        return bool(call.args) or any(k.arg == "path_or_buf" for k in call.keywords)
    return func.attr in WRITE_METHODS and owner not in {"np", "torch", "json", "pickle", "yaml"}


def writes_outside_atomic_path(source: str, rel: str) -> list[str]:
    """The write calls in ``source`` (module ``rel``) not lexically inside ``with atomic_path(...)`` or a writer
    built on it, and not in :data:`WRITE_ALLOWED`."""
    found: list[str] = []

    def visit(node: ast.AST, function: str, atomic: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, (ast.With, ast.AsyncWith)):
            # later items of the same `with` (e.g. `open(tmp, "wb")` after `atomic_path(...) as tmp`) write into
            # the temporary file, and so does the body
            names = {(i.context_expr.func.attr if isinstance(i.context_expr.func, ast.Attribute)
                      else getattr(i.context_expr.func, "id", ""))
                     for i in node.items if isinstance(i.context_expr, ast.Call)}
            atomic = atomic or bool(names & ATOMIC_CONTEXTS)
        if isinstance(node, ast.Call) and _is_write(node) and not atomic and (rel, function) not in WRITE_ALLOWED:
            found.append(f"{rel}:{node.lineno} in {function}(): {ast.unparse(node)[:80]}")
        for child in ast.iter_child_nodes(node):
            visit(child, function, atomic)

    visit(ast.parse(source), "<module>", False)
    return found


def test_every_writer_of_the_package_goes_through_atomic_path() -> None:
    offenders = [hit for path in sorted(SRC.rglob("*.py"))
                 for hit in writes_outside_atomic_path(path.read_text(encoding="utf-8"), str(path.relative_to(SRC)))]
    assert offenders == [], "writes that bypass depthxai.fileio.atomic_path:\n" + "\n".join(offenders)


def test_the_source_check_catches_bare_writes() -> None:
    code = ("import numpy as np\nfrom depthxai.fileio import atomic_path\n"
            "def good(p, t):\n    with atomic_path(p) as tmp, open(tmp, 'wb') as fh:\n        fh.write(b'x')\n"
            "def bad(p, t, fig, img):\n    t.to_csv(p)\n    np.save(p, t)\n    fig.savefig(p)\n"
            "    with open(p, mode='a') as fh:\n        fh.write('x')\n    img.save(p)\n    p.open('w')\n"
            "    with open(p) as fh, open(p, 'rb') as gh:\n        fh.read()\n"
            "    t.rename(columns={}).to_dict()\n    torch.save(t, p)\n")
    lines = [int(hit.split(" in ")[0].split(":")[1]) for hit in writes_outside_atomic_path(code, "fake.py")]
    assert lines == [7, 8, 9, 10, 12, 13, 17]


def test_checkpoints_are_saved_only_through_save_state_dict() -> None:
    """``torch.save(obj, path)`` records the (temporary, random) file name inside the zip, so the same weights would
    give other bytes and another sha256 in the model card; :func:`save_state_dict` saves through a file handle."""
    calls = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "save"
                    and getattr(node.func.value, "id", "") == "torch"):
                calls.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert len(calls) == 1 and calls[0].startswith("models/checkpoint.py:"), (
        f"torch.save outside depthxai.models.checkpoint.save_state_dict: {calls}")


def _half_then_fail(tmp: Path) -> None:
    tmp.write_bytes(b"0123456789" * 1000)
    with open(tmp, "r+b") as fh:
        fh.truncate(5000)
    raise RuntimeError("disk full halfway")


WRITERS: dict[str, Callable[[Path], None]] = {
    "atomic_path": lambda p: _run_atomic(p, _half_then_fail),
    "write_text": lambda p: write_text(p, "fine " * 1000 + "\ud800"),  # a lone surrogate cannot be encoded
    "write_json": lambda p: write_json(p, {"ok": 1, "bad": object()}),
    "write_npz": lambda p: write_npz(p, good=np.zeros(1000), bad=_FailingArray()),
    "write_csv": lambda p: write_csv(p, _ExplodingFrame()),
    "NpzStreamWriter": lambda p: _stream_then_fail(p),
    "save_state_dict": lambda p: save_state_dict(p, {"w": torch.zeros(1000), "bad": lambda: 0}),  # type: ignore[dict-item]
}


class _FailingArray:
    """Fails when numpy converts it, i.e. after the arrays before it were written into the zip."""

    def __array__(self, *args: object, **kwargs: object) -> np.ndarray:
        raise RuntimeError("crash while writing the second array")


class _ExplodingFrame(pd.DataFrame):
    def to_csv(self, path: Path, **kwargs: object) -> None:  # type: ignore[override]
        Path(path).write_text("a,b\n1,2\n")
        raise RuntimeError("crash after the first rows")


def _run_atomic(path: Path, body: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        body(tmp)


def _stream_then_fail(path: Path) -> None:
    with NpzStreamWriter(path) as out:
        out.add_row("native", "a", np.zeros((1, 8, 8), np.float32))
        raise RuntimeError("crash after the first image")


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("existing", [False, True])
def test_a_crash_mid_write_leaves_no_file_and_no_temporary(tmp_path: Path, writer: str, existing: bool) -> None:
    suffix = {"write_npz": ".npz", "NpzStreamWriter": ".npz", "save_state_dict": ".pt", "write_json": ".json"}
    dest = tmp_path / "out" / f"result{suffix.get(writer, '.csv')}"
    if existing:  # a good file from an earlier run must survive a failed rewrite untouched
        dest.parent.mkdir()
        dest.write_bytes(b"previous good result")
    with pytest.raises(Exception):  # noqa: B017 -- each writer fails its own way (TypeError, ValueError, ...)
        WRITERS[writer](dest)
    remaining = sorted(p.name for p in dest.parent.iterdir()) if dest.parent.exists() else []
    if existing:
        assert remaining == [dest.name] and dest.read_bytes() == b"previous good result"
    else:
        assert remaining == []


def test_written_files_get_normal_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "x")
        save_state_dict(tmp_path / "w.pt", {"w": torch.ones(2)})
    finally:
        os.umask(mask)
    for name in ("a.txt", "w.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name  # 0666 less the umask, not mkstemp's 0600


def test_save_state_dict_bytes_depend_only_on_the_tensors(tmp_path: Path) -> None:
    state = {"conv.weight": torch.arange(12.0).reshape(3, 4), "conv.bias": torch.ones(3)}
    save_state_dict(tmp_path / "a.pt", state)
    save_state_dict(tmp_path / "sub" / "other_name.pt", {k: v.clone() for k, v in state.items()})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "other_name.pt").read_bytes()
    torch.save(state, tmp_path / "b.pt")  # what a plain torch.save(path) does: the file name is recorded inside
    assert any(n.startswith("b/") for n in zipfile.ZipFile(tmp_path / "b.pt").namelist())
    loaded = read_state_dict(tmp_path / "a.pt")
    assert list(loaded) == list(state) and all(torch.equal(loaded[k], state[k]) for k in state)


KILLED_WRITER = """
import sys, time
from depthxai.fileio import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as fh:
        fh.write(b"x" * 100_000)
        fh.flush()
        print("halfway", flush=True)
        time.sleep(60)
"""


def test_a_killed_writer_leaves_no_destination_and_its_leftover_is_cleared(tmp_path: Path) -> None:
    dest = tmp_path / "shard-0.npz"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(dest)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "halfway"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert not dest.exists()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].startswith(".shard-0.npz.") and leftovers[0].endswith(".tmp.npz")
    write_npz(dest, a=np.arange(3))  # the rerun of the job
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-0.npz"]
    with np.load(dest) as data:
        np.testing.assert_array_equal(data["a"], np.arange(3))
