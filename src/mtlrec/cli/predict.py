"""``mtlrec predict``: write a saved model's predictions to a file."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..estimator import MultiTaskModel, load_model
from ..exceptions import ConfigError, DataError
from .common import _add_inference_args
from .tables import _table_format, read_table, write_table


def cmd_predict(args: argparse.Namespace) -> int:
    output = Path(args.output)
    _table_format(output)  # fail before any work on a bad suffix
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it")
    keep = list(dict.fromkeys(args.keep or []))
    model = load_model(args.model)
    table = read_table(args.data)
    missing = [c for c in keep if c not in table.columns]
    if missing:
        raise DataError(
            f"--keep {' '.join(missing)}: {args.data} has no such column(s); its columns are "
            f"{list(table.columns)}"
        )
    predicted = _prediction_columns(
        model, model.predict(table, batch_size=args.batch_size, threads=args.threads)
    )
    clash = [c for c in keep if c in predicted]
    if clash:
        raise ConfigError(
            f"--keep {' '.join(clash)}: the predictions have a column of that name too; "
            "keep other columns or rename them in the input"
        )
    predictions = pd.DataFrame(
        {**{c: table[c].to_numpy() for c in keep}, **predicted}, index=range(len(table))
    )
    write_table(predictions, output, overwrite=args.overwrite)
    print(f"wrote {len(predictions):,} rows ({', '.join(predictions.columns)}) to {output}")
    return 0


def _prediction_columns(model: MultiTaskModel, predicted: dict) -> dict:
    """One column per output; a multiclass output becomes one ``task:class`` column per
    class plus ``task`` holding the most probable class."""
    columns: dict = {}
    for name, values in predicted.items():
        if values.ndim == 2:
            classes = model.classes(name)
            columns[name] = classes[values.argmax(axis=1)]
            for k, c in enumerate(classes):
                columns[f"{name}:{c}"] = values[:, k]
        else:
            columns[name] = values
    return columns


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``predict`` subcommand and its options."""
    p = sub.add_parser(
        "predict",
        help="write a saved model's predictions to a file",
        description="Predict with a saved model: one output column per model "
        "output (probabilities for binary tasks), rows in input order.",
    )
    _add_inference_args(p, "feature column")
    p.add_argument(
        "--output",
        required=True,
        metavar="FILE",
        help="predictions file; CSV or Parquet by its suffix",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--keep",
        action="append",
        metavar="COLUMN",
        help="copy this input column (an id, say) into the output, before the predictions; "
        "repeat for several, in order",
    )
