"""Time per image of the learned explainer against Saliency and Integrated Gradients, side by side.

Every method attributes the same image and target with the same depth model on the same CPU, in one process;
the methods take turns within each repeat (so a slow-down of the machine hits all of them alike). Reported:
the median time per image over the repeats (after warm-up runs), the interquartile range, and the ratio of each
method's median to the explainer's.

Usage::

    python benchmarks/explainer_speed.py --help
    python benchmarks/explainer_speed.py                      # METER-XXS (random weights), 192x256, 1 thread
    python benchmarks/explainer_speed.py --model meter_xxs_synthindoor \\
        --weights results/models/synthindoor/meter_xxs/weights.pt \\
        --explainer results/models/synthindoor/meter_xxs/explainer.pt --threads 1 --repeats 10

Without ``--weights`` / ``--explainer`` the networks keep random weights: the time of a forward or backward pass
does not depend on the values of the weights. The image is a rendered synthetic indoor scene at the model's
input size (or ``--size``); the target is the mean predicted depth. IG runs ``--ig-steps`` path points with the
automatic internal batch size (:func:`depthxai.attribution.gradient.auto_internal_batch_size`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from depthxai.attribution import Explainer, IntegratedGradients, Saliency, TargetSpec, target_weights
from depthxai.attribution.explainer import ExplainerNet
from depthxai.data.synthetic import render_scene
from depthxai.models import get_card, load_depth_model, prepare_input


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="meter_xxs_synthindoor", help="registry model name (default: %(default)s)")
    p.add_argument("--weights", type=Path, default=None, help="depth model state dict (default: random weights)")
    p.add_argument("--explainer", type=Path, default=None,
                   help="explainer state dict from train_explainer (default: a random ExplainerNet of --width)")
    p.add_argument("--width", type=int, default=8, help="width of the random ExplainerNet (default: %(default)s)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="input size (default: the model card's input size)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per method (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per method first (default: %(default)s)")
    p.add_argument("--ig-steps", type=int, default=32, help="IG path points (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default: %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def time_methods(methods: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each method; the methods alternate within each round."""
    for _ in range(warmup):
        for run in methods.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    card = get_card(args.model)
    size = tuple(args.size) if args.size else card.input_size
    model = load_depth_model(args.model, args.weights)
    for p in model.parameters():
        p.requires_grad_(False)
    setup = "road" if card.dataset in ("kitti", "synthroad") else "indoor"
    rgb, _ = render_scene(setup, args.seed, size)
    image = prepare_input(rgb, card)[None]
    with torch.no_grad():
        weights = target_weights(TargetSpec(kind="mean"), model(image))

    with tempfile.TemporaryDirectory() as tmp:
        explainer_path = args.explainer
        if explainer_path is None:
            torch.manual_seed(args.seed)
            explainer_path = Path(tmp) / "explainer.pt"
            torch.save(ExplainerNet(width=args.width).state_dict(), explainer_path)
        explainer = Explainer(explainer_path)
    saliency = Saliency()
    ig = IntegratedGradients(n_steps=args.ig_steps, internal_batch_size="auto")
    methods: dict[str, Callable[[], object]] = {
        "explainer": lambda: explainer.attribute(model, image, weights),
        "saliency": lambda: saliency.attribute(model, image, weights),
        f"ig (n_steps {args.ig_steps})": lambda: ig.attribute(model, image, weights),
    }
    times = time_methods(methods, args.repeats, args.warmup)

    reference = statistics.median(times["explainer"])
    results: dict[str, dict[str, float]] = {}
    for name, values in times.items():
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
        median = statistics.median(values)
        results[name] = {"median_ms": 1e3 * median, "iqr_ms": 1e3 * (q3 - q1), "ratio_to_explainer": median / reference}
    n_params = sum(p.numel() for p in explainer.net.parameters())
    print(f"model {args.model} at {size[0]}x{size[1]}, {args.threads} thread(s), {args.repeats} repeats after "
          f"{args.warmup} warm-up; explainer width {explainer.net.width} ({n_params} parameters)")
    print(f"{'method':<18} {'median ms/image':>16} {'IQR ms':>10} {'x explainer':>12}")
    for name, row in results.items():
        print(f"{name:<18} {row['median_ms']:>16.1f} {row['iqr_ms']:>10.1f} {row['ratio_to_explainer']:>12.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=2, sort_keys=True))
    return results


if __name__ == "__main__":
    main()
