"""Boundary checks: turn user tables into plain numpy columns and explain what is wrong."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .exceptions import DataError

_SHOWN_COLUMNS = 20


Column = np.ndarray | pa.Array | pa.ChunkedArray


def _is_arrow_string(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _is_arrow_list(type_: pa.DataType) -> bool:
    return pa.types.is_list(type_) or pa.types.is_large_list(type_)


def _series_column(series: pd.Series, arrow_strings: bool) -> Column:
    """A Series as a 1-D array; nullable numbers/bools become float64 with NaN for NA."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype) and _is_arrow_list(dtype.pyarrow_dtype):
        return pa.array(series)
    if arrow_strings and isinstance(dtype, pd.StringDtype):
        return pa.array(series)  # zero-copy for pyarrow-backed strings
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and (
        pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    ):
        if series.hasnans:
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        numpy_dtype = getattr(dtype, "numpy_dtype", None)
        if numpy_dtype is not None:
            return series.to_numpy(dtype=numpy_dtype)
    return series.to_numpy()


def as_array(values: object) -> np.ndarray:
    """A numpy array or list-like column as a numpy array. A list-like that numpy would
    make text of (strings with NaN among them: numpy writes the text 'nan') keeps its
    Python objects, so a NaN there stays missing as it does in a DataFrame."""
    if isinstance(values, list | tuple) and any(
        isinstance(v, list | tuple | np.ndarray) for v in values
    ):  # a column of lists (a sequence feature): one cell per row, never a 2-D array
        array = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            array[i] = value
        return array
    array = np.asarray(values)
    if array.dtype.kind in "US" and not isinstance(values, np.ndarray):
        array = np.array(values, dtype=object)
    return array


def _column(name: str, values: object, arrow_strings: bool) -> Column:
    if isinstance(values, pd.Series):
        array = _series_column(values, arrow_strings)
    elif isinstance(values, pa.ChunkedArray | pa.Array):
        if pa.types.is_dictionary(values.type):
            # decode first: ChunkedArray.to_numpy drops the nulls of dictionary columns
            values = values.cast(values.type.value_type)
        if (arrow_strings and _is_arrow_string(values.type)) or _is_arrow_list(values.type):
            return values
        array = values.to_numpy(zero_copy_only=False)
    else:
        array = as_array(values)
    if isinstance(array, np.ndarray) and array.ndim != 1:
        raise DataError(
            f"column {name!r} must be one-dimensional, got shape {array.shape}; "
            "give one value per row"
        )
    return array


def _describe_columns(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:_SHOWN_COLUMNS])
    if len(names) > _SHOWN_COLUMNS:
        shown += f", ... ({len(names)} in all)"
    return f"[{shown}]"


def _refuse_duplicates(names: Iterable[object], table: str) -> None:
    names = [str(n) for n in names]
    seen, dupes = set(), []
    for name in names:
        if name in seen and name not in dupes:
            dupes.append(name)
        seen.add(name)
    if dupes:
        raise DataError(
            f"{table} has duplicate columns {dupes}: each column name must appear once "
            "(a model would silently read one of them); rename or drop the duplicates"
        )


def column_names(data: object) -> list[str] | None:
    """The column names of a table as :func:`as_columns` reads it, or None when ``data``
    is not a table (a DataFrame, pyarrow Table or RecordBatch, or a mapping)."""
    if isinstance(data, pd.DataFrame):
        return [str(c) for c in data.columns]
    if isinstance(data, pa.Table | pa.RecordBatch):
        return list(data.column_names)
    if isinstance(data, Mapping):
        return [str(k) for k in data]
    return None


