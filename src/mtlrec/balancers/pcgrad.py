"""PCGrad, gradient surgery (Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020).

Each task's gradient g_i is projected onto the normal plane of every other task's
gradient g_j it conflicts with (g_i' . g_j < 0: g_i' <- g_i' - (g_i' . g_j) / ||g_j||^2
g_j), the others taken in a random order (a ``torch.Generator`` seeded from the fit's
seed); the update is the sum of the projected gradients. Every projected gradient is a
combination of the original ones, so the surgery runs on their Gram matrix and the
direction is one product with the gradients.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import BALANCERS, GradientBalancer


@BALANCERS.register("pcgrad", rank=40)
class PCGrad(GradientBalancer):
    """Sum of the task gradients with their pairwise conflicts projected away."""

    def start(self, weights: torch.Tensor, lr: float = 1e-3, seed: int = 0) -> None:
        super().start(weights, lr, seed)
        self.generator = torch.Generator().manual_seed(seed)

    def projection(self, gram: np.ndarray) -> np.ndarray:
        """A (T, T) with projected g_i' = sum_j A_ij g_j, from the Gram matrix (T, T)."""
        t = len(gram)
        a = np.eye(t)
        for i in range(t):
            others = [j for j in range(t) if j != i]
            for k in torch.randperm(len(others), generator=self.generator).tolist():
                j = others[k]
                dot = a[i] @ gram[:, j]  # g_i' . g_j
                if dot < 0 and gram[j, j] > 0:
                    a[i, j] -= dot / gram[j, j]
        return a

    def coefficients(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        return self.projection(gram).sum(0)
