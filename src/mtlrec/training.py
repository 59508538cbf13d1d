"""The training loop: per-task losses, optimizers, early stopping, progress output."""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import ColumnBatch, iterate_batches
from .exceptions import ConfigError
from .models import MultiTaskNetwork
from .tasks import MAXIMISED_METRICS, Task

_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
}


def make_optimizer(
    name: str, params, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Optimizer ``name`` over ``params``."""
    if name not in _OPTIMIZERS:
        raise ConfigError(f"optimizer: unknown name {name!r}; choose one of {sorted(_OPTIMIZERS)}")
    if not lr > 0:
        raise ConfigError(f"lr must be > 0, got {lr!r}")
    return _OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay)


def task_loss(task: Task, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean loss of one task: log loss from logits (binary) or squared error (regression)."""
    if task.type == "binary":
        return F.binary_cross_entropy_with_logits(logits, labels)
    return F.mse_loss(logits, labels)


def total_loss(network: MultiTaskNetwork, batch: ColumnBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted sum of task losses plus L2 penalty, and the per-task losses (T,)."""
    outputs = network(batch.sparse, batch.dense)
    losses = torch.stack(
        [task_loss(t, outputs[t.name], batch.labels[:, i]) for i, t in enumerate(network.tasks)]
    )
    weights = losses.new_tensor([t.weight for t in network.tasks])
    loss = (losses * weights).sum()
    penalty = network.penalty(batch.sparse)
    if penalty is not None:
        loss = loss + penalty
    return loss, losses.detach()


@dataclass
class EarlyStopping:
    """Stop when a validation metric of one task stops improving.

    Args:
        task: task name, e.g. ``"income"``.
        metric: metric of that task (``auc``/``logloss`` for binary, ``mae``/``rmse``).
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
        restore_best: reload the weights of the best epoch when training ends.
    """

    task: str
    metric: str = "auc"
    patience: int = 2
    min_delta: float = 0.0
    restore_best: bool = True
    best: float | None = field(default=None, init=False)
    best_epoch: int | None = field(default=None, init=False)
    best_state: dict | None = field(default=None, init=False, repr=False)
    waited: int = field(default=0, init=False)

    @classmethod
    def parse(cls, spec: str | EarlyStopping, patience: int = 2) -> EarlyStopping:
        """An EarlyStopping from ``"task"`` or ``"task/metric"`` (or one already built)."""
        if isinstance(spec, EarlyStopping):
            return spec
        task, _, metric = spec.partition("/")
        return cls(task, metric or "auc", patience=patience)

    def check(self, tasks: Sequence[Task]) -> None:
        by_name = {t.name: t for t in tasks}
        if self.task not in by_name:
            raise ConfigError(
                f"early_stopping: unknown task {self.task!r}; choose one of {list(by_name)}"
            )
        allowed = by_name[self.task].metrics
        if self.metric not in allowed:
            raise ConfigError(
                f"early_stopping: task {self.task!r} reports {list(allowed)}, not {self.metric!r}"
            )

    def update(self, epoch: int, metrics: dict, network: torch.nn.Module) -> bool:
        """Record an epoch's validation metrics; True when training should stop."""
        value = metrics[self.task][self.metric]
        sign = 1.0 if self.metric in MAXIMISED_METRICS else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.waited = value, epoch, 0
            if self.restore_best:
                self.best_state = copy.deepcopy(network.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience


def train(
    network: MultiTaskNetwork,
    data: ColumnBatch,
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    validate: Callable[[], dict] | None = None,
    early_stopping: EarlyStopping | None = None,
    verbose: int = 1,
) -> list[dict]:
    """Run the training loop; returns one history record per epoch."""
    history: list[dict] = []
    steps = math.ceil(len(data) / batch_size)
    for epoch in range(1, epochs + 1):
        network.train()
        start = time.perf_counter()
        bar = tqdm(
            total=steps,
            desc=f"epoch {epoch}/{epochs}",
            disable=verbose < 1,
            leave=False,
            file=sys.stderr,
            mininterval=0.5,
        )
        running = torch.zeros(len(network.tasks) + 1)
        for step, batch in enumerate(iterate_batches(data, batch_size, True, generator), 1):
            loss, losses = total_loss(network, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += torch.cat([loss.detach().reshape(1), losses]).cpu()
            if verbose >= 1 and (step % 50 == 0 or step == steps):
                bar.set_postfix(loss=f"{running[0].item() / step:.4f}", refresh=False)
                bar.update(step - bar.n)
        bar.close()
        record = {
            "epoch": epoch,
            "seconds": time.perf_counter() - start,
            "loss": running[0].item() / steps,
            "task_loss": {
                t.name: running[i + 1].item() / steps for i, t in enumerate(network.tasks)
            },
        }
        if validate is not None:
            record["validation"] = validate()
        history.append(record)
        if verbose >= 1:
            tqdm.write(format_epoch(record, epochs), file=sys.stderr)
        if early_stopping is not None and early_stopping.update(
            epoch, record["validation"], network
        ):
            break
    if early_stopping is not None and early_stopping.best_state is not None:
        network.load_state_dict(early_stopping.best_state)
    return history


def format_epoch(record: dict, epochs: int) -> str:
    """One line per epoch: time, loss and validation metrics."""
    parts = [
        f"epoch {record['epoch']}/{epochs}",
        f"{record['seconds']:.1f}s",
        f"loss {record['loss']:.4f}",
    ]
    for task, metrics in record.get("validation", {}).items():
        parts.append(task + " " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return " - ".join(parts)
