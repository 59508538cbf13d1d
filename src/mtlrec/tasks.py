"""Task specifications and the task-type table (head activation, loss, metrics)."""

from __future__ import annotations

from dataclasses import dataclass

from .exceptions import ConfigError

#: task type -> metrics reported by ``evaluate`` (first one is the default monitor)
TASK_TYPES: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "logloss"),
    "regression": ("mae", "rmse"),
}

#: metrics where larger is better (all others are minimised)
MAXIMISED_METRICS = frozenset({"auc"})


@dataclass(frozen=True)
class Task:
    """One prediction target.

    Args:
        name: label column in the input table (and key of the model's outputs).
        type: ``"binary"`` (sigmoid head, log loss) or ``"regression"`` (identity, MSE).
        weight: multiplier of this task's loss in the total loss.
    """

    name: str
    type: str = "binary"
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"a task name must be a non-empty string, got {self.name!r}")
        if self.type not in TASK_TYPES:
            raise ConfigError(
                f"task {self.name!r}: unknown type {self.type!r}; "
                f"choose one of {sorted(TASK_TYPES)}"
            )
        if not isinstance(self.weight, int | float) or not self.weight >= 0:
            raise ConfigError(
                f"task {self.name!r}: weight must be a non-negative number, got {self.weight!r}"
            )

    @property
    def metrics(self) -> tuple[str, ...]:
        return TASK_TYPES[self.type]


def task_to_dict(task: Task) -> dict:
    return {"name": task.name, "type": task.type, "weight": float(task.weight)}


def task_from_dict(data: dict) -> Task:
    return Task(data["name"], type=data.get("type", "binary"), weight=data.get("weight", 1.0))


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
