"""Vocabularies: the sorted distinct values of a column, looked up by canonical keys.

A vocabulary is integer-valued (``kind="int"``) when the values are integers, bools or
integral floats (pandas turns integer columns with NaN into floats); otherwise every
value is compared by a canonical string key (``kind="str"``):

* strings are their own key;
* integral numbers are written as integers: ``2``, ``2.0`` and ``True``/``1`` meet as
  ``"2"`` / ``"1"``;
* other floats are rounded to float32 and written in the shortest form that round-trips
  there: ``1/3`` read as float64, read as float32, or read as float32 and widened to
  float64 (as pandas' nullable Float32 does) all become ``"0.33333334"``, so a column
  saved as float32 for prediction matches a float64 training column. (Two training
  values closer than float32's resolution are one category; a fraction that float32
  rounds to an integer is that integer; the few floats beyond float32's range keep their
  float64 form.)

Version-2 bundles written before this rule held float64 keys (``"0.3333333333333333"``)
for floats that are not float32 numbers; reading them re-keys those in place (same
positions, so the same embedding rows). A vocabulary saved since, whose string
categories could be taken for such keys, is marked ``float32_keys`` and read as it is.
Bundles written by mtlrec 0.1.0 compared ``str(value)`` as is (``legacy`` keys) and keep
doing so, so they predict what they did.

A vocabulary may keep only values seen ``min_count`` times, or the ``max_size`` most
frequent (ties: the smaller key), and may be fitted over several columns (features that
share a table). :class:`HashedVocabulary` stores nothing: a value's position is a
stable hash of its canonical key modulo the number of buckets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._validation import Column, as_numpy, is_arrow, missing_mask
from .exceptions import DataError


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


def _whole(values: np.ndarray) -> np.ndarray:
    """True where a float64 value is keyed as an integer (integral, within int64)."""
    return _integral(values) & (np.abs(values) < 2.0**63)


def _float_keys(values: np.ndarray) -> np.ndarray:
    """Canonical string keys of float values (see the module docstring)."""
    wide = values.astype(np.float64)
    with np.errstate(over="ignore"):
        narrow = wide.astype(np.float32)
    keys = narrow.astype(str).astype(object)
    beyond = np.isinf(narrow) & np.isfinite(wide)  # past float32's range
    keys[beyond] = wide[beyond].astype(str)
    integer = np.where(_integral(wide), wide, narrow)  # 16777217.5 is float32's 16777218
    whole = _whole(integer)
    keys[whole] = integer[whole].astype(np.int64).astype(str)
    return keys


#: how numpy writes a finite float64 (``str``): ``0.1``, ``-2.5``, ``1e-05``, ``1.5e+20``
_FLOAT_TEXT = r"^-?\d+(\.\d+)?(e[-+]\d+)?$"


def _rekeyed(keys: np.ndarray) -> np.ndarray:
    """Keys of a version-2 vocabulary with the float keys written before floats were
    rounded to float32 (``"0.3333333333333333"``) in the float32 form
    (``"0.33333334"``), in place; other keys as they are (``keys`` itself when none
    changes). Only a key that is exactly float64's text of a float that is neither keyed
    as an integer nor a float32 number changes: strings like ``"0.10"`` or ``"2.0"`` cannot
    come from a float and stay, and keys of the float32 form map to themselves."""
    if len(keys) == 0:
        return keys
    text = pc.match_substring_regex(pa.array(keys, pa.large_string()), _FLOAT_TEXT)
    candidate = np.flatnonzero(np.asarray(text, dtype=bool))
    numbers = keys[candidate].astype(np.float64)
    with np.errstate(over="ignore"):
        single = numbers.astype(np.float32) == numbers  # were written in float32's form
    wide = np.isfinite(numbers) & ~_whole(numbers) & ~single
    candidate, numbers = candidate[wide], numbers[wide]
    written = numbers.astype(str) == keys[candidate]
    candidate, new = candidate[written], _float_keys(numbers[written])
    changed = new != keys[candidate]
    if not changed.any():
        return keys
    keys = keys.copy()
    keys[candidate[changed]] = new[changed]
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
    def fit(
        cls,
        column: Column | list[Column],
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """The vocabulary of a training column, or of several columns together (missing
        values left out): values seen at least ``min_count`` times, at most ``max_size``
        of them (the most frequent; ties: the smaller key)."""
        if isinstance(column, list):
            column = _concatenate(column)
        if min_count > 1 or max_size is not None:
            return cls._fit_counted(column, min_count, max_size)
        if is_arrow(column):
            values = pc.unique(column.drop_null()).to_pylist()
            return cls("str", np.array(sorted(values), dtype=object))
        values = column[~missing_mask(column)]
        kind = _kind(values)
        if kind == "int":
            return cls(kind, sorted_unique(_int_keys(values)[0]))
        keys = pd.unique(canonical_keys(values))
        return cls(kind, np.array(sorted(str(k) for k in keys), dtype=object))

    @classmethod
    def _fit_counted(cls, column: Column, min_count: int, max_size: int | None) -> Vocabulary:
        kind, keys, counts = _key_counts(column)
        return cls.from_counts(kind or "str", keys, counts, min_count, max_size)

    @classmethod
    def from_counts(
        cls,
        kind: str,
        keys: np.ndarray,
        counts: np.ndarray,
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """The vocabulary of distinct ``keys`` (int64 or canonical strings) seen ``counts``
        times: those seen at least ``min_count`` times, at most ``max_size`` of them (the
        most frequent; ties: the smaller key)."""
        order = np.argsort(keys, kind="stable")  # by key, so ties keep the smaller key
        keys, counts = keys[order], counts[order]
        keep = counts >= min_count
        keys, counts = keys[keep], counts[keep]
        if max_size is not None and len(keys) > max_size:
            top = np.argsort(-counts, kind="stable")[:max_size]
            keys = keys[np.sort(top)]
        return cls(kind, keys)

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
        """JSON-ready form (``legacy`` only when set; ``float32_keys`` only when a key,
        a string category such as ``"0.3333333333333333"``, would read as a float key
        written before float keys were rounded to float32)."""
        state: dict[str, Any] = {"kind": self.kind, "values": self.values.tolist()}
        if self.legacy:
            state["legacy"] = True
        elif self.kind == "str" and _rekeyed(self.values) is not self.values:
            state["float32_keys"] = True
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any], legacy: bool = False) -> Vocabulary:
        """Inverse of :meth:`to_dict`; ``legacy`` for mtlrec 0.1.0's vocabularies (kept as
        they are). Float keys that a version-2 vocabulary saved in float64's form are
        re-keyed to the float32 form in place (:func:`_rekeyed`)."""
        legacy = legacy or bool(state.get("legacy", False))
        dtype = np.int64 if state["kind"] == "int" else object
        values = np.array(state["values"], dtype=dtype)
        if state["kind"] == "str" and not legacy and not state.get("float32_keys", False):
            values = _rekeyed(values)
        return cls(state["kind"], values, legacy=legacy)


class HashedVocabulary:
    """No stored values: a value's position is a stable hash of its canonical key modulo
    ``buckets`` (:func:`_key_hashes`): for an integer key, the SplitMix64 finaliser of
    its int64 value; for any other key, SipHash-2-4 of its UTF-8 bytes with pandas' fixed
    key ``"0123456789123456"`` followed by the same finaliser (both are
    ``pandas.util.hash_array``'s). The same in every process and on every platform (not
    Python's salted ``hash``; ``tests/test_sequences.py`` checks it against independent
    implementations). Distinct values may share a bucket."""

    kind = "hash"

    def __init__(self, buckets: int) -> None:
        self.buckets = buckets

    def __len__(self) -> int:
        return self.buckets

    def positions(self, column: Column, missing: int = -1) -> np.ndarray:
        """The bucket of each value; ``missing`` where the value is missing."""
        array = as_numpy(column)
        absent = missing_mask(array)
        present = array[~absent] if absent.any() else array
        buckets = (_key_hashes(present) % np.uint64(self.buckets)).astype(np.int64)
        if not absent.any():
            return buckets
        pos = np.full(len(array), missing, dtype=np.int64)
        pos[~absent] = buckets
        return pos

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "hash", "buckets": self.buckets}


class VocabularyCounter:
    """Fits a :class:`Vocabulary` from a stream of chunks of one or more columns, with
    the result :meth:`Vocabulary.fit` gives on all of them at once.

    The chunks of the first call to :meth:`add` are kept as they are (a table in memory
    is one chunk, fitted by :meth:`Vocabulary.fit` itself); from the second on, each
    chunk is reduced to its distinct keys and their counts, merged when the pending
    counts outgrow the distinct keys. Memory grows with the distinct keys, not the rows;
    more than ``limit`` distinct keys is a DataError that points to ``hash_buckets``.
    """

    def __init__(
        self, name: str, min_count: int = 1, max_size: int | None = None, limit: int = 10**8
    ) -> None:
        self.name, self.min_count, self.max_size, self.limit = name, min_count, max_size, limit
        self._first: list[Column] | None = None
        self._kind: str | None = None
        self._keys: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._distinct = 0

    def add(self, columns: list[Column]) -> None:
        """Add one chunk: the chunk's values of every column that shares the table."""
        if self._first is None and not self._keys:
            self._first = list(columns)
            return
        if self._first is not None:
            first, self._first = self._first, None
            self._count(first)
        self._count(columns)

    def _count(self, columns: list[Column]) -> None:
        for column in columns:
            kind, keys, counts = _key_counts(column)
            if kind is None:
                continue
            if self._kind is not None and kind != self._kind:  # ints meet text by key
                if kind == "int":
                    keys = keys.astype(str).astype(object)
                else:
                    self._keys = [k.astype(str).astype(object) for k in self._keys]
                    self._kind = kind
            self._kind = self._kind or kind
            self._keys.append(keys)
            self._counts.append(counts)
        if sum(len(k) for k in self._keys) > max(2 * self._distinct, 1 << 20):
            self._merge()

    def _merge(self) -> None:
        if len(self._keys) <= 1:
            return
        codes, keys = pd.factorize(np.concatenate(self._keys))
        counts = np.bincount(codes, weights=np.concatenate(self._counts), minlength=len(keys))
        keys = np.asarray(keys, dtype=np.int64 if self._kind == "int" else object)
        self._keys, self._counts = [keys], [counts.astype(np.int64)]
        self._distinct = len(keys)
        if self._distinct > self.limit:
            raise DataError(
                f"column {self.name!r} holds more than {self.limit:,} distinct values; "
                "a vocabulary of them would not fit in memory: give the feature "
                "hash_buckets=... instead"
            )

    def finish(self) -> Vocabulary:
        """The vocabulary of everything added."""
        if self._first is not None:
            return Vocabulary.fit(self._first, self.min_count, self.max_size)
        self._merge()
        if not self._keys:
            return Vocabulary("str", np.array([], dtype=object))
        keys, counts = self._keys[0], self._counts[0]
        return Vocabulary.from_counts(self._kind, keys, counts, self.min_count, self.max_size)


