"""L2 penalties: on the embedding rows a batch looks up, and on every weight matrix."""

from __future__ import annotations

import torch

from ..data import Batch
from .terms import Term


class L2Embedding(Term):
    """lambda x the squared norm of every embedding row a batch looks up (once per
    lookup: sparse columns and real sequence items), per row of the batch:
    lambda / B sum_{b, s} ||e[id_bs]||^2."""

    name = "l2_embedding"
    per_row = True

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def value(self, network, batch: Batch) -> torch.Tensor:
        rows = network.embedding.looked_up(batch)
        return self.strength * sum(r.square().sum() for r in rows)

    def add_gradients(self, network, batch: Batch, scale: float) -> bool:
        layer = network.embedding
        if layer.sparse_grad:
            return False
        for table, ids in layer.used_rows(batch):
            rows = table.weight.index_select(0, ids)
            table.weight.grad.index_add_(0, ids, rows, alpha=2.0 * self.strength * scale)
        return True


class L2Dense(Term):
    """lambda x the sum of squares of every hidden and output weight matrix, per step."""

    name = "l2_dense"
    per_row = False

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def value(self, network, batch: Batch) -> torch.Tensor:
        return self.strength * sum(w.square().sum() for w in network.dense_weights())

    def add_gradients(self, network, batch: Batch, scale: float) -> bool:
        for w in network.dense_weights():
            w.grad.add_(w.detach(), alpha=2.0 * self.strength * scale)
        return True


def l2_terms(l2_embedding: float, l2_dense: float) -> list[Term]:
    """The L2 terms for these strengths (none for 0)."""
    terms: list[Term] = []
    if l2_embedding:
        terms.append(L2Embedding(l2_embedding))
    if l2_dense:
        terms.append(L2Dense(l2_dense))
    return terms
