"""Inference with the embedding lookup folded into the layers that read the input row.

A layer reading the input row ``x = [e_1[id_1], ..., e_S[id_S], dense]`` computes
``x @ W + b = sum_c e_c[id_c] @ W_c + dense @ W_d + b``, where ``W_c`` are the rows of
``W`` that column ``c``'s embedding meets. ``e_c @ W_c`` is a (V_c, N) table, so the
first layers of every reader (experts, gates, towers, all side by side: N outputs)
become one embedding-bag sum of S table rows plus a (B, D) @ (D, N) product; the bias
rides in the rows of the first column's table. For Adult (8 sparse columns of 16
dimensions, 5 dense) that replaces a K = 133 product with a sum of 8 rows. The tables
are built from the current weights for each prediction call, and only while they are
small (:data:`FOLD_TABLE_BYTES`) and fewer than the rows predicted.

Shape legend: B batch, S sparse columns, D dense columns, V rows of all vocabularies,
N outputs of all readers, E members of a reader, O outputs per member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .tape import Declined

if TYPE_CHECKING:
    from .banks import BankLinear
    from .embedding import InputLayer
    from .tape import Tape

#: largest folded table (all vocabularies x all reader outputs, fp32) worth building
FOLD_TABLE_BYTES = 16 << 20
#: a training step builds and differentiates the tables every step; it folds only with at
#: least this many batch rows per table row and reader outputs per input column (Adult,
#: 174 table rows, 133 input columns: 1024-row steps of MMoE, CGC and PLE 1.26x, 1.37x and
#: 1.19x faster; Shared-Bottom (128 outputs) 0.98x; 256-row steps 0.70x-1.06x)
TRAINING_ROWS_PER_TABLE_ROW = 4
TRAINING_OUTPUTS_PER_INPUT = 4


class ProjectedInput:
    """Stands in for the input rows: what the layers reading them output, ``x @ W + b``
    for every reader, side by side in one (B, N) buffer; in a fast training step (the
    ``tape`` is set) also the gradient of that buffer, written reader by reader."""

    __slots__ = ("grad", "out", "starts", "tape", "written")

    def __init__(self, out: torch.Tensor, starts: dict[int, int], tape: Tape | None = None):
        self.out, self.starts, self.tape = out, starts, tape
        self.grad: torch.Tensor | None = None
        self.written: set[int] = set()

    def output(self, layer: BankLinear) -> torch.Tensor:
        """The (E, B, O) output of reader ``layer``: a view into the shared buffer."""
        if id(layer) not in self.starts:
            raise Declined("a layer that is not one of the declared input readers read the input")
        return self._block(self.out, layer)

    def grad_of(self, layer: BankLinear) -> torch.Tensor:
        """The (E, B, O) view of the gradient buffer that reader ``layer`` writes whole."""
        if self.grad is None:
            self.grad = torch.empty_like(self.out)  # blocks no reader wrote are zeroed later
        self.written.add(id(layer))
        return self._block(self.grad, layer)

    def _block(self, buffer: torch.Tensor, layer: BankLinear) -> torch.Tensor:
        start = self.starts[id(layer)]
        block = buffer[:, start : start + layer.width]
        return block.view(-1, layer.members, layer.out_features).transpose(0, 1)

    def finished_grad(self, readers: Sequence[BankLinear]) -> torch.Tensor:
        """The (B, N) gradient, zero in the blocks of readers the forward did not use."""
        if self.grad is None:
            self.grad = torch.zeros_like(self.out)
        for r in readers:
            if id(r) not in self.written:
                start = self.starts[id(r)]
                self.grad[:, start : start + r.width].zero_()
        return self.grad


class FoldedInput:
    """The input layer and its readers' linear layers as one table lookup (see module).

    Build it with :meth:`build`, which returns None where folding does not pay.
    """

    def __init__(self, embedding: InputLayer, readers: Sequence[BankLinear]) -> None:
        self.embedding, self.readers = embedding, list(readers)
        weight = torch.cat([r.weight.reshape(r.in_features, -1) for r in readers], dim=1)
        self.weight = weight  # (I, N)
        bias = torch.cat([r.bias.reshape(-1) for r in readers])
        self.starts, start = {}, 0
        for r in readers:
            self.starts[id(r)] = start
            start += r.width
        self.table = embedding.fold(weight)  # (V, N)
        self.table[: embedding.vocabulary_sizes[0]] += bias  # each row meets column 0 once
        self.dense_weight = weight[weight.shape[0] - embedding.num_dense :].contiguous()
        self.offsets = embedding.fold_offsets  # (S,) first row of each column

    @staticmethod
    def pays(
        embedding: InputLayer,
        readers: Sequence[BankLinear] | None,
        rows: int,
        training: bool = False,
    ) -> bool:
        """Whether folding pays for predicting ``rows`` rows (or a training step on them):
        not without sparse columns, with several embedding copies, with sequence
        columns, for tables over FOLD_TABLE_BYTES or larger than the prediction, below
        the TRAINING_ limits, or without declared readers. Depends on shapes only."""
        if not readers or embedding.copies != 1 or not embedding.vocabulary_sizes:
            return False
        if embedding.sequences:  # pooled sequences have no folded form
            return False
        if embedding.sparse_grad:  # the tables would give the embeddings dense gradients
            return False
        vocabulary = sum(embedding.vocabulary_sizes)
        outputs = sum(r.width for r in readers)
        if vocabulary > rows or 4 * vocabulary * outputs > FOLD_TABLE_BYTES:
            return False
        return not training or (
            rows >= TRAINING_ROWS_PER_TABLE_ROW * vocabulary
            and outputs >= TRAINING_OUTPUTS_PER_INPUT * embedding.out_features
        )

    @classmethod
    def build(
        cls,
        embedding: InputLayer,
        readers: Sequence[BankLinear] | None,
        rows: int,
        training: bool = False,
    ) -> FoldedInput | None:
        """The folded input for ``rows`` rows, or None where it does not pay (:meth:`pays`)."""
        if not cls.pays(embedding, readers, rows, training):
            return None
        return cls(embedding, readers)

    def __call__(
        self, sparse: torch.Tensor, dense: torch.Tensor, tape: Tape | None = None
    ) -> ProjectedInput:
        """sparse (B, S) ids, dense (B, D) -> every reader's output; on ``tape``, the
        rule whose backward is :meth:`backward`."""
        out = F.embedding_bag(sparse + self.offsets, self.table, mode="sum")  # (B, N)
        if dense.shape[1]:
            out.addmm_(dense, self.dense_weight)
        projected = ProjectedInput(out, self.starts, tape)
        if tape is not None:
            tape.record(
                lambda grads: [self.backward(projected, sparse, dense)],
                [None],
                [projected],
                always=True,
            )
        return projected

    def backward(self, projected: ProjectedInput, sparse: torch.Tensor, dense: torch.Tensor):
        """Accumulate the gradients of the readers' weights and biases and of the
        embeddings from ``projected.grad`` (B, N): the rows each id met summed into a
        (V, N) table gradient (one ``index_add_`` per column), which meets the embeddings
        and the weight rows in (V, d) @ (d, N)-sized products instead of (B, I) @ (I, N)."""
        grad, embedding = projected.finished_grad(self.readers), self.embedding
        d_table = grad.new_zeros(self.table.shape)
        ids = sparse + self.offsets
        for c in range(ids.shape[1]):
            d_table.index_add_(0, ids[:, c], grad)
        d_weight = torch.empty_like(self.weight)
        embedding.unfold(self.weight, d_table, d_weight)
        if embedding.num_dense:
            torch.mm(dense.t(), grad, out=d_weight[d_weight.shape[0] - embedding.num_dense :])
        d_bias = d_table[: embedding.vocabulary_sizes[0]].sum(0)  # every row met column 0
        for r in self.readers:
            start, width = self.starts[id(r)], r.width
            r.weight.grad.view(r.in_features, -1).add_(d_weight[:, start : start + width])
            r.bias.grad.view(-1).add_(d_bias[start : start + width])
