"""Regression task: one value, squared error on standardised targets; MAE and RMSE.

Targets are standardised with the mean and (population) standard deviation of the
training labels, so the loss and its gradients have the same scale whatever the labels'
units (a price around 1e6 trains like a rate around 0.1); predictions are mapped back.
``Task(name, type="regression", standardize=False)`` trains on the raw labels.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from .._validation import Column
from ..exceptions import DataError
from ..metrics import mae, mse, rmse
from . import HEADS
from .base import Head, weighted_mean


@HEADS.register("regression", rank=10)
class Regression(Head):
    """Real-valued labels; prediction = logit x std + mean; loss (logit - target)^2."""

    metric_functions = MappingProxyType({"mae": mae, "rmse": rmse})
    optional_metrics = MappingProxyType({"mse": mse})
    keras_losses = ("mean_squared_error", "mse")
    options = frozenset({"standardize"})

    def __init__(self, task=None) -> None:
        super().__init__(task)
        self.mean, self.std = 0.0, 1.0

    def start_fit(self) -> None:
        self.mean, self.std = 0.0, 1.0  # encode the chunks as they are
        super().start_fit()

    def finish_fit(self) -> None:
        super().finish_fit()
        if self.task is None or self.task.standardize:
            std = self._moments.std
            self.mean, self.std = self._moments.mean, std if std > 0 else 1.0

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.std = float(state["mean"]), float(state["std"])

    def encode(self, column: Column) -> np.ndarray:
        y = self.numeric_labels(column, "map the labels to numbers")
        if np.isinf(y).any():
            raise DataError(
                f"task {self.name!r} (regression) has infinite labels in column "
                f"{self.name!r}; drop or clip those rows"
            )
        return (y - self.mean) / self.std

    def decode(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(targets, dtype=np.float64) * self.std + self.mean

    def prior(self, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The mean target: about 0 on standardised labels, the labels' mean on raw ones."""
        return weighted_mean(targets, weights).float().reshape(1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (logits - targets).square()

    def gradient(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (logits - targets).mul_(2.0)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.std == 1.0 and self.mean == 0.0:
            return logits
        # in float64, then float32 like every prediction: a mean of 1e9 keeps its digits
        return (logits.double() * self.std + self.mean).float()