def _key_counts(column: Column) -> tuple[str | None, np.ndarray, np.ndarray]:
    """(kind, distinct keys, their counts) of a column's non-missing values; kind None
    when it has none."""
    if is_arrow(column):
        counts = pc.value_counts(column.drop_null())
        if len(counts) == 0:
            return None, np.array([], dtype=object), np.array([], dtype=np.int64)
        keys = np.array(counts.field("values").to_pylist(), dtype=object)
        return "str", keys, counts.field("counts").to_numpy().astype(np.int64)
    values = column[~missing_mask(column)]
    if len(values) == 0:
        return None, np.array([], dtype=object), np.array([], dtype=np.int64)
    kind = _kind(values)
    keys = _int_keys(values)[0] if kind == "int" else canonical_keys(values)
    codes, keys = pd.factorize(keys)
    counts = np.bincount(codes, minlength=len(keys)).astype(np.int64)
    return kind, np.asarray(keys, dtype=np.int64 if kind == "int" else object), counts


def vocabulary_from_dict(state: dict[str, Any], legacy: bool = False):
    """A saved :class:`Vocabulary` or :class:`HashedVocabulary`."""
    if state.get("kind") == "hash":
        return HashedVocabulary(int(state["buckets"]))
    return Vocabulary.from_dict(state, legacy=legacy)


