"""The head contract: what a task type decides about labels, loss, predictions, metrics.

Shape legend: B batch rows, K outputs of the head (1 for binary, regression, Poisson).
Targets are the encoded labels (float32): 0/1, standardised values, class indices or
counts. Logits are (B,) when K = 1, else (B, K).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .._validation import Column, numeric_column
from ..exceptions import ConfigError, DataError, UndefinedMetricError
from ..metrics import undefined
from ..running import RunningMoments

if TYPE_CHECKING:
    from ..tasks import Task

#: smallest probability, mean count or class share a prior starts from (a task without
#: any positive in training starts at logit(1e-6), not at minus infinity)
PRIOR_FLOOR = 1e-6


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i v_i / sum_i w_i in float64, () for values (n,) or (K,) for (n, K)."""
    w = weights.double()
    return (w @ values.double()) / w.sum()


class Head:
    """Base of every task type; subclasses register with ``@HEADS.register(name)``.

    Class attributes:
        metric_functions: what ``evaluate`` reports, by name, each a function of
            (targets in the labels' units, predictions, sample_weight=weights or None);
            the first is the default monitor. ``metrics`` lists their names.
        optional_metrics: more metrics of the same form, computed when asked for
            (``evaluate(metrics=...)``, ``MultiTaskModel.compile(metrics=...)``).
        keras_losses: the Keras loss names that mean this head's loss (``compile``
            checks each task's against its head).
        maximised: the metrics where larger is better (the others are minimised).
        options: the ``Task`` options this head accepts besides name, type and weight.
        grouped_auc: ``evaluate(group=...)`` reports GAUC for it (one probability per row).

    An instance serves one task: ``fit`` learns label statistics from the training
    labels (kept in the preprocessor's JSON through ``state_dict``), ``encode`` checks
    and encodes a label column, ``loss`` / ``gradient`` / ``activate`` work on logits.
    """

    registered_name: ClassVar[str]
    metric_functions: ClassVar[Mapping[str, Callable[..., float]]] = {}
    optional_metrics: ClassVar[Mapping[str, Callable[..., float]]] = {}
    metrics: ClassVar[tuple[str, ...]] = ()
    keras_losses: ClassVar[tuple[str, ...]] = ()
    maximised: ClassVar[frozenset[str]] = frozenset()
    options: ClassVar[frozenset[str]] = frozenset()
    #: per-group AUC (GAUC, ``evaluate(group=...)``) applies to its predictions
    grouped_auc: ClassVar[bool] = False

    def __init__(self, task: Task | None = None) -> None:
        self.task = task

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.metrics = tuple(cls.metric_functions)

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
    def available_metrics(cls) -> dict[str, Callable[..., float]]:
        """Every metric ``evaluate`` can compute for this head, reported and optional."""
        return {**cls.metric_functions, **cls.optional_metrics}

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
        self.start_fit()
        self.add_labels(column)
        self.finish_fit()

    def start_fit(self) -> None:
        """Start learning label statistics from chunks of the training labels
        (:meth:`add_labels` each, then :meth:`finish_fit`; :meth:`fit` is one chunk)."""
        self._moments = RunningMoments()

    def add_labels(self, column: Column) -> None:
        """Add a chunk of training labels (checked as by encode)."""
        y = self.encode(column)
        self._moments.add(y[~np.isnan(y)])

    def finish_fit(self) -> None:
        """Set the statistics from every chunk added; DataError when none held a label."""
        if self._moments.count == 0:
            self.require_labelled(np.array([np.nan]))

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

    def prior(self, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
        """The constant logits (K,) that minimise the mean loss over training targets
        ``targets`` (n,) of weights ``weights`` (n,) (labelled rows only, n >= 1): where
        a new network's output bias starts, so that the task starts at its labels' base
        rate instead of pulling the shared layers towards it in the first steps. None (a
        head that does not say) leaves the bias at its initial 0."""
        return None

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
        self,
        targets: np.ndarray,
        predictions: np.ndarray,
        weights: np.ndarray | None = None,
        metrics: Sequence[str] | None = None,
    ) -> dict[str, float]:
        """The :attr:`metrics` (or those named in ``metrics``, of
        :meth:`available_metrics`) of predictions (from :meth:`activate`) against
        targets (encoded), weighted means with ``weights`` (N,). A metric the rows do
        not define is NaN, with an UndefinedMetricWarning naming the task, the metric
        and why."""
        y = self.decode(targets)
        functions = self.available_metrics()
        result = {}
        for name in self.metrics if metrics is None else metrics:
            try:
                result[name] = float(functions[name](y, predictions, sample_weight=weights))
            except UndefinedMetricError as why:
                result[name] = undefined(self.name, name, why)
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
