"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

The loss is sum_t exp(-s_t) weight_t L_t + s_t with a learnable s_t = log sigma_t^2 per
task (the homoscedastic noise's log variance), starting at 0 (every weight 1). The
network sees the multipliers exp(-s_t), fixed within a step, so the fast step applies;
s follows its own gradient in closed form, d/ds_t = 1 - exp(-s_t) weight_t L_t, from
the step's detached losses, with :class:`~mtlrec.balancers.SmallAdam`. Nothing bounds
exp(-s_t): a task whose loss falls below 1 gets a weight above 1 (the optimum is
exp(-s_t) = 1 / (weight_t L_t)).
"""

from __future__ import annotations

import torch

from .base import BALANCERS, Balancer, SmallAdam


@BALANCERS.register("uncertainty", rank=10)
class Uncertainty(Balancer):
    """Learned per-task log variances s_t; multipliers exp(-s_t).

    Args:
        lr: learning rate of s (default: the fit's).
    """

    def __init__(self, lr: float | None = None) -> None:
        self.lr = lr

    def start(self, weights: torch.Tensor, lr: float = 1e-3, seed: int = 0) -> None:
        super().start(weights, lr, seed)
        #: s_t = log sigma_t^2 (T,)
        self.log_variance = torch.zeros_like(weights)
        self._optimizer = SmallAdam(self.log_variance, self.lr or lr)
        self._current = torch.ones_like(weights)
        self._one = torch.ones_like(weights)

    def multipliers(self) -> torch.Tensor:
        return self._current

    def gradient(self, losses: torch.Tensor) -> torch.Tensor:
        """d/ds of sum_t exp(-s_t) weight_t L_t + s_t at the per-task mean losses (T,)."""
        return torch.addcmul(self._one, self._current * self.weights, losses, value=-1.0)

    def observe(self, losses, after=None, present=None) -> None:
        """One Adam step of s at the step's losses; an absent task's s stays."""
        self._optimizer.step(self.gradient(losses), present)
        self._current = self.log_variance.neg().exp_()  # a new tensor: see multipliers()

    def __repr__(self) -> str:
        return f"Uncertainty(lr={self.lr!r})"
