"""Columnar batches: whole tensors in, index slices out (no per-row collation).

Shape legend: N rows, S sparse columns, D dense columns, T tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class ColumnBatch:
    """Model-ready columns.

    Attributes:
        sparse: (N, S) int64 per-feature category ids (0 missing, 1 unknown, 2.. vocabulary).
        dense: (N, D) float32 scaled numeric values.
        labels: (N, T) float32 labels in task order, or None when predicting.
    """

    sparse: torch.Tensor
    dense: torch.Tensor
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.sparse.shape[0])

    def to(self, device: torch.device | str) -> ColumnBatch:
        labels = None if self.labels is None else self.labels.to(device)
        return ColumnBatch(self.sparse.to(device), self.dense.to(device), labels)

    def take(self, index: torch.Tensor | slice) -> ColumnBatch:
        """Rows selected by an index tensor or a slice."""
        labels = None if self.labels is None else self.labels[index]
        return ColumnBatch(self.sparse[index], self.dense[index], labels)


def iterate_batches(
    data: ColumnBatch,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[ColumnBatch]:
    """Yield consecutive batches of ``data``; a random permutation of rows when shuffling."""
    n = len(data)
    if shuffle:  # one gather per epoch; every batch is then a zero-copy slice
        order = torch.randperm(n, generator=generator, device="cpu").to(data.sparse.device)
        data = data.take(order)
    for start in range(0, n, batch_size):
        yield data.take(slice(start, start + batch_size))
