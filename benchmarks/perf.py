"""Attribution and evaluation against the hardware limit, and against Quantus and Captum, side by side in one run.

Every case runs in the same process on the same images; the cases take turns within each round (a slow-down of
a shared machine hits all of them alike) and the median over the rounds (after warm-up rounds) is reported, in
milliseconds per image. The ratios compare each implementation with the bare model passes it cannot avoid:

* **perturbation**: our MoRF + LeRF curves of one map (:func:`perturbation_curves`, all fractions, with the
  ground-truth curves) against the bare batched forward of the same perturbed copies; and, for curves both can
  express (fractions k/24; Quantus steps through the whole ranking in equal steps that must divide H*W and, to
  remove whole pixels, be a multiple of 3 features), against Quantus ``PixelFlipping`` configured to give the same
  curves: a wrapper whose output ``(B, 1)`` is the RMSE of the clipped prediction against the clean one,
  ``softmax=False`` (its default softmax over one output turns every value into 1.0), baseline 0 (our ``mean``
  replacement with mean colour 0), MoRF and LeRF as two calls. Quantus runs two ways: *per image* (``x_batch`` of
  one image, ``batch_size=1``, looped over the images: how a per-image evaluation calls it, the issue's protocol,
  so every Quantus step is a batch-1 forward) and *batched over the images* (``x_batch`` of all ``--n-images``,
  ``batch_size`` = that number: each step a forward of that batch); both as ms per image;
* **infidelity**: ours (:func:`depthxai.evaluation.infidelity.infidelity`, the stored clean prediction reused)
  against Captum's ``infidelity`` (same perturbations) and the bare forward of the perturbed copies;
* **IG**: ours (``internal_batch_size='auto'``, convergence delta included) against ``n_steps x`` the best
  per-sample forward+backward over the batch sizes tried (the limit) and Captum's IG at internal batch 1, 10, 50;
* **Saliency** against one forward+backward at batch 1, **Rollout** against one forward at batch 1.

Usage::

    python benchmarks/perf.py --help
    python benchmarks/perf.py                                  # METER-XXS NYU (official weights if present)
    python benchmarks/perf.py --repeats 7 --json perf.json
    python benchmarks/perf.py --device cuda                    # on a GPU
    python benchmarks/perf.py --models meter_xxs_nyu pixelformer_nano07_nyu --repeats 3

Images: the real NYU test frames in ``--data`` (``NNNNN_colors.png`` / ``NNNNN_depth.png`` in millimetres, as in
/work/shared/data/nyu_test) if present, else rendered synthetic indoor scenes. Weights: ``--weights`` (default
the official METER-XXS NYU checkpoint if present) for the first model; otherwise random weights (the time of a
pass does not depend on the values of the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.metrics import infidelity as captum_infidelity
from torch import Tensor, nn

from depthxai.attribution import (
    AttentionRollout,
    IntegratedGradients,
    Saliency,
    TargetModel,
    TargetSpec,
    target_weights,
)
from depthxai.attribution.base import reduce_channels, seeded_generator
from depthxai.evaluation.fidelity import attribution_fidelity
from depthxai.evaluation.infidelity import infidelity
from depthxai.evaluation.perturbation import (
    ORDERS,
    GroundTruth,
    PerturbationConfig,
    deletion_masks,
    perturbation_curves,
    pixel_ranking,
    replacement_image,
)
from depthxai.metrics.depth import eval_mask
from depthxai.models import get_card, load_depth_model, prepare_input
from depthxai.models.wrapper import DepthModel, resize_depth

SHARED = Path(os.environ.get("DEPTHXAI_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEFAULT_WEIGHTS = SHARED / "mirror" / "build_model_best_nyu_xxs"
DEFAULT_DATA = SHARED / "data" / "nyu_test"
FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)  # the study's default (config.yaml)
QUANTUS_STEPS = 24


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["meter_xxs_nyu"], help="registry names (default: %(default)s)")
    p.add_argument("--weights", type=Path, default=None,
                   help="state dict of the first model (default: the official METER-XXS NYU checkpoint for "
                        "meter_xxs_nyu if present, else random weights)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder of NYU frames NNNNN_colors.png / NNNNN_depth.png (default: %(default)s; synthetic "
                        "scenes if absent)")
    p.add_argument("--n-images", type=int, default=4, help="images the per-image cases cycle through")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="perturbation / infidelity batch (default: %(default)s)")
    p.add_argument("--fb-batches", type=int, nargs="+", default=[1, 4, 8, 16, 32],
                   help="batch sizes of the forward+backward limit (default: %(default)s)")
    p.add_argument("--ig-steps", type=int, default=50, help="IG path points (default: %(default)s)")
    p.add_argument("--infidelity-samples", type=int, default=16, help="infidelity perturbations (default: %(default)s)")
    p.add_argument("--skip", nargs="*", default=[], choices=["quantus", "captum-ig", "ig", "rollout", "infidelity"],
                   help="cases to leave out")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------ timing


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_cases(cases: dict[str, tuple[Callable[[int], object], int]], repeats: int, warmup: int,
               device: torch.device, n_images: int) -> dict[str, list[float]]:
    """Milliseconds per image of each case, per round; case ``run(i)`` handles ``per_call`` images, ``i`` cycles
    through the images; the cases alternate within each round."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(warmup + repeats):
        for name, (run, per_call) in cases.items():
            synchronise(device)
            start = time.perf_counter()
            run(round_ % n_images)
            synchronise(device)
            if round_ >= warmup:
                times[name].append(1e3 * (time.perf_counter() - start) / per_call)
    return times