def _concatenate(columns: list[Column]) -> Column:
    """One column of several: Arrow when all are Arrow strings, else numpy."""
    if len(columns) == 1:
        return columns[0]
    if all(is_arrow(c) for c in columns):
        chunks = [c.chunks if isinstance(c, pa.ChunkedArray) else [c] for c in columns]
        return pa.chunked_array([chunk.cast(pa.large_string()) for cs in chunks for chunk in cs])
    arrays = [as_numpy(c) for c in columns]
    if len({a.dtype for a in arrays}) > 1:  # ints and strings meet by canonical key
        arrays = [a.astype(object) for a in arrays]
    return np.concatenate(arrays)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values of an int array, sorted: one sort and a comparison of
    neighbours (numpy 2's ``np.unique`` hashes, about 10x slower on millions of ids)."""
    if len(values) == 0:
        return values.copy()
    ordered = np.sort(values)
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


#: a canonical key that is an integer: "0", "7", "-12" (not "007", "+7" or "7.0")
_INTEGER_KEY = r"^(0|-?[1-9][0-9]{0,18})$"


def _integer_hashes(values: np.ndarray) -> np.ndarray:
    """uint64 hashes of int64 values, as ``pandas.util.hash_array`` hashes int64 (the
    SplitMix64 finaliser of the value's bits)."""
    return pd.util.hash_array(values.astype(np.int64, copy=False))


def _key_hashes(values: np.ndarray) -> np.ndarray:
    """uint64 hashes of a column's canonical keys: integer keys (``2``, ``2.0``, ``True``,
    ``"2"``) by their int64 value, every other key by SipHash-2-4 of its UTF-8 text
    (pandas' ``hash_array``, fixed key) -- so equal keys hash equal whatever the dtype,
    and an integer column hashes without being written as text."""
    kind = values.dtype.kind
    if kind in "iub":
        return _integer_hashes(values)
    if kind == "f":
        integral = _whole(values)
        out = np.empty(len(values), dtype=np.uint64)
        out[integral] = _integer_hashes(values[integral])
        if not integral.all():
            out[~integral] = _text_hashes(_float_keys(values[~integral]))
        return out
    return _text_hashes(canonical_keys(values))


def _text_hashes(keys: np.ndarray) -> np.ndarray:
    """uint64 hashes of canonical string keys (integer keys by their value)."""
    text = pa.array(keys, pa.large_string(), from_pandas=True)
    integer = np.asarray(pc.match_substring_regex(text, _INTEGER_KEY).fill_null(False))
    out = np.empty(len(keys), dtype=np.uint64)
    if integer.any():
        digits = pc.filter(text, pa.array(integer))
        out[integer] = _integer_hashes(pc.cast(digits, pa.int64()).to_numpy())
    if not integer.all():
        rest = np.asarray(keys, dtype=object)[~integer]
        out[~integer] = pd.util.hash_array(rest, categorize=True)
    return out


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