def as_columns(
    data: object, arrow_strings: bool = False, table: str = "the data"
) -> dict[str, Column]:
    """Columns of a pandas DataFrame, pyarrow Table or mapping of array-likes as 1-D arrays.

    Args:
        data: the table.
        arrow_strings: keep string columns (pyarrow strings, pandas ``str`` dtype) as pyarrow
            arrays instead of numpy object arrays, which is much faster to look up.
        table: how error messages name the table (e.g. "the validation table").

    Raises:
        DataError: unsupported type, columns of different lengths, or no rows.
    """
    if isinstance(data, pd.DataFrame):
        _refuse_duplicates(data.columns, table)
        columns = {str(name): _series_column(data[name], arrow_strings) for name in data.columns}
    elif isinstance(data, pa.Table | pa.RecordBatch):
        _refuse_duplicates(data.column_names, table)
        columns = {
            name: _column(name, data.column(i), arrow_strings)
            for i, name in enumerate(data.column_names)
        }
    elif isinstance(data, Mapping):
        _refuse_duplicates(data.keys(), table)
        columns = {
            str(name): _column(str(name), values, arrow_strings) for name, values in data.items()
        }
    else:
        raise DataError(
            f"{table}: expected a pandas DataFrame, a pyarrow Table or a dict of columns, "
            f"got {type(data).__name__}; convert the data to one of these"
        )
    lengths = {name: len(array) for name, array in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"{table}: columns have different lengths {lengths}; every column needs one "
            "value per row"
        )
    if not columns or next(iter(lengths.values())) == 0:
        raise DataError(f"{table} has no rows; give at least one row")
    return columns


def require_columns(
    columns: Mapping[str, object],
    names: Iterable[str],
    role: str,
    fix: str | None = None,
    table: str = "the data",
) -> None:
    """Raise DataError naming every column of ``names`` that ``columns`` lacks.

    Args:
        columns: the available columns (only the keys are used).
        names: required column names.
        role: what the columns are for, e.g. ``"sparse feature"`` or ``"label"``.
        fix: how to resolve it; defaults to adding the column or removing the feature.
        table: how the message names the table.
    """
    missing = [name for name in names if name not in columns]
    if not missing:
        return
    if fix is None:
        fix = "add it or remove the feature"
    listed = ", ".join(repr(n) for n in missing)
    if len(missing) == 1:
        subject = f"column {listed} ({role}) is"
    else:
        subject = f"columns {listed} ({role}) are"
    raise DataError(
        f"{subject} missing from {table}; it has columns {_describe_columns(columns)}; {fix}"
    )


#: pandas' inferred dtypes of object columns that hold numbers
_NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"}


def is_arrow(column: Column) -> bool:
    return isinstance(column, pa.Array | pa.ChunkedArray)


def as_numpy(column: Column) -> np.ndarray:
    """A column as a numpy array (pyarrow columns converted, with None for nulls)."""
    return column.to_numpy(zero_copy_only=False) if is_arrow(column) else column


def missing_mask(column: Column) -> np.ndarray:
    """True where a value is missing (None, NaN, pd.NA, NaT, arrow null)."""
    if is_arrow(column):
        return column.is_null().to_numpy(zero_copy_only=False)
    if column.dtype.kind in "iub":
        return np.zeros(len(column), dtype=bool)
    if column.dtype.kind in "fc":
        return np.isnan(column)
    return np.asarray(pd.isna(column), dtype=bool)


def numeric_column(column: Column, name: str, role: str, fix: str) -> np.ndarray:
    """float64 copy of a numeric column, NaN where missing; DataError naming the column
    (and its ``role``) with ``fix`` when it is not numeric."""
    array = as_numpy(column)
    kind = array.dtype.kind
    if kind in "iubf":
        return array.astype(np.float64)
    absent = missing_mask(array)
    present = array[~absent] if absent.any() else array  # any null (NaT too) is missing
    if kind == "O" and pd.api.types.infer_dtype(present, skipna=True) in _NUMERIC_INFERRED:
        out = np.full(len(array), np.nan)
        out[~absent] = np.asarray(pd.to_numeric(present), dtype=np.float64)
        return out
    examples = [str(v) for v in pd.unique(present[:1000])[:3]]
    raise DataError(f"column {name!r} ({role}) is not numeric (values like {examples}); {fix}")


