"""Binary task: one logit, sigmoid probability, log loss; AUC and log loss.

``Task(name, pos_weight=w)`` weighs the positive rows' loss by w (for rare positives),
as ``torch.nn.BCEWithLogitsLoss(pos_weight=w)``:
loss = w y softplus(-z) + (1 - y) softplus(z), d loss / dz = sigmoid(z) (1 + (w - 1) y) - w y.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import Column, format_values
from ..exceptions import DataError
from ..metrics import binary_accuracy, log_loss, roc_auc
from . import HEADS
from .base import PRIOR_FLOOR, Head, weighted_mean


@HEADS.register("binary", rank=0)
class Binary(Head):
    """Labels 0/1; P(label = 1) = sigmoid(logit); loss: binary cross-entropy on logits."""

    metric_functions = MappingProxyType({"auc": roc_auc, "logloss": log_loss})
    optional_metrics = MappingProxyType({"accuracy": binary_accuracy})
    keras_losses = ("binary_crossentropy", "bce", "log_loss", "logloss")
    maximised = frozenset({"auc"})
    options = frozenset({"pos_weight"})
    grouped_auc = True

    @property
    def pos_weight(self) -> float:
        return 1.0 if self.task is None else float(self.task.pos_weight)

    def loss_key(self) -> float:
        return self.pos_weight

    def encode(self, column: Column) -> np.ndarray:
        y = self.numeric_labels(column, "map the labels to numbers (0/1 for a binary task)")
        bad = (y != 0) & (y != 1) & ~np.isnan(y)
        if bad.any():
            raise DataError(
                f"task {self.name!r} (binary) has labels outside {{0, 1}} in column "
                f"{self.name!r}: {format_values(np.unique(y[bad]))}; map the labels to 0/1, "
                f"e.g. (df[{self.name!r}] == positive_value).astype(int)"
            )
        return y

    def prior(self, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """logit(q), q = w p / (w p + 1 - p): the positive rate p, or with pos_weight w
        the probability where the weighted loss's gradient sums to 0."""
        rate = weighted_mean(targets, weights)
        w = self.pos_weight
        q = (w * rate / (w * rate + 1.0 - rate)).clamp(PRIOR_FLOOR, 1.0 - PRIOR_FLOOR)
        return torch.logit(q).float().reshape(1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        w = self.pos_weight
        if w == 1.0:
            return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return F.binary_cross_entropy_with_logits(
            logits, targets, reduction="none", pos_weight=logits.new_tensor(w)
        )

    def gradient(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        w = self.pos_weight
        if w == 1.0:
            return torch.sigmoid(logits).sub_(targets)
        return torch.sigmoid(logits).mul_(targets * (w - 1.0) + 1.0).sub_(targets * w)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)
