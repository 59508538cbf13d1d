"""Experts per entity: shared experts that read the whole input row beside experts that
read only one feature group's columns (the user's, the item's), as in two-tower models.

A :class:`GroupedExperts` bank returns every expert's output stacked, shared ones
first, then each group's in the order given, so gates and mixing treat them as one
bank. Each part is a :class:`~mtlrec.layers.BankMLP` with its rule; the column
selection and the stacking have rules too (:mod:`mtlrec.layers.tape`), so the fast
step covers it.

Shape legend: B batch, I input row, I_g a group's columns, E experts, H expert units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .banks import BankLinear, BankMLP
from .tape import cat

#: the group name of experts that read every feature
SHARED = "shared"


class GroupedExperts(nn.Module):
    """``shared`` experts over the whole input row and, per feature group, experts over
    that group's columns only.

    Args:
        shared: experts reading every column (may be 0).
        entity: group name -> experts reading only that group's columns.
        columns: group name -> the input row's columns of the group, (I_g,) int64.
        in_features: width of the input row.
        units, activation_name, dropout, batch_norm: as for :class:`BankMLP`.
    """

    def __init__(
        self,
        shared: int,
        entity: Mapping[str, int],
        columns: Mapping[str, torch.Tensor],
        in_features: int,
        units: Sequence[int],
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        bank = {"activation_name": activation_name, "dropout": dropout, "batch_norm": batch_norm}
        self.shared = (
            BankMLP(shared, in_features, units, shared_input=True, **bank) if shared else None
        )
        self.entity = nn.ModuleDict()
        for group, n in entity.items():
            if n:
                self.register_buffer(f"columns_{group}", columns[group], persistent=False)
                self.entity[group] = BankMLP(
                    n, len(columns[group]), units, shared_input=True, **bank
                )
        self.member_groups = [SHARED] * shared + [
            g for g, part in self.entity.items() for _ in range(part.members)
        ]
        self.members = len(self.member_groups)
        self.out_features = units[-1] if units else in_features

    def input_readers(self) -> list[BankLinear] | None:
        """None with entity experts: they read parts of the row (nothing to fold)."""
        if len(self.entity) or self.shared is None:
            return None
        return self.shared.input_readers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, I) -> (E, B, H), shared experts first, then each group's."""
        parts = [] if self.shared is None else [self.shared(x)]
        for group, bank in self.entity.items():
            parts.append(bank(x.index_select(x.dim() - 1, getattr(self, f"columns_{group}"))))
        return parts[0] if len(parts) == 1 else cat(parts, 0)
