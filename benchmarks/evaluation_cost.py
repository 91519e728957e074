"""The cost of the evaluation of one map, before and after the validity work, side by side in one run.

* **before**: the work of the old evaluation stage: one removal scheme (pixels, mean colour), then Attribution
  Fidelity and Infidelity;
* **after**: the default now: two schemes (pixels + mean colour, pixels + ROAD's noisy linear imputation);
* **after + patches**: the same with a third scheme (8-pixel patches, mean colour).

The target-change curve and the seeded tie permutation are in every case (the old code is not importable beside
the new one); their own cost is printed separately: one extra weighted sum per copy, and one permutation and
gather per map (``ranking``: raster-order ties against seeded ties).

Every configuration scores the same maps (signed Saliency, and Attention Rollout, whose constant blocks are ties)
of the same images with :func:`depthxai.evaluation.run.score_map`, the function the evaluate stage runs per image;
the cases take turns within each round and the median over the rounds is reported, in ms per map, with the ratio
to *before*. Usage::

    python benchmarks/evaluation_cost.py                     # METER-XXS NYU (official weights if present), CPU
    python benchmarks/evaluation_cost.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from depthxai.attribution import AttentionRollout, Saliency, TargetSpec, target_weights
from depthxai.attribution.base import reduce_channels
from depthxai.evaluation.perturbation import PerturbationConfig, removal_ranks
from depthxai.evaluation.run import EvaluationConfig, score_map
from depthxai.models import load_depth_model, prepare_input

SHARED = Path(os.environ.get("DEPTHXAI_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def configurations() -> dict[str, EvaluationConfig]:
    """``{case: evaluation config}``."""
    pixel = PerturbationConfig(fractions=FRACTIONS, name="pixel")
    road = PerturbationConfig(fractions=FRACTIONS, name="road", replacement="road")
    patch = PerturbationConfig(fractions=FRACTIONS, name="patch", unit="patch", patch_size=8)
    return {"before": EvaluationConfig(schemes=(pixel,)), "after": EvaluationConfig(schemes=(pixel, road)),
            "after + patches": EvaluationConfig(schemes=(pixel, road, patch))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="meter_xxs_nyu")
    p.add_argument("--weights", type=Path, default=SHARED / "mirror" / "build_model_best_nyu_xxs")
    p.add_argument("--data", type=Path, default=SHARED / "data" / "nyu_test")
    p.add_argument("--n-images", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = load_depth_model(args.model, args.weights if args.weights.is_file() else None, device=device)
    from PIL import Image

    paths = sorted(args.data.glob("*_colors.png"))[: args.n_images] if args.data.is_dir() else []
    rng = np.random.default_rng(0)
    frames = ([np.asarray(Image.open(path).convert("RGB")) for path in paths] or
              [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(args.n_images)])
    images = [prepare_input(rgb, model.card).to(device) for rgb in frames]
    target = TargetSpec()
    maps = []
    for image in images:
        with torch.no_grad():
            native = model.native(image[None])
        weights = target_weights(target, model(image[None]).detach())
        for method in (Saliency(), AttentionRollout()):
            relevance = reduce_channels(method.attribute(model, image[None], weights).maps, "sum")[0].detach()
            maps.append((image, relevance, native))
    mean_rgb = (0.48, 0.41, 0.39)
    cases = configurations()
    times: dict[str, list[float]] = {name: [] for name in cases}
    ranking: dict[str, list[float]] = {"raster ties": [], "seeded ties": []}
    for round_ in range(args.repeats + 1):  # round 0 warms up
        for name, config in cases.items():
            start = time.perf_counter()
            for k, (image, relevance, native) in enumerate(maps):
                score_map(model, image, relevance, native, config, target, mean_rgb, seed=0, image_id=str(k))
            if round_:
                times[name].append(1e3 * (time.perf_counter() - start) / len(maps))
        for name, seed in (("raster ties", None), ("seeded ties", 7)):
            start = time.perf_counter()
            for _, relevance, _ in maps:
                removal_ranks(relevance, "abs", seed)
            if round_:
                ranking[name].append(1e3 * (time.perf_counter() - start) / len(maps))
    base = statistics.median(times["before"])
    print(f"{args.model}, {len(maps)} maps ({len(images)} images x Saliency, Rollout), {torch.get_num_threads()} "
          f"threads, {args.repeats} rounds; median ms per map")
    print(f"{'case':<18}{'ms / map':>10}{'ratio':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<18}{median:>10.1f}{median / base:>8.2f}")
    raster, seeded = (statistics.median(ranking[k]) for k in ("raster ties", "seeded ties"))
    print(f"ranking of one map: raster ties {raster:.2f} ms, seeded ties {seeded:.2f} ms")


if __name__ == "__main__":
    main()
