"""Attribution commands: train the learned explainer, attribute every test image of a shard, measure the maps'
smoothness."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from depthxai.cli.common import add_command, json_arg, load_model, model_args

log = logging.getLogger("depthxai")


def run_train_explainer(args: argparse.Namespace) -> None:
    from depthxai.runtime import pin_cpu_kernels

    pins = pin_cpu_kernels()  # as for `train`: before torch loads
    from depthxai.attribution.explainer import ExplainerConfig, train_explainer
    from depthxai.device import check_cpu_kernels

    check_cpu_kernels(pins)
    settings = dict(args.explainer, seed=args.seed, threads=args.threads)
    metrics = train_explainer(load_model(args), args.data, ExplainerConfig.from_config(settings), args.out_weights,
                              args.out_metrics, log=log, progress=not args.quiet)
    log.info("explainer: %.1f s, test %s", metrics["train_seconds"],
             json.dumps(metrics.get("test", {}).get("overall", {}), sort_keys=True))


def run_attribute(args: argparse.Namespace) -> None:
    from depthxai.attribution import TargetSpec, build_method
    from depthxai.attribution.run import attribute_to_file
    from depthxai.data.io import read_mean_rgb
    from depthxai.evaluation.relative import check_target
    from depthxai.models.predict import read_predictions

    model = load_model(args)
    target = TargetSpec.from_config(args.target)
    check_target(model.card, target)
    method = build_method(args.method, args.params, mean_rgb=read_mean_rgb(args.mean_rgb) if args.mean_rgb else None)
    if args.method_id is not None:
        method.name = args.method_id  # what the maps are recorded as (their meta, the scores, tables and figures)
    start = time.perf_counter()
    n = attribute_to_file(args.out, model, method, args.data, read_predictions(args.predictions),
                          target, channel_reduction=args.channel_reduction,
                          seed=args.seed, progress=not args.quiet,
                          meta={"params": args.params, **({"method_name": args.method} if args.method_id else {})})
    log.info("%s on %s: %d maps, %.3f s per image", args.method, args.model, n,
             (time.perf_counter() - start) / max(n, 1))


def run_smoothness(args: argparse.Namespace) -> None:
    from depthxai.attribution.baselines import measure_smoothness
    from depthxai.fileio import write_json

    summary = measure_smoothness(args.attributions, args.match_methods, args.ranking)
    write_json(args.out, summary)
    log.info("correlation length %.2f px (per method: %s)", summary["correlation_length_px"],
             json.dumps(summary["per_method"], sort_keys=True))


def register(sub: Any) -> None:
    p = add_command(sub, "train-explainer", "train the one-forward-pass explainer against a frozen depth model",
                    run_train_explainer)
    model_args(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--explainer", type=json_arg, default={}, help="ExplainerConfig fields as JSON (methods.explainer)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-weights", type=Path, required=True)
    p.add_argument("--out-metrics", type=Path, required=True)

    p = add_command(sub, "attribute", "attribution maps for every image of a predictions file", run_attribute)
    model_args(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--method", required=True, help="saliency, ig, rollout, random, random_smooth, explainer, or "
                   "captum:<Method> / captum:NoiseTunnel(<Method>)")
    p.add_argument("--method-id", default=None,
                   help="the id the maps are recorded under (the config's methods.<id>; default: the method's name), "
                        "e.g. occlusion for --method captum:Occlusion; it also seeds stochastic methods")
    p.add_argument("--params", type=json_arg, default={}, help="method parameters as JSON")
    p.add_argument("--target", type=json_arg, default={"kind": "mean"}, help="target as JSON")
    p.add_argument("--channel-reduction", default="sum", choices=["sum", "abs_sum"])
    p.add_argument("--mean-rgb", type=Path, help="JSON from 'depthxai mean-rgb' (IG mean baseline)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)

    p = add_command(sub, "smoothness", "correlation length of the methods' maps: the target of the "
                    "smoothness-matched random baseline", run_smoothness)
    p.add_argument("--match-methods", nargs="+", required=True, help="methods whose smoothness the baseline matches")
    p.add_argument("--ranking", choices=["abs", "signed"], default="abs", help="measure |map| (abs) or the map")
    p.add_argument("--out", type=Path, required=True, help="JSON with correlation_length_px")
    p.add_argument("attributions", type=Path, nargs="+", help="attribution files (.npz) of the matched methods")
