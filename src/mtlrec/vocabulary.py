"""Vocabularies: the sorted distinct values of a column, looked up by canonical keys.

A vocabulary is integer-valued (``kind="int"``) when the values are integers, bools or
integral floats (pandas turns integer columns with NaN into floats); otherwise every
value is compared by a canonical string key (``kind="str"``):

* strings are their own key;
* integral numbers are written as integers: ``2``, ``2.0`` and ``True``/``1`` meet as
  ``"2"`` / ``"1"``;
* other floats are written in the shortest form that round-trips in float32 when the
  value is a float32 number, else in float64: ``0.1`` read as float64 and ``0.1`` read
  as float32 (and then widened to float64, as pandas' nullable Float32 does) both
  become ``"0.1"``, so a column saved as float32 for prediction matches a float64
  training column. (Two training values closer than float32's resolution are one
  category.)

Bundles written by mtlrec 0.1.0 compared ``str(value)`` as is (``legacy`` keys) and
keep doing so, so they predict what they did.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._validation import Column, as_numpy, is_arrow, missing_mask


def _integral(values: np.ndarray) -> np.ndarray:
    """True where a float value is finite and integral."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values == np.trunc(values))


def _kind(values: np.ndarray) -> str:
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
            return _kind(values.astype(np.float64))
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


def _float_keys(values: np.ndarray) -> np.ndarray:
    """Canonical string keys of float values (see the module docstring)."""
    wide = values.astype(np.float64)
    keys = wide.astype(str).astype(object)
    narrow = wide.astype(np.float32)
    with np.errstate(invalid="ignore"):
        single = narrow.astype(np.float64) == wide
    keys[single] = narrow[single].astype(str)
    whole = _integral(wide) & (np.abs(wide) < 2.0**63)
    keys[whole] = wide[whole].astype(np.int64).astype(str)
    return keys


def canonical_keys(values: np.ndarray) -> np.ndarray:
    """Canonical string keys of a numpy column (see the module docstring)."""
    kind = values.dtype.kind
    if kind == "U":
        return values
    if kind in "iub":
        return values.astype(np.int64).astype(str)
    if kind == "f":
        return _float_keys(values)
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "string":
        return values
    keys = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):  # mixed objects: per value
        if isinstance(value, str):
            keys[i] = value
        elif isinstance(value, bool | np.bool_ | int | np.integer):
            keys[i] = str(int(value))
        elif isinstance(value, float | np.floating):
            keys[i] = _float_keys(np.array([value]))[0]
        else:
            keys[i] = str(value)
    return keys


def _legacy_keys(values: np.ndarray) -> np.ndarray:
    """mtlrec 0.1.0's string keys: ``str(value)`` as the dtype writes it."""
    kind = values.dtype.kind
    if kind == "U" or (kind == "O" and pd.api.types.infer_dtype(values, skipna=True) == "string"):
        return values
    return values.astype(str)


class Vocabulary:
    """Sorted distinct non-missing values of a column and the lookup of new values.

    Args:
        kind: ``"int"`` (int64 values) or ``"str"`` (canonical string keys).
        values: the sorted distinct keys.
        legacy: compare ``str(value)`` as mtlrec 0.1.0 did (bundles it wrote).
    """

    def __init__(self, kind: str, values: np.ndarray, legacy: bool = False) -> None:
        self.kind, self.values, self.legacy = kind, values, legacy
        if kind == "int":
            self._lookup: pd.Index | pa.Array = pd.Index(values)
        else:
            self._lookup = pa.array(values, pa.large_string())

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def fit(cls, column: Column) -> Vocabulary:
        """The vocabulary of a training column (missing values left out)."""
        if is_arrow(column):
            values = pc.unique(column.drop_null()).to_pylist()
            return cls("str", np.array(sorted(values), dtype=object))
        values = column[~missing_mask(column)]
        kind = _kind(values)
        if kind == "int":
            return cls(kind, np.unique(_int_keys(values)[0]))
        keys = pd.unique(canonical_keys(values))
        return cls(kind, np.array(sorted(str(k) for k in keys), dtype=object))

    def keys(self, values: np.ndarray) -> np.ndarray:
        """String keys of a numpy column, as this vocabulary compares them."""
        return _legacy_keys(values) if self.legacy else canonical_keys(values)

    def positions(self, column: Column, missing: int = -1) -> np.ndarray:
        """Position of each value in the vocabulary: -1 when absent, ``missing`` where the
        value is missing (-1 too by default)."""
        if self.kind == "str" and is_arrow(column):
            pos = _arrow_positions(column, self._lookup)
            if missing != -1:
                pos[column.is_null().to_numpy(zero_copy_only=False)] = missing
            return pos
        array = as_numpy(column)
        absent = missing_mask(array)
        if self.kind == "int":
            keys, valid = _int_keys(array)
            pos = np.where(valid, self._lookup.get_indexer(keys), -1)
        else:
            present = array if not absent.any() else array[~absent]
            pos = _arrow_positions(pa.array(self.keys(present), from_pandas=True), self._lookup)
            pos = pos if not absent.any() else _scatter(pos, ~absent)
        pos = pos.astype(np.int64, copy=False)
        pos[absent] = missing
        return pos

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``legacy`` only when set)."""
        state: dict[str, Any] = {"kind": self.kind, "values": self.values.tolist()}
        if self.legacy:
            state["legacy"] = True
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any], legacy: bool = False) -> Vocabulary:
        dtype = np.int64 if state["kind"] == "int" else object
        values = np.array(state["values"], dtype=dtype)
        return cls(state["kind"], values, legacy=legacy or bool(state.get("legacy", False)))


def _scatter(found: np.ndarray, where: np.ndarray) -> np.ndarray:
    out = np.full(len(where), -1, dtype=np.int64)
    out[where] = found
    return out


def _arrow_positions(keys: pa.Array | pa.ChunkedArray, vocabulary: pa.Array) -> np.ndarray:
    """Position of each string key in ``vocabulary``; -1 when absent or null."""
    if keys.type != vocabulary.type:
        keys = keys.cast(vocabulary.type)
    positions = pc.index_in(keys, value_set=vocabulary).fill_null(-1)
    return np.array(positions, dtype=np.int64)  # writable (arrow's own buffer is not)