def format_values(values: np.ndarray, limit: int = 5) -> str:
    """Numbers as ``[a, b, ...]`` for messages."""
    shown = ", ".join(f"{v:g}" for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def holds_lists(column: Column) -> bool:
    """Whether a column's cells are lists (an Arrow list column, or Python lists or
    arrays in an object column)."""
    if is_arrow(column):
        return _is_arrow_list(column.type)
    if column.dtype.kind != "O" or not len(column):
        return False
    return any(isinstance(v, list | tuple | np.ndarray) for v in column[:1000])


def list_column(column: Column, name: str, separator: str) -> tuple[Column, np.ndarray]:
    """The items of a column of lists, all rows' one after another, and (N,) int64 items
    per row. Cells are lists or arrays, Arrow lists, or strings joined by ``separator``;
    an empty list, an empty string and a missing cell hold no items. DataError naming
    the column for scalars among lists, nested lists, empty fields between separators
    and missing items."""
    where = f"column {name!r} (sequence feature)"
    if is_arrow(column):
        lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if _is_arrow_string(lists.type):
            return _split_strings(lists, where, separator)
        if not _is_arrow_list(lists.type):
            raise DataError(
                f"{where} holds {lists.type} values, not lists; give a list per row or "
                f"strings joined by {separator!r}"
            )
    else:
        array = as_numpy(column)
        if array.dtype.kind == "f" and np.isnan(array).all():  # every cell missing (a CSV
            return np.zeros(0, dtype=np.int64), np.zeros(len(array), dtype=np.int64)  # of nulls)
        if array.dtype.kind in "US":
            array = array.astype(object)
        try:  # Arrow reads the cells and tells lists, strings and scalars apart
            lists = pa.array(array, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as err:
            present = array[~missing_mask(array)]
            example = next(
                (v for v in present if not isinstance(v, list | tuple | np.ndarray)), None
            )
            what = (
                f"mixes lists with other values (e.g. {example!r})"
                if example is not None
                else (f"holds lists it cannot read as one column of items ({err})")
            )
            raise DataError(
                f"{where} {what}; give every row a list (an empty list for no items) or "
                f"strings joined by {separator!r}"
            ) from None
        if _is_arrow_string(lists.type):
            return _split_strings(lists, where, separator)
        if pa.types.is_null(lists.type):  # every cell missing
            return np.zeros(0, dtype=np.int64), np.zeros(len(array), dtype=np.int64)
        if not _is_arrow_list(lists.type):
            raise DataError(
                f"{where} holds {lists.type} values, not lists; give a list per row (an empty "
                f"list for no items) or strings joined by {separator!r}"
            )
    if _is_arrow_list(lists.type.value_type) or pa.types.is_struct(lists.type.value_type):
        raise DataError(
            f"{where} holds nested lists ({lists.type}); give one flat list of items per row"
        )
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy().astype(np.int64)
    items = lists.flatten()
    if items.null_count:
        raise DataError(
            f"{where} has missing values inside its lists; drop them from the lists (a row "
            "with no items is an empty list)"
        )
    return (
        items if _is_arrow_string(items.type) else items.to_numpy(zero_copy_only=False)
    ), lengths


def _split_strings(strings: pa.Array, where: str, separator: str) -> tuple[pa.Array, np.ndarray]:
    """Items and lengths of ``separator``-joined strings; "" holds no items."""
    if strings.type != pa.string():
        strings = strings.cast(pa.string())
    lists = pc.split_pattern(strings, separator)
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy().astype(np.int64)
    empty_cell = np.asarray(pc.equal(strings, "").fill_null(False))
    lengths[empty_cell] = 0
    items = pc.split_pattern(pc.if_else(pc.equal(strings, ""), None, strings), separator).flatten()
    blank = np.asarray(pc.equal(items, ""))
    if blank.any():
        row = int(np.searchsorted(np.cumsum(lengths), int(np.argmax(blank)), side="right"))
        raise DataError(
            f"{where}: row {row} ({strings[row].as_py()!r}) has an empty item between "
            f"separators {separator!r}; remove the extra separator (an empty string is a "
            "row with no items)"
        )
    return items, lengths
