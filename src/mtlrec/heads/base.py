"""The head contract: what a task type decides about labels, loss, predictions, metrics.

Shape legend: B batch rows, K outputs of the head (1 for binary, regression, Poisson).
Targets are the encoded labels (float32): 0/1, standardised values, class indices or
counts. Logits are (B,) when K = 1, else (B, K).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .._validation import Column, numeric_column
from ..exceptions import ConfigError, DataError

if TYPE_CHECKING:
    from ..tasks import Task


class Head:
    """Base of every task type; subclasses register with ``@HEADS.register(name)``.

    Class attributes:
        metrics: what ``evaluate`` reports, the first being the default monitor.
        maximised: the metrics where larger is better (the others are minimised).
        options: the ``Task`` options this head accepts besides name, type and weight.
        grouped_auc: ``evaluate(group=...)`` reports GAUC for it (one probability per row).

    An instance serves one task: ``fit`` learns label statistics from the training
    labels (kept in the preprocessor's JSON through ``state_dict``), ``encode`` checks
    and encodes a label column, ``loss`` / ``gradient`` / ``activate`` work on logits.
    """

    registered_name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]] = ()
    maximised: ClassVar[frozenset[str]] = frozenset()
    options: ClassVar[frozenset[str]] = frozenset()
    #: per-group AUC (GAUC, ``evaluate(group=...)``) applies to its predictions
    grouped_auc: ClassVar[bool] = False

    def __init__(self, task: Task | None = None) -> None:
        self.task = task

    # ------------------------------------------------------------------ spec
    @classmethod
    def check_task(cls, task: Task) -> None:
        """ConfigError when ``task`` sets an option this head does not take."""
        for option, value in task.head_options().items():
            if option not in cls.options:
                raise ConfigError(
                    f"task {task.name!r}: {option}={value!r} does not apply to a "
                    f"{cls.registered_name!r} task; remove it"
                )

    @classmethod
    def maximises(cls, metric: str) -> bool:
        """True when a larger ``metric`` is better."""
        return metric in cls.maximised

    @property
    def name(self) -> str:
        return self.task.name if self.task is not None else self.registered_name

    @property
    def num_outputs(self) -> int:
        """K, the logits per row."""
        return 1

    # ---------------------------------------------------------------- labels
    def fit(self, column: Column) -> None:
        """Learn label statistics from the training labels (checked as by encode; missing
        labels are left out)."""
        self.require_labelled(self.encode(column))

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready label statistics (empty when the head keeps none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def encode(self, column: Column) -> np.ndarray:
        """Targets (float64, one per row) of a label column, NaN where the label is
        missing (None, NaN, pandas NA: that row carries no label of this task); DataError
        naming the column for labels this head cannot take."""
        raise NotImplementedError

    def decode(self, targets: np.ndarray) -> np.ndarray:
        """Targets back in the labels' units (the inverse of encode where it scales)."""
        return targets

    @property
    def classes(self) -> np.ndarray | None:
        """The class labels a prediction's columns stand for (heads that predict one of
        several classes), else None."""
        return None

    def labels(self, predictions: np.ndarray) -> np.ndarray:
        """The most probable class of each row, as labels (class heads only)."""
        raise TypeError(f"a {self.registered_name!r} task predicts no classes")

    def numeric_labels(self, column: Column, fix: str) -> np.ndarray:
        """float64 labels of a numeric label column, NaN where missing; DataError when
        not numeric."""
        return numeric_column(column, self.name, f"label of task {self.name!r}", fix)

    def require_labelled(self, targets: np.ndarray) -> np.ndarray:
        """The labelled targets of the training labels; DataError when no row has one."""
        labelled = targets[~np.isnan(targets)]
        if labelled.size == 0:
            raise DataError(
                f"task {self.name!r}: column {self.name!r} holds no label at all (every "
                "value is missing) in the training data; give labels or remove the task"
            )
        return labelled

    # ---------------------------------------------------------------- logits
    def loss_key(self) -> Any:
        """What the per-row loss depends on besides logits and targets (hashable): tasks
        of one head class with equal keys and one logit are computed together, their
        logits stacked (T', B). None by default."""
        return None

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-row loss of logits against targets: (B,) for logits (B,) or (B, K), or
        (T', B) for the stacked logits (T', B) of tasks with one logit each."""
        raise NotImplementedError

    def gradient(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """d loss / d logits per row, same shape as logits (also stacked (T', B)), in
        closed form; None when the head has none (training then runs through autograd)."""
        return None

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """Predictions in the labels' units from logits: probabilities, values, means."""
        raise NotImplementedError

    def evaluate(
        self, targets: np.ndarray, predictions: np.ndarray, weights: np.ndarray | None = None
    ) -> dict[str, float]:
        """The :attr:`metrics` of predictions (from :meth:`activate`) against targets,
        weighted means with ``weights`` (N,)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
