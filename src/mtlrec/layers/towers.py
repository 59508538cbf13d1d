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
    ) -> None:
        super().__init__()
        self.num_tasks = len(units)
        uniform = all(tuple(u) == tuple(units[0]) for u in units)
        groups = [(self.num_tasks, units[0])] if uniform else [(1, u) for u in units]
        self.mlps = nn.ModuleList(
            BankMLP(n, in_features, u, activation_name, dropout, batch_norm) for n, u in groups
        )
        self.outs = nn.ModuleList(
            BankLinear(n, m.out_features, 1) for (n, _), m in zip(groups, self.mlps, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(T, B, I) per-task inputs -> (T, B) logits."""
        if len(self.mlps) == 1:
            return self.outs[0](self.mlps[0](x)).squeeze(-1)
        return torch.cat(
            [
                out(mlp(x[t : t + 1]))
                for t, (mlp, out) in enumerate(zip(self.mlps, self.outs, strict=True))
            ]
        ).squeeze(-1)

    def weights(self) -> list[torch.Tensor]:
        return [w for m in self.mlps for w in m.weights()] + [o.weight for o in self.outs]
