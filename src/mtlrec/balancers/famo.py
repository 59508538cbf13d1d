"""FAMO, fast adaptive multitask optimisation (Liu, Feng, Stone & Liu, NeurIPS 2023).

Task logits xi (starting at 0) give z = softmax(xi). A step follows sum_t c_t grad L_t
with c_t = (z_t / L_t) / sum_j (z_j / L_j), the gradient of sum_t z_t log L_t up to a
positive factor: one backward, whatever the number of tasks. After the optimizer step
the same batch's losses are computed again (one more forward, without gradients), and
with delta_t = log L_t(before) - log L_t(after) the logits move by

    xi <- xi - beta (J_z^T delta + gamma xi),   J_z = dz/dxi = diag(z) - z z^T

so a task whose loss fell least gains weight. beta = 0.025 and gamma = 0.001 are the
paper's defaults; the reference implementation steps xi with Adam instead (weight decay
gamma), this is the paper's Algorithm 1. Losses get 1e-8 added before the log and the
division. The multipliers depend on each batch's losses: an autograd step.
"""

from __future__ import annotations

import math

import torch

from .base import BALANCERS, Balancer

_EPS = 1e-8


@BALANCERS.register("famo", rank=70)
class FAMO(Balancer):
    """Task weights that even out the rates at which the task losses fall.

    Args:
        beta: step size of the logits (the paper's 0.025).
        gamma: their decay (the paper's 0.001).
    """

    weighs_batches = True
    looks_after_step = True

    def __init__(self, beta: float = 0.025, gamma: float = 0.001) -> None:
        self.beta, self.gamma = float(beta), float(gamma)

    def start(self, weights: torch.Tensor, lr: float = 1e-3, seed: int = 0) -> None:
        super().start(weights, lr, seed)
        self.logits = torch.zeros_like(weights)  # xi

    def current_multipliers(self) -> torch.Tensor:
        return torch.softmax(self.logits, 0)

    def batch_multipliers(self, losses, present=None) -> torch.Tensor:
        """c_t = (z_t / L_t) / sum_j (z_j / L_j) over the tasks present (0 for the
        others: their loss and gradient are 0)."""
        ratio = torch.softmax(self.logits, 0) / (losses + _EPS)
        if present is not None:
            ratio = ratio * present
        c = ratio / ratio.sum().clamp_min(_EPS)
        self.record(c * self.weights, present)
        return c

    def logit_gradient(
        self, before: torch.Tensor, after: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        """J_z^T delta (T,) for the batch's losses before and after the step, over the
        tasks present (z their softmax; 0 for the others)."""
        delta = torch.log(before + _EPS) - torch.log(after + _EPS)
        logits = self.logits if present is None else self.logits.masked_fill(~present, -math.inf)
        z = torch.softmax(logits, 0)
        return z * (delta - torch.dot(z, torch.where(z > 0, delta, 0.0)))

    def observe(self, losses, after=None, present=None) -> None:
        if after is None:
            return
        step = self.logit_gradient(losses, after, present) + self.gamma * self.logits
        if present is not None:  # an absent task's logit stays
            step = step * present
        self.logits = self.logits - self.beta * step

    def __repr__(self) -> str:
        return f"FAMO(beta={self.beta!r}, gamma={self.gamma!r})"
