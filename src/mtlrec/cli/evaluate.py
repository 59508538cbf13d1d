"""``mtlrec evaluate``: the per-task metrics of a saved model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..estimator import load_model
from ..exceptions import DataError
from .common import _add_inference_args
from .tables import format_metrics, read_table


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    if Path(args.data).is_dir():  # a folder of Parquet files: read as a stream
        if args.group is not None:
            raise DataError("--group needs one file read into memory, not a folder")
        metrics = model.evaluate(args.data, batch_size=args.batch_size, threads=args.threads)
        print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
        return 0
    table = read_table(args.data)
    missing = [t.name for t in model.tasks if t.name not in table.columns]
    if missing:
        raise DataError(
            f"{args.data} has no label column(s) {missing}, which evaluate compares the "
            f"predictions with; add them to the file, or write predictions without labels "
            f"with: mtlrec predict --model {args.model} --data {args.data} --output FILE"
        )
    options = {} if args.group is None else {"group": args.group}
    if args.group is not None and args.group not in table.columns:
        raise DataError(
            f"--group {args.group}: {args.data} has no such column; its columns are "
            f"{list(table.columns)}"
        )
    metrics = model.evaluate(table, batch_size=args.batch_size, threads=args.threads, **options)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` subcommand and its options."""
    p = sub.add_parser(
        "evaluate",
        help="print the per-task metrics of a saved model",
        description="Evaluate a saved model on a labelled CSV/Parquet file (or a folder "
        "of Parquet files, read as a stream).",
    )
    _add_inference_args(p, "feature and label column")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument(
        "--group",
        metavar="COLUMN",
        help="also report each binary task's group AUC (gauc) over this column, e.g. a "
        "user id: the AUC within each group averaged with the groups' row counts, over the "
        "groups holding both classes (gauc_groups used, gauc_skipped one-class groups)",
    )
