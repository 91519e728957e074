"""Model commands: train an embedded model, predict one image or a test shard, write a model card."""

from __future__ import annotations

import argparse
import json
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


def run_train(args: argparse.Namespace) -> None:
    from depthxai.runtime import pin_cpu_kernels

    pins = pin_cpu_kernels()  # before torch loads: the same weights on every x86-64 machine
    from depthxai.device import check_cpu_kernels, set_threads
    from depthxai.models.train import TrainConfig, train_model

    check_cpu_kernels(pins)
    log.info("CPU kernels pinned: %s", json.dumps(pins, sort_keys=True) if pins else "no (native)")
    set_threads(args.threads)
    metrics = train_model(args.model, args.data, TrainConfig(**args.train), args.out_weights, args.out_metrics,
                          log=log, progress=not args.quiet)
    log.info("test metrics: %s", json.dumps(metrics, sort_keys=True))


def run_predict(args: argparse.Namespace) -> None:
    from depthxai.models.predict import predict_image_to_file

    depth = predict_image_to_file(load_model(args), args.image, args.out)
    log.info("%s: depth %dx%d, %.3f..%.3f m -> %s", args.image, *depth.shape, float(depth.min()), float(depth.max()),
             args.out)


def run_predict_split(args: argparse.Namespace) -> None:
    from depthxai.data.io import read_index, shard_ids
    from depthxai.evaluation.relative import AlignmentSpec
    from depthxai.fileio import write_csv
    from depthxai.models.predict import predict_split, write_predictions
    from depthxai.tidy import with_labels

    align = AlignmentSpec.from_config(alignment_settings(args.alignment)).aligner()
    model = load_model(args)
    ids = shard_ids(read_index(args.data, "test")["id"].tolist(), args.shards, args.shard)
    arrays, metrics = predict_split(model, args.data, ids, progress=not args.quiet, log=log, align=align)
    write_predictions(args.out, arrays)
    write_csv(args.out_metrics, with_labels(metrics, {"dataset": args.dataset, "model": args.arch}))


def run_model_card(args: argparse.Namespace) -> None:
    from depthxai.models.adapters import PREFIXES
    from depthxai.models.card import write_model_card

    # a registry card is the registry's; an adapted model's is read from the model itself (hf: processor and config,
    # module: the YAML beside the weights), with the config's overrides
    adapted = load_model(args).card if args.model.startswith(PREFIXES) else None
    if adapted is None and args.weights is None:
        from depthxai.errors import CheckpointError

        raise CheckpointError(f"model {args.model!r}: --weights is required (the checkpoint the card describes)")
    card = write_model_card(args.out, args.model, args.weights, args.weights_source, args.accuracy, card=adapted,
                            alignment=alignment_settings(args.alignment))
    log.info("%s: %s", args.model, json.dumps(card["accuracy"], sort_keys=True))


def register(sub: Any) -> None:
    p = add_command(sub, "train", "train a registry model on a prepared dataset's train split; report test accuracy",
                    run_train)
    p.add_argument("--model", required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--train", type=json_arg, default={},
                   help="TrainConfig fields as JSON (epochs, batch_size, lr, ...)")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--out-weights", type=Path, required=True)
    p.add_argument("--out-metrics", type=Path, required=True)

    p = add_command(sub, "predict", "depth in metres at the image's resolution for one image (.npy)", run_predict)
    model_args(p)
    p.add_argument("--out", type=Path, required=True, help="output .npy (float32 metres, HxW)")
    p.add_argument("image", type=Path)

    p = add_command(sub, "predict-split", "predict every test image of one shard of a prepared dataset",
                    run_predict_split)
    model_args(p)
    alignment_arg(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=positive_int, default=1)
    p.add_argument("--dataset", required=True, help="label for the accuracy table")
    p.add_argument("--arch", required=True, help="label for the accuracy table (<arch>_<variant>)")
    p.add_argument("--out", type=Path, required=True, help="predictions .npz")
    p.add_argument("--out-metrics", type=Path, required=True, help="per-image accuracy CSV")

    p = add_command(sub, "model-card", "write a model card: preprocessing, units, weights hash, accuracy on the test "
                    "split", run_model_card)
    model_args(p)
    alignment_arg(p)
    p.add_argument("--weights-source", required=True, help="'train', the downloads key, the weights file or the hf: "
                   "source")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("accuracy", type=Path, nargs="+", help="per-image accuracy CSVs of the test split")
