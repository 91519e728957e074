"""Evaluation-science commands: model randomisation, mosaic localisation, the object-shift control, reliability,
the paper's claims and the science stage's tables and figures."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from depthxai.cli.common import add_command, json_arg, load_model, model_args

log = logging.getLogger("depthxai")


def _methods(args: argparse.Namespace) -> list[Any]:
    """The methods of ``--methods`` ``{id: params}``: an id with a ``method`` key (a Captum method of the config) runs
    that method, recorded under the id."""
    from depthxai.attribution import build_method
    from depthxai.data.io import read_mean_rgb

    mean_rgb = read_mean_rgb(args.mean_rgb) if args.mean_rgb else None
    methods = []
    for method_id, params in sorted(args.methods.items()):
        params = dict(params or {})
        captum = str(params.get("method", "")).startswith("captum:")  # (IG's own "method" is its integration rule)
        method = build_method(params.pop("method") if captum else method_id, params, mean_rgb=mean_rgb)
        if captum:
            method.name = method_id
        methods.append(method)
    return methods


def _write_labelled(args: argparse.Namespace, table: Any) -> None:
    from depthxai.fileio import write_csv
    from depthxai.tidy import with_labels

    write_csv(args.out, with_labels(table, {"dataset": args.dataset, "model": args.arch}))


def run_sanity(args: argparse.Namespace) -> None:
    from depthxai.attribution import TargetSpec
    from depthxai.evaluation.relative import check_target
    from depthxai.evaluation.sanity import randomisation_test

    model = load_model(args)
    target = TargetSpec.from_config(args.target)
    check_target(model.card, target)
    retrain = None
    if args.explainer_weights is not None:
        from depthxai.evaluation.sanity import explainer_retraining

        retrain = explainer_retraining(args.explainer_weights, args.data, dict(args.explainer, seed=args.seed,
                                                                              threads=args.threads),
                                       log=log, progress=not args.quiet)
    table = randomisation_test(model, args.data, args.n_images, _methods(args), target, seed=args.seed,
                               retrain_explainer=retrain)
    _write_labelled(args, table)


def run_localisation(args: argparse.Namespace) -> None:
    from depthxai.data.io import split_ids
    from depthxai.evaluation.localisation import localisation_run
    from depthxai.models.wrapper import load_inputs

    model = load_model(args)
    ids = split_ids(args.data, "test")
    table = localisation_run(model, load_inputs(model, args.data, ids), _methods(args), args.n_mosaics, args.seed,
                             image_ids=ids, fidelity_measure=args.fidelity_measure)
    _write_labelled(args, table)


def run_object_shift(args: argparse.Namespace) -> None:
    from depthxai.evaluation.localisation import object_shift_run

    table = object_shift_run(load_model(args), _methods(args), [args.setup], args.n_pairs, args.seed,
                             shift_m=args.shift_m, fidelity_measure=args.fidelity_measure)
    _write_labelled(args, table)


def run_claims(args: argparse.Namespace) -> None:
    from depthxai.config import section_defaults
    from depthxai.fileio import write_csv
    from depthxai.report.claims import ClaimRules, evaluate_claims, write_claims_markdown
    from depthxai.tidy import read_tidy

    rules = ClaimRules.from_config(section_defaults("claims", args.claims), alpha=args.alpha)
    claims = evaluate_claims(read_tidy(args.scores), rules)
    write_csv(args.out_csv, claims)
    write_claims_markdown(claims, args.out_md, rules)


def run_reliability(args: argparse.Namespace) -> None:
    from depthxai.fileio import write_csv_tables
    from depthxai.stats.reliability_run import reliability_tables, retest_with_main
    from depthxai.tidy import concat_tidy, read_tidy

    scores = read_tidy(args.scores)
    retest = retest_with_main(scores, concat_tidy(args.retest), str(args.retest[0])) if args.retest else None
    write_csv_tables(reliability_tables(scores, retest, methods=args.methods), args.out_dir)


def run_science_report(args: argparse.Namespace) -> None:
    from depthxai.report.science import write_science_report
    from depthxai.tidy import read_tidy, read_tidy_many

    write_science_report(read_tidy_many(args.sanity), read_tidy_many(args.localisation),
                         read_tidy_many(args.object_shift), read_tidy(args.scores), read_tidy(args.spearman),
                         read_tidy(args.alpha_table), read_tidy(args.icc), args.out_dir, args.tables_dir,
                         formats=args.formats)


def _science_args(p: argparse.ArgumentParser, data: bool = True) -> None:
    model_args(p)
    if data:
        p.add_argument("--data", type=Path, required=True)
    p.add_argument("--methods", type=json_arg, required=True, help='{"method": {params}, ...} as JSON')
    p.add_argument("--mean-rgb", type=Path, help="JSON from 'depthxai mean-rgb' (IG mean baseline)")
    p.add_argument("--fidelity-measure", default="pearson", choices=["pearson", "spearman", "l1"],
                   help="Attribution Fidelity measure (evaluation.fidelity.measure)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", required=True, help="label for the tidy table")
    p.add_argument("--arch", required=True, help="label for the tidy table (<arch>_<variant>)")
    p.add_argument("--out", type=Path, required=True)


def register(sub: Any) -> None:
    p = add_command(sub, "sanity", "cascading model-parameter randomisation (Adebayo et al. 2018) of every method's "
                    "maps", run_sanity)
    _science_args(p)
    p.add_argument("--n-images", type=int, default=4)
    p.add_argument("--target", type=json_arg, default={"kind": "mean"})
    p.add_argument("--explainer-weights", type=Path, default=None,
                   help="the trained explainer: also train it again against the fully randomised model and compare")
    p.add_argument("--explainer", type=json_arg, default={}, help="ExplainerConfig fields as JSON (methods.explainer)")

    p = add_command(sub, "localisation", "mosaic localisation ground truth (Fresz et al. 2024): Focus and "
                    "confusion-matrix metrics", run_localisation)
    _science_args(p)
    p.add_argument("--n-mosaics", type=int, default=16)

    p = add_command(sub, "object-shift", "synthetic control: one object moves in depth; where does the attribution "
                    "sit", run_object_shift)
    _science_args(p, data=False)
    p.add_argument("--setup", required=True, choices=["indoor", "road"])
    p.add_argument("--n-pairs", type=int, default=8)
    p.add_argument("--shift-m", type=float, default=0.5)

    p = add_command(sub, "claims", "decide each of the paper's claims on this run's numbers with the stated "
                    "statistical rule", run_claims)
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--claims", type=json_arg, default={}, help="the config's claims section as JSON")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--out-md", type=Path, required=True)
    p.add_argument("--out-csv", type=Path, required=True)

    p = add_command(sub, "reliability", "psychometric reliability of the metrics: Krippendorff alpha, Spearman, "
                    "test-retest ICC", run_reliability)
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--retest", type=Path, nargs="*", default=[],
                   help="scores of repeated runs (with factor and repeat columns)")
    p.add_argument("--methods", type=json_arg, default=None,
                   help="JSON list of the explanation methods of the 'explanations' rows (default: all but random* "
                        "and explainer)")
    p.add_argument("--out-dir", type=Path, required=True)

    p = add_command(sub, "science-report", "tables and figures of the evaluation-science stage (randomisation, "
                    "localisation, reliability)", run_science_report)
    p.add_argument("--sanity", type=Path, nargs="+", required=True)
    p.add_argument("--localisation", type=Path, nargs="+", required=True)
    p.add_argument("--object-shift", type=Path, nargs="*", default=[])
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--spearman", type=Path, required=True)
    p.add_argument("--alpha-table", type=Path, required=True)
    p.add_argument("--icc", type=Path, required=True)
    p.add_argument("--formats", nargs="+", default=["png", "pdf"])
    p.add_argument("--out-dir", type=Path, required=True, help="figures folder")
    p.add_argument("--tables-dir", type=Path, required=True)
