"""Where training rows come from: one interface over a table in memory and a stream.

The training loop reads every source the same way: :meth:`Source.batches` yields an
epoch's :class:`~mtlrec.data.Batch` es, this process's share of each step when several
processes train together (``rank`` of ``world``). Streaming is another source of the
same batches, not another loop.

* :class:`InMemorySource`: the encoded table, shuffled by one permutation per epoch
  (drawn from the fit's generator, whose state at the epoch's start is the position a
  checkpoint keeps). With several processes, every process draws the same permutation
  and takes its consecutive part of each global batch, so the processes together take
  the very batches one process would.
* :class:`StreamSource`: a ``pyarrow.dataset`` (Parquet files, a folder of them, or CSV
  read in blocks). An epoch visits the units (row groups of Parquet files, whole CSV
  files) in an order drawn from ``(seed, epoch)``; process ``rank`` reads units
  ``rank, rank + world, ...`` of it. Each record batch is encoded by the preprocessor, and
  rows are shuffled within a window of ``shuffle_buffer`` rows (a block shuffle:
  the window is filled, permuted by a generator seeded from ``(seed, epoch)``, and
  emitted as batches; the rows short of a batch carry over into the next window). Peak
  memory is one window and one record batch, whatever the rows. The order depends only
  on the seed, the epoch and the files, so an epoch can be replayed to resume it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import torch

from ._validation import column_names
from .data import Batch, iterate_batches
from .exceptions import DataError

logger = logging.getLogger(__name__)

#: rows per record batch read from a stream
READ_ROWS = 65_536
#: rows shuffled together by a stream (its memory bound), unless the caller says
SHUFFLE_BUFFER = 262_144

#: suffixes read as Parquet and as CSV
_PARQUET = (".parquet", ".pq", ".parq")
_CSV = (".csv", ".tsv", ".txt", ".csv.gz")


def is_stream(data: object) -> bool:
    """True when ``data`` names rows on disk (a path, a folder) or is a pyarrow dataset."""
    return isinstance(data, str | os.PathLike | ds.Dataset)


def open_dataset(data: str | os.PathLike | ds.Dataset, columns: Sequence[str] = ()) -> ds.Dataset:
    """A pyarrow dataset of a Parquet file, a folder of Parquet files, a CSV file or a
    dataset, each file's schema checked for ``columns``: a file that lacks one, or whose
    type for it differs from the first file's, is a DataError naming both."""
    if isinstance(data, ds.Dataset):
        dataset = data
    else:
        path = Path(data)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        name = path.name.lower()
        fmt = "csv" if name.endswith(_CSV) else "parquet"
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
            csv = [p for p in files if p.name.lower().endswith(_CSV)]
            fmt = "csv" if csv and len(csv) == len(files) else "parquet"
            if not files:
                raise DataError(f"{path}: the folder holds no data files")
        elif fmt == "parquet" and not name.endswith(_PARQUET):
            raise DataError(
                f"{path}: expected a .parquet or .csv file (or a folder of Parquet files)"
            )
        try:
            dataset = ds.dataset(path, format=fmt)
        except (pa.ArrowInvalid, OSError) as error:
            raise DataError(f"{path}: cannot be read as {fmt} ({error})") from None
    check_schemas(dataset, columns)
    return dataset


def _hidden(path: Path, root: Path) -> bool:
    """Files pyarrow skips in a folder (names starting with '.' or '_')."""
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def check_schemas(dataset: ds.Dataset, columns: Sequence[str]) -> None:
    """DataError naming the file when a file lacks a column of ``columns`` or holds it
    with another type than the first file (Parquet footers are read, not the rows)."""
    first: dict[str, tuple[str, pa.DataType]] = {}
    for fragment in dataset.get_fragments():
        where = getattr(fragment, "path", "a fragment")
        try:
            schema = fragment.physical_schema
        except (pa.ArrowInvalid, OSError) as error:
            raise DataError(
                f"{where}: not a readable {_format(dataset)} file ({error}); the file may be "
                "truncated or corrupt: rewrite it or remove it from the folder"
            ) from None
        for name in columns:
            index = schema.get_field_index(name)
            if index < 0:
                raise DataError(
                    f"{where}: column {name!r} is missing (the file has columns "
                    f"{schema.names[:20]}); add it to the file or remove it from the model"
                )
            kind = schema.field(index).type
            seen = first.setdefault(name, (where, kind))
            if not _compatible(seen[1], kind):
                raise DataError(
                    f"column {name!r} is {kind} in {where} but {seen[1]} in {seen[0]}; give "
                    "the column one type in every file"
                )


def _format(dataset: ds.Dataset) -> str:
    return "CSV" if isinstance(dataset.format, ds.CsvFileFormat) else "Parquet"


