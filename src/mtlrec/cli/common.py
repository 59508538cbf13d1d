"""Options several commands share."""

from __future__ import annotations

import argparse

from .. import runtime


def _add_inference_args(p: argparse.ArgumentParser, columns: str) -> None:
    """--model, --data, --batch-size and --threads, shared by evaluate and predict."""
    p.add_argument("--model", required=True, metavar="DIR", help="bundle folder from 'train'")
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help=f"CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) file with every {columns}",
    )
    _add_batch_size(p)
    _add_threads(p)


def _add_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="rows per inference batch (default: sized so activations stay in CPU cache)",
    )


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads (default: the CPUs this process may use, "
        f"{runtime.available_cpus()} here; with other busy processes on the same cores, "
        "fewer are faster)",
    )
