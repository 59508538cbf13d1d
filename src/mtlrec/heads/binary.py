"""Binary task: one logit, sigmoid probability, log loss; AUC and log loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import Column, format_values
from ..exceptions import DataError
from ..metrics import log_loss, roc_auc
from . import HEADS
from .base import Head


@HEADS.register("binary", rank=0)
class Binary(Head):
    """Labels 0/1; P(label = 1) = sigmoid(logit); loss: binary cross-entropy on logits."""

    metrics = ("auc", "logloss")
    maximised = frozenset({"auc"})

    def encode(self, column: Column) -> np.ndarray:
        y = self.numeric_labels(column, "map the labels to numbers (0/1 for a binary task)")
        bad = (y != 0) & (y != 1)
        if bad.any():
            raise DataError(
                f"task {self.name!r} (binary) has labels outside {{0, 1}} in column "
                f"{self.name!r}: {format_values(np.unique(y[bad]))}; map the labels to 0/1, "
                f"e.g. (df[{self.name!r}] == positive_value).astype(int)"
            )
        return y

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")

    def gradient(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits).sub_(targets)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def evaluate(self, targets: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        return {"auc": roc_auc(targets, predictions), "logloss": log_loss(targets, predictions)}
