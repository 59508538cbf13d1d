"""Poisson task: non-negative counts with a log link; Poisson deviance; MAE and RMSE.

The mean is exp(logit). The loss per row is half the Poisson unit deviance,
mu - y - y log(mu / y) (0 for a perfect fit; y log y = 0 at y = 0), whose gradient in
the logit is mu - y (McCullagh & Nelder, Generalized Linear Models, 1989).
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import Column, format_values
from ..exceptions import DataError
from ..metrics import mae, poisson_deviance, rmse
from . import HEADS
from .base import Head


@HEADS.register("poisson", rank=30)
class Poisson(Head):
    """Counts (non-negative numbers); prediction = exp(logit), the expected count."""

    metrics = ("deviance", "mae", "rmse")

    def encode(self, column: Column) -> np.ndarray:
        y = self.numeric_labels(column, "give counts as non-negative numbers")
        bad = np.isinf(y) | (y < 0)
        if bad.any():
            raise DataError(
                f"task {self.name!r} (poisson) needs non-negative finite counts in column "
                f"{self.name!r}, got {format_values(np.unique(y[bad]))}; drop those rows or "
                "use a regression task"
            )
        return y

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.exp() - targets * logits + torch.special.xlogy(targets, targets) - targets

    def gradient(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.exp().sub_(targets)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.exp()

    def evaluate(
        self, targets: np.ndarray, predictions: np.ndarray, weights: np.ndarray | None = None
    ) -> dict[str, float]:
        return {
            "deviance": poisson_deviance(targets, predictions, weights),
            "mae": mae(targets, predictions, weights),
            "rmse": rmse(targets, predictions, weights),
        }
