"""The ``depthxai`` command: one subcommand per workflow stage, plus ``predict`` and ``explain`` for single images.

Every rule of the Snakemake workflow calls one of these; each is usable on its own (``depthxai <cmd> --help``).
A command only adapts: it parses its arguments, calls one library function and writes what it returns. Errors
the user can fix (bad config, corrupt file, missing download, an output that would destroy an input) end with a
one-line message naming the file or key, and exit status 2.

The commands live by stage in :mod:`.data`, :mod:`.models`, :mod:`.attribution`, :mod:`.evaluation`,
:mod:`.science`, :mod:`.report` and :mod:`.explain`; each module's ``register`` adds its subparsers, each bound to
its handler with ``set_defaults(func=...)``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depthxai import __version__
from depthxai.cli import attribution, data, evaluation, explain, models, report, run, science
from depthxai.errors import DepthXAIError

log = logging.getLogger("depthxai")

#: The stage modules, in the order their commands are listed.
STAGES = (data, models, attribution, evaluation, science, report, explain, run)

#: Options that name files a command writes; folders it writes; commands whose ``--out`` is a dataset folder.
OUTPUT_FILE_OPTIONS = ("out", "out_scores", "out_curves", "out_weights", "out_metrics", "out_md", "out_csv",
                       "out_summary", "out_friedman", "out_wilcoxon", "out_paired", "flag")
OUTPUT_FOLDER_OPTIONS = ("out_dir", "tables_dir", "dest_dir")
FOLDER_OUTPUT_COMMANDS = ("synthesize", "prepare-nyu", "prepare-kitti", "explain")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depthxai", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"depthxai {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        stage.register(sub)
    return parser


def _paths(value: Any) -> list[Path]:
    if isinstance(value, Path):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Path)]
    return []


def guard_paths(args: argparse.Namespace) -> None:
    """Before any work: no output may be an input, nor unwritable, nor a folder where a file is due
    (:func:`depthxai.fileio.check_paths`)."""
    from depthxai.fileio import check_paths

    files, folders, inputs = [], [], []
    for dest, value in vars(args).items():
        option = "--" + dest.replace("_", "-")
        if dest == "out" and args.command in FOLDER_OUTPUT_COMMANDS:
            folders += [(option, p) for p in _paths(value)]
        elif dest in OUTPUT_FILE_OPTIONS:
            files += [(option, p) for p in _paths(value)]
        elif dest in OUTPUT_FOLDER_OPTIONS:
            folders += [(option, p) for p in _paths(value)]
        elif dest == "out_stem":
            files += [(option, value.with_name(f"{value.name}.{fmt}")) for fmt in getattr(args, "formats", ["png"])]
        else:
            inputs += _paths(value)
    check_paths(inputs, files, folders)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        guard_paths(args)
        args.func(args)
    except DepthXAIError as exc:
        # One line, no traceback: the message names the file or key and what to do (the last line of a rule's log).
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"depthxai {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The file system said no (disk full, read-only, permissions, a path that vanished): name the path. The
        # atomic writers have already removed their temporary files, so nothing that looks complete is left.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"depthxai {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
