"""Evaluation commands: score every map of a shard (perturbation curves, Attribution Fidelity, Infidelity), merge
tidy tables."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from depthxai.cli.common import (
    add_command,
    alignment_arg,
    alignment_settings,
    json_arg,
    load_model,
    model_args,
    positive_int,
)

log = logging.getLogger("depthxai")

#: What a test-retest repeat varies (the ``factor`` column of the retest table): the seed of the attribution and
#: evaluation noise (IG noise baselines, random rankings, Infidelity and perturbation noise), or the training seed of
#: the embedded model and its explainer (then everything downstream is recomputed with the analysis seed unchanged).
RETEST_FACTORS = ("analysis_seed", "training_seed")


def run_evaluate(args: argparse.Namespace) -> None:
    from depthxai.attribution import TargetSpec
    from depthxai.attribution.run import read_attributions
    from depthxai.config import section_defaults
    from depthxai.data.io import read_mean_rgb
    from depthxai.evaluation.relative import AlignmentSpec, check_target
    from depthxai.evaluation.run import EvaluationConfig, evaluate_split
    from depthxai.fileio import write_csv
    from depthxai.models.predict import read_predictions
    from depthxai.tidy import with_labels

    config = EvaluationConfig.from_config(section_defaults("evaluation", args.evaluation))  # fails before any work
    alignment = AlignmentSpec.from_config(alignment_settings(args.alignment))
    target = TargetSpec.from_config(args.target)
    model = load_model(args)
    check_target(model.card, target)
    attributions = read_attributions(args.attributions)
    scores, curves = evaluate_split(model, args.data, read_predictions(args.predictions), attributions, config,
                                    target, read_mean_rgb(args.mean_rgb), seed=args.seed, progress=not args.quiet,
                                    log=log, alignment=alignment)
    labels: dict[str, object] = {"dataset": args.dataset, "model": args.arch, "method": attributions["meta"]["method"]}
    if args.repeat is not None:
        labels.update(factor=args.retest_factor, repeat=args.repeat)
    write_csv(args.out_scores, with_labels(scores, labels))
    write_csv(args.out_curves, with_labels(curves, labels))


def run_qualitative_panels(args: argparse.Namespace) -> None:
    from depthxai.attribution.run import read_attributions
    from depthxai.data.io import read_dataset_info
    from depthxai.evaluation.panels import write_panels
    from depthxai.evaluation.qualitative import qualitative_panels
    from depthxai.evaluation.relative import AlignmentSpec
    from depthxai.models.adapters import PREFIXES

    by_method: dict[str, list[Path]] = {}
    for path in args.attributions:
        by_method.setdefault(read_attributions(path)["meta"]["method"], []).append(path)
    # a registry model's card comes from the registry; an adapted model's from the model itself (the config's card)
    model = load_model(args).card if args.model.startswith(PREFIXES) else args.model
    card, panels = qualitative_panels(args.data, args.predictions, by_method, model=model, n_images=args.n_images,
                                      image_ids=args.images,
                                      alignment=AlignmentSpec.from_config(alignment_settings(args.alignment)))
    label = args.arch or f"{card.arch}_{card.variant}"
    write_panels(args.out, label, read_dataset_info(args.data).name, panels)


def run_merge(args: argparse.Namespace) -> None:
    from depthxai.fileio import write_csv
    from depthxai.tidy import concat_tidy

    write_csv(args.out, concat_tidy(args.inputs))


def register(sub: Any) -> None:
    p = add_command(sub, "evaluate", "perturbation curves, Attribution Fidelity and Infidelity for an attribution file",
                    run_evaluate)
    model_args(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--attributions", type=Path, required=True)
    alignment_arg(p)
    p.add_argument("--evaluation", type=json_arg, default={}, help="the config's evaluation section as JSON")
    p.add_argument("--target", type=json_arg, default={"kind": "mean"})
    p.add_argument("--mean-rgb", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", required=True, help="label for the tidy tables")
    p.add_argument("--arch", required=True, help="label for the tidy tables (<arch>_<variant>)")
    p.add_argument("--repeat", type=int, default=None, help="label the rows of a test-retest repeat")
    p.add_argument("--retest-factor", default="analysis_seed", choices=list(RETEST_FACTORS),
                   help="what the repeat varied: the analysis seed (attribution and evaluation noise) or the "
                        "training seed of the model and explainer")
    p.add_argument("--out-scores", type=Path, required=True)
    p.add_argument("--out-curves", type=Path, required=True)

    p = add_command(sub, "qualitative-panels", "what Figure 1 shows of a few images (input, ground truth, prediction, "
                    "each method's map in the network's frame), for figure-qualitative", run_qualitative_panels)
    model_args(p)
    alignment_arg(p)
    p.add_argument("--arch", default=None, help="the model's label in the figure (default: <arch>_<variant> of its "
                   "card), e.g. the config's model id of an hf: model")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--predictions", type=Path, nargs="+", required=True)
    p.add_argument("--attributions", type=Path, nargs="+", required=True)
    p.add_argument("--n-images", type=positive_int, default=4, help="images spread evenly over the sorted ids")
    p.add_argument("--images", nargs="+", default=None, help="these image ids instead, in this order")
    p.add_argument("--out", type=Path, required=True, help="the panels .npz")

    p = add_command(sub, "merge", "concatenate tidy CSVs (shards, methods) into one, sorted, byte-stable", run_merge)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("inputs", type=Path, nargs="+")