# ------------------------------------------------------------------------------------------------ inputs


def load_frames(data: Path, card_name: str, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """``n`` frames ``(rgb uint8 (H, W, 3), depth float32 metres (H, W), eval crop)``: NYU from ``data`` if
    present, else synthetic scenes."""
    from PIL import Image

    colour = sorted(data.glob("*_colors.png")) if data.is_dir() else []
    if colour:
        frames = []
        for path in colour[:n]:
            rgb = np.asarray(Image.open(path).convert("RGB"))
            depth = np.asarray(Image.open(str(path).replace("_colors", "_depth")), dtype=np.float32) / 1000.0
            frames.append((rgb, depth, "eigen" if depth.shape == (480, 640) else "none"))
        return frames
    from depthxai.data.synthetic import render_scene

    setup = "road" if get_card(card_name).dataset in ("kitti", "synthroad") else "indoor"
    return [(*render_scene(setup, seed + k), "none") for k in range(n)]


def perturbed_batch(image: Tensor, relevance: Tensor, config: PerturbationConfig,
                    mean_rgb: tuple[float, ...]) -> Tensor:
    """The distinct perturbed copies :func:`perturbation_curves` runs through the model (what the limit runs)."""
    h, w = image.shape[-2:]
    n = h * w
    order = pixel_ranking(relevance, config.ranking)
    masks = torch.cat([deletion_masks(order, config.fractions, (h, w), o == "morf") for o in ORDERS])
    counts = masks.flatten(1).sum(dim=1)
    keep = [i for i, c in enumerate(counts.tolist()) if 0 < c < n]
    keep += [i for i, c in enumerate(counts.tolist()) if c == n][:1]  # removing everything: one copy for both orders
    replacement = replacement_image(image, config, mean_rgb, 0)
    return torch.where(masks[sorted(keep)][:, None], replacement[None], image[None])


class RmseToClean(nn.Module):
    """Quantus adapter: ``x (B, 3, H, W) -> (B, 1)``, the RMSE of each clipped prediction against the clean
    prediction of its image (the rows of ``x`` are the images of ``clean``, in order)."""

    def __init__(self, model: DepthModel, clean: Tensor) -> None:
        super().__init__()
        self.model, self.clean = model, clean

    def forward(self, x: Tensor) -> Tensor:
        card = self.model.card
        depth = self.model(x)[:, 0].clamp(card.min_depth, card.max_depth)
        return (depth - self.clean).square().mean(dim=(1, 2)).sqrt()[:, None]


# ------------------------------------------------------------------------------------------------ one model


def bench_model(name: str, weights: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    model = load_depth_model(name, weights, device=device)
    for p in model.parameters():
        p.requires_grad_(False)
    card = model.card
    target = TargetModel(model)
    frames = load_frames(args.data, name, args.n_images)
    n_img = len(frames)
    images = torch.stack([prepare_input(rgb, card) for rgb, _, _ in frames]).to(device)
    h, w = card.input_size
    with torch.no_grad():
        natives = model.native(images[:1])  # warm the allocator
        natives = torch.cat([model.native(images[i : i + 1]) for i in range(n_img)])  # as the predict stage stores
    weights_t = target_weights(TargetSpec(kind="mean"), resize_depth(natives, (h, w)))
    truths = []
    for _, depth, crop in frames:
        mask = eval_mask(depth, card.min_depth, card.max_depth, crop)
        truths.append(GroundTruth(torch.from_numpy(depth).to(device), torch.from_numpy(mask).to(device)))
    saliency = Saliency()
    maps = torch.cat([reduce_channels(saliency.attribute(model, images[i : i + 1], weights_t[i : i + 1]).maps)
                      for i in range(n_img)])
    mean_rgb = (0.0, 0.0, 0.0)
    config = PerturbationConfig(fractions=FRACTIONS, batch_size=args.batch_size)
    config24 = PerturbationConfig(fractions=tuple(k / QUANTUS_STEPS for k in range(QUANTUS_STEPS + 1)),
                                  batch_size=args.batch_size)
    batches = [perturbed_batch(images[i], maps[i], config, mean_rgb) for i in range(n_img)]
    batches24 = [perturbed_batch(images[i], maps[i], config24, mean_rgb) for i in range(n_img)]
    bs = args.batch_size

    @torch.no_grad()
    def bare_forward(batch: Tensor) -> None:
        for i in range(0, batch.shape[0], bs):
            model.native(batch[i : i + bs])

    def forward_backward(b: int) -> Callable[[int], object]:
        x = images[torch.arange(b) % n_img].clone().requires_grad_(True)
        wb = weights_t[torch.arange(b) % n_img]
        return lambda _i: torch.autograd.grad(target(x, wb).sum(), x)

    cases: dict[str, tuple[Callable[[int], object], int]] = {}
    with torch.no_grad():
        cases["forward b1"] = (lambda i: model.native(images[i : i + 1]), 1)
        x16 = images[torch.arange(16) % n_img]
        cases["forward b16"] = (lambda _i: model.native(x16), 16)
    for b in args.fb_batches:
        cases[f"fwd+bwd b{b}"] = (forward_backward(b), b)

    def curves(i: int, cfg: PerturbationConfig, with_gt: bool) -> object:
        return perturbation_curves(model, images[i], maps[i], cfg, mean_rgb, seed=0,
                                   ground_truth=truths[i] if with_gt else None, clean_native=natives[i : i + 1])

    cases["perturbation ours"] = (lambda i: curves(i, config, True), 1)
    cases["perturbation ours, no GT"] = (lambda i: curves(i, config, False), 1)
    cases["perturbation bare forward"] = (lambda i: bare_forward(batches[i]), 1)
    cases["perturbation24 ours, no GT"] = (lambda i: curves(i, config24, False), 1)
    cases["perturbation24 bare forward"] = (lambda i: bare_forward(batches24[i]), 1)
    quantus_note = ""
    if "quantus" not in args.skip:
        try:
            import quantus
        except ImportError:
            quantus_note = "quantus not installed"
        else:
            if (h * w) % QUANTUS_STEPS:
                quantus_note = f"{h}x{w} pixels do not split into {QUANTUS_STEPS} equal steps"
            else:
                with torch.no_grad():
                    clean = model(images)[:, 0].clamp(card.min_depth, card.max_depth)
                adapter = RmseToClean(model, clean).eval()
                x_np = images.cpu().numpy()
                a_morf = maps.abs()[:, None].cpu().numpy()
                a_lerf = (maps.abs().amax() + 1 - maps.abs())[:, None].cpu().numpy()
                flipping = quantus.PixelFlipping(features_in_step=3 * h * w // QUANTUS_STEPS, abs=False,
                                                 normalise=False, perturb_baseline=0.0, disable_warnings=True)

                adapters = [RmseToClean(model, clean[k : k + 1]).eval() for k in range(n_img)]

                def quantus_curves(rows: slice, net: nn.Module) -> object:
                    """MoRF and LeRF curves of the images ``rows`` in one ``x_batch`` (one batch per step)."""
                    count = len(range(n_img)[rows])
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        return [flipping(model=net, x_batch=x_np[rows], y_batch=np.zeros(count, dtype=int),
                                         a_batch=a[rows], softmax=False, batch_size=count, channel_first=True,
                                         device=str(device))
                                for a in (a_morf, a_lerf)]

                cases["perturbation24 quantus per image"] = (
                    lambda _i: [quantus_curves(slice(k, k + 1), adapters[k]) for k in range(n_img)], n_img)
                cases["perturbation24 quantus batched"] = (lambda _i: quantus_curves(slice(None), adapter), n_img)

    if "infidelity" not in args.skip:
        n_inf = args.infidelity_samples

        def ours_infidelity(i: int) -> float:
            return infidelity(model, images[i], maps[i], weights_t[i], n_perturb_samples=n_inf, seed=i,
                              max_batch=bs, clean_native=natives[i : i + 1])

        def captum_reference(i: int) -> float:
            generator = seeded_generator(i)

            def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
                b = inputs.shape[0]
                noise = (0.05 * torch.randn((b, 1, h, w), generator=generator, dtype=inputs.dtype)).to(inputs.device)
                noise = noise.expand_as(inputs)
                return noise, inputs - noise

            attribution = (maps[i][None, None] / 3).expand(1, 3, h, w)
            with torch.no_grad():
                return float(captum_infidelity(target, perturb, images[i : i + 1], attribution,
                                               additional_forward_args=(weights_t[i : i + 1],),
                                               n_perturb_samples=n_inf, max_examples_per_batch=bs, normalize=True))

        noisy = images[:, None] - 0.05 * torch.randn((n_img, n_inf, 1, h, w), device=device)
        cases["infidelity ours"] = (ours_infidelity, 1)
        cases["infidelity captum"] = (captum_reference, 1)
        cases["infidelity bare forward"] = (lambda i: bare_forward(noisy[i]), 1)

        def evaluation(i: int) -> None:  # what evaluate_split computes per map, files aside
            curves(i, config, True)
            attribution_fidelity(maps[i], natives[i, 0])
            ours_infidelity(i)

        cases["evaluation ours"] = (evaluation, 1)
        cases["evaluation bare forward"] = (lambda i: (bare_forward(batches[i]), bare_forward(noisy[i])), 1)

    cases["saliency ours"] = (lambda i: saliency.attribute(model, images[i : i + 1], weights_t[i : i + 1]), 1)
    if "rollout" not in args.skip and card.arch in ("meter", "pixelformer"):
        rollout = AttentionRollout()
        cases["rollout ours"] = (lambda i: rollout.attribute(model, images[i : i + 1], weights_t[i : i + 1]), 1)
    steps = args.ig_steps
    if "ig" not in args.skip:
        ig = IntegratedGradients(n_steps=steps, internal_batch_size="auto")
        cases["ig ours (auto)"] = (lambda i: ig.attribute(model, images[i : i + 1], weights_t[i : i + 1]), 1)
    if "captum-ig" not in args.skip:
        for b in (1, 10, 50):
            def captum_ig(i: int, b: int = b) -> object:
                return CaptumIG(target).attribute(images[i : i + 1], baselines=torch.zeros_like(images[i : i + 1]),
                                                  additional_forward_args=(weights_t[i : i + 1],), n_steps=steps,
                                                  method="gausslegendre", internal_batch_size=b)

            cases[f"ig captum b{b}"] = (captum_ig, 1)

    times = time_cases(cases, args.repeats, args.warmup, device, n_img)
    med = {k: statistics.median(v) for k, v in times.items()}
    fb = {b: med[f"fwd+bwd b{b}"] for b in args.fb_batches}
    best_b = min(fb, key=fb.get)  # type: ignore[arg-type]
    limit_ig = steps * fb[best_b]
    auto_batch = None
    if "ig" not in args.skip:
        from depthxai.attribution.gradient import cached_internal_batch_size

        auto_batch = cached_internal_batch_size(model, images[:1], weights_t[:1], steps)
    rows: list[tuple[str, float, str, float | None, str]] = []

    def row(case: str, reference: str | None, ref_value: float | None, goal: str = "") -> None:
        if case in med:
            ratio = med[case] / ref_value if ref_value else None
            rows.append((case, med[case], reference or "", ratio, goal))

    row("forward b1", None, None)
    row("forward b16", "forward b1", med["forward b1"])
    for b in args.fb_batches:
        row(f"fwd+bwd b{b}", f"best fwd+bwd (b{best_b})", fb[best_b])
    row("perturbation ours", "bare forward", med["perturbation bare forward"], "<= 1.2")
    row("perturbation ours, no GT", "bare forward", med["perturbation bare forward"])
    row("perturbation24 ours, no GT", "bare forward", med["perturbation24 bare forward"], "<= 1.2")
    ours24 = med["perturbation24 ours, no GT"]
    for how in ("per image", "batched"):
        case = f"perturbation24 quantus {how}"
        row(case, "bare forward", med["perturbation24 bare forward"])
        if case in med:  # how many times faster ours is than Quantus, for the same curves
            rows.append((f"quantus {how} / ours", med[case], "perturbation24 ours, no GT", med[case] / ours24, ">= 2"))
    if "infidelity ours" in med:
        row("infidelity ours", "bare forward", med["infidelity bare forward"])
        row("infidelity captum", "bare forward", med["infidelity bare forward"])
        row("evaluation ours", "bare forward", med["evaluation bare forward"], "<= 1.2")
    row("saliency ours", "fwd+bwd b1", fb.get(1) or med.get("fwd+bwd b1"), "<= 1.2")
    row("rollout ours", "forward b1", med["forward b1"], "<= 1.2")
    row("ig ours (auto)", f"{steps} x best fwd+bwd", limit_ig, "<= 1.1")
    for b in (1, 10, 50):
        row(f"ig captum b{b}", f"{steps} x best fwd+bwd", limit_ig)

    print(f"\n{name} at {h}x{w} on {device} ({torch.get_num_threads()} threads), weights "
          f"{weights if weights else 'random'}, {n_img} {'NYU' if args.data.is_dir() else 'synthetic'} images; "
          f"medians of {args.repeats} rounds after {args.warmup} warm-up; IG {steps} steps, auto internal batch "
          f"{auto_batch}; perturbation {len(FRACTIONS)} fractions ({batches[0].shape[0]} distinct copies), "
          f"perturbation24 {QUANTUS_STEPS + 1} fractions ({batches24[0].shape[0]} copies)"
          + (f"; Quantus: {quantus_note}" if quantus_note else ""))
    print(f"{'case':<34} {'ms/image':>10}  {'reference':<28} {'ratio':>7}  goal")
    for case, value, reference, ratio, goal in rows:
        ratio_text = f"{ratio:7.2f}" if ratio is not None else " " * 7
        print(f"{case:<34} {value:>10.1f}  {reference:<28} {ratio_text}  {goal}")
    return {"model": name, "device": str(device), "threads": torch.get_num_threads(), "auto_ig_batch": auto_batch,
            "median_ms_per_image": med, "rounds_ms_per_image": times,
            "rows": [dict(zip(("case", "ms_per_image", "reference", "ratio", "goal"), r)) for r in rows]}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for k, name in enumerate(args.models):
        weights = args.weights if k == 0 else None
        if weights is None and name == "meter_xxs_nyu" and DEFAULT_WEIGHTS.is_file():
            weights = DEFAULT_WEIGHTS
        results.append(bench_model(name, weights, args))
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=2, sort_keys=True))
    return results


if __name__ == "__main__":
    main()
