"""Per-image cost of every Captum method (``captum:<Method>``, default settings) as a ratio to one forward+backward.

All methods and the reference pass run side by side in one process on the same CPU threads, taking turns within
each repeat (so a slow-down of the machine hits all of them alike). The reference is one forward and one backward
pass of the target (:class:`~depthxai.attribution.targets.TargetModel`) for one image; each method attributes the
same image and target (mean depth) with its documented defaults (:mod:`depthxai.attribution.captum_methods`).
Reported: the median time per image over the repeats (after warm-up runs), the interquartile range, the ratio
of each median to the reference's median, and the images the network sees per attributed image (counted by a
forward hook: all, and those with autograd on, i.e. followed by a backward pass), which does not depend on the
machine. On tiny models the time ratio is lower than the pass count where Captum batches passes (IG's path
points, perturbations) and higher where Python overhead dominates.

Models: a tiny conv depth net (``tests/tiny_nets.py``, 64x64), a tiny random Depth Anything (DINOv2 backbone,
2 layers, 56x56, ``tests/hf_fixtures.py``; needs the ``hf`` extra) and METER-XXS at the NYU input size 192x256
(``meter_xxs``: the architecture of the paper's model; random weights, which do not change the cost). Methods
that cannot apply to a model (rollout on a network without attention) are reported as not applicable. The costs
of the perturbation methods depend on the input size only through their defaults (windows and grids are fractions
of the image), and on the batching
(``perturbations_per_eval=8``): on large models the ratios approach the number of forward passes.

Usage::

    python benchmarks/captum_methods.py --help
    python benchmarks/captum_methods.py                          # both tiny models, 1 thread, 5 repeats
    python benchmarks/captum_methods.py --models conv --repeats 10 --json captum_costs.json
    python benchmarks/captum_methods.py --models meter_xxs --methods saliency,ig,rollout,captum:Occlusion

LRP is left out (the tiny models have layers without LRP rules), GuidedGradCam too (it needs a layer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from depthxai.attribution import TargetModel, TargetSpec, build_method, target_weights
from depthxai.errors import ConfigError
from depthxai.models.adapters import load_any_depth_model, make_card
from depthxai.models.wrapper import DepthModel, load_depth_model

TESTS = Path(__file__).resolve().parents[1] / "tests"

METHODS = (
    "captum:Saliency", "captum:InputXGradient", "captum:GuidedBackprop", "captum:Deconvolution", "captum:DeepLift",
    "captum:IntegratedGradients", "captum:GradientShap", "captum:DeepLiftShap", "captum:Occlusion",
    "captum:FeatureAblation", "captum:ShapleyValueSampling", "captum:ShapleyValues", "captum:Lime",
    "captum:KernelShap", "captum:NoiseTunnel(Saliency)", "captum:NoiseTunnel(IntegratedGradients)",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="conv,depth_anything", help="comma-separated: conv, depth_anything, meter_xxs")
    p.add_argument("--methods", default=",".join(METHODS),
                   help="comma-separated method names (captum:..., saliency, ig, rollout)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per method (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per method first (default: %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def tiny_model(kind: str, folder: Path) -> DepthModel:
    sys.path.insert(0, str(TESTS))
    if kind == "meter_xxs":
        torch.manual_seed(0)
        return load_depth_model("meter_xxs_nyu")
    if kind == "conv":
        from tiny_nets import build_tiny_depth_net

        card = make_card("module:tiny_nets:build_tiny_depth_net", "module", "tiny", "tiny_nets:build_tiny_depth_net",
                         {}, {"input_size": (64, 64), "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)})
        return DepthModel(build_tiny_depth_net(width=16, seed=0), card).eval()
    from hf_fixtures import save_tiny_depth_anything

    return load_any_depth_model(f"hf:{save_tiny_depth_anything(folder / 'da')}")


def time_runs(runs: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each run; the runs alternate within each round."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def count_passes(model: DepthModel, run: Callable[[], object]) -> tuple[int, int]:
    """Images through ``model.net`` during ``run()``: (all, with autograd enabled)."""
    counts = [0, 0]

    def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _output: object) -> None:
        counts[0] += inputs[0].shape[0]
        counts[1] += inputs[0].shape[0] if torch.is_grad_enabled() else 0

    handle = model.net.register_forward_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return counts[0], counts[1]


def benchmark(model: DepthModel, methods: list[str], repeats: int, warmup: int) -> dict[str, dict[str, float]]:
    h, w = model.card.input_size
    image = torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(0))
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        weights = target_weights(TargetSpec(kind="mean"), model(image))
    forward = TargetModel(model)

    def forward_backward() -> None:
        x = image.clone().requires_grad_(True)
        forward(x, weights).sum().backward()

    runs: dict[str, Callable[[], object]] = {"forward+backward": forward_backward}
    for name in methods:
        method = build_method(name)
        runs[name] = lambda method=method: method.attribute(model, image, weights, seeds=[1])
    passes = {}
    for name, run in list(runs.items()):
        try:
            passes[name] = count_passes(model, run)
        except ConfigError as exc:  # e.g. rollout on a network without attention
            print(f"{name}: not applicable to {model.card.name} ({str(exc).splitlines()[0][:120]})")
            del runs[name]
    times = time_runs(runs, repeats, warmup)
    reference = statistics.median(times["forward+backward"])
    results = {}
    for name, values in times.items():
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
        median = statistics.median(values)
        results[name] = {"median_ms": 1e3 * median, "iqr_ms": 1e3 * (q3 - q1), "ratio": median / reference,
                         "images_forward": passes[name][0], "images_with_grad": passes[name][1]}
    return results


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    import warnings

    warnings.filterwarnings("ignore", message="Setting (forward, )?backward hooks")
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    out: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in [k for k in args.models.split(",") if k]:
            model = tiny_model(kind, Path(tmp))
            out[kind] = benchmark(model, methods, args.repeats, args.warmup)
            h, w = model.card.input_size
            print(f"\n{kind} ({model.card.name.split('/')[-1]}) at {h}x{w}, {args.threads} thread(s), "
                  f"{args.repeats} repeats after {args.warmup} warm-up")
            print(f"{'method':<42} {'median ms/image':>16} {'IQR ms':>10} {'x fwd+bwd':>10} {'images':>8} "
                  f"{'w/ grad':>8}")
            for name, row in out[kind].items():
                print(f"{name:<42} {row['median_ms']:>16.1f} {row['iqr_ms']:>10.1f} {row['ratio']:>10.1f} "
                      f"{row['images_forward']:>8} {row['images_with_grad']:>8}")
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": out},
                                        indent=2, sort_keys=True))
    return out


if __name__ == "__main__":
    main()
