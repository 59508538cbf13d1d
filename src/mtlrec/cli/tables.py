"""Data files the commands read and write (CSV, gzipped CSV, Parquet) and the
metrics lines they print."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._validation import holds_lists
from ..exceptions import DataError
from ..scoring import output_format as _table_format


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (optionally gzipped) or Parquet file, chosen by suffix."""
    path = Path(path)
    kind = _table_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    try:
        return pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as err:
        raise DataError(f"{path}: cannot read it as {kind} ({err})") from None


def _holds_lists(column: pd.Series) -> bool:
    return holds_lists(column.to_numpy())


def write_table(frame: pd.DataFrame, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``frame`` as CSV or Parquet by suffix; an existing file needs ``overwrite``."""
    path = Path(path)
    kind = _table_format(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":  # list cells (sequence features) as "|"-joined strings
        frame = frame.assign(
            **{
                name: [None if v is None else "|".join(map(str, v)) for v in frame[name]]
                for name in frame.columns
                if frame[name].dtype == object and _holds_lists(frame[name])
            }
        )
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def format_metrics(metrics: dict[str, dict[str, float]]) -> str:
    """One line per task: ``task  metric value  metric value``."""
    width = max(len(task) for task in metrics)
    return "\n".join(
        f"  {task:<{width}}  "
        + "  ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}" for k, v in values.items())
        for task, values in metrics.items()
    )
