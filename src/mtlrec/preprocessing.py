"""Fit vocabularies, scalers and label statistics on training data; turn tables into batches.

Conventions:

* Missing values are ``None``, ``NaN``, ``pd.NA`` and ``NaT``. An empty string is a real
  category, not a missing value.
* Sparse ids: 0 = missing, 1 = unknown (not seen in training, or rarer than
  ``min_count``, or beyond ``max_size``), 2.. = the sorted training vocabulary, looked
  up by canonical keys (:mod:`mtlrec.vocabulary`: ``2`` and ``2.0`` are one category,
  and a float32 column matches the float64 values it was trained on); with
  ``hash_buckets``, 2.. are the buckets. Features that ``share`` a vocabulary fit it
  over all their columns together.
* Sequences: each row's items (lists, Arrow lists or joined strings,
  :func:`mtlrec._validation.list_column`) are encoded like sparse values (an item never
  seen in training is unknown, id 1), the ``max_len`` most recent kept (older ones are
  dropped: documented, not an error), and padded with 0 after the real items; the
  lengths say how many are real.
* Dense columns: missing values become the training mean, then are scaled with statistics
  of the non-missing training values: ``minmax`` (x - min) / (max - min) or ``standard``
  (x - mean) / std (population std). A zero range or zero std divides by 1, so a column
  that was constant in training maps its training value to 0.
* Labels are checked and encoded by each task's head (:mod:`mtlrec.heads`), with the
  statistics it fitted on the training labels (regression mean and std, multiclass
  classes), which are saved here too.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from ._validation import (
    Column,
    as_columns,
    holds_lists,
    list_column,
    numeric_column,
    require_columns,
)
from .data import Batch
from .exceptions import BundleError, ConfigError, DataError, NotFittedError
from .features import (
    DenseFeature,
    Feature,
    SequenceFeature,
    SparseFeature,
    check_features,
    feature_from_dict,
    feature_to_dict,
)
from .heads import Head
from .running import RunningMoments
from .tasks import Task, check_tasks, task_from_dict, task_to_dict
from .vocabulary import HashedVocabulary, Vocabulary, VocabularyCounter, vocabulary_from_dict

logger = logging.getLogger(__name__)

SCALINGS = ("minmax", "standard")
MISSING_ID = 0
UNKNOWN_ID = 1
_FIRST_ID = 2
_FORMAT = "mtlrec-preprocessor"
#: 3: sequence features, shared / hashed / bounded vocabularies, groups (2: canonical
#: vocabulary keys and label statistics; 1: mtlrec 0.1.0; both still read)
_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
_BLOCK_ROWS = 65536


def _encode(column: Column, vocabulary: Vocabulary | HashedVocabulary) -> np.ndarray:
    """int64 ids of one column: 0 missing, 1 unknown, 2.. vocabulary position."""
    pos = vocabulary.positions(column, missing=-2)
    ids = np.where(pos >= 0, pos + _FIRST_ID, UNKNOWN_ID)
    ids[pos == -2] = MISSING_ID
    return ids


def _pad_sequences(ids: np.ndarray, lengths: np.ndarray, max_len: int) -> tuple:
    """Rows' items one after another (N,) lengths -> (N, max_len) ids of the last
    ``max_len`` items of each row, first-aligned and padded with 0, and their (N,) counts."""
    kept = np.minimum(lengths, max_len)
    if len(ids) > kept.sum():  # some rows are longer: keep each one's last max_len items
        starts = np.cumsum(lengths) - lengths
        position = np.arange(len(ids)) - np.repeat(starts, lengths)
        ids = ids[position >= np.repeat(lengths - kept, lengths)]
    out = np.zeros((len(lengths), max_len), dtype=np.int64)
    out[np.arange(max_len) < kept[:, None]] = ids  # row-major: each row's items in order
    return out, kept


def _stack_columns(columns: list[np.ndarray], n: int, dtype: type) -> np.ndarray:
    """(n, len(columns)) row-major array, transposed in row blocks to stay cache-friendly."""
    by_column = np.empty((len(columns), n), dtype=dtype)
    for j, column in enumerate(columns):
        by_column[j] = column
    out = np.empty((n, len(columns)), dtype=dtype)
    for start in range(0, n, _BLOCK_ROWS):
        out[start : start + _BLOCK_ROWS] = by_column[:, start : start + _BLOCK_ROWS].T
    return out


class Preprocessor:
    """Vocabularies for sparse and sequence features, scalers for dense features, heads
    for labels.

    Args:
        features: SparseFeature / SequenceFeature / DenseFeature specs, in model input
            order.
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
        #: vocabulary per table owner (a categorical feature that shares no other's)
        self._vocabularies: dict[str, Vocabulary | HashedVocabulary] | None = None
        self._dense_stats: dict[str, tuple[float, float, float]] = {}  # mean, offset, scale
        self.heads: dict[str, Head] = {t.name: t.head_class(t) for t in self._tasks}

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
    def sequence_features(self) -> tuple[SequenceFeature, ...]:
        return tuple(f for f in self._features if isinstance(f, SequenceFeature))

    @property
    def table_owners(self) -> tuple[SparseFeature | SequenceFeature, ...]:
        """The categorical features with a table of their own (sparse ones first), in
        order: the others share one of these."""
        owned = [f for f in (*self.sparse_features, *self.sequence_features) if f.shares is None]
        return tuple(owned)

    @property
    def is_fitted(self) -> bool:
        return self._vocabularies is not None

    def _owner(self, feature: SparseFeature | SequenceFeature) -> str:
        return feature.shares or feature.name

    @property
    def vocabulary_sizes(self) -> list[int]:
        """Embedding table size per sparse feature: vocabulary + missing + unknown."""
        self._require_fitted("vocabulary_sizes")
        return [len(self.vocabulary(f.name)) + _FIRST_ID for f in self.sparse_features]

    def input_layout(self) -> dict:
        """What the network's input layer reads besides the sparse sizes (keyword
        arguments of :class:`~mtlrec.layers.InputLayer`, in ``InputSpec.layout``): each
        table's (rows, dim), the table of each sparse column, each sequence's (table,
        max_len, pooling, target column), and the feature groups (sparse, then sequence,
        then dense features)."""
        self._require_fitted("input_layout")
        owners = [f.name for f in self.table_owners]
        tables = [
            (len(self.vocabulary(n)) + _FIRST_ID, f.dim)
            for n, f in zip(owners, self.table_owners, strict=True)
        ]
        sparse = self.sparse_features
        index = {f.name: i for i, f in enumerate(sparse)}
        return {
            "tables": tables,
            "sparse_tables": [owners.index(self._owner(f)) for f in sparse],
            "sequences": [
                (owners.index(self._owner(f)), f.max_len, f.pooling, index.get(f.target))
                for f in self.sequence_features
            ],
            "groups": [f.group for f in (*sparse, *self.sequence_features, *self.dense_features)],
        }

    @property
    def outputs_per_task(self) -> list[int]:
        """Logits per row of each task's head (K classes for multiclass, else 1)."""
        self._require_fitted("outputs_per_task")
        return [self.heads[t.name].num_outputs for t in self._tasks]

    def vocabulary(self, name: str) -> Vocabulary | HashedVocabulary:
        """The fitted vocabulary of categorical feature ``name`` (the shared one, for a
        feature that shares another's)."""
        vocabularies = self._require_fitted("vocabulary")
        feature = next(f for f in self._features if f.name == name)
        return vocabularies[self._owner(feature)]

    def _require_fitted(self, what: str) -> dict[str, Vocabulary | HashedVocabulary]:
        if self._vocabularies is None:
            raise NotFittedError(f"Preprocessor.{what}: call fit(train_data) first")
        return self._vocabularies

    # ------------------------------------------------------------------- fitting
    def fit(self, data: object, table: str = "the training data") -> Preprocessor:
        """Learn vocabularies, scaling and label statistics from training data."""
        return self.fit_chunks([data], table)

    def fit_chunks(
        self, chunks: Iterable[object], table: str = "the training data"
    ) -> Preprocessor:
        """:meth:`fit` from consecutive chunks of the training rows (tables, e.g. a
        stream's record batches): vocabularies from exact counts
        (:class:`~mtlrec.vocabulary.VocabularyCounter`), scaling and label statistics
        from running moments (:class:`~mtlrec.running.RunningMoments`), so memory grows
        with the distinct values, not the rows. One chunk is :meth:`fit` exactly; several
        give the same vocabularies and statistics equal to float rounding."""
        counters = {
            owner.name: VocabularyCounter(owner.name, owner.min_count, owner.max_size)
            for owner in self.table_owners
            if owner.hash_buckets is None
        }
        moments = {feature.name: RunningMoments() for feature in self.dense_features}
        for task in self._tasks:
            self.heads[task.name].start_fit()
        longer = dict.fromkeys((f.name for f in self.sequence_features), 0)
        rows = 0
        for chunk in chunks:
            columns = as_columns(chunk, arrow_strings=True, table=table)
            self._require_inputs(columns, table)
            require_columns(
                columns,
                [t.name for t in self._tasks],
                "label",
                "add the label column or remove the task",
                table=table,
            )
            rows += len(next(iter(columns.values())))
            for task in self._tasks:
                self.heads[task.name].add_labels(columns[task.name])
            values: dict[str, list[Column]] = {name: [] for name in counters}
            for feature in self.sparse_features:
                column = self._sparse(columns, feature.name)
                values.get(self._owner(feature), []).append(column)
            for feature in self.sequence_features:
                items, lengths = list_column(columns[feature.name], feature.name, feature.separator)
                values.get(self._owner(feature), []).append(items)
                longer[feature.name] += int((lengths > feature.max_len).sum())
            for name, counter in counters.items():
                counter.add(values[name])
            for feature in self.dense_features:
                x = self._dense(columns, feature.name)
                moments[feature.name].add(x[~np.isnan(x)])
        for task in self._tasks:
            self.heads[task.name].finish_fit()
        for feature in self.sequence_features:
            if longer[feature.name]:
                logger.info(
                    "sequence feature %r: %d of %d rows hold more than max_len=%d items; "
                    "the most recent %d are kept",
                    feature.name,
                    longer[feature.name],
                    rows,
                    feature.max_len,
                    feature.max_len,
                )
        vocabularies: dict[str, Vocabulary | HashedVocabulary] = {}
        for owner in self.table_owners:
            if owner.hash_buckets is not None:
                vocabularies[owner.name] = HashedVocabulary(owner.hash_buckets)
            else:
                vocabularies[owner.name] = counters[owner.name].finish()
        stats = {}
        for feature in self.dense_features:
            if moments[feature.name].count == 0:
                raise DataError(
                    f"column {feature.name!r} (dense feature) has no non-missing values in "
                    f"{table}; fill it or remove the feature"
                )
            stats[feature.name] = self._scaler_stats(moments[feature.name])
        self._vocabularies, self._dense_stats = vocabularies, stats
        return self

    def _scaler_stats(self, x: RunningMoments) -> tuple[float, float, float]:
        if self.scaling == "minmax":
            offset, spread = x.min, x.max - x.min
        else:
            offset, spread = x.mean, x.std
        return x.mean, offset, spread if spread > 0 else 1.0

    def _require_inputs(self, columns: dict[str, Column], table: str) -> None:
        require_columns(
            columns, [f.name for f in self.sparse_features], "sparse feature", table=table
        )
        require_columns(
            columns, [f.name for f in self.sequence_features], "sequence feature", table=table
        )
        require_columns(
            columns, [f.name for f in self.dense_features], "dense feature", table=table
        )

    @staticmethod
    def _sparse(columns: dict[str, Column], name: str) -> Column:
        column = columns[name]
        if holds_lists(column):
            raise DataError(
                f"column {name!r} (sparse feature) holds lists; declare it a "
                f"SequenceFeature({name!r}) to pool its items"
            )
        return column

    @staticmethod
    def _dense(columns: dict[str, Column], name: str) -> np.ndarray:
        x = numeric_column(
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
    def transform(
        self,
        data: object,
        with_labels: bool = True,
        *,
        table: str = "the data",
        label_fix: str | None = None,
    ) -> Batch:
        """Whole-table tensors: sparse (N, S) int64, dense (N, D) float32, sequences
        (N, L) int64 with lengths (N, Q), labels (N, T).

        ``table`` names the table in error messages (e.g. "the validation table");
        ``label_fix`` replaces the advice given when a label column is missing.
        """
        vocabularies = self._require_fitted("transform")
        columns = as_columns(data, arrow_strings=True, table=table)
        self._require_inputs(columns, table)
        n = len(next(iter(columns.values())))
        sparse = [
            _encode(self._sparse(columns, f.name), vocabularies[self._owner(f)])
            for f in self.sparse_features
        ]
        sequences, lengths = [], []
        for feature in self.sequence_features:
            items, counts = list_column(columns[feature.name], feature.name, feature.separator)
            ids = _encode(items, vocabularies[self._owner(feature)])
            padded, kept = _pad_sequences(ids, counts, feature.max_len)
            sequences.append(padded)
            lengths.append(kept)
        dense = []
        for feature in self.dense_features:
            mean, offset, scale = self._dense_stats[feature.name]
            x = self._dense(columns, feature.name)
            x[np.isnan(x)] = mean
            dense.append((x - offset) / scale)
        labels = mask = None
        if with_labels:
            require_columns(
                columns,
                [t.name for t in self._tasks],
                "label",
                label_fix
                or "add the label column, or call transform(data, with_labels=False) to predict",
                table=table,
            )
            y = _stack_columns(
                [self.heads[t.name].encode(columns[t.name]) for t in self._tasks], n, np.float32
            )
            missing = np.isnan(y)
            if missing.any():  # rows without a task's label: masked, any valid value
                mask = torch.from_numpy(~missing)
                y[missing] = 0.0
            labels = torch.from_numpy(y)
        batch = Batch(
            torch.from_numpy(_stack_columns(sparse, n, np.int64)),
            torch.from_numpy(_stack_columns(dense, n, np.float32)),
            labels,
            mask,
        )
        if sequences:
            batch.sequences = torch.from_numpy(np.concatenate(sequences, axis=1))
            batch.lengths = torch.from_numpy(_stack_columns(lengths, n, np.int64))
        return batch

    def fit_transform(
        self, data: object, with_labels: bool = True, table: str = "the training data"
    ) -> Batch:
        """``fit(data)`` then ``transform(data)``."""
        columns = as_columns(data, arrow_strings=True, table=table)
        return self.fit(columns, table).transform(columns, with_labels=with_labels, table=table)

    # ------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """JSON-ready state: specs, scaling and (when fitted) vocabularies, statistics and
        label statistics."""
        state: dict = {
            "format": _FORMAT,
            "version": _VERSION,
            "features": [feature_to_dict(f) for f in self._features],
            "tasks": [task_to_dict(t) for t in self._tasks],
            "scaling": self.scaling,
            "vocabularies": None,
            "dense_stats": None,
            "labels": None,
        }
        if self._vocabularies is not None:
            state["vocabularies"] = {
                name: vocabulary.to_dict() for name, vocabulary in self._vocabularies.items()
            }
            state["dense_stats"] = {
                name: {"mean": mean, "offset": offset, "scale": scale}
                for name, (mean, offset, scale) in self._dense_stats.items()
            }
            state["labels"] = {name: head.state_dict() for name, head in self.heads.items()}
        return state

    @classmethod
    def from_dict(cls, state: dict) -> Preprocessor:
        """Inverse of :meth:`to_dict`; also reads version 1 (mtlrec 0.1.0), whose
        vocabularies keep 0.1.0's string keys and whose regression labels were not
        standardised."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise BundleError("not a saved mtlrec Preprocessor (missing format marker)")
        version = state.get("version")
        if version not in _READABLE_VERSIONS:
            raise BundleError(
                f"Preprocessor format version {version!r} is not supported (this mtlrec reads "
                f"versions {list(_READABLE_VERSIONS)}); re-fit or upgrade mtlrec"
            )
        try:
            pre = cls(
                [feature_from_dict(f) for f in state["features"]],
                [task_from_dict(t) for t in state["tasks"]],
                scaling=state["scaling"],
            )
            if state["vocabularies"] is not None:
                legacy = version == 1
                pre._vocabularies = {
                    f.name: vocabulary_from_dict(state["vocabularies"][f.name], legacy=legacy)
                    for f in pre.table_owners
                }
                for feature in pre.dense_features:
                    s = state["dense_stats"][feature.name]
                    pre._dense_stats[feature.name] = (
                        float(s["mean"]),
                        float(s["offset"]),
                        float(s["scale"]),
                    )
                for name, head_state in (state.get("labels") or {}).items():
                    pre.heads[name].load_state_dict(head_state)
        except ConfigError:  # a spec this mtlrec does not know (a newer task type, say)
            raise
        except (KeyError, TypeError, ValueError) as err:
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
            try:
                state = json.load(fh)
            except json.JSONDecodeError as err:
                raise BundleError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(state)

    def __repr__(self) -> str:
        return (
            f"Preprocessor(sparse={len(self.sparse_features)}, "
            f"sequence={len(self.sequence_features)}, dense={len(self.dense_features)}, "
            f"tasks={[t.name for t in self._tasks]}, scaling={self.scaling!r}, "
            f"fitted={self.is_fitted})"
        )
