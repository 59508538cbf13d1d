"""Task specifications: what to predict, with which head, and how much it weighs."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .exceptions import ConfigError
from .heads import HEADS, Head


@dataclass(frozen=True)
class Task:
    """One prediction target.

    Args:
        name: label column in the input table (and key of the model's outputs).
        type: a registered task type (``mtlrec.heads.list_heads()``): ``"binary"``
            (sigmoid, log loss), ``"regression"`` (squared error on standardised labels),
            ``"multiclass"`` (softmax over the classes seen in training), ``"poisson"``
            (counts, log link).
        weight: multiplier of this task's loss in the total loss.
        standardize: regression only: train on labels standardised with the training
            labels' mean and standard deviation (predictions are mapped back); False
            trains on the raw labels.
    """

    name: str
    type: str = "binary"
    weight: float = 1.0
    standardize: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"a task name must be a non-empty string, got {self.name!r}")
        if self.type not in HEADS:
            raise ConfigError(
                f"task {self.name!r}: unknown type {self.type!r}; choose one of {HEADS.names()}"
            )
        if (
            isinstance(self.weight, bool)
            or not isinstance(self.weight, int | float)
            or not self.weight >= 0
        ):
            raise ConfigError(
                f"task {self.name!r}: weight must be a non-negative number, got {self.weight!r}"
            )
        if not isinstance(self.standardize, bool):
            raise ConfigError(
                f"task {self.name!r}: standardize must be True or False, got {self.standardize!r}"
            )
        self.head_class.check_task(self)

    @property
    def head_class(self) -> type[Head]:
        return HEADS.get(self.type)

    @property
    def metrics(self) -> tuple[str, ...]:
        """What ``evaluate`` reports for this task (the first is the default monitor)."""
        return self.head_class.metrics

    def head_options(self) -> dict[str, Any]:
        """The head options set away from their defaults."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in _HEAD_OPTIONS and getattr(self, f.name) != f.default
        }


#: Task fields that only some heads take (each head lists the ones it accepts)
_HEAD_OPTIONS = frozenset({"standardize"})


def task_to_dict(task: Task) -> dict:
    return {
        "name": task.name,
        "type": task.type,
        "weight": float(task.weight),
        **task.head_options(),
    }


def task_from_dict(data: dict) -> Task:
    options = {k: data[k] for k in _HEAD_OPTIONS if k in data}
    return Task(
        data["name"], type=data.get("type", "binary"), weight=data.get("weight", 1.0), **options
    )


def check_tasks(tasks: list[Task] | tuple[Task, ...], feature_names: set[str]) -> tuple[Task, ...]:
    """Validate a task list: non-empty, unique names, no label used as a feature."""
    tasks = tuple(Task(t) if isinstance(t, str) else t for t in tasks)
    if not tasks:
        raise ConfigError("tasks: give at least one Task")
    seen: set[str] = set()
    for task in tasks:
        if not isinstance(task, Task):
            raise ConfigError(f"tasks: expected Task, got {type(task).__name__}")
        if task.name in seen:
            raise ConfigError(f"tasks: task {task.name!r} is listed twice")
        if task.name in feature_names:
            raise ConfigError(
                f"task {task.name!r} is also listed as a feature; a label must not be an input"
            )
        seen.add(task.name)
    return tasks
