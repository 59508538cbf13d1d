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

import torch
import torch.nn.functional as F

from .banks import BankLinear
from .embedding import InputLayer

#: largest folded table (all vocabularies x all reader outputs, fp32) worth building
FOLD_TABLE_BYTES = 16 << 20


class ProjectedInput:
    """Stands in for the input rows: what the layers reading them output, ``x @ W + b``
    for every reader, side by side in one (B, N) buffer."""

    __slots__ = ("out", "starts")

    def __init__(self, out: torch.Tensor, starts: dict[int, int]) -> None:
        self.out, self.starts = out, starts

    def output(self, layer: BankLinear) -> torch.Tensor:
        """The (E, B, O) output of reader ``layer``: a view into the shared buffer."""
        start = self.starts[id(layer)]
        width = layer.members * layer.out_features
        block = self.out[:, start : start + width]
        return block.view(-1, layer.members, layer.out_features).transpose(0, 1)


class FoldedInput:
    """The input layer and its readers' linear layers as one table lookup (see module).

    Build it with :meth:`build`, which returns None where folding does not pay.
    """

    def __init__(self, embedding: InputLayer, readers: Sequence[BankLinear]) -> None:
        weight = torch.cat([r.weight.reshape(r.in_features, -1) for r in readers], dim=1)
        bias = torch.cat([r.bias.reshape(-1) for r in readers])
        self.starts, start = {}, 0
        for r in readers:
            self.starts[id(r)] = start
            start += r.members * r.out_features
        self.table = embedding.fold(weight)  # (V, N)
        self.table[: embedding.vocabulary_sizes[0]] += bias  # each row meets column 0 once
        self.dense_weight = weight[weight.shape[0] - embedding.num_dense :].contiguous()
        sizes = torch.tensor(embedding.vocabulary_sizes, device=weight.device)
        self.offsets = torch.cumsum(sizes, 0) - sizes  # (S,) first row of each column

    @classmethod
    def build(
        cls, embedding: InputLayer, readers: Sequence[BankLinear] | None, rows: int
    ) -> FoldedInput | None:
        """The folded input for predicting ``rows`` rows, or None where it does not pay
        (no sparse column, several embedding copies, tables over FOLD_TABLE_BYTES or
        larger than the prediction) or does not apply (no readers declared)."""
        if not readers or embedding.copies != 1 or not embedding.vocabulary_sizes:
            return None
        vocabulary = sum(embedding.vocabulary_sizes)
        outputs = sum(r.members * r.out_features for r in readers)
        if vocabulary > rows or 4 * vocabulary * outputs > FOLD_TABLE_BYTES:
            return None
        return cls(embedding, readers)

    def __call__(self, sparse: torch.Tensor, dense: torch.Tensor) -> ProjectedInput:
        """sparse (B, S) ids, dense (B, D) -> every reader's output."""
        out = F.embedding_bag(sparse + self.offsets, self.table, mode="sum")  # (B, N)
        if dense.shape[1]:
            out.addmm_(dense, self.dense_weight)
        return ProjectedInput(out, self.starts)
