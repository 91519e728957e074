"""The synthetic renderer against a reference version of it (a git commit), side by side, and bit for bit.

Two measurements, both interleaved (the versions take turns, so a slow-down of the machine hits both alike):

* ``render`` (default): one process; for each of ``--images`` scenes of each set-up, both versions render the
  same scene (CPU seconds of :func:`render` only), and every output (RGB, depth, object ids, hit depth) is
  compared byte for byte. Both versions run under the same memory-allocator setting (``--retain-memory``).
* ``job``: the whole rendering job, as the workflow runs it: each version renders ``--images`` images of each
  set-up into a temporary dataset in a fresh process (``depthxai synthesize`` for this tree; the reference
  version's ``generate_dataset`` for the reference), alternating ``--rounds`` times. Reported: CPU seconds per
  image (user + system of the child process).

Usage::

    python benchmarks/render_speed.py                               # reference: fd373a7 (the single-file renderer)
    python benchmarks/render_speed.py --mode job --images 48 --rounds 2
    python benchmarks/render_speed.py --ref <commit> --json out.json

The reference version is read with ``git show <ref>:src/depthxai/data/synthetic.py`` (or ``--ref-file``) and
imported as a standalone module; it must be a single-file renderer with ``sample_scene``, ``render`` and
``generate_dataset``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SETUPS = ("indoor", "road")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["render", "job"], default="render")
    p.add_argument("--ref", default="fd373a7", help="git commit of the reference renderer (default: %(default)s)")
    p.add_argument("--ref-file", type=Path, default=None, help="the reference module file instead of --ref")
    p.add_argument("--images", type=int, default=12, help="scenes per set-up (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="job mode: alternations per version (default: %(default)s)")
    p.add_argument("--retain-memory", action=argparse.BooleanOptionalAction, default=True,
                   help="render mode: call depthxai.runtime.retain_freed_memory first (default: %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument("--child", nargs=3, metavar=("VERSION", "SETUP", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def reference_source(args: argparse.Namespace) -> Path:
    """The reference module as a file (extracted from git into a temporary file when needed)."""
    if args.ref_file is not None:
        return args.ref_file
    text = subprocess.run(["git", "show", f"{args.ref}:src/depthxai/data/synthetic.py"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.gettempdir()) / f"depthxai_synthetic_{args.ref}.py"
    path.write_text(text)
    return path


def load_reference(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("depthxai_reference_synthetic", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def run_render(args: argparse.Namespace, ref: ModuleType) -> dict[str, object]:
    if args.retain_memory:
        from depthxai.runtime import retain_freed_memory
        retain_freed_memory()
    from depthxai.data import synthetic as new

    out: dict[str, object] = {}
    for setup in SETUPS:
        times: dict[str, list[float]] = {"reference": [], "this": []}
        mismatches = 0
        for i in range(args.images):
            seed = new.scene_seed(0, "train", i)
            scenes = {"reference": ref.sample_scene(setup, np.random.default_rng(seed)),
                      "this": new.sample_scene(setup, np.random.default_rng(seed))}
            renders = {}
            for version in (("reference", "this") if i % 2 == 0 else ("this", "reference")):
                module = ref if version == "reference" else new
                start = time.process_time()
                renders[version] = module.render(scenes[version])
                times[version].append(time.process_time() - start)
            for field in ("rgb", "depth", "object_ids", "hit_depth"):
                mismatches += (getattr(renders["reference"], field).tobytes()
                               != getattr(renders["this"], field).tobytes())
        med = {k: statistics.median(v) for k, v in times.items()}
        out[setup] = {"reference_ms": round(1000 * med["reference"], 1), "this_ms": round(1000 * med["this"], 1),
                      "ratio": round(med["reference"] / med["this"], 2), "mismatched_arrays": mismatches,
                      "images": args.images}
        print(f"{setup}: reference {out[setup]['reference_ms']} ms, this {out[setup]['this_ms']} ms per render "
              f"(median of {args.images}); ratio {out[setup]['ratio']}; arrays differing: {mismatches}", flush=True)
    return out


def child(version: str, setup: str, out: str, ref_file: str) -> None:
    """One rendering job in this (fresh) process; prints its CPU seconds."""
    if version == "this":
        from depthxai.cli import main
        size = {"indoor": ["240", "320"], "road": ["188", "624"]}[setup]
        main(["synthesize", "-q", "--setup", setup, "--name", "x", "--n-train", os.environ["N_IMAGES"],
              "--n-test", "0", "--size", *size, "--seed", "0", "--out", out])
    else:
        load_reference(Path(ref_file)).generate_dataset(out, "x", setup, int(os.environ["N_IMAGES"]), 0, 0,
                                                        progress=False)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime}))


def run_jobs(args: argparse.Namespace, ref_file: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    env = dict(os.environ, N_IMAGES=str(args.images), PYTHONPATH=str(REPO / "src"))
    for setup in SETUPS:
        cpu: dict[str, list[float]] = {"reference": [], "this": []}
        for r in range(args.rounds):
            for version in (("reference", "this") if r % 2 == 0 else ("this", "reference")):
                with tempfile.TemporaryDirectory() as tmp:
                    proc = subprocess.run([sys.executable, __file__, "--ref-file", str(ref_file), "--child", version,
                                           setup, str(Path(tmp) / "ds")], env=env, check=True, capture_output=True,
                                          text=True)
                cpu[version].append(json.loads(proc.stdout.strip().splitlines()[-1])["cpu_s"] / args.images)
        med = {k: statistics.median(v) for k, v in cpu.items()}
        out[setup] = {"reference_s_per_image": round(med["reference"], 4), "this_s_per_image": round(med["this"], 4),
                      "ratio": round(med["reference"] / med["this"], 2), "images": args.images, "rounds": args.rounds}
        print(f"{setup} job: reference {med['reference']:.3f} s, this {med['this']:.3f} s CPU per image "
              f"({args.images} images x {args.rounds} rounds, process start included); ratio {out[setup]['ratio']}",
              flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(*args.child, str(args.ref_file))
        return
    ref_file = reference_source(args)
    result = run_render(args, load_reference(ref_file)) if args.mode == "render" else run_jobs(args, ref_file)
    if args.json:
        args.json.write_text(json.dumps({"mode": args.mode, "ref": args.ref, **result}, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
