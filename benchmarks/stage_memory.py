"""Peak memory (RSS) of the predict, attribute and evaluate stages on one shard, collected vs streamed.

Each (stage, variant) runs in a fresh Python process that reports its own peak resident set size (``ru_maxrss``)
and wall time, so the numbers are those of one workflow rule:

* ``collected`` (the stages before streaming): the prediction / attribution stage keeps every image's array in a
  list and writes one compressed ``.npz`` at the end (``predict_split`` / ``attribute_split`` + ``write_npz``); the
  evaluation loads the whole predictions and attribution files first;
* ``streamed``: each image's array goes into the ``.npz`` as soon as it is computed (``predict_to_file`` /
  ``attribute_to_file``) and the evaluation reads one image at a time (``read_predictions`` /
  ``read_attributions``, lazy).

Both variants of a later stage read the same input files (those the streamed variant wrote). Usage::

    python benchmarks/stage_memory.py --help
    python benchmarks/stage_memory.py                                   # METER-XXS NYU, 32 images
    python benchmarks/stage_memory.py --model pixelformer_nano07_nyu --method random \\
        --evaluation '{"fractions": [0.0, 0.5], "infidelity": {"n_perturb_samples": 2}}'

Images: the NYU frames of ``--frames`` (``NNNNN_colors.png`` / ``NNNNN_depth.png``, millimetres), repeated under
new ids up to ``--n-images``, written as a prepared dataset (Eigen crop); else synthetic indoor scenes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(os.environ.get("DEPTHXAI_SHARED", Path(__file__).resolve().parents[2] / "shared"))
STAGES = ("predict", "attribute", "evaluate")
VARIANTS = ("collected", "streamed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="meter_xxs_nyu", help="registry name (default: %(default)s)")
    p.add_argument("--weights", type=Path, default=None,
                   help="state dict (default: the official METER-XXS NYU checkpoint for meter_xxs_nyu if present, "
                        "else random weights)")
    p.add_argument("--frames", type=Path, default=SHARED / "data" / "nyu_test",
                   help="NYU frames (default: %(default)s)")
    p.add_argument("--n-images", type=int, default=32, help="images in the shard (default: %(default)s)")
    p.add_argument("--method", default="saliency", help="attribution method (default: %(default)s)")
    p.add_argument("--evaluation", default="{}", help="the config's evaluation section as JSON (default: defaults)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    p.add_argument("--workdir", type=Path, default=None, help="where the dataset and outputs go (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument("--child", nargs=2, metavar=("STAGE", "VARIANT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_dataset(root: Path, frames: Path, n: int) -> None:
    """A prepared test split of ``n`` images: the NYU frames (repeated under new ids), else synthetic scenes."""
    import pandas as pd
    from PIL import Image

    from depthxai.data.io import DatasetInfo, write_dataset_info, write_depth, write_index, write_rgb

    colour = sorted(frames.glob("*_colors.png")) if frames.is_dir() else []
    rows = []
    if colour:
        write_dataset_info(root, DatasetInfo(name="nyu", kind="nyu", depth_scale=1000.0, min_depth=1e-3, max_depth=10.0,
                                             eval_crop="eigen", image_size=(480, 640)))
        for k in range(n):
            path = colour[k % len(colour)]
            image_id = f"{path.name.split('_')[0]}_{k // len(colour)}"
            rgb = np.asarray(Image.open(path).convert("RGB"))
            depth = np.asarray(Image.open(str(path).replace("_colors", "_depth")), dtype=np.float64) / 1000.0
            write_rgb(root / "rgb" / f"{image_id}.png", rgb)
            write_depth(root / "depth" / f"{image_id}.png", depth, 1000.0)
            rows.append({"id": image_id, "split": "test", "rgb": f"rgb/{image_id}.png",
                         "depth": f"depth/{image_id}.png"})
    else:
        from depthxai.data.synthetic import render_scene

        write_dataset_info(root, DatasetInfo(name="synthindoor", kind="synthetic", depth_scale=1000.0, min_depth=1e-3,
                                             max_depth=10.0, eval_crop="none", image_size=(480, 640)))
        for k in range(n):
            image_id = f"{k:05d}"
            rgb, depth = render_scene("indoor", k, (480, 640))
            write_rgb(root / "rgb" / f"{image_id}.png", rgb)
            write_depth(root / "depth" / f"{image_id}.png", depth, 1000.0)
            rows.append({"id": image_id, "split": "test", "rgb": f"rgb/{image_id}.png",
                         "depth": f"depth/{image_id}.png"})
    write_index(root, pd.DataFrame(rows))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_child(args: argparse.Namespace) -> None:
    """One stage in one variant; prints ``{"setup_mb", "peak_mb", "seconds"}`` as JSON."""
    import torch

    from depthxai.attribution import TargetSpec, build_method
    from depthxai.attribution.run import attribute_split, attribute_to_file, read_attributions
    from depthxai.config import section_defaults
    from depthxai.data.io import mean_rgb, read_index
    from depthxai.evaluation.run import EvaluationConfig, evaluate_split
    from depthxai.fileio import write_npz
    from depthxai.models import load_depth_model
    from depthxai.models.predict import predict_split, predict_to_file, read_predictions

    stage, variant = args.child
    torch.set_num_threads(args.threads)
    work = args.workdir
    data = work / "data"
    model = load_depth_model(args.model, args.weights)
    ids = read_index(data, "test")["id"].tolist()
    out = work / variant
    out.mkdir(exist_ok=True)
    streamed = work / "streamed"
    setup = peak_rss_mb()
    start = time.perf_counter()
    if stage == "predict":
        if variant == "collected":
            arrays, _ = predict_split(model, data, ids, progress=False)
            write_npz(out / "predictions.npz", **arrays)
        else:
            predict_to_file(out / "predictions.npz", model, data, ids, progress=False)
    else:
        predictions: dict[str, Any] = read_predictions(streamed / "predictions.npz")
        if variant == "collected":
            predictions = {"ids": predictions["ids"], "native": np.asarray(predictions["native"])}
        target = TargetSpec()
        if stage == "attribute":
            method = build_method(args.method, {}, mean_rgb=mean_rgb(data))
            if variant == "collected":
                arrays = attribute_split(model, method, data, predictions, target, progress=False)
                write_npz(out / "attributions.npz", **arrays)
            else:
                attribute_to_file(out / "attributions.npz", model, method, data, predictions, target, progress=False)
        else:
            attributions = read_attributions(streamed / "attributions.npz")
            if variant == "collected":
                attributions["maps"] = np.asarray(attributions["maps"])
            config = EvaluationConfig.from_config(section_defaults("evaluation", json.loads(args.evaluation)))
            evaluate_split(model, data, predictions, attributions, config, target, mean_rgb(data), progress=False)
    print(json.dumps({"setup_mb": setup, "peak_mb": peak_rss_mb(), "seconds": time.perf_counter() - start}))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.weights is None and args.model == "meter_xxs_nyu":
        default = SHARED / "mirror" / "build_model_best_nyu_xxs"
        args.weights = default if default.is_file() else None
    if args.child:
        run_child(args)
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        if not (work / "data" / "index.csv").is_file():
            build_dataset(work / "data", args.frames, args.n_images)
        results: dict[str, Any] = {}
        for stage in STAGES:
            for variant in ("streamed", "collected"):  # the streamed outputs feed the next stage of both variants
                command = [sys.executable, __file__, "--child", stage, variant, "--workdir", str(work),
                           "--model", args.model, "--n-images", str(args.n_images), "--method", args.method,
                           "--evaluation", args.evaluation, "--threads", str(args.threads)]
                if args.weights:
                    command += ["--weights", str(args.weights)]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise SystemExit(f"{stage} {variant} failed:\n{done.stderr[-4000:]}")
                results[f"{stage}/{variant}"] = json.loads(done.stdout.strip().splitlines()[-1])
        sizes = {v: (work / v / "attributions.npz").stat().st_size / 2**20 for v in VARIANTS}
    print(f"{args.model}, {args.n_images} images, method {args.method}, {args.threads} thread(s); peak RSS per stage "
          f"(MB; 'growth' = peak minus the RSS after imports and model loading)")
    print(f"{'stage':<10} {'variant':<10} {'peak MB':>9} {'growth MB':>10} {'seconds':>8}")
    for stage in STAGES:
        for variant in VARIANTS:
            r = results[f"{stage}/{variant}"]
            print(f"{stage:<10} {variant:<10} {r['peak_mb']:>9.0f} {r['peak_mb'] - r['setup_mb']:>10.0f} "
                  f"{r['seconds']:>8.1f}")
    print("attribution file: " + ", ".join(f"{v} {mb:.1f} MB" for v, mb in sizes.items()))
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                         "attribution_file_mb": sizes}, indent=2, sort_keys=True))
    return results


if __name__ == "__main__":
    main()