def _compatible(a: pa.DataType, b: pa.DataType) -> bool:
    """Types one column may take in different files: equal, or both integers, both
    floats, both strings (Arrow's string and large string), or null in one of them."""
    if a == b or pa.types.is_null(a) or pa.types.is_null(b):
        return True
    for kind in (pa.types.is_integer, pa.types.is_floating):
        if kind(a) and kind(b):
            return True
    text = (pa.types.is_string, pa.types.is_large_string)
    return any(t(a) for t in text) and any(t(b) for t in text)


@dataclass
class Unit:
    """One piece a stream reads whole: a Parquet row group or a CSV file."""

    fragment: ds.Fragment
    rows: int | None

    @property
    def where(self) -> str:
        return getattr(self.fragment, "path", "a fragment")


def units_of(dataset: ds.Dataset) -> list[Unit]:
    """The dataset's units in file order: every row group of every Parquet file, every
    CSV file whole."""
    units = []
    for fragment in dataset.get_fragments():
        if isinstance(fragment, ds.ParquetFileFragment):
            for group in fragment.split_by_row_group():
                rows = sum(g.num_rows for g in group.row_groups) if group.row_groups else None
                units.append(Unit(group, rows))
        else:
            units.append(Unit(fragment, None))
    return units


def record_batches(
    units: Sequence[Unit],
    columns: Sequence[str],
    read_rows: int = READ_ROWS,
    schema: pa.Schema | None = None,
) -> Iterator[pa.RecordBatch]:
    """The record batches of ``units`` in order (``columns`` only; a unit's type cast to
    ``schema``'s); a file that fails mid-read is a DataError naming it."""
    for unit in units:
        try:
            for batch in unit.fragment.to_batches(
                columns=list(columns), batch_size=read_rows, schema=schema
            ):
                if batch.num_rows:
                    yield batch
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as error:
            raise DataError(
                f"{unit.where}: reading failed ({error}); the file may be truncated or "
                "corrupt: rewrite it or remove it"
            ) from None


