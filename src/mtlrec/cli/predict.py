"""``mtlrec predict``: write a saved model's predictions to a file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..estimator import load_model
from ..scoring import output_format, score_file
from .common import _add_inference_args


def cmd_predict(args: argparse.Namespace) -> int:
    output = Path(args.output)
    output_format(output)  # fail before any work on a bad suffix
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it")
    model = load_model(args.model)
    rows = score_file(
        model,
        args.data,
        output,
        args.keep or [],
        batch_size=args.batch_size,
        threads=args.threads,
        overwrite=args.overwrite,
        progress=not getattr(args, "quiet", False),
    )
    print(f"wrote {rows:,} rows to {output}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``predict`` subcommand and its options."""
    p = sub.add_parser(
        "predict",
        help="write a saved model's predictions to a file",
        description="Predict with a saved model: one output column per model "
        "output (probabilities for binary tasks), rows in input order. The data "
        "(a CSV or Parquet file, or a folder of Parquet files) is read and the "
        "predictions written batch by batch, so any size fits in memory.",
    )
    _add_inference_args(p, "feature column")
    p.add_argument(
        "--output",
        required=True,
        metavar="FILE",
        help="predictions file; CSV or Parquet by its suffix",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--keep",
        action="append",
        metavar="COLUMN",
        help="copy this input column (an id, say) into the output, before the predictions; "
        "repeat for several, in order",
    )
