"""Poisson task: non-negative counts with a log link; Poisson deviance; MAE and RMSE.

The mean is exp(logit) x c. The loss per row is half the Poisson unit deviance of the
counts in units of c, mu - y - y log(mu / y) with y and mu divided by c (0 for a
perfect fit; y log y = 0 at y = 0), whose gradient in the logit is (mu - y) / c
(McCullagh & Nelder, Generalized Linear Models, 1989). The deviance is homogeneous,
D(y / c, mu / c) = D(y, mu) / c, so the scale c only sets how strongly the count task
pulls on the layers it shares with the other tasks; by default (``standardize``) c is
the training counts' dispersion (:func:`count_scale`), else 1.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from .._validation import Column, format_values
from ..exceptions import DataError
from ..metrics import mae, mse, poisson_deviance, rmse
from . import HEADS
from .base import PRIOR_FLOOR, Head, weighted_mean


def count_scale(counts: np.ndarray) -> float:
    """The unit c of the training counts: their dispersion, variance / mean, at least 1
    (quasi-Poisson: the deviance divided by the dispersion weighs a row about as much as
    a log-likelihood term, whatever the counts' magnitude; counts that are Poisson keep
    c = 1). Measured against units of 1 and of the mean in docs/benchmarks.md
    (``benchmarks/prior_probe.py``): the shared task's AUC as with the mean, the counts'
    deviance as with 1, and counts x 2,500 train exactly as the counts."""
    return dispersion_scale(float(counts.mean()), float(counts.var()))


def dispersion_scale(mean: float, var: float) -> float:
    """:func:`count_scale` from the counts' mean and (population) variance."""
    return max(var / mean, 1.0) if mean > 0 else 1.0


@HEADS.register("poisson", rank=30)
class Poisson(Head):
    """Counts (non-negative numbers); prediction = exp(logit) x c, the expected count."""

    metric_functions = MappingProxyType({"deviance": poisson_deviance, "mae": mae, "rmse": rmse})
    optional_metrics = MappingProxyType({"mse": mse})
    keras_losses = ("poisson",)
    options = frozenset({"standardize"})

    def __init__(self, task=None) -> None:
        super().__init__(task)
        self.scale = 1.0

    def start_fit(self) -> None:
        self.scale = 1.0  # encode the chunks as they are
        super().start_fit()

    def finish_fit(self) -> None:
        super().finish_fit()
        if self.task is None or self.task.standardize:
            self.scale = dispersion_scale(self._moments.mean, self._moments.var)

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state.get("scale", 1.0))  # bundles before 0.2: counts as they are

    def encode(self, column: Column) -> np.ndarray:
        y = self.numeric_labels(column, "give counts as non-negative numbers")
        bad = np.isinf(y) | (y < 0)
        if bad.any():
            raise DataError(
                f"task {self.name!r} (poisson) needs non-negative finite counts in column "
                f"{self.name!r}, got {format_values(np.unique(y[bad]))}; drop those rows or "
                "use a regression task"
            )
        return y / self.scale

    def decode(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(targets, dtype=np.float64) * self.scale

    def prior(self, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """log of the mean count (in units of c)."""
        return weighted_mean(targets, weights).clamp_min(PRIOR_FLOOR).log().float().reshape(1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.exp() - targets * logits + torch.special.xlogy(targets, targets) - targets

    def gradient(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.exp().sub_(targets)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        mean = logits.exp()
        return mean if self.scale == 1.0 else mean.mul_(self.scale)
