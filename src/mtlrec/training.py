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
from .flat import FlatParameters, can_flatten
from .manual import ManualStep
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
    cls = _OPTIMIZERS[name]
    params = list(params)
    try:  # one fused kernel per step instead of a loop over parameters (torch >= 2.4)
        return cls(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=lr, weight_decay=weight_decay)


#: embedding rows from which tables get sparse (row-wise, lazy) updates by default
SPARSE_ROWS = 100_000


def direct_adam_step(optimizer: torch.optim.Optimizer) -> Callable[[], None] | None:
    """A step that calls torch's fused Adam/AdamW kernel directly, for an optimizer over
    one tensor (the flat parameters); None when that does not apply.

    ``Optimizer.step`` spends about 100 µs per call on bookkeeping (hooks, grouping by
    device, profiling labels) around a kernel that takes 30-50 µs for a model of Adult's
    size. The kernel, its arguments and the state it updates are the ones ``step`` uses,
    read afresh at every call (so learning-rate schedules apply), and the results are
    bit-identical. The first call goes through ``step`` to create the state; anything
    unusual (a tensor lr, capturable or differentiable mode) always does.
    """
    groups = optimizer.param_groups
    if (
        type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW)
        or len(groups) != 1
        or len(groups[0]["params"]) != 1
        or not groups[0].get("fused")
    ):
        return None
    decoupled = isinstance(optimizer, torch.optim.AdamW) or groups[0].get(
        "decoupled_weight_decay", False
    )
    kernel = getattr(torch, "_fused_adamw_" if decoupled else "_fused_adam_", None)
    if kernel is None:
        return None

    def step() -> None:
        group = optimizer.param_groups[0]  # read afresh: load_state_dict replaces groups
        param = group["params"][0]
        state = optimizer.state.get(param)
        if (
            not state
            or param.grad is None
            or isinstance(group["lr"], torch.Tensor)
            or group.get("capturable")
            or group.get("differentiable")
        ):
            optimizer.step()
            return
        beta1, beta2 = group["betas"]
        state["step"].add_(1)
        kernel(
            [param],
            [param.grad],
            [state["exp_avg"]],
            [state["exp_avg_sq"]],
            [state["max_exp_avg_sq"]] if group["amsgrad"] else [],
            [state["step"]],
            amsgrad=group["amsgrad"],
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )

    return step


class Optimizers:
    """One step over every parameter: a fused optimizer over the flat dense parameters
    and, for sparse embedding tables, a row-wise one (SparseAdam for Adam/AdamW: only
    the rows a batch used are updated, so a step's cost does not grow with the tables)."""

    def __init__(
        self,
        dense: torch.optim.Optimizer,
        flat: FlatParameters | None,
        sparse: torch.optim.Optimizer | None = None,
    ) -> None:
        self.dense, self.flat, self.sparse = dense, flat, sparse
        self._dense_step = direct_adam_step(dense) or dense.step

    def zero_grad(self) -> None:
        if self.flat is not None:
            self.flat.zero_grad()  # keeps the flat gradient views in place
        else:
            self.dense.zero_grad(set_to_none=True)
        if self.sparse is not None:
            self.sparse.zero_grad(set_to_none=True)

    def step(self) -> None:
        self._dense_step()
        if self.sparse is not None:
            self.sparse.step()


def build_optimizers(
    network: MultiTaskNetwork,
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    sparse_embeddings: bool | None = None,
) -> Optimizers:
    """Optimizers for ``network``; ``sparse_embeddings`` None means: when the tables hold
    at least :data:`SPARSE_ROWS` rows (decay is then not applied to embedding rows)."""
    tables = [table.weight for table in network.embedding.tables]
    if sparse_embeddings is None:
        sparse_embeddings = sum(t.shape[0] for t in tables) >= SPARSE_ROWS
    sparse_embeddings = bool(sparse_embeddings and tables)
    network.embedding.sparse_grad = sparse_embeddings
    table_ids = {id(t) for t in tables} if sparse_embeddings else set()
    params = [p for p in network.parameters() if id(p) not in table_ids]
    flat = FlatParameters(params) if can_flatten(params) else None
    dense = make_optimizer(name, [flat.param] if flat else params, lr, weight_decay)
    sparse = None
    if sparse_embeddings:
        row_wise = torch.optim.SparseAdam if name in ("adam", "adamw") else _OPTIMIZERS[name]
        sparse = row_wise(tables, lr=lr)
    return Optimizers(dense, flat, sparse)


