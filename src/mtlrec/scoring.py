"""Batch scoring: a saved model's predictions for rows on disk, written as they come.

:func:`score_file` reads a Parquet file, a folder of them or a CSV record batch by record
batch (:mod:`mtlrec.sources`), predicts each, and appends the predictions (and the
columns to keep, an id say) to a Parquet or CSV file, so memory stays flat whatever the
rows. The output is written to a temporary file beside the target and renamed into place
at the end: a failed run leaves any earlier file as it was.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from .exceptions import ConfigError, DataError
from .sources import open_dataset, record_batches, units_of

if TYPE_CHECKING:
    from .estimator import MultiTaskModel

logger = logging.getLogger(__name__)


def prediction_columns(model: MultiTaskModel, predicted: dict) -> dict[str, np.ndarray]:
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


def output_format(path: Path) -> str:
    """``"csv"`` or ``"parquet"`` by the suffix of ``path``; ConfigError otherwise."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ConfigError(f"{path}: unknown file type; use .csv, .csv.gz, .parquet or .pq")


def score_file(
    model: MultiTaskModel,
    data: str | os.PathLike,
    output: str | os.PathLike,
    keep: Sequence[str] = (),
    *,
    batch_size: int | None = None,
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> int:
    """Write ``model``'s predictions for every row of ``data`` to ``output`` (Parquet or
    CSV by suffix), the ``keep`` columns first; returns the rows written."""
    output = Path(output)
    kind = output_format(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it")
    keep = list(dict.fromkeys(keep))
    features = [f.name for f in model.features]
    dataset = open_dataset(data, features)
    missing = [c for c in keep if c not in dataset.schema.names]
    if missing:
        raise DataError(
            f"--keep {' '.join(missing)}: {data} has no such column(s); its columns are "
            f"{dataset.schema.names[:20]}"
        )
    units = units_of(dataset)
    counts = [u.rows for u in units]
    total = None if any(c is None for c in counts) else sum(counts)
    columns = list(dict.fromkeys(features + keep))
    schema = pa.schema([dataset.schema.field(c) for c in columns])
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.partial")
    writer = None
    rows = 0
    bar = tqdm(total=total, unit="rows", disable=not progress, file=sys.stderr, mininterval=0.5)
    try:
        for rb in record_batches(units, columns, schema=schema):
            predicted = prediction_columns(
                model, model.predict(rb, batch_size=batch_size, threads=threads)
            )
            clash = [c for c in keep if c in predicted]
            if clash:
                raise ConfigError(
                    f"--keep {' '.join(clash)}: the predictions have a column of that name "
                    "too; keep other columns or rename them in the input"
                )
            table = pa.table(
                {
                    **{c: rb.column(c) for c in keep},
                    **{k: pa.array(v) for k, v in predicted.items()},
                }
            )
            if kind == "csv":  # pandas' CSV (as a table in memory writes it), appended
                table.to_pandas().to_csv(
                    tmp, mode="a", header=rows == 0, index=False, compression=_compression(output)
                )
            else:
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            rows += table.num_rows
            bar.update(table.num_rows)
        if rows == 0:
            raise DataError(f"{data} holds no rows")
        if writer is not None:
            writer.close()
            writer = None
        os.replace(tmp, output)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows


def _compression(output: Path) -> str | None:
    """gzip for ``.csv.gz`` (each appended chunk a gzip member), else none."""
    return "gzip" if output.name.lower().endswith(".gz") else None
