"""Per-task towers ending in one logit each."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .banks import BankLinear, BankMLP


class Towers(nn.Module):
    """One tower per task: MLP -> linear -> logit, each with its own output bias.

    When every task has the same hidden units all towers run as one bank; otherwise
    each tower is its own one-member bank (towers may differ per task).

    Args:
        units: one hidden-unit list per task.
    """

    def __init__(
        self,
        in_features: int,
        units: Sequence[Sequence[int]],
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        shared_input: bool = False,
    ) -> None:
        super().__init__()
        self.num_tasks = len(units)
        uniform = all(tuple(u) == tuple(units[0]) for u in units)
        groups = [(self.num_tasks, units[0])] if uniform else [(1, u) for u in units]
        self.shared_input = shared_input
        self.mlps = nn.ModuleList(
            BankMLP(n, in_features, u, activation_name, dropout, batch_norm, shared_input)
            for n, u in groups
        )
        self.outs = nn.ModuleList(
            BankLinear(n, m.out_features, 1, shared_input and not u)
            for (n, u), m in zip(groups, self.mlps, strict=True)
        )

    def input_readers(self) -> list[BankLinear] | None:
        """The layers reading a shared input directly (for folding)."""
        if not self.shared_input:
            return None
        return [m.layers[0] if m.layers else o for m, o in zip(self.mlps, self.outs, strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(T, B, I) per-task inputs, or (B, I) shared by all towers -> (T, B) logits."""
        if len(self.mlps) == 1:
            return self._tower(0, x).squeeze(-1)
        return torch.cat(
            [
                self._tower(t, x if self.shared_input else x[t : t + 1])
                for t in range(len(self.mlps))
            ]
        ).squeeze(-1)

    def _tower(self, k: int, x: torch.Tensor) -> torch.Tensor:
        out = self.outs[k]
        return out(x if out.shared_input else self.mlps[k](x))  # (n, B, 1)
