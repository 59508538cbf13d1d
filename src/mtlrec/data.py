"""The typed batch every model reads, and batch iteration (whole tensors, index slices).

Shape legend: N rows, S sparse columns, D dense columns, T tasks, Q sequence columns,
L the sum of their ``max_len``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """Model-ready columns of N rows.

    Attributes:
        sparse: (N, S) int64 category ids per sparse column (0 missing, 1 unknown,
            2.. the training vocabulary).
        dense: (N, D) float32 scaled numeric values.
        labels: (N, T) float32 encoded targets in task order (0/1, standardised values,
            class indices, counts), or None when predicting.
        mask: (N, T) bool, True where a row carries a label for the task; None when
            every row does.
        weights: (N,) float32 sample weights; None for weight 1 everywhere.
        sequences: (N, L) int64 item ids of every sequence column side by side, each
            column ``max_len`` wide, the most recent items first-aligned (oldest first)
            and padded with 0 after them; None without sequence features.
        lengths: (N, Q) int64 real items per row of each sequence column (padding is
            never an item); None without sequence features.
    """

    sparse: torch.Tensor
    dense: torch.Tensor
    labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    sequences: torch.Tensor | None = None
    lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.sparse.shape[0])

    @property
    def device(self) -> torch.device:
        return self.sparse.device

    def to(self, device: torch.device | str) -> Batch:
        """The batch on ``device`` (itself when already there)."""
        if self.sparse.device == torch.device(device):
            return self
        return Batch(*(None if t is None else t.to(device) for t in self._fields()))

    def take(self, index: torch.Tensor | slice) -> Batch:
        """Rows selected by an index tensor or a slice (a slice is a zero-copy view)."""
        if isinstance(index, slice) and index.step in (None, 1):
            start, stop, _ = index.indices(len(self))
            rows = max(stop - start, 0)  # narrow: a view, cheaper than slicing per step
            return Batch(*(None if t is None else t.narrow(0, start, rows) for t in self._fields()))
        return Batch(*(None if t is None else t[index] for t in self._fields()))

    def _fields(self) -> tuple:
        return (
            self.sparse,
            self.dense,
            self.labels,
            self.mask,
            self.weights,
            self.sequences,
            self.lengths,
        )


#: the name mtlrec 0.1.0 gave the batch type (kept: it is public API)
ColumnBatch = Batch


def iterate_batches(
    data: Batch,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[Batch]:
    """Yield consecutive batches of ``data``; a random permutation of rows when shuffling."""
    n = len(data)
    if shuffle:  # one gather per epoch; every batch is then a zero-copy slice
        order = torch.randperm(n, generator=generator, device="cpu").to(data.device)
        data = data.take(order)
    for start in range(0, n, batch_size):
        yield data.take(slice(start, start + batch_size))
