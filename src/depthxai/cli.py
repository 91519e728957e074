"""The ``depthxai`` command: one subcommand per workflow stage, plus ``predict`` and ``explain`` for single images.

Every rule of the Snakemake workflow calls one of these; each is usable on its own (``depthxai <cmd> --help``).
Errors the user can fix (bad config, corrupt file, missing download) end with a one-line message naming the
file or key, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from depthxai import __version__
from depthxai.errors import DepthXAIError

log = logging.getLogger("depthxai")

Handler = Callable[[argparse.Namespace], None]
_COMMANDS: dict[str, tuple[Handler, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help_text: str) -> Callable[[Callable[[argparse.ArgumentParser], None]], Callable[[argparse.ArgumentParser], None]]:
    """Register a subcommand: the decorated function adds its arguments; ``run_<name>`` does the work."""

    def register(add_arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[[argparse.ArgumentParser], None]:
        handler = globals()[f"run_{name.replace('-', '_')}"]
        _COMMANDS[name] = (handler, add_arguments, help_text)
        return add_arguments

    return register


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def _common_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registry name <arch>_<variant>_<dataset>, e.g. meter_xxs_nyu")
    p.add_argument("--weights", type=Path, required=True, help="checkpoint (state dict; loaded with weights_only=True)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")


def _load_model(args: argparse.Namespace) -> Any:
    from depthxai.device import resolve_device, set_threads
    from depthxai.models import load_depth_model

    set_threads(args.threads)
    return load_depth_model(args.model, args.weights, device=resolve_device(args.device))


# ---------------------------------------------------------------------------------------------- data


def run_synthesize(args: argparse.Namespace) -> None:
    from depthxai.data.synthetic import generate_dataset
    from depthxai.runtime import retain_freed_memory

    retain_freed_memory()  # whole-image temporaries: reuse freed memory instead of page-faulting it in again

    info = generate_dataset(args.out, name=args.name, setup=args.setup, n_train=args.n_train, n_test=args.n_test,
                            seed=args.seed, size=tuple(args.size) if args.size else None, progress=not args.quiet)
    log.info("wrote %s (%s, %dx%d)", args.out, info.name, *info.image_size)


@command("synthesize", "render a synthetic dataset (scenes with exact depth) in the prepared-dataset layout")
def _synthesize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--setup", required=True, choices=["indoor", "road"])
    p.add_argument("--name", required=True, help="dataset id, e.g. synthindoor")
    p.add_argument("--n-train", type=int, required=True)
    p.add_argument("--n-test", type=int, required=True)
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)


def run_fetch(args: argparse.Namespace) -> None:
    from depthxai.data.download import fetch_resource
    from depthxai.fileio import write_json

    spec = dict(args.spec)
    path = fetch_resource(spec, args.dest_dir, args.mirror, progress=not args.quiet)
    log.info("%s -> %s", spec.get("key", spec["filename"]), path)
    if args.flag:
        write_json(args.flag, {"key": spec.get("key"), "path": str(path), "url": spec["url"]})


@command("fetch", "download one file (hash-verified, resumable, or from a mirror folder); extract archives safely")
def _fetch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", type=_json_arg, required=True, help="one downloads entry as JSON (url, filename, hashes, kind)")
    p.add_argument("--dest-dir", type=Path, required=True)
    p.add_argument("--mirror", type=Path, default=None, help="local mirror folder (default: $DEPTHXAI_MIRROR)")
    p.add_argument("--flag", type=Path, default=None, help="write this JSON flag file when done (archives)")


def run_prepare_nyu(args: argparse.Namespace) -> None:
    from depthxai.data.nyu import prepare_nyu

    info = prepare_nyu(args.labeled, args.splits, args.out, depth_source=args.depth_source, split=args.split,
                       ids=args.ids, train_every=args.train_every, progress=not args.quiet)
    log.info("prepared %s (%s depth)", info.name, args.depth_source)


@command("prepare-nyu", "prepare the NYU Depth v2 test split (optionally train frames) from nyu_depth_v2_labeled.mat "
         "and splits.mat")
def _prepare_nyu_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labeled", type=Path, required=True, help="nyu_depth_v2_labeled.mat (MATLAB v7.3)")
    p.add_argument("--splits", type=Path, required=True, help="splits.mat")
    p.add_argument("--depth-source", choices=["filled", "raw"], default="filled")
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--ids", nargs="+", default=None, help="restrict to these ids (5 digits, 0-based)")
    p.add_argument("--train-every", type=int, default=None, metavar="K",
                   help="with --split test: also write every K-th official train frame (1 = all 795) as split=train")
    p.add_argument("--out", type=Path, required=True)


def run_prepare_kitti(args: argparse.Namespace) -> None:
    from depthxai.data.kitti import prepare_kitti_eigen

    info = prepare_kitti_eigen(args.split_file, args.raw_root, args.depth_root, args.out, ids=args.ids,
                               train_split_file=args.train_split_file, train_drives=args.train_drives,
                               train_every=args.train_every, progress=not args.quiet)
    log.info("prepared %s", info.name)


@command("prepare-kitti", "prepare the KITTI Eigen test split (frames with ground truth; optionally train frames of a "
         "few drives) from the raw drives")
def _prepare_kitti_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split-file", type=Path, required=True, help="eigen_test_files_with_gt.txt")
    p.add_argument("--raw-root", type=Path, required=True, help="folder the raw drive archives were extracted into")
    p.add_argument("--depth-root", type=Path, required=True, help="folder data_depth_annotated.zip was extracted into")
    p.add_argument("--ids", nargs="+", default=None)
    p.add_argument("--train-split-file", type=Path, default=None,
                   help="eigen_train_files_with_gt.txt: with --train-drives, also write train frames (split=train)")
    p.add_argument("--train-drives", nargs="+", default=None, metavar="DRIVE",
                   help="raw drives of the train frames, e.g. 2011_09_26_drive_0001 (extracted under --raw-root)")
    p.add_argument("--train-every", type=int, default=1, metavar="K", help="every K-th train frame of each drive")
    p.add_argument("--out", type=Path, required=True)


def run_mean_rgb(args: argparse.Namespace) -> None:
    from depthxai.data.io import mean_rgb
    from depthxai.fileio import write_json

    write_json(args.out, {"mean_rgb": list(mean_rgb(args.data, args.split)), "split": args.split})


@command("mean-rgb", "mean colour of a dataset split (the perturbation replacement colour)")
def _mean_rgb_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, required=True)


# ---------------------------------------------------------------------------------------------- models


def run_train(args: argparse.Namespace) -> None:
    from depthxai.runtime import pin_cpu_kernels

    pins = pin_cpu_kernels()  # before torch loads: the same weights on every x86-64 machine
    from depthxai.device import set_threads
    from depthxai.models.train import TrainConfig, train_model

    log.info("CPU kernels pinned: %s", json.dumps(pins, sort_keys=True) if pins else "no (native)")
    set_threads(args.threads)
    config = TrainConfig(**args.train)
    metrics = train_model(args.model, args.data, config, args.out_weights, args.out_metrics, log=log,
                          progress=not args.quiet)
    log.info("test metrics: %s", json.dumps(metrics, sort_keys=True))


@command("train", "train a registry model on a prepared dataset's train split; report test accuracy")
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--train", type=_json_arg, default={}, help="TrainConfig fields as JSON (epochs, batch_size, lr, ...)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out-weights", type=Path, required=True)
    p.add_argument("--out-metrics", type=Path, required=True)


def run_predict(args: argparse.Namespace) -> None:
    import numpy as np

    from depthxai.data.io import read_rgb
    from depthxai.fileio import atomic_path
    from depthxai.models import predict_image

    model = _load_model(args)
    depth = predict_image(model, read_rgb(args.image))
    with atomic_path(args.out, suffix=".npy") as tmp:
        np.save(tmp, depth)
    log.info("%s: depth %dx%d, %.3f..%.3f m -> %s", args.image, *depth.shape, float(depth.min()), float(depth.max()), args.out)


@command("predict", "depth in metres at the image's resolution for one image (.npy)")
def _predict_args(p: argparse.ArgumentParser) -> None:
    _common_model_args(p)
    p.add_argument("--out", type=Path, required=True, help="output .npy (float32 metres, HxW)")
    p.add_argument("image", type=Path)


def run_predict_split(args: argparse.Namespace) -> None:
    from depthxai.data.io import read_index, shard_ids
    from depthxai.fileio import write_csv
    from depthxai.models.predict import predict_split, write_predictions

    model = _load_model(args)
    ids = shard_ids(read_index(args.data, "test")["id"].tolist(), args.shards, args.shard)
    arrays, metrics = predict_split(model, args.data, ids, progress=not args.quiet, log=log)
    write_predictions(args.out, arrays)
    labels = {"dataset": args.dataset, "model": args.arch}
    write_csv(args.out_metrics, metrics.assign(**labels)[[*labels, *metrics.columns]])


@command("predict-split", "predict every test image of one shard of a prepared dataset")
def _predict_split_args(p: argparse.ArgumentParser) -> None:
    _common_model_args(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--dataset", required=True, help="label for the accuracy table")
    p.add_argument("--arch", required=True, help="label for the accuracy table (<arch>_<variant>)")
    p.add_argument("--out", type=Path, required=True, help="predictions .npz")
    p.add_argument("--out-metrics", type=Path, required=True, help="per-image accuracy CSV")


def run_model_card(args: argparse.Namespace) -> None:
    from depthxai.models.card import write_model_card

    card = write_model_card(args.out, args.model, args.weights, args.weights_source, args.accuracy)
    log.info("%s: %s", args.model, json.dumps(card["accuracy"], sort_keys=True))


@command("model-card", "write a model card: preprocessing, units, weights hash, accuracy on the test split")
def _model_card_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--weights-source", required=True, help="'train' or the downloads key")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("accuracy", type=Path, nargs="+", help="per-image accuracy CSVs of the test split")


def run_train_explainer(args: argparse.Namespace) -> None:
    from depthxai.runtime import pin_cpu_kernels

    pin_cpu_kernels()  # as for `train`: before torch loads
    from depthxai.attribution.explainer import ExplainerConfig, train_explainer

    model = _load_model(args)
    settings = dict(args.explainer, seed=args.seed, threads=args.threads)
    metrics = train_explainer(model, args.data, ExplainerConfig.from_config(settings), args.out_weights,
                              args.out_metrics, log=log, progress=not args.quiet)
    log.info("explainer: %.1f s, test %s", metrics["train_seconds"], json.dumps(metrics.get("test", {}).get("overall", {}),
                                                                                  sort_keys=True))


@command("train-explainer", "train the one-forward-pass explainer against a frozen depth model")
def _train_explainer_args(p: argparse.ArgumentParser) -> None:
    _common_model_args(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--explainer", type=_json_arg, default={}, help="ExplainerConfig fields as JSON (methods.explainer)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-weights", type=Path, required=True)
    p.add_argument("--out-metrics", type=Path, required=True)


# ---------------------------------------------------------------------------------------------- attribution


def _mean_rgb_from(path: Path | None) -> list[float] | None:
    """The colour of a ``depthxai mean-rgb`` file: three values in [0, 1]."""
    from depthxai.errors import DataError

    if path is None:
        return None
    try:
        rgb = [float(v) for v in json.loads(Path(path).read_text(encoding="utf-8"))["mean_rgb"]]
    except FileNotFoundError:
        raise DataError(f"{path}: mean colour file not found; run 'depthxai mean-rgb' (rule mean_rgb) first") from None
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise DataError(f"{path}: not a mean colour file of 'depthxai mean-rgb' ({exc!r}); delete it and run the "
                        "mean_rgb rule again") from exc
    if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
        raise DataError(f"{path}: mean_rgb must be three values in [0, 1], got {rgb}; delete it and run the mean_rgb "
                        "rule again")
    return rgb


def run_attribute(args: argparse.Namespace) -> None:
    from depthxai.attribution import TargetSpec, build_method
    from depthxai.attribution.run import attribute_split, write_attributions
    from depthxai.models.predict import read_predictions

    model = _load_model(args)
    method = build_method(args.method, args.params, mean_rgb=_mean_rgb_from(args.mean_rgb))
    start = time.perf_counter()
    arrays = attribute_split(model, method, args.data, read_predictions(args.predictions),
                             TargetSpec.from_config(args.target), channel_reduction=args.channel_reduction,
                             seed=args.seed, meta={"params": args.params}, progress=not args.quiet)
    n = len(arrays["ids"])
    log.info("%s on %s: %d maps, %.3f s per image", args.method, args.model, n, (time.perf_counter() - start) / max(n, 1))
    write_attributions(args.out, arrays)


@command("attribute", "attribution maps for every image of a predictions file")
def _attribute_args(p: argparse.ArgumentParser) -> None:
    _common_model_args(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--method", required=True, choices=["saliency", "ig", "rollout", "random", "explainer"])
    p.add_argument("--params", type=_json_arg, default={}, help="method parameters as JSON")
    p.add_argument("--target", type=_json_arg, default={"kind": "mean"}, help="target as JSON")
    p.add_argument("--channel-reduction", default="sum", choices=["sum", "abs_sum"])
    p.add_argument("--mean-rgb", type=Path, help="JSON from 'depthxai mean-rgb' (IG mean baseline)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)


# ---------------------------------------------------------------------------------------------- evaluation


#: What a test-retest repeat varies (the ``factor`` column of the retest table): the seed of the attribution and
#: evaluation noise (IG noise baselines, random rankings, Infidelity and perturbation noise), or the training seed of
#: the embedded model and its explainer (then everything downstream is recomputed with the analysis seed unchanged).
RETEST_FACTORS = ("analysis_seed", "training_seed")


def run_evaluate(args: argparse.Namespace) -> None:
    from depthxai.attribution import TargetSpec
    from depthxai.attribution.run import read_attributions
    from depthxai.config import section_defaults
    from depthxai.evaluation.run import EvaluationConfig, evaluate_split
    from depthxai.fileio import write_csv
    from depthxai.models.predict import read_predictions

    section = section_defaults("evaluation", args.evaluation)  # a bad section fails before any work
    model = _load_model(args)
    attributions = read_attributions(args.attributions)
    scores, curves = evaluate_split(model, args.data, read_predictions(args.predictions), attributions,
                                    EvaluationConfig.from_config(section), TargetSpec.from_config(args.target),
                                    _mean_rgb_from(args.mean_rgb) or [0.5, 0.5, 0.5], seed=args.seed,
                                    progress=not args.quiet, log=log)
    labels = {"dataset": args.dataset, "model": args.arch, "method": attributions["meta"]["method"]}
    if args.repeat is not None:
        labels["factor"] = args.retest_factor
        labels["repeat"] = args.repeat
    write_csv(args.out_scores, scores.assign(**labels)[[*labels, *scores.columns]])
    write_csv(args.out_curves, curves.assign(**labels)[[*labels, *curves.columns]])


@command("evaluate", "perturbation curves, Attribution Fidelity and Infidelity for an attribution file")
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    _common_model_args(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--attributions", type=Path, required=True)
    p.add_argument("--evaluation", type=_json_arg, default={}, help="the config's evaluation section as JSON")
    p.add_argument("--target", type=_json_arg, default={"kind": "mean"})
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


def run_merge(args: argparse.Namespace) -> None:
    from depthxai.fileio import write_csv
    from depthxai.tidy import concat_tidy

    write_csv(args.out, concat_tidy(args.inputs))


@command("merge", "concatenate tidy CSVs (shards, methods) into one, sorted, byte-stable")
def _merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("inputs", type=Path, nargs="+")


# ---------------------------------------------------------------------------------------------- evaluation science


def _methods_from(spec: dict[str, Any], mean_rgb: list[float] | None) -> list[Any]:
    from depthxai.attribution import build_method

    return [build_method(name, params, mean_rgb=mean_rgb) for name, params in sorted(spec.items())]


def _test_subset(data: Path, n: int) -> list[str]:
    from depthxai.data.io import read_index

    ids = sorted(read_index(data, "test")["id"].tolist())
    return ids[:n]


def _labelled(table: Any, args: argparse.Namespace) -> Any:
    labels = {"dataset": args.dataset, "model": args.arch}
    return table.assign(**labels)[[*labels, *table.columns]]


def run_sanity(args: argparse.Namespace) -> None:
    from depthxai.attribution import TargetSpec, target_weights
    from depthxai.evaluation.sanity import cascading_randomisation
    from depthxai.fileio import write_csv
    from depthxai.models.wrapper import load_inputs

    model = _load_model(args)
    ids = _test_subset(args.data, args.n_images)
    images = load_inputs(model, args.data, ids)
    with torch_no_grad():
        weights = target_weights(TargetSpec.from_config(args.target), model(images))
    table = cascading_randomisation(model, images, weights, _methods_from(args.methods, _mean_rgb_from(args.mean_rgb)),
                                    seed=args.seed, image_ids=ids)
    write_csv(args.out, _labelled(table, args))


@command("sanity", "cascading model-parameter randomisation (Adebayo et al. 2018) of every method's maps")
def _sanity_args(p: argparse.ArgumentParser) -> None:
    _common_model_args(p)
    _science_args(p)
    p.add_argument("--n-images", type=int, default=4)
    p.add_argument("--target", type=_json_arg, default={"kind": "mean"})


def run_localisation(args: argparse.Namespace) -> None:
    from depthxai.evaluation.localisation import localisation_run
    from depthxai.fileio import write_csv
    from depthxai.models.wrapper import load_inputs

    model = _load_model(args)
    ids = _test_subset(args.data, 10**9)
    table = localisation_run(model, load_inputs(model, args.data, ids),
                             _methods_from(args.methods, _mean_rgb_from(args.mean_rgb)), args.n_mosaics, args.seed,
                             image_ids=ids)
    write_csv(args.out, _labelled(table, args))


@command("localisation", "mosaic localisation ground truth (Fresz et al. 2024): Focus and confusion-matrix metrics")
def _localisation_args(p: argparse.ArgumentParser) -> None:
    _common_model_args(p)
    _science_args(p)
    p.add_argument("--n-mosaics", type=int, default=16)


def run_object_shift(args: argparse.Namespace) -> None:
    from depthxai.evaluation.localisation import object_shift_run
    from depthxai.fileio import write_csv

    model = _load_model(args)
    table = object_shift_run(model, _methods_from(args.methods, _mean_rgb_from(args.mean_rgb)), [args.setup],
                             args.n_pairs, args.seed, shift_m=args.shift_m)
    write_csv(args.out, _labelled(table, args))


@command("object-shift", "synthetic control: one object moves in depth; where does the attribution sit")
def _object_shift_args(p: argparse.ArgumentParser) -> None:
    _common_model_args(p)
    _science_args(p, data=False)
    p.add_argument("--setup", required=True, choices=["indoor", "road"])
    p.add_argument("--n-pairs", type=int, default=8)
    p.add_argument("--shift-m", type=float, default=0.5)


def _science_args(p: argparse.ArgumentParser, data: bool = True) -> None:
    if data:
        p.add_argument("--data", type=Path, required=True)
    p.add_argument("--methods", type=_json_arg, required=True, help='{"method": {params}, ...} as JSON')
    p.add_argument("--mean-rgb", type=Path, help="JSON from 'depthxai mean-rgb' (IG mean baseline)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", required=True, help="label for the tidy table")
    p.add_argument("--arch", required=True, help="label for the tidy table (<arch>_<variant>)")
    p.add_argument("--out", type=Path, required=True)


def run_claims(args: argparse.Namespace) -> None:
    from depthxai.fileio import write_csv
    from depthxai.report.claims import evaluate_claims, write_claims_markdown

    claims = evaluate_claims(_read_tidy(args.scores), alpha=args.alpha)
    write_csv(args.out_csv, claims)
    write_claims_markdown(claims, args.out_md)


@command("claims", "decide each of the paper's claims on this run's numbers with the stated statistical rule")
def _claims_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--out-md", type=Path, required=True)
    p.add_argument("--out-csv", type=Path, required=True)


def run_reliability(args: argparse.Namespace) -> None:
    import pandas as pd

    from depthxai.errors import DataError
    from depthxai.fileio import write_csv_tables
    from depthxai.stats.reliability_run import reliability_tables
    from depthxai.tidy import concat_tidy

    scores = _read_tidy(args.scores)
    retest = None
    if args.retest:
        # The main run is repeat 0 of every factor of the test-retest table; the repeats differ only in one seed.
        repeats = concat_tidy(args.retest)
        if "factor" not in repeats:
            raise DataError(f"{args.retest[0]}: retest scores lack the 'factor' column; rerun the evaluate_repeat "
                            "and evaluate_retrained rules")
        main = [scores.assign(factor=factor, repeat=0) for factor in sorted(repeats["factor"].unique())]
        retest = pd.concat([*main, repeats], ignore_index=True)
    write_csv_tables(reliability_tables(scores, retest), args.out_dir)


@command("reliability", "psychometric reliability of the metrics: Krippendorff alpha, Spearman, test-retest ICC")
def _reliability_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--retest", type=Path, nargs="*", default=[],
                   help="scores of repeated runs (with factor and repeat columns)")
    p.add_argument("--out-dir", type=Path, required=True)


def run_science_report(args: argparse.Namespace) -> None:
    from depthxai.report.figures import figure_method_correlation, figure_metric_violins, figure_randomisation
    from depthxai.report.science import science_tables

    out = Path(args.out_dir)
    sanity = _read_tidy_many(args.sanity)
    figure_randomisation(sanity, out / "randomisation", formats=args.formats)
    figure_metric_violins(_read_tidy(args.scores), out / "violins", formats=args.formats)
    figure_method_correlation(_read_tidy(args.spearman), out / "method_correlation", formats=args.formats)
    science_tables(sanity, _read_tidy_many(args.localisation), _read_tidy_many(args.object_shift),
                   _read_tidy(args.alpha_table), _read_tidy(args.icc), Path(args.tables_dir))


@command("science-report", "tables and figures of the evaluation-science stage (randomisation, localisation, reliability)")
def _science_report_args(p: argparse.ArgumentParser) -> None:
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


def _read_tidy_many(paths: Sequence[Path]) -> Any:
    import pandas as pd

    from depthxai.tidy import concat_tidy

    return concat_tidy(paths) if paths else pd.DataFrame()


def torch_no_grad() -> Any:
    import torch

    return torch.no_grad()


# ---------------------------------------------------------------------------------------------- statistics, report


def _read_tidy(path: Path) -> Any:
    from depthxai.tidy import concat_tidy

    return concat_tidy([path])


def run_stats(args: argparse.Namespace) -> None:
    from depthxai.fileio import write_csv
    from depthxai.stats.run import run_statistics

    settings = section_defaults_for("stats", args.stats)
    tables = run_statistics(_read_tidy(args.scores), alpha=settings["alpha"], confidence=settings["confidence"],
                            n_resamples=settings["bootstrap_resamples"], seed=args.seed)
    for name, out in (("summary", args.out_summary), ("friedman", args.out_friedman), ("wilcoxon", args.out_wilcoxon)):
        write_csv(out, tables[name])


@command("stats", "bootstrap CIs, Friedman across methods and Holm-corrected Wilcoxon pairs from scores.csv")
def _stats_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--stats", type=_json_arg, default={}, help="the config's stats section as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-summary", type=Path, required=True)
    p.add_argument("--out-friedman", type=Path, required=True)
    p.add_argument("--out-wilcoxon", type=Path, required=True)


def run_tables(args: argparse.Namespace) -> None:
    from depthxai.report.tables import accuracy_table, table1, table2, write_table

    summary, friedman = _read_tidy(args.summary), _read_tidy(args.friedman)
    out = Path(args.out_dir)
    write_table(table1(summary, friedman), out / "table1",
                "Table 1: perturbation test. Area under the MoRF and LeRF curves of the RMSE between perturbed and "
                "unperturbed predictions (m), mean and 95% bootstrap CI over test images; MoRF higher and LeRF lower "
                "is better; best method in bold.")
    write_table(table2(summary, friedman), out / "table2",
                "Table 2: Attribution Fidelity (higher is better) and Infidelity (lower is better), mean and 95% "
                "bootstrap CI over test images, with the Friedman test across methods.")
    write_table(accuracy_table(_read_tidy(args.accuracy)), out / "accuracy",
                "Depth accuracy of each model on the test split (mean over images; official protocol).")


@command("tables", "Table 1, Table 2 and the accuracy table as CSV, Markdown and LaTeX")
def _tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--friedman", type=Path, required=True)
    p.add_argument("--accuracy", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)


def run_figure_qualitative(args: argparse.Namespace) -> None:
    from depthxai.attribution.run import read_attributions
    from depthxai.report.figures import figure_qualitative

    by_method: dict[str, list[Path]] = {}
    for path in args.attributions:
        by_method.setdefault(read_attributions(path)["meta"]["method"], []).append(path)
    figure_qualitative(args.data, args.predictions, by_method, args.out_stem, model=args.model,
                       n_images=args.n_images, formats=args.formats)


@command("figure-qualitative", "Figure 1: image, ground truth, prediction and each method's map for a few images")
def _figure_qualitative_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registry name <arch>_<variant>_<dataset>")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--predictions", type=Path, nargs="+", required=True)
    p.add_argument("--attributions", type=Path, nargs="+", required=True)
    p.add_argument("--n-images", type=int, default=4)
    p.add_argument("--formats", nargs="+", default=["png", "pdf"])
    p.add_argument("--out-stem", type=Path, required=True)


def run_figure_curves(args: argparse.Namespace) -> None:
    from depthxai.report.figures import figure_curves

    figure_curves(_read_tidy(args.curves), args.out_stem, curve=args.curve, formats=args.formats)


@command("figure-curves", "Figure 2: MoRF/LeRF curves with confidence bands")
def _figure_curves_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--curves", type=Path, required=True)
    p.add_argument("--curve", default="depth_rmse")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"])
    p.add_argument("--out-stem", type=Path, required=True)


def run_figure_fidelity(args: argparse.Namespace) -> None:
    from depthxai.report.figures import figure_fidelity_vs_conventional

    figure_fidelity_vs_conventional(_read_tidy(args.scores), args.out_stem, conventional=args.conventional,
                                    formats=args.formats)


@command("figure-fidelity", "Figure 3: Attribution Fidelity against a conventional metric, disagreements marked")
def _figure_fidelity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--conventional", default="morf_auc_depth_rmse")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"])
    p.add_argument("--out-stem", type=Path, required=True)


def section_defaults_for(section: str, partial: dict[str, Any]) -> dict[str, Any]:
    from depthxai.config import section_defaults

    return section_defaults(section, partial)


# ---------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depthxai", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"depthxai {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, add_arguments, help_text) in sorted(_COMMANDS.items()):
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    handler = _COMMANDS[args.command][0]
    try:
        handler(args)
    except DepthXAIError as exc:
        # One line, no traceback: the message names the file or key and what to do (the last line of a rule's log).
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"depthxai {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0
