"""Fit vocabularies and scalers on training data; turn tables into model-ready tensors.

Conventions:

* Missing values are ``None``, ``NaN``, ``pd.NA`` and ``NaT``. An empty string is a real
  category, not a missing value.
* Sparse ids: 0 = missing, 1 = unknown (not seen in training), 2.. = the sorted training
  vocabulary. A vocabulary is integer-valued when the training values are integers, bools
  or integral floats (pandas turns integer columns with NaN into floats); otherwise every
  value is compared as its ``str``. At transform time values are converted the same way, so
  ``"3"`` matches an integer vocabulary entry ``3`` and ``3`` matches a string entry ``"3"``.
* Dense columns: missing values become the training mean, then are scaled with statistics
  of the non-missing training values: ``minmax`` (x - min) / (max - min) or ``standard``
  (x - mean) / std (population std). A zero range or zero std divides by 1, so a column
  that was constant in training maps its training value to 0.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ._validation import Column, as_columns, require_columns
from .data import ColumnBatch
from .exceptions import BundleError, ConfigError, DataError, NotFittedError
from .features import (
    DenseFeature,
    Feature,
    SparseFeature,
    check_features,
    feature_from_dict,
    feature_to_dict,
)
from .tasks import Task, check_tasks, task_from_dict, task_to_dict

SCALINGS = ("minmax", "standard")
MISSING_ID = 0
UNKNOWN_ID = 1
_FIRST_ID = 2
_FORMAT = "mtlrec-preprocessor"
_VERSION = 1
_BLOCK_ROWS = 65536
_NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"}


def _missing_mask(array: np.ndarray) -> np.ndarray:
    """True where a value is missing (None, NaN, pd.NA, NaT)."""
    if array.dtype.kind in "iub":
        return np.zeros(len(array), dtype=bool)
    if array.dtype.kind in "fc":
        return np.isnan(array)
    return np.asarray(pd.isna(array), dtype=bool)


def _integral(values: np.ndarray) -> np.ndarray:
    """True where a float value is finite and integral."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values == np.trunc(values))


def _vocabulary_kind(values: np.ndarray) -> str:
    """``"int"`` for integers, bools or integral floats (non-missing values), else ``"str"``."""
    kind = values.dtype.kind
    if kind in "iub":
        return "int"
    if kind == "f":
        return "int" if len(values) and bool(_integral(values).all()) else "str"
    if kind == "O" and len(values):
        inferred = pd.api.types.infer_dtype(values, skipna=False)
        if inferred in ("integer", "boolean"):
            return "int"
        if inferred in ("floating", "mixed-integer-float"):
            return _vocabulary_kind(values.astype(np.float64))
    return "str"