class Source:
    """Batches of training rows, epoch by epoch (see the module docstring)."""

    #: rows per step of this process when known (progress bars), else None
    def steps(self, batch_size: int, rank: int = 0, world: int = 1) -> int | None:
        raise NotImplementedError

    def batches(
        self, epoch: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> Iterator[Batch]:
        """Epoch ``epoch``'s batches for process ``rank`` of ``world`` (``batch_size``
        rows per step over all processes)."""
        raise NotImplementedError

    def state(self, at_end: bool = False) -> dict:
        """What, with the epoch and the step, puts the source back at a position: in the
        current epoch, or (``at_end``) at the start of the next one."""
        return {}

    def restore(self, state: dict) -> None:
        """Inverse of :meth:`state`, before :meth:`batches` of the epoch it was taken in."""


class InMemorySource(Source):
    """An encoded table, reshuffled every epoch by ``generator``."""

    def __init__(self, data: Batch, generator: torch.Generator, shuffle: bool = True) -> None:
        self.data, self.generator, self.shuffle = data, generator, shuffle
        self._epoch_state = generator.get_state()

    def steps(self, batch_size: int, rank: int = 0, world: int = 1) -> int:
        return math.ceil(len(self.data) / batch_size)

    def batches(
        self, epoch: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> Iterator[Batch]:
        self._epoch_state = self.generator.get_state()
        whole = iterate_batches(self.data, batch_size, self.shuffle, self.generator)
        if world == 1:
            return whole
        return (part_of(batch, rank, world) for batch in whole)

    def state(self, at_end: bool = False) -> dict:
        return {"generator": self.generator.get_state() if at_end else self._epoch_state}

    def restore(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def part_of(batch: Batch, rank: int, world: int) -> Batch:
    """Process ``rank``'s consecutive part of a global batch (the first parts one row
    longer when the rows do not divide; possibly empty)."""
    size, extra = divmod(len(batch), world)
    start = rank * size + min(rank, extra)
    return batch.take(slice(start, start + size + (rank < extra)))


class StreamSource(Source):
    """Rows of a dataset on disk, encoded record batch by record batch.

    Args:
        dataset: the rows (:func:`open_dataset`).
        encode: turns a record batch into a Batch (the preprocessor's transform, and
            whatever the loop needs of the labels).
        columns: the columns to read.
        seed: seeds the units' order and the shuffle of each epoch.
        shuffle_buffer: rows shuffled together (0: no shuffling at all).
        read_rows: rows per record batch read.
    """

    def __init__(
        self,
        dataset: ds.Dataset,
        encode: Callable[[pa.RecordBatch], Batch],
        columns: Sequence[str],
        *,
        seed: int = 0,
        shuffle_buffer: int = SHUFFLE_BUFFER,
        read_rows: int = READ_ROWS,
    ) -> None:
        if shuffle_buffer < 0:
            raise DataError(f"shuffle_buffer must be >= 0 rows, got {shuffle_buffer}")
        self.dataset, self.encode, self.columns = dataset, encode, list(columns)
        self.seed, self.shuffle_buffer, self.read_rows = seed, shuffle_buffer, read_rows
        self.units = units_of(dataset)
        self.schema = pa.schema([dataset.schema.field(c) for c in self.columns])

    @property
    def rows(self) -> int | None:
        """Rows of the dataset when the files' metadata say (Parquet), else None."""
        counts = [u.rows for u in self.units]
        return None if any(c is None for c in counts) else sum(counts)

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle_buffer:
            return np.arange(len(self.units))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.units))

    def _mine(self, epoch: int, rank: int, world: int) -> list[Unit]:
        return [self.units[i] for i in self._order(epoch)[rank::world]]

    def steps(self, batch_size: int, rank: int = 0, world: int = 1) -> int | None:
        """The most steps any process takes (each reads ``batch_size // world`` rows a
        step; every process runs that many, see :meth:`batches`)."""
        local = max(batch_size // world, 1)
        most = 0
        for r in range(world):
            counts = [u.rows for u in self._mine(1, r, world)]
            if any(c is None for c in counts):
                return None
            most = max(most, math.ceil(sum(counts) / local))
        return most

    def read(self, units: Sequence[Unit] | None = None) -> Iterator[pa.RecordBatch]:
        """The raw record batches of ``units`` (default: all, in file order)."""
        return record_batches(
            self.units if units is None else units, self.columns, self.read_rows, self.schema
        )

    def batches(
        self, epoch: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> Iterator[Batch]:
        """This process's batches of ``batch_size // world`` rows (the last one shorter).
        Processes may get different numbers of batches; the loop keeps every process
        stepping until all are done (an exhausted process adds nothing)."""
        local = max(batch_size // world, 1)
        encoded = (self.encode(rb) for rb in self.read(self._mine(epoch, rank, world)))
        if not self.shuffle_buffer:
            return _windows(encoded, local, local)
        generator = torch.Generator().manual_seed(_mix(self.seed, epoch, rank))
        return _windows(encoded, local, self.shuffle_buffer, generator)

    def first_rows(self, rows: int) -> Batch:
        """The first ``rows`` rows in file order, encoded (for the output priors)."""
        parts, held = [], 0
        for rb in self.read():
            parts.append(self.encode(rb))
            held += len(parts[-1])
            if held >= rows:
                break
        return concat_batches(parts).take(slice(0, rows))


def describe_data(data: object) -> dict:
    """What identifies a training table for a checkpoint: its files and rows on disk,
    else its rows and columns."""
    if is_stream(data):
        dataset = data if isinstance(data, ds.Dataset) else open_dataset(data)
        files = getattr(dataset, "files", None) or []
        counted = units_of(dataset)
        rows = None if any(u.rows is None for u in counted) else sum(u.rows for u in counted)
        return {"files": [str(f) for f in files], "rows": rows}
    names = column_names(data)
    if names is None:
        return {"kind": type(data).__name__}
    rows = len(data) if not isinstance(data, dict) else len(next(iter(data.values())))
    return {"rows": rows, "columns": names}


def _mix(seed: int, epoch: int, rank: int) -> int:
    """One 63-bit seed from (seed, epoch, rank)."""
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _windows(
    parts: Iterator[Batch], size: int, window: int, generator: torch.Generator | None = None
) -> Iterator[Batch]:
    """Batches of ``size`` rows from parts of any length, gathered at least ``window``
    rows at a time and, with ``generator``, permuted within each window; the rows short
    of a batch carry over into the next window (copied: a view would keep the whole
    window alive); the last batch may be shorter."""
    pending: list[Batch] = []
    held = 0
    for part in parts:
        pending.append(part)
        held += len(part)
        if held >= window:
            whole = _permuted(concat_batches(pending), generator)
            full = len(whole) // size * size
            yield from iterate_batches(whole.take(slice(0, full)), size)
            pending = [whole.take(torch.arange(full, len(whole)))] if full < len(whole) else []
            held = len(whole) - full
    if held:
        yield from iterate_batches(_permuted(concat_batches(pending), generator), size)


def _permuted(batch: Batch, generator: torch.Generator | None) -> Batch:
    """The rows of ``batch`` in an order drawn from ``generator`` (as they are without)."""
    if generator is None:
        return batch
    return batch.take(torch.randperm(len(batch), generator=generator))


def concat_batches(parts: Sequence[Batch]) -> Batch:
    """The rows of ``parts`` in order, as one Batch."""
    if len(parts) == 1:
        return parts[0]
    if any(p.mask is not None for p in parts):  # a part with every label has no mask
        parts = [
            p if p.mask is not None else replace(p, mask=torch.ones_like(p.labels, dtype=bool))
            for p in parts
        ]
    fields = list(zip(*(p._fields() for p in parts), strict=True))
    return Batch(*(_cat(column) for column in fields))


def _cat(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    present = [t for t in tensors if t is not None]
    if not present:
        return None
    if len(present) != len(tensors):
        raise DataError("cannot join batches of which only some carry sample weights")
    return torch.cat(present)
