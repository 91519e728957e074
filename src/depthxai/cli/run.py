"""``depthxai run -- <snakemake options>``: the workflow with a progress line after each job (the stage it is in
and an estimate of the time left, :mod:`depthxai.progress`); ``make run`` and ``make example`` use it."""

from __future__ import annotations

import argparse
from typing import Any

from depthxai.cli.common import add_command


def run_workflow(args: argparse.Namespace) -> None:
    from depthxai.progress import run_with_progress

    code = run_with_progress([a for a in args.snakemake_args if a != "--"])
    if code:
        raise SystemExit(code)


def register(sub: Any) -> None:
    p = add_command(sub, "run", "run the Snakemake workflow, printing the stage and the time left after each job "
                    "(snakemake's options after --, e.g. depthxai run -- --cores all)", run_workflow)
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="options passed to snakemake")
