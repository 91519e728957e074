"""Data commands: render synthetic scenes, download, prepare NYU Depth v2 and KITTI, the mean colour."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from depthxai.cli.common import add_command, json_arg

log = logging.getLogger("depthxai")


def run_synthesize(args: argparse.Namespace) -> None:
    from depthxai.data.synthetic import generate_dataset
    from depthxai.runtime import retain_freed_memory

    retain_freed_memory()  # whole-image temporaries: reuse freed memory instead of page-faulting it in again
    info = generate_dataset(args.out, name=args.name, setup=args.setup, n_train=args.n_train, n_test=args.n_test,
                            seed=args.seed, size=tuple(args.size) if args.size else None, progress=not args.quiet)
    log.info("wrote %s (%s, %dx%d)", args.out, info.name, *info.image_size)


def run_fetch(args: argparse.Namespace) -> None:
    from depthxai.data.download import fetch_resource
    from depthxai.fileio import write_json

    spec = dict(args.spec)
    path = fetch_resource(spec, args.dest_dir, args.mirror, progress=not args.quiet)
    log.info("%s -> %s", spec.get("key", spec["filename"]), path)
    if args.flag:
        write_json(args.flag, {"key": spec.get("key"), "path": str(path), "url": spec["url"]})


def run_prepare_nyu(args: argparse.Namespace) -> None:
    from depthxai.data.nyu import prepare_nyu

    info = prepare_nyu(args.labeled, args.splits, args.out, depth_source=args.depth_source, split=args.split,
                       ids=args.ids, train_every=args.train_every, progress=not args.quiet)
    log.info("prepared %s (%s depth)", info.name, args.depth_source)


def run_prepare_kitti(args: argparse.Namespace) -> None:
    from depthxai.data.kitti import prepare_kitti_eigen

    info = prepare_kitti_eigen(args.split_file, args.raw_root, args.depth_root, args.out, ids=args.ids,
                               train_split_file=args.train_split_file, train_drives=args.train_drives,
                               train_every=args.train_every, progress=not args.quiet)
    log.info("prepared %s", info.name)


def run_mean_rgb(args: argparse.Namespace) -> None:
    from depthxai.data.io import write_mean_rgb

    write_mean_rgb(args.out, args.data, args.split)


def register(sub: Any) -> None:
    p = add_command(sub, "synthesize", "render a synthetic dataset (scenes with exact depth) in the prepared-dataset "
                    "layout", run_synthesize)
    p.add_argument("--setup", required=True, choices=["indoor", "road"])
    p.add_argument("--name", required=True, help="dataset id, e.g. synthindoor")
    p.add_argument("--n-train", type=int, required=True)
    p.add_argument("--n-test", type=int, required=True)
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)

    p = add_command(sub, "fetch", "download one file (hash-verified, resumable, or from a mirror folder); extract "
                    "archives safely", run_fetch)
    p.add_argument("--spec", type=json_arg, required=True, help="one downloads entry as JSON (url, filename, hashes, "
                   "kind)")
    p.add_argument("--dest-dir", type=Path, required=True)
    p.add_argument("--mirror", type=Path, default=None, help="local mirror folder (default: $DEPTHXAI_MIRROR)")
    p.add_argument("--flag", type=Path, default=None, help="write this JSON flag file when done (archives)")

    p = add_command(sub, "prepare-nyu", "prepare the NYU Depth v2 test split (optionally train frames) from "
                    "nyu_depth_v2_labeled.mat and splits.mat", run_prepare_nyu)
    p.add_argument("--labeled", type=Path, required=True, help="nyu_depth_v2_labeled.mat (MATLAB v7.3)")
    p.add_argument("--splits", type=Path, required=True, help="splits.mat")
    p.add_argument("--depth-source", choices=["filled", "raw"], default="filled")
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--ids", nargs="+", default=None, help="restrict to these ids (5 digits, 0-based)")
    p.add_argument("--train-every", type=int, default=None, metavar="K",
                   help="with --split test: also write every K-th official train frame (1 = all 795) as split=train")
    p.add_argument("--out", type=Path, required=True)

    p = add_command(sub, "prepare-kitti", "prepare the KITTI Eigen test split (frames with ground truth; optionally "
                    "train frames of a few drives) from the raw drives", run_prepare_kitti)
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

    p = add_command(sub, "mean-rgb", "mean colour of a dataset split (the perturbation replacement colour)",
                    run_mean_rgb)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, required=True)
