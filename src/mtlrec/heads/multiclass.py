"""Multiclass task: K classes learned from the training labels; softmax cross-entropy.

Labels may be integers or strings (any value whose ``str`` names the class); the K
classes are the sorted distinct training labels, saved with the model, and predictions
are (N, K) class probabilities in that order (``MultiTaskModel.predict_classes`` maps
them back to labels). Metrics: accuracy, log loss, and the macro average of the
one-vs-rest AUCs of the classes that occur (and do not fill) the evaluation set.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F

from .._validation import Column
from ..exceptions import DataError
from ..metrics import accuracy, macro_auc, multiclass_log_loss
from ..vocabulary import Vocabulary, VocabularyCounter
from . import HEADS
from .base import PRIOR_FLOOR, Head


@HEADS.register("multiclass", rank=20)
class Multiclass(Head):
    """One of K classes per row; probabilities = softmax(logits (B, K))."""

    metric_functions = MappingProxyType(
        {"accuracy": accuracy, "logloss": multiclass_log_loss, "auc": macro_auc}
    )
    keras_losses = ("sparse_categorical_crossentropy", "categorical_crossentropy", "cross_entropy")
    maximised = frozenset({"accuracy", "auc"})

    def __init__(self, task=None) -> None:
        super().__init__(task)
        self.vocabulary: Vocabulary | None = None

    @property
    def classes(self) -> np.ndarray | None:
        return None if self.vocabulary is None else self.vocabulary.values

    @property
    def num_outputs(self) -> int:
        if self.vocabulary is None:
            raise DataError(f"task {self.name!r}: the classes are learned by fit")
        return len(self.vocabulary)

    def start_fit(self) -> None:
        self._counter = VocabularyCounter(self.name)

    def add_labels(self, column: Column) -> None:
        self._counter.add([column])

    def finish_fit(self) -> None:
        vocabulary = self._counter.finish()
        if len(vocabulary) == 0:
            self.require_labelled(np.array([np.nan]))
        self.vocabulary = vocabulary
        if len(self.vocabulary) < 2:
            raise DataError(
                f"task {self.name!r} (multiclass): column {self.name!r} holds only the class "
                f"{self.vocabulary.values[:1].tolist()} in the training data; a multiclass "
                "task needs at least two classes"
            )

    def state_dict(self) -> dict[str, Any]:
        assert self.vocabulary is not None
        return {"classes": self.vocabulary.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.vocabulary = Vocabulary.from_dict(state["classes"])

    def encode(self, column: Column) -> np.ndarray:
        assert self.vocabulary is not None, "fit first"
        positions = self.vocabulary.positions(column, missing=-2)
        unknown = positions == -1
        if unknown.any():
            values = (
                column.to_numpy(zero_copy_only=False)
                if isinstance(column, pa.Array | pa.ChunkedArray)
                else np.asarray(column)
            )
            shown = [str(v) for v in pd.unique(values[unknown])[:5]]
            raise DataError(
                f"task {self.name!r} (multiclass): column {self.name!r} holds classes not "
                f"seen in training: {shown}; the model knows "
                f"{[str(c) for c in self.vocabulary.values[:10]]}; drop those rows"
            )
        targets = positions.astype(np.float64)
        targets[positions == -2] = np.nan  # missing: no label on this row
        return targets

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        """The most probable class of each row of (N, K) probabilities, as labels."""
        assert self.vocabulary is not None
        return self.vocabulary.values[np.asarray(probabilities).argmax(axis=1)]

    def prior(self, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The log class shares (K,), centred (softmax ignores a common shift)."""
        counts = torch.bincount(targets.long(), weights.double(), minlength=self.num_outputs)
        logs = (counts / counts.sum()).clamp_min(PRIOR_FLOOR).log()
        return (logs - logs.mean()).float()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets.long(), reduction="none")

    def gradient(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        grad = torch.softmax(logits, dim=1)
        rows = torch.arange(len(targets), device=logits.device)
        grad[rows, targets.long()] -= 1.0
        return grad

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1)
