"""``depthxai run -- <snakemake options>``: the workflow with a progress line after each job (the stage it is in
and an estimate of the time left, :mod:`depthxai.progress`); ``make run`` and ``make example`` use it."""

from __future__ import annotations

import argparse
from typing import Any

from depthxai.cli.common import add_command


def config_files(snakemake_args: list[str]) -> list[str]:
    """The files given to Snakemake's ``--configfile``/``--configfiles`` (several may follow one flag; relative to
    the current folder, as Snakemake reads them)."""
    files: list[str] = []
    taking = False
    for arg in snakemake_args:
        if arg in ("--configfile", "--configfiles"):
            taking = True
        elif arg.startswith(("--configfile=", "--configfiles=")):
            files.append(arg.split("=", 1)[1])
            taking = False
        elif arg.startswith("-"):
            taking = False
        elif taking:
            files.append(arg)
    return files


def run_workflow(args: argparse.Namespace) -> None:
    from depthxai.config import read_config_file
    from depthxai.progress import run_with_progress

    snakemake_args = [a for a in args.snakemake_args if a != "--"]
    for path in config_files(snakemake_args):  # Snakemake answers a folder or a broken file with a traceback
        read_config_file(path)
    code = run_with_progress(snakemake_args)
    if code:
        raise SystemExit(code)


def register(sub: Any) -> None:
    p = add_command(sub, "run", "run the Snakemake workflow, printing the stage and the time left after each job "
                    "(snakemake's options after --, e.g. depthxai run -- --cores all)", run_workflow)
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="options passed to snakemake")
