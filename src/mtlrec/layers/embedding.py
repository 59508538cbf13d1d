"""Input layer: sparse ids -> embeddings (one table per embedding size), plus dense values.

Its fast-path rule (:mod:`mtlrec.layers.tape`) adds each embedding row's gradient with
one ``index_add_`` per table (dense columns need none); with a folded input
(:mod:`mtlrec.layers.folding`) the lookup and the readers' first layers are one table.

Shape legend: B batch, S sparse columns, D dense columns, C copies, I input width.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Batch
from .tape import Tape, tape_of


class InputLayer(nn.Module):
    """Embeds every sparse column and concatenates the dense values.

    Features with the same embedding size share one table, addressed with per-feature
    offsets, so a batch costs one lookup per distinct size. With ``copies > 1`` each
    table is ``copies`` times wider and the layer returns one independent input per
    copy (used by the single-task baseline: one embedding set per task).

    Args:
        vocabulary_sizes: rows of each sparse feature's vocabulary (incl. reserved ids).
        embedding_dims: embedding size of each sparse feature.
        num_dense: number of dense columns.
        copies: independent copies of the embeddings.
    """

    def __init__(
        self,
        vocabulary_sizes: Sequence[int],
        embedding_dims: Sequence[int],
        num_dense: int,
        copies: int = 1,
        init_std: float = 0.05,
    ) -> None:
        super().__init__()
        self.copies = copies
        self.vocabulary_sizes = list(vocabulary_sizes)
        self.folded = None  # a layers.folding.FoldedInput while predicting with one
        self.sparse_grad = False  # sparse row gradients (set for very large tables)
        self.num_dense = num_dense
        self.groups: list[tuple[int, list[int]]] = []  # (dim, column indices)
        for dim in sorted(set(embedding_dims)):
            self.groups.append((dim, [i for i, d in enumerate(embedding_dims) if d == dim]))
        self.tables = nn.ModuleList()
        for g, (dim, cols) in enumerate(self.groups):
            sizes = torch.tensor([vocabulary_sizes[c] for c in cols])
            offsets = torch.cumsum(sizes, 0) - sizes
            self.register_buffer(f"offsets_{g}", offsets, persistent=False)
            self.register_buffer(f"columns_{g}", torch.tensor(cols), persistent=False)
            table = nn.Embedding(int(sizes.sum()), dim * copies)
            nn.init.uniform_(table.weight, -init_std, init_std)
            self.tables.append(table)
        self.out_features = sum(embedding_dims) + num_dense
        # first row of each sparse column in a folded table (columns one after another),
        # as a list for slicing and a buffer for the lookup (on the module's device)
        self.fold_starts = [0, *itertools.accumulate(self.vocabulary_sizes)][:-1]
        fold_offsets = torch.tensor(self.fold_starts, dtype=torch.long)
        self.register_buffer("fold_offsets", fold_offsets, persistent=False)

    def row_ids(self, sparse: torch.Tensor, g: int) -> torch.Tensor:
        """Row ids into table ``g`` of its columns: (B, S_g)."""
        offsets = getattr(self, f"offsets_{g}")
        if len(self.groups) == 1:  # one table holds every column, in order
            return sparse + offsets
        return sparse.index_select(1, getattr(self, f"columns_{g}")) + offsets

    @property
    def embedding_width(self) -> int:
        """Input features that come from embeddings (they lead the input row)."""
        return self.out_features - self.num_dense

    def fast_path_declines(self) -> str | None:
        """Why the input layer has no fast-path rule (None: it has one)."""
        return "sparse embedding gradients" if self.sparse_grad else None

    def forward(self, batch: Batch) -> torch.Tensor:
        """A batch's sparse (B, S) ids and dense (B, D) values -> (B, I), or (C, B, I) when
        copies > 1; a ProjectedInput (the readers' outputs) while :attr:`folded` is set."""
        tape = tape_of(batch)
        if tape is not None:
            return self._traced(tape, batch)
        return self.lookup(batch.sparse, batch.dense)

    def _traced(self, tape: Tape, batch: Batch):
        """The fast-path rule: the lookup without autograd, and the rows' gradients."""
        sparse, dense = batch.sparse, batch.dense
        if self.folded is not None:
            return self.folded(sparse, dense, tape)
        x = tape.value(self.lookup(sparse, dense), grad_width=self.embedding_width)

        def backward(grads):
            self.add_row_gradients(sparse, grads[0][..., : self.embedding_width])
            return [None]

        tape.record(backward, [None], [x])
        return x

    def add_row_gradients(self, sparse: torch.Tensor, grad: torch.Tensor) -> None:
        """Add the embedding rows' gradients to the tables' ``.grad``; grad is (B, W) for
        the W embedding columns, or (C, B, W) with copies."""
        start = 0
        for g, (table, (dim, columns)) in enumerate(zip(self.tables, self.groups, strict=True)):
            width = len(columns) * dim
            part = grad[..., start : start + width]
            if self.copies > 1:  # (C, B, S_g * dim) -> rows (B * S_g, C * dim)
                c, b = part.shape[:2]
                part = part.reshape(c, b, len(columns), dim).permute(1, 2, 0, 3)
            table.weight.grad.index_add_(
                0, self.row_ids(sparse, g).reshape(-1), part.reshape(-1, table.embedding_dim)
            )
            start += width

    def lookup(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """sparse (B, S) int64, dense (B, D) -> (B, I), or (C, B, I) when copies > 1;
        a ProjectedInput (the readers' outputs) while :attr:`folded` is set."""
        if self.folded is not None:
            return self.folded(sparse, dense)
        b = sparse.shape[0]
        parts = []
        for g, table in enumerate(self.tables):
            emb = self._lookup(table, self.row_ids(sparse, g))  # (B, S_g, C * dim)
            if self.copies == 1:
                parts.append(emb.reshape(b, -1))
            else:
                dim = table.embedding_dim // self.copies
                parts.append(
                    emb.view(b, -1, self.copies, dim)
                    .permute(2, 0, 1, 3)
                    .reshape(self.copies, b, -1)
                )
        if self.copies == 1:
            return torch.cat([*parts, dense], dim=1)
        return torch.cat([*parts, dense.expand(self.copies, *dense.shape)], dim=2)

    def fold(self, weight: torch.Tensor) -> torch.Tensor:
        """Per sparse column c, its embeddings times the rows of ``weight`` (I, N) its
        part of the input meets: (V, N), the columns' rows one after another."""
        rows: list[torch.Tensor] = [weight.new_empty(0)] * len(self.vocabulary_sizes)
        for c, table, ids, inputs in self._column_blocks():
            rows[c] = table[ids] @ weight[inputs]
        return torch.cat(rows)

    def unfold(self, weight: torch.Tensor, d_table: torch.Tensor, d_weight: torch.Tensor):
        """The backward of :meth:`fold` for the (V, N) table's gradient: writes the
        embedding rows of ``d_weight`` (I, N) and adds the embeddings' gradients."""
        starts = self.fold_starts
        for c, table, ids, inputs in self._column_blocks():  # in table order, not column order
            d_rows = d_table[starts[c] : starts[c] + self.vocabulary_sizes[c]]  # (V_c, N)
            torch.mm(table[ids].t(), d_rows, out=d_weight[inputs])
            table.grad[ids].addmm_(d_rows, weight[inputs].t())

    def _column_blocks(self) -> Iterator[tuple[int, torch.Tensor, slice, slice]]:
        """Per sparse column c: (c, its table's weight, the rows of its ids there, the
        input columns its embedding fills)."""
        first = 0  # first input column of the group
        for g, (dim, cols) in enumerate(self.groups):
            offsets = getattr(self, f"offsets_{g}").tolist()
            for j, c in enumerate(cols):
                ids = slice(offsets[j], offsets[j] + self.vocabulary_sizes[c])
                yield c, self.tables[g].weight, ids, slice(first + j * dim, first + (j + 1) * dim)
            first += len(cols) * dim

    def looked_up(self, sparse: torch.Tensor) -> list[torch.Tensor]:
        """Embedding rows used by a batch (for L2 regularisation of embeddings)."""
        return [self._lookup(table, self.row_ids(sparse, g)) for g, table in enumerate(self.tables)]

    def _lookup(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ``table`` for ids (B, S) -> (B, S, D).

        With ``sparse_grad`` the gradient holds only the rows a batch used, so a step
        costs the same whatever the table size. Otherwise ``index_select``: its backward
        (an index_add) is about 1.6x faster on CPU than ``embedding``'s for small tables.
        """
        if self.sparse_grad:
            return F.embedding(ids, table.weight, sparse=True)
        return table.weight.index_select(0, ids.reshape(-1)).view(*ids.shape, -1)
