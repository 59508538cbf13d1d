"""The ``mtlrec`` command: train from a YAML config, evaluate, predict, benchmark, inspect.

Run ``mtlrec --help`` or ``mtlrec COMMAND --help`` for the options. Each command lives in
its own module (``cli/train.py``, ``cli/benchmark.py``, ...) with its ``cmd_*`` function
and the ``add_parser`` that adds its subcommand; :func:`build_parser` calls those in
order and :func:`main` runs the chosen command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import runtime
from ..exceptions import MtlrecError
from . import benchmark, datasets, evaluate, export, inspect, models, predict, train
from .benchmark import (
    BENCHMARK_EPOCHS,
    RESULTS_DIR,
    _output_folder,
    cmd_benchmark,
    default_results_folder,
)
from .config import SECTIONS, TrainConfig, config_template, load_config
from .datasets import cmd_datasets
from .evaluate import cmd_evaluate
from .export import cmd_export
from .inspect import cmd_inspect
from .models import cmd_models
from .predict import cmd_predict
from .tables import format_metrics, read_table, write_table
from .train import cmd_train

__all__ = [
    "BENCHMARK_EPOCHS",
    "RESULTS_DIR",
    "SECTIONS",
    "TrainConfig",
    "_output_folder",
    "build_parser",
    "cmd_benchmark",
    "cmd_datasets",
    "cmd_evaluate",
    "cmd_export",
    "cmd_inspect",
    "cmd_models",
    "cmd_predict",
    "cmd_train",
    "config_template",
    "default_results_folder",
    "format_metrics",
    "load_config",
    "main",
    "read_table",
    "write_table",
]

#: the modules adding the subcommands, in the order ``mtlrec --help`` lists them
COMMAND_MODULES = (train, evaluate, predict, export, inspect, benchmark, datasets, models)


def build_parser() -> argparse.ArgumentParser:
    """The ``mtlrec`` argument parser with all subcommands."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="mtlrec",
        description="Multi-task recommender models (Shared-Bottom, MMoE, PLE, ESMM, AITM, "
        "PEPNet and more: `mtlrec models` lists them): train from a YAML config, evaluate, "
        "predict, inspect the gates and benchmark.",
        epilog="examples:\n"
        "  mtlrec datasets export adult --output data/adult\n"
        "  mtlrec train --config data/adult/config.yaml\n"
        "  mtlrec evaluate --model data/adult/adult_mmoe --data data/adult/test.csv\n"
        "  mtlrec benchmark adult --seeds 3    # writes results/adult",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"mtlrec {__version__}",
        help="print the mtlrec version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mtlrec`` command line; returns the exit code (2 on errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return int(exit_.code or 0)
    commands = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "predict": cmd_predict,
        "inspect": cmd_inspect,
        "export": cmd_export,
        "datasets": cmd_datasets,
        "models": cmd_models,
        "list-models": cmd_models,
        "benchmark": lambda a: cmd_benchmark(a, argv),
    }
    try:
        with runtime.retain_freed_memory():  # the command's own process: tuned heap
            return commands[args.command](args)
    except (MtlrecError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early, e.g. `mtlrec models | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
