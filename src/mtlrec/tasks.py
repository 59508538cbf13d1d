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
        standardize: regression: train on labels standardised with the training
            labels' mean and standard deviation; poisson: on counts in units of their
            training dispersion (variance / mean, at least 1). Predictions are mapped
            back; False trains on the raw labels.
        pos_weight: binary only: weight of the positive rows' loss (e.g. negatives /
            positives for rare positives), as ``BCEWithLogitsLoss(pos_weight=...)``.
        after: a funnel step: the name of the (binary) task this one follows, e.g.
            ``Task("conversion", after="click")``: the label is the post-click outcome,
            and rows whose ``after`` label is 0 carry no label of this task of their
            own. The task's prediction is P(task | after), and the model also predicts
            the joint P(after and task) as the output ``joint``. Steps chain
            (click -> cart -> purchase: ``Task("purchase", after="cart")`` with
            ``Task("cart", after="click")``); each step is then conditioned on every
            step before it, and its joint is the product along the chain.
        funnel: how a funnel step is trained (:mod:`mtlrec.objective.funnel`):
            ``"conditional"`` (the default): the loss on the rows where ``after`` = 1;
            ``"entire_space"``: ESMM's form (Ma et al., SIGIR 2018), the joint
            P(after) x P(task | after) against ``after and task`` over all rows;
            ``"direct"``: the task's tower predicts the joint itself over all rows
            (P(task | after) is the ratio to P(after)), with ``penalty``.
        penalty: ``funnel="direct"``: weight of the penalty on predictions of the joint
            above P(after), mean over rows of ``relu(P(joint) - P(after))``.
        ipw: weight of an inverse-propensity-weighted post-click loss (ESCM^2, Wang
            et al., SIGIR 2022): the task's loss on the rows where ``after`` = 1, each
            divided by the predicted P(after) (no gradient through it, clipped at 0.05),
            summed over rows / the rows of the batch; ``conditional`` or
            ``entire_space``.
        joint: name of the joint output; default ``"<after>_<name>"``.
    """

    name: str
    type: str = "binary"
    weight: float = 1.0
    standardize: bool = True
    pos_weight: float = 1.0
    after: str | None = None
    funnel: str = "conditional"
    penalty: float = 0.0
    ipw: float = 0.0
    joint: str | None = None

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
        if (
            isinstance(self.pos_weight, bool)
            or not isinstance(self.pos_weight, int | float)
            or not self.pos_weight > 0
        ):
            raise ConfigError(
                f"task {self.name!r}: pos_weight must be a positive number, got {self.pos_weight!r}"
            )
        self._check_funnel()
        self.head_class.check_task(self)

    def _check_funnel(self) -> None:
        where = f"task {self.name!r}"
        for option in ("penalty", "ipw"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ConfigError(f"{where}: {option} must be a number >= 0, got {value!r}")
        if self.after is None:
            changed = [
                f"{o}={getattr(self, o)!r}"
                for o in _FUNNEL_OPTIONS
                if getattr(self, o) != _DEFAULTS[o]
            ]
            if changed:
                raise ConfigError(
                    f"{where}: {', '.join(changed)} apply to a funnel step; add after=... "
                    "(the task it follows), e.g. Task('conversion', after='click')"
                )
            return
        if not isinstance(self.after, str) or not self.after or self.after == self.name:
            raise ConfigError(
                f"{where}: after must name another task (the step before), got {self.after!r}"
            )
        if self.type != "binary":
            raise ConfigError(f"{where}: a funnel step (after=...) is binary, not {self.type!r}")
        if self.funnel not in FUNNELS:
            raise ConfigError(
                f"{where}: funnel must be one of {list(FUNNELS)}, got {self.funnel!r}"
            )
        if self.penalty and self.funnel != "direct":
            raise ConfigError(
                f"{where}: penalty applies to funnel='direct'; with funnel={self.funnel!r} "
                "the joint is P(after) x P(task | after), never above P(after)"
            )
        if self.ipw and self.funnel == "direct":
            raise ConfigError(
                f"{where}: ipw weights the post-click loss of P(task | after), which "
                "funnel='direct' does not train; use 'conditional' or 'entire_space'"
            )
        if self.joint is not None and (not isinstance(self.joint, str) or not self.joint):
            raise ConfigError(f"{where}: joint must be a non-empty name, got {self.joint!r}")

    @property
    def joint_name(self) -> str | None:
        """The joint output's name for a funnel step, else None."""
        if self.after is None:
            return None
        return self.joint or f"{self.after}_{self.name}"

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


#: how a funnel step is trained (Task.funnel)
FUNNELS = ("conditional", "entire_space", "direct")
#: Task fields that only some heads take (each head lists the ones it accepts)
_HEAD_OPTIONS = frozenset({"standardize", "pos_weight"})
#: Task fields of a funnel step
_FUNNEL_OPTIONS = ("funnel", "penalty", "ipw", "joint")
_DEFAULTS = {f.name: f.default for f in fields(Task)}


def task_to_dict(task: Task) -> dict:
    optional = [*_HEAD_OPTIONS, "after", *_FUNNEL_OPTIONS]
    return {
        "name": task.name,
        "type": task.type,
        "weight": float(task.weight),
        **{k: getattr(task, k) for k in sorted(optional) if getattr(task, k) != _DEFAULTS[k]},
    }


def task_from_dict(data: dict) -> Task:
    optional = [*_HEAD_OPTIONS, "after", *_FUNNEL_OPTIONS]
    options = {k: data[k] for k in optional if k in data}
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
    by_name = {t.name: t for t in tasks}
    outputs = set(by_name)
    for task in tasks:
        if task.after is None:
            continue
        parent = by_name.get(task.after)
        if parent is None:
            raise ConfigError(
                f"task {task.name!r}: after={task.after!r} is not a task; the tasks are "
                f"{list(by_name)}"
            )
        if parent.type != "binary":
            raise ConfigError(
                f"task {task.name!r} follows {parent.name!r}, which must be binary, not "
                f"{parent.type!r}"
            )
        chain, step = [task.name], parent
        while step.after is not None:  # a chain (click -> cart -> purchase), not a cycle
            if step.name in chain:
                raise ConfigError(
                    f"task {task.name!r}: the funnel steps (after=...) form a cycle through "
                    f"{chain}; a funnel starts at a task without after="
                )
            chain.append(step.name)
            if step.after not in by_name:  # reported when that task is checked
                break
            step = by_name[step.after]
        if task.joint_name in outputs or task.joint_name in feature_names:
            raise ConfigError(
                f"task {task.name!r}: its joint output {task.joint_name!r} clashes with a "
                "task, output or feature name; pass joint='another_name'"
            )
        outputs.add(task.joint_name)
    return tasks