def _int_keys(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 keys, valid mask); values that are not integers are invalid."""
    kind = values.dtype.kind
    if kind in "iub":
        return values.astype(np.int64), np.ones(len(values), dtype=bool)
    if kind != "f":
        if kind == "O" and pd.api.types.infer_dtype(values, skipna=False) in ("integer", "boolean"):
            return values.astype(np.int64), np.ones(len(values), dtype=bool)
        values = np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)
    valid = _integral(values)
    return np.where(valid, values, 0).astype(np.int64), valid


def _str_keys(values: np.ndarray) -> np.ndarray:
    """Values as strings (object array of str, or a numpy unicode array)."""
    kind = values.dtype.kind
    if kind == "U" or (kind == "O" and pd.api.types.infer_dtype(values, skipna=True) == "string"):
        return values
    return values.astype(str)


def _is_arrow(column: Column) -> bool:
    return isinstance(column, pa.Array | pa.ChunkedArray)


def _as_numpy(column: Column) -> np.ndarray:
    return column.to_numpy(zero_copy_only=False) if _is_arrow(column) else column


def _encode(column: Column, kind: str, lookup: pd.Index | pa.Array) -> np.ndarray:
    """int64 ids of one column: 0 missing, 1 unknown, 2.. vocabulary position.

    ``lookup`` is a pandas Index of an integer vocabulary, or a pyarrow large_string array
    of a string vocabulary.
    """
    if kind == "str" and _is_arrow(column):
        missing = column.is_null().to_numpy(zero_copy_only=False)
        pos = _arrow_positions(column, lookup)
    else:
        array = _as_numpy(column)
        missing = _missing_mask(array)
        if kind == "int":
            keys, valid = _int_keys(array)
            pos = np.where(valid, lookup.get_indexer(keys), -1)
        else:
            pos = _arrow_positions(pa.array(_str_keys(array), from_pandas=True), lookup)
    ids = np.where(pos >= 0, pos.astype(np.int64) + _FIRST_ID, UNKNOWN_ID)
    ids[missing] = MISSING_ID
    return ids


def _arrow_positions(keys: pa.Array | pa.ChunkedArray, vocabulary: pa.Array) -> np.ndarray:
    """Position of each string key in ``vocabulary``; -1 when absent or null."""
    if keys.type != vocabulary.type:
        keys = keys.cast(vocabulary.type)
    return pc.index_in(keys, value_set=vocabulary).fill_null(-1).to_numpy()


def _fit_vocabulary(column: Column) -> tuple[str, np.ndarray]:
    """(kind, sorted unique non-missing values) of a training column."""
    if _is_arrow(column):
        values = pc.unique(column.drop_null()).to_pylist()
        return "str", np.array(sorted(values), dtype=object)
    values = column[~_missing_mask(column)]
    kind = _vocabulary_kind(values)
    if kind == "int":
        return kind, np.unique(_int_keys(values)[0])
    return kind, np.array(sorted(str(v) for v in pd.unique(_str_keys(values))), dtype=object)


def _stack_columns(columns: list[np.ndarray], n: int, dtype: type) -> np.ndarray:
    """(n, len(columns)) row-major array, transposed in row blocks to stay cache-friendly."""
    by_column = np.empty((len(columns), n), dtype=dtype)
    for j, column in enumerate(columns):
        by_column[j] = column
    out = np.empty((n, len(columns)), dtype=dtype)
    for start in range(0, n, _BLOCK_ROWS):
        out[start : start + _BLOCK_ROWS] = by_column[:, start : start + _BLOCK_ROWS].T
    return out


def _numeric(column: Column, name: str, role: str, fix: str) -> np.ndarray:
    """float64 copy of a numeric column, NaN where missing; DataError when not numeric."""
    array = _as_numpy(column)
    kind = array.dtype.kind
    if kind in "iubf":
        return array.astype(np.float64)
    if kind == "O" and pd.api.types.infer_dtype(array, skipna=True) in _NUMERIC_INFERRED:
        return np.asarray(pd.to_numeric(array), dtype=np.float64)
    present = array[~_missing_mask(array)]
    examples = [str(v) for v in pd.unique(present[:1000])[:3]]
    raise DataError(f"column {name!r} ({role}) is not numeric (values like {examples}); {fix}")


def _format_values(values: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def _check_labels(task: Task, array: np.ndarray) -> np.ndarray:
    """float64 labels of a task; DataError for non-numeric, missing or out-of-range labels."""
    y = _numeric(
        array,
        task.name,
        f"label of task {task.name!r}",
        "map the labels to numbers (0/1 for a binary task)",
    )
    missing = np.isnan(y)
    if missing.any():
        rows = np.flatnonzero(missing)[:5].tolist()
        raise DataError(
            f"task {task.name!r}: {int(missing.sum())} labels in column {task.name!r} are "
            f"missing (first rows {rows}); drop those rows or fill the labels"
        )
    if task.type == "binary":
        bad = (y != 0) & (y != 1)
        if bad.any():
            raise DataError(
                f"task {task.name!r} (binary) has labels outside {{0, 1}} in column "
                f"{task.name!r}: {_format_values(np.unique(y[bad]))}; map the labels to 0/1, "
                f"e.g. (df[{task.name!r}] == positive_value).astype(int)"
            )
    elif not np.isfinite(y).all():
        raise DataError(
            f"task {task.name!r} (regression) has infinite labels in column {task.name!r}; "
            "drop or clip those rows"
        )
    return y


class Preprocessor:
    """Vocabularies for sparse features, scalers for dense features, label checks.

    Args:
        features: SparseFeature / DenseFeature specs, in model input order.
        tasks: Task specs (label columns), in output order.
        scaling: ``"minmax"`` or ``"standard"`` for dense features.
    """

    def __init__(
        self,
        features: Sequence[Feature],
        tasks: Sequence[Task],
        scaling: str = "minmax",
    ) -> None:
        self._features = check_features(features)
        self._tasks = check_tasks(tasks, {f.name for f in self._features})
        if scaling not in SCALINGS:
            raise ConfigError(
                f"scaling must be one of {list(SCALINGS)}, got {scaling!r}; "
                "pass scaling='minmax' or scaling='standard'"
            )
        self.scaling = scaling
        # name -> (kind, sorted values); name -> (mean, offset, scale)
        self._vocabularies: dict[str, tuple[str, np.ndarray]] | None = None
        self._lookups: dict[str, pd.Index | pa.Array] = {}
        self._dense_stats: dict[str, tuple[float, float, float]] | None = None

    # ----------------------------------------------------------------- properties
    @property
    def features(self) -> tuple[Feature, ...]:
        return self._features

    @property
    def tasks(self) -> tuple[Task, ...]:
        return self._tasks

    @property
    def sparse_features(self) -> tuple[SparseFeature, ...]:
        return tuple(f for f in self._features if isinstance(f, SparseFeature))

    @property
    def dense_features(self) -> tuple[DenseFeature, ...]:
        return tuple(f for f in self._features if isinstance(f, DenseFeature))

    @property
    def is_fitted(self) -> bool:
        return self._vocabularies is not None

    @property
    def vocabulary_sizes(self) -> list[int]:
        """Embedding table size per sparse feature: vocabulary + missing + unknown."""
        vocabularies = self._require_fitted("vocabulary_sizes")
        return [len(vocabularies[f.name][1]) + _FIRST_ID for f in self.sparse_features]

    def _require_fitted(self, what: str) -> dict[str, tuple[str, np.ndarray]]:
        if self._vocabularies is None:
            raise NotFittedError(f"Preprocessor.{what}: call fit(train_data) first")
        return self._vocabularies

    # ------------------------------------------------------------------- fitting
    def fit(self, data: object) -> Preprocessor:
        """Learn vocabularies and scaling statistics from training data (labels are checked)."""
        columns = as_columns(data, arrow_strings=True)
        self._require_inputs(columns)
        require_columns(
            columns,
            [t.name for t in self._tasks],
            "label",
            "add the label column or remove the task",
        )
        for task in self._tasks:
            _check_labels(task, columns[task.name])
        vocabularies = {f.name: _fit_vocabulary(columns[f.name]) for f in self.sparse_features}
        stats = {}
        for feature in self.dense_features:
            x = self._dense(columns, feature.name)
            x = x[~np.isnan(x)]
            if len(x) == 0:
                raise DataError(
                    f"column {feature.name!r} (dense feature) has no non-missing values in "
                    "the training data; fill it or remove the feature"
                )
            stats[feature.name] = self._scaler_stats(x)
        self._set_state(vocabularies, stats)
        return self

    def _scaler_stats(self, x: np.ndarray) -> tuple[float, float, float]:
        mean = float(x.mean())
        if self.scaling == "minmax":
            offset, spread = float(x.min()), float(x.max() - x.min())
        else:
            offset, spread = mean, float(x.std())
        return mean, offset, spread if spread > 0 else 1.0

    def _set_state(
        self,
        vocabularies: dict[str, tuple[str, np.ndarray]],
        stats: dict[str, tuple[float, float, float]],
    ) -> None:
        self._vocabularies = vocabularies
        self._dense_stats = stats
        self._lookups = {
            name: pd.Index(values) if kind == "int" else pa.array(values, pa.large_string())
            for name, (kind, values) in vocabularies.items()
        }

    def _require_inputs(self, columns: dict[str, np.ndarray]) -> None:
        require_columns(columns, [f.name for f in self.sparse_features], "sparse feature")
        require_columns(columns, [f.name for f in self.dense_features], "dense feature")

    @staticmethod
    def _dense(columns: dict[str, np.ndarray], name: str) -> np.ndarray:
        x = _numeric(
            columns[name],
            name,
            "dense feature",
            "convert it to numbers or declare it a SparseFeature",
        )
        if np.isinf(x).any():
            raise DataError(
                f"column {name!r} (dense feature) has infinite values; "
                "replace them with finite numbers or NaN"
            )
        return x

    # -------------------------------------------------------------- transforming
    def transform(self, data: object, with_labels: bool = True) -> ColumnBatch:
        """Whole-table tensors: sparse (N, S) int64, dense (N, D) float32, labels (N, T)."""
        vocabularies = self._require_fitted("transform")
        stats = self._dense_stats
        assert stats is not None
        columns = as_columns(data, arrow_strings=True)
        self._require_inputs(columns)
        n = len(next(iter(columns.values())))
        sparse = [
            _encode(columns[f.name], vocabularies[f.name][0], self._lookups[f.name])
            for f in self.sparse_features
        ]
        dense = []
        for feature in self.dense_features:
            mean, offset, scale = stats[feature.name]
            x = self._dense(columns, feature.name)
            x[np.isnan(x)] = mean
            dense.append((x - offset) / scale)
        labels = None
        if with_labels:
            require_columns(
                columns,
                [t.name for t in self._tasks],
                "label",
                "add the label column, or call transform(data, with_labels=False) to predict",
            )
            y = [_check_labels(t, columns[t.name]) for t in self._tasks]
            labels = torch.from_numpy(_stack_columns(y, n, np.float32))
        return ColumnBatch(
            torch.from_numpy(_stack_columns(sparse, n, np.int64)),
            torch.from_numpy(_stack_columns(dense, n, np.float32)),
            labels,
        )

    def fit_transform(self, data: object, with_labels: bool = True) -> ColumnBatch:
        """``fit(data)`` then ``transform(data)``."""
        columns = as_columns(data, arrow_strings=True)
        return self.fit(columns).transform(columns, with_labels=with_labels)

    # ------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """JSON-ready state: specs, scaling and (when fitted) vocabularies and statistics."""
        state: dict = {
            "format": _FORMAT,
            "version": _VERSION,
            "features": [feature_to_dict(f) for f in self._features],
            "tasks": [task_to_dict(t) for t in self._tasks],
            "scaling": self.scaling,
            "vocabularies": None,
            "dense_stats": None,
        }
        if self._vocabularies is not None and self._dense_stats is not None:
            state["vocabularies"] = {
                name: {"kind": kind, "values": values.tolist()}
                for name, (kind, values) in self._vocabularies.items()
            }
            state["dense_stats"] = {
                name: {"mean": mean, "offset": offset, "scale": scale}
                for name, (mean, offset, scale) in self._dense_stats.items()
            }
        return state

    @classmethod
    def from_dict(cls, state: dict) -> Preprocessor:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise BundleError("not a saved mtlrec Preprocessor (missing format marker)")
        if state.get("version") != _VERSION:
            raise BundleError(
                f"Preprocessor format version {state.get('version')!r} is not supported "
                f"(this mtlrec reads version {_VERSION}); re-fit or upgrade mtlrec"
            )
        try:
            pre = cls(
                [feature_from_dict(f) for f in state["features"]],
                [task_from_dict(t) for t in state["tasks"]],
                scaling=state["scaling"],
            )
            if state["vocabularies"] is not None:
                vocabularies = {}
                for feature in pre.sparse_features:
                    entry = state["vocabularies"][feature.name]
                    name = feature.name
                    dtype = np.int64 if entry["kind"] == "int" else object
                    vocabularies[name] = (entry["kind"], np.array(entry["values"], dtype=dtype))
                stats = {}
                for feature in pre.dense_features:
                    s = state["dense_stats"][feature.name]
                    stats[feature.name] = (float(s["mean"]), float(s["offset"]), float(s["scale"]))
                pre._set_state(vocabularies, stats)
        except (KeyError, TypeError) as err:
            raise BundleError(f"saved Preprocessor is incomplete: {err!r}") from err
        return pre

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as a JSON file."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocessor:
        """Read a file written by :meth:`save`."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    def __repr__(self) -> str:
        return (
            f"Preprocessor(sparse={len(self.sparse_features)}, dense={len(self.dense_features)}, "
            f"tasks={[t.name for t in self._tasks]}, scaling={self.scaling!r}, "
            f"fitted={self.is_fitted})"
        )
