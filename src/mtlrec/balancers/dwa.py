"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, "End-to-End Multi-Task
Learning with Attention").

Each epoch e weighs task t by w_t(e) = T softmax_t(r_t(e-1) / temperature), where
r_t(e-1) = L_t(e-1) / L_t(e-2) is the ratio of its last two epochs' mean losses: a task
whose loss fell less gets more weight. The first two epochs weigh every task 1. The
weights are constant within an epoch, so the fast step applies. A task that no batch
of an epoch labelled keeps its weight; the ratio of a task counts the last two epochs
that labelled it, and the tasks with a ratio share their number in weight.
"""

from __future__ import annotations

import math

import torch

from ..exceptions import ConfigError
from .base import BALANCERS, Balancer


@BALANCERS.register("dwa", rank=20)
class DWA(Balancer):
    """Weights from the rate at which each task's epoch loss falls.

    Args:
        temperature: softmax temperature (the paper's 2; larger is more even).
    """

    def __init__(self, temperature: float = 2.0) -> None:
        if not isinstance(temperature, int | float) or not temperature > 0:
            raise ConfigError(f"dwa: temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def start(self, weights: torch.Tensor, lr: float = 1e-3, seed: int = 0) -> None:
        super().start(weights, lr, seed)
        #: each task's last two epoch losses (NaN: not yet)
        self._before = torch.full_like(weights, math.nan)
        self._last = torch.full_like(weights, math.nan)
        self._current: torch.Tensor | None = None  # None: every task 1

    def multipliers(self) -> torch.Tensor | None:
        return self._current

    def weights_from(self, before: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """T softmax(r / temperature) with r = last / before (two epochs' mean losses)."""
        ratio = last / before.clamp_min(1e-12)
        return len(ratio) * torch.softmax(ratio / self.temperature, dim=0)

    def end_epoch(self, losses: torch.Tensor) -> None:
        super().end_epoch(losses)
        seen = ~torch.isnan(losses)
        self._before = torch.where(seen, self._last, self._before)
        self._last = torch.where(seen, losses.detach(), self._last)
        ready = seen & ~torch.isnan(self._before)
        if not bool(ready.any()):
            return
        current = torch.ones_like(losses) if self._current is None else self._current
        rows = ready.nonzero().flatten()
        new = self.weights_from(self._before[rows], self._last[rows])
        self._current = current.index_copy(0, rows, new.to(current))

    def __repr__(self) -> str:
        return f"DWA(temperature={self.temperature!r})"
