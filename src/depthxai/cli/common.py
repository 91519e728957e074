"""What the commands share: argument types, the model options and loading, adding a subcommand."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], None]


def add_command(sub: Any, name: str, help_text: str, func: Handler) -> argparse.ArgumentParser:
    """A subcommand ``name`` bound to ``func``, with the options every command has (``-q``, ``-v``)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.set_defaults(func=func)
    return parser


def json_arg(text: str) -> Any:
    """An argument holding JSON (a config section, a method's parameters)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="registry name <arch>_<variant>_<dataset> (e.g. meter_xxs_nyu), hf:<hub id or folder>, or "
                        "module:<python.module>:<factory>")
    p.add_argument("--weights", type=Path, default=None,
                   help="checkpoint (state dict; loaded with weights_only=True); required but for hf: models")
    p.add_argument("--card", type=json_arg, default=None,
                   help="hf: and module: models: card fields as JSON replacing those read from the model's files, "
                        'e.g. \'{"input_size": [266, 350], "output_kind": "relative"}\' '
                        "(the config's models.<id>.card)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads (>= 1)")


def load_model(args: argparse.Namespace) -> Any:
    """The model of ``--model``/``--weights`` on ``--device`` with ``--threads`` (any source:
    :func:`depthxai.models.adapters.load_any_depth_model`)."""
    from depthxai.device import resolve_device, set_threads
    from depthxai.errors import CheckpointError, ConfigError
    from depthxai.models.adapters import PREFIXES, load_any_depth_model

    set_threads(args.threads)
    if args.weights is None and not args.model.startswith(PREFIXES):
        raise CheckpointError(f"model {args.model!r}: --weights is required (the checkpoint to explain)")
    card = getattr(args, "card", None) or {}
    if not isinstance(card, dict):
        raise ConfigError(f"model {args.model!r}: --card must be a JSON object of card fields, got {card!r}")
    return load_any_depth_model(args.model, args.weights, device=resolve_device(args.device), **card)


def alignment_arg(p: argparse.ArgumentParser) -> None:
    """``--alignment``: how a relative model's predictions are aligned to the ground truth (evaluation.alignment)."""
    p.add_argument("--alignment", type=json_arg, default=None,
                   help='relative models only: {"method": "lstsq"|"median", "space": "disparity"|"depth"} as JSON '
                        "(the config's evaluation.alignment; default lstsq in disparity space); metric models are "
                        "never aligned")


def alignment_settings(value: Any) -> dict[str, str]:
    """The validated ``evaluation.alignment`` section of ``--alignment`` (defaults filled in).

    Raises:
        ConfigError: naming the key, for an unknown method or space, or median scaling in disparity space.
    """
    from depthxai.config import section_defaults

    return dict(section_defaults("evaluation", {"alignment": value or {}})["alignment"])