class Objective:
    """Per-task losses of a network's logits, computed for all tasks at once.

    Binary tasks use log loss on logits, regression tasks squared error; the total is the
    task-weighted sum plus the network's L2 penalty.
    """

    def __init__(self, tasks: Sequence[Task], device: torch.device | str = "cpu") -> None:
        self.num_tasks = len(tasks)
        self.weights = torch.tensor([float(t.weight) for t in tasks], device=device)
        self.binary = torch.tensor([t.type == "binary" for t in tasks], device=device)
        self.all_binary = all(t.type == "binary" for t in tasks)

    def task_losses(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """logits (T, B), labels (B, T) -> mean loss per task (T,)."""
        labels = labels.t()
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(1)
        if self.all_binary:
            return bce
        return torch.where(self.binary, bce, (logits - labels).square().mean(1))

    def __call__(
        self, network: MultiTaskNetwork, batch: ColumnBatch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, per-task losses (T,) detached) of one batch."""
        logits, _ = network.compute(batch.sparse, batch.dense)
        if logits.shape[0] > self.num_tasks:  # extra outputs (ESMM's CVR) carry no loss
            logits = logits[: self.num_tasks]
        losses = self.task_losses(logits, batch.labels)
        loss = (losses * self.weights).sum()
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
    optimizer: Optimizers,
    generator: torch.Generator,
    validate: Callable[[], dict] | None = None,
    early_stopping: EarlyStopping | None = None,
    verbose: int = 1,
    micro_batch: int | None = None,
) -> list[dict]:
    """Run the training loop; returns one history record per epoch.

    ``micro_batch``: batches larger than this are run as consecutive chunks whose
    gradients add up to the whole batch's (each chunk's loss weighted by its share of
    rows), so activations stay in cache; the step is the same. Not for batch norm, whose
    statistics depend on the rows seen together.
    """
    history: list[dict] = []
    steps = math.ceil(len(data) / batch_size)
    objective = Objective(network.tasks, data.sparse.device)
    manual = ManualStep.for_network(network, objective)
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
        running = torch.zeros(len(network.tasks), device=data.sparse.device)
        total = torch.zeros((), device=data.sparse.device)
        for step, batch in enumerate(iterate_batches(data, batch_size, True, generator), 1):
            optimizer.zero_grad()
            loss, losses = _backward(network, objective, batch, micro_batch, manual)
            optimizer.step()
            running.add_(losses)  # stays on the device: no host sync per step
            total.add_(loss.detach())
            if verbose >= 1 and (step % 50 == 0 or step == steps):
                bar.set_postfix(loss=f"{total.item() / step:.4f}", refresh=False)
                bar.update(step - bar.n)
        bar.close()
        names = [t.name for t in network.tasks]
        record = {
            "epoch": epoch,
            "seconds": time.perf_counter() - start,
            "loss": total.item() / steps,
            "task_loss": dict(zip(names, (running / steps).tolist(), strict=True)),
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


def _backward(
    network: MultiTaskNetwork,
    objective: Objective,
    batch: ColumnBatch,
    micro_batch: int | None,
    manual: ManualStep | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accumulate one batch's gradients (by hand when ``manual``, else by autograd);
    returns its (loss, per-task losses), detached."""
    n = len(batch)
    if not micro_batch or n <= micro_batch:
        return _accumulate(network, objective, batch, 1.0, manual)
    loss_sum = torch.zeros((), device=batch.sparse.device)
    losses_sum = torch.zeros(objective.num_tasks, device=batch.sparse.device)
    for start in range(0, n, micro_batch):
        part = batch.take(slice(start, start + micro_batch))
        share = len(part) / n
        loss, losses = _accumulate(network, objective, part, share, manual)
        loss_sum += loss * share
        losses_sum += losses * share
    return loss_sum, losses_sum


def _accumulate(
    network: MultiTaskNetwork,
    objective: Objective,
    batch: ColumnBatch,
    scale: float,
    manual: ManualStep | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add ``scale`` x the batch's gradients; (loss, per-task losses), detached."""
    if manual is not None:
        return manual(batch, scale)
    loss, losses = objective(network, batch)
    (loss * scale if scale != 1.0 else loss).backward()
    return loss.detach(), losses


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
