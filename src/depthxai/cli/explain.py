"""``depthxai explain``: explain the depth a model predicts for a few photographs, for people rather than workflows.

Per image, in ``--out/<image stem>/``: ``depth.npy`` (the prediction in the network's frame, metres or the model's
relative units), ``<method>.npy`` (each map, same frame), ``panel.png`` (input, prediction, each map as an overlay,
with colour bars) and, with ``--evaluate``, ``scores.csv`` (every score of the workflow's evaluation) while a
MoRF/LeRF/AF table is printed; ``--out/summary.csv`` gathers the tables of all images.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

from depthxai.cli.common import add_command, json_arg, load_model, model_args

log = logging.getLogger("depthxai")


def method_file_name(method: str) -> str:
    """A file-name-safe form of a method name (``captum:NoiseTunnel(Saliency)`` -> ``captum-NoiseTunnel-Saliency``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", method).strip("-.") or "method"


def _method_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--method-params NAME=JSON`` options as ``{name: params}``."""
    from depthxai.errors import ConfigError

    params: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            value = json.loads(text) if sep else None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--method-params {item!r}: not NAME=JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"--method-params {item!r}: expected NAME={{...}} with a JSON object")
        params[name] = value
    return params


def _build_methods(names: list[str], params: dict[str, dict[str, Any]], mean_rgb: list[float] | None) -> dict[str, Any]:
    from depthxai.attribution import build_method
    from depthxai.errors import ConfigError

    unused = sorted(set(params) - set(names))
    if unused:
        raise ConfigError(f"--method-params names {unused}, which no --method asks for")
    methods = {}
    for name in names:
        try:
            methods[name] = build_method(name, params.get(name), mean_rgb=mean_rgb)
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"--method {name}: {exc} (parameters: --method-params {name}='{{\"key\": value}}')"
                              ) from None
    return methods


def run_explain(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from depthxai.attribution.targets import TargetSpec
    from depthxai.config import section_defaults
    from depthxai.data.io import read_rgb
    from depthxai.errors import ConfigError
    from depthxai.evaluation.explain import explain_image
    from depthxai.evaluation.run import EvaluationConfig
    from depthxai.fileio import write_csv, write_npy
    from depthxai.report.explain import explanation_summary, figure_explanation, format_summary
    from depthxai.tidy import with_labels

    stems = [image.stem for image in args.images]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise ConfigError(f"images with the same name {twice} would share an output folder; explain them separately")
    target = TargetSpec.from_config({"kind": args.target, "quantile": args.quantile, "box": args.box})
    evaluation = (EvaluationConfig.from_config(section_defaults("evaluation", args.evaluation)) if args.evaluate
                  else None)
    methods = _build_methods(args.method, _method_params(args.method_params), args.mean_rgb)
    model = load_model(args)
    card = model.card
    summaries = []
    for image, stem in zip(tqdm(args.images, desc=f"explain {card.name}", disable=args.quiet), stems):
        explanation = explain_image(model, read_rgb(image), methods, target, image_id=stem, seed=args.seed,
                                    evaluation=evaluation, mean_rgb=tuple(args.mean_rgb) if args.mean_rgb else None,
                                    channel_reduction=args.channel_reduction, source=str(image))
        folder = args.out / stem
        write_npy(folder / "depth.npy", explanation.depth)
        for name, relevance in explanation.maps.items():
            write_npy(folder / f"{method_file_name(name)}.npy", relevance)
        figure_explanation(explanation.rgb, explanation.depth, explanation.maps, folder / "panel", image_id=stem,
                           model=f"{card.arch}_{card.variant}", relative=card.output_kind == "relative")
        if explanation.scores is not None:
            write_csv(folder / "scores.csv", with_labels(explanation.scores, {"image": stem}))
            summary = explanation_summary(explanation.scores)
            print(format_summary(summary, stem), flush=True)
            summaries.append(with_labels(summary, {"image": stem}))
    if summaries:
        import pandas as pd

        write_csv(args.out / "summary.csv", pd.concat(summaries, ignore_index=True))
    log.info("explain: %d image(s), %d method(s) -> %s", len(args.images), len(methods), args.out)


def register(sub: Any) -> None:
    p = add_command(sub, "explain", "explain the predicted depth of photographs: depth, one map per method, a PNG "
                    "panel, and (--evaluate) each map's MoRF/LeRF AUC and Attribution Fidelity", run_explain)
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    model_args(p)
    p.add_argument("--method", action="append", required=True,
                   help="an attribution method (repeat for several): saliency, ig, rollout, random, random_smooth, "
                        "explainer, captum:<Method>, captum:NoiseTunnel(<Method>)")
    p.add_argument("--method-params", action="append", default=[], metavar="NAME=JSON",
                   help="a method's parameters, e.g. ig='{\"n_steps\": 64}' (repeat per method)")
    p.add_argument("--target", default="mean", choices=("mean", "near", "far", "box"),
                   help="the scalar explained: mean depth, of the nearest/farthest --quantile of pixels, or in --box")
    p.add_argument("--quantile", type=float, default=0.25)
    p.add_argument("--box", type=float, nargs=4, default=None, metavar=("TOP", "LEFT", "BOTTOM", "RIGHT"),
                   help="fractions of the frame, for --target box")
    p.add_argument("--channel-reduction", default="sum", choices=("sum", "abs_sum"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mean-rgb", type=float, nargs=3, default=None, metavar=("R", "G", "B"),
                   help="the colour in [0, 1] of removed pixels and of IG's 'mean' baseline (default: each image's "
                        "mean colour for removal; IG's 'mean' baseline then needs it)")
    p.add_argument("--evaluate", action="store_true", help="score each map and print MoRF/LeRF AUC and AF")
    p.add_argument("--evaluation", type=json_arg, default={},
                   help="the config's evaluation section as JSON (fractions, schemes, ...); default its defaults")
    p.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per image)")
