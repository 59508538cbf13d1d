"""The training loop: steps (fast or autograd), optimizers, early stopping, progress.

A step accumulates one batch's gradients. :class:`FastStep` runs the network's forward
on a traced batch and its backward from the blocks' rules (:mod:`mtlrec.layers.tape`);
:class:`AutogradStep` runs the same forward under autograd. The fast step is used when
every part of the network, the objective and the set-up has an exact rule, and it
declines otherwise (the reason is logged and kept in the fit history), also in the
middle of a fit when the forward meets an operation without a rule. A loss balancer
(:mod:`mtlrec.balancers`) scales the task losses of either step, or, when it needs each
task's gradient or the batch's losses first, trains with :class:`BalancedStep`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from ._flat import FlatParameters, can_flatten
from .balancers import Balancer, make_balancer
from .data import Batch
from .distributed import Group
from .exceptions import (
    ConfigError,
    DataError,
    TrainingDivergedError,
    UndefinedMetricWarning,
    warn,
)
from .layers.tape import Declined, Tape, Traced, TracedBatch
from .models import MultiTaskNetwork
from .objective import Normalisers, Objective
from .sources import InMemorySource, Source
from .tasks import Task

if TYPE_CHECKING:
    from .checkpoint import Checkpoints

logger = logging.getLogger(__name__)

_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
}
#: the optimizer names ``fit`` takes
OPTIMIZER_NAMES = tuple(_OPTIMIZERS)


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

    def state_dict(self) -> dict:
        """The optimizers' states (Adam's moments and step counts)."""
        state = {"dense": self.dense.state_dict()}
        if self.sparse is not None:
            state["sparse"] = self.sparse.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict` (for optimizers built the same way)."""
        if ("sparse" in state) != (self.sparse is not None):
            raise ConfigError(
                "the saved optimizer state was made with other sparse_embeddings; resume "
                "with the setting the run started with"
            )
        self.dense.load_state_dict(state["dense"])
        if self.sparse is not None:
            self.sparse.load_state_dict(state["sparse"])

    def set_lr(self, lr: float) -> None:
        """Every parameter group's learning rate (a warm start may change it)."""
        for optimizer in (self.dense, self.sparse):
            for group in optimizer.param_groups if optimizer is not None else ():
                group["lr"] = lr


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
        allowed = by_name[self.task].head_class.available_metrics()
        if self.metric not in allowed:
            raise ConfigError(
                f"early_stopping: task {self.task!r} reports {list(allowed)}, not {self.metric!r}"
            )
        self._maximise = by_name[self.task].head_class.maximises(self.metric)

    def state_dict(self) -> dict:
        """The monitored best so far, its epoch and weights, and the epochs waited."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "waited": self.waited,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.best_state, self.waited = state["best_state"], int(state["waited"])

    def update(self, epoch: int, metrics: dict, network: torch.nn.Module) -> bool:
        """Record an epoch's validation metrics; True when training should stop."""
        if self.task not in metrics:
            raise DataError(
                f"early_stopping monitors {self.task}/{self.metric}, but no row of the "
                f"validation table carries a label of task {self.task!r}; give validation "
                "rows with that label, or monitor another task"
            )
        value = metrics[self.task][self.metric]
        if math.isnan(value):
            warn(
                f"early stopping: {self.task}/{self.metric} is NaN after epoch {epoch}: the "
                "validation rows do not define it (see the warning before); the epoch counts "
                "as no improvement",
                UndefinedMetricWarning,
            )
            self.waited += 1
            return self.waited >= self.patience
        sign = 1.0 if getattr(self, "_maximise", self.metric == "auc") else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.waited = value, epoch, 0
            if self.restore_best:
                self.best_state = copy.deepcopy(network.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience


# ---------------------------------------------------------------------------- steps


class AutogradStep:
    """One part of a batch through the network's forward and autograd's backward."""

    path = "autograd"

    def __init__(self, network: MultiTaskNetwork, objective: Objective) -> None:
        self.network, self.objective = network, objective

    def __call__(
        self, batch: Batch, coefficients: torch.Tensor, rows: int, first: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the part's gradients (normalised by the whole batch's label counts, in
        ``coefficients``, and its ``rows``); returns its (loss, per-task loss sums),
        detached."""
        outputs = self.network(batch)
        named = outputs.named()
        sums = self.objective.sums(named, batch, outputs.stacked)
        loss = self.objective.combine(sums, coefficients)
        terms = self.objective.term_loss(self.network, batch, rows, first, named)
        if terms is not None:
            loss = loss + terms
        loss.backward()
        return loss.detach(), sums.detach()


class FastStep:
    """One part of a batch by the blocks' rules: a traced forward, then the rules'
    backward, every gradient added straight into ``.grad`` (equal to autograd's to float
    rounding; tested over every registered architecture). :meth:`declines` says why it
    does not apply to a network and objective (see :func:`choose_step`)."""

    path = "fast"

    def __init__(self, network: MultiTaskNetwork, objective: Objective) -> None:
        self.network, self.objective = network, objective
        self._terms = bool(objective.terms)  # a step's work for them is skipped without

    @classmethod
    def declines(cls, network: nn.Module, objective: Objective) -> str | None:
        """Why the fast step cannot train ``network`` on ``objective``; None when it can."""
        if isinstance(network, nn.parallel.DistributedDataParallel | nn.DataParallel):
            return "the network is wrapped for data parallelism (its hooks need autograd)"
        for name, module in network.named_modules():
            reason = getattr(module, "fast_path_declines", lambda: None)()
            if reason is not None:
                return f"{name or 'network'}: {reason}"
            if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks:
                return f"{name or 'network'}: module hooks"
        if nn.modules.module._global_forward_hooks or nn.modules.module._global_backward_hooks:
            return "global module hooks"
        for name, p in network.named_parameters():
            if not p.requires_grad:
                continue
            if p.grad is None or p.grad.layout != torch.strided:
                return f"parameter {name}: its gradient is not a dense buffer"
            if p._backward_hooks or getattr(p, "_post_accumulate_grad_hooks", None):
                return f"parameter {name}: autograd hooks (e.g. DistributedDataParallel's)"
        return objective.fast_path_declines()

    def __call__(
        self, batch: Batch, coefficients: torch.Tensor, rows: int, first: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`AutogradStep.__call__`; raises :class:`Declined` (before touching
        any gradient) when the forward meets an operation without a rule."""
        network, objective = self.network, self.objective
        tape = Tape()
        traced = TracedBatch(*batch._fields(), tape=tape)
        folds = network.fold_readers(len(batch), training=True) is not None
        folding = network.folded_input(len(batch), training=True) if folds else _NOTHING
        with torch.no_grad(), folding:
            try:  # forward, not __call__: declines() made sure no hook would run
                outputs = network.forward(traced)
            except (TypeError, AttributeError) as error:
                raise Declined(
                    f"the forward applied an operation without a rule ({error})"
                ) from None
            logits = outputs.named()
            for name in objective.read_outputs:
                value = logits.get(name)
                if not isinstance(value, Traced) or value.tape is not tape:
                    raise Declined(f"output {name!r} was not computed by blocks with rules")
            stacked = outputs.stacked
            stacked = stacked if isinstance(stacked, Traced) else None
            grads, whole, sums, extra = objective.logit_gradients(
                {n: v.value for n, v in logits.items()},
                batch,
                coefficients,
                None if stacked is None else stacked.value,
                rows,
            )
            loss = objective.combine(sums, coefficients)
            if extra is not None:
                loss = loss + extra
            seeds: dict[int, torch.Tensor] = {}
            for name, grad in grads.items():  # one value may serve two outputs
                key = id(logits[name])
                seeds[key] = grad if key not in seeds else seeds[key] + grad
            if whole is not None:
                seeds[id(stacked)] = whole
            tape.backward(seeds)  # the seeded values stay alive in `outputs` meanwhile
            if not self._terms:
                return loss, sums
            objective.add_term_gradients(network, batch, rows, first)
            terms = objective.term_values(network, batch, rows, first)
        return (loss if terms is None else loss + terms), sums


_NOTHING = contextlib.nullcontext()


class BalancedStep:
    """A whole batch through autograd for a loss balancer (:mod:`mtlrec.balancers`)
    that needs more than the loss's gradient: each task's gradient of some parameters
    (gradient-level balancers, GradNorm's norms) or the batch's losses before they are
    weighed (FAMO).

    With L_t = S_t / N_t and the step's multipliers m_t (the balancer's, times its
    batch multipliers), row t of G (T, P) is the gradient of weight_t m_t L_t with
    respect to the balancer's parameters (one backward per task, the graph kept);
    :meth:`~mtlrec.balancers.Balancer.combine` turns G into their update direction,
    added to their ``.grad``. Every other parameter gets the ordinary gradient of
    sum_t weight_t m_t L_t; the objective's extra terms add theirs to every parameter,
    unbalanced. Micro-batches do not apply (the gradients are the whole batch's).
    """

    path = "autograd"

    def __init__(self, network: MultiTaskNetwork, objective: Objective, balancer: Balancer):
        self.network, self.objective, self.balancer = network, objective, balancer
        self.params: list[nn.Parameter] = []
        if balancer.gradient_level:
            self.params = [p for p in balancer.gradient_parameters(network) if p.requires_grad]
            if not self.params:
                raise ConfigError(
                    f"balancer {balancer.name!r}: the network declares no shared parameters "
                    "to balance (MultiTaskNetwork.shared_parameters)"
                )
        chosen = {id(p) for p in self.params}
        self.rest = [p for p in network.parameters() if p.requires_grad and id(p) not in chosen]

    def __call__(
        self, batch: Batch, coefficients: torch.Tensor, rows: int, first: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`AutogradStep.__call__`, for a whole batch."""
        network, objective, balancer = self.network, self.objective, self.balancer
        outputs = network(batch)
        named = outputs.named()
        sums = objective.sums(named, batch, outputs.stacked)
        normalisers = objective.normalisers(batch)
        losses = sums.detach() * normalisers.inverse  # L_t (T,)
        if balancer.weighs_batches:
            scale = balancer.batch_multipliers(losses, normalisers.present)
            if scale is not None:
                coefficients = coefficients * scale
        task_loss = objective.combine(sums, coefficients)
        terms = objective.term_loss(network, batch, rows, first, named)
        direction = None
        if self.params:
            grads = TaskGradients(sums * coefficients, self.params)
            direction = balancer.combine(grads.matrix, losses, normalisers.present)
        if direction is None:  # the ordinary gradient everywhere
            (task_loss if terms is None else task_loss + terms).backward()
        else:
            if self.rest:
                task_loss.backward(inputs=self.rest, retain_graph=terms is not None)
            grads.add_to_grad(direction)
            if terms is not None:
                terms.backward()
        loss = task_loss if terms is None else task_loss + terms
        return loss.detach(), sums.detach()


class TaskGradients:
    """Each task's gradient of ``params`` as one matrix (T, P), and the way back into
    their ``.grad``. A sparse gradient (an embedding table with ``sparse_grad``)
    contributes the rows the batch looked up (the same for every task)."""

    def __init__(self, task_losses: torch.Tensor, params: Sequence[nn.Parameter]) -> None:
        self.params = list(params)
        per_task = [
            torch.autograd.grad(loss, self.params, retain_graph=True, allow_unused=True)
            for loss in task_losses.unbind(0)
        ]
        columns, self.layouts = [], []
        for k, p in enumerate(self.params):
            column, layout = _task_columns(p, [grads[k] for grads in per_task])
            columns.append(column)
            self.layouts.append(layout)
        #: row t: task t's gradient, flattened (T, P)
        self.matrix = torch.cat(columns, dim=1) if len(columns) > 1 else columns[0]

    def add_to_grad(self, direction: torch.Tensor) -> None:
        """Add a direction (P,) laid out like a row of :attr:`matrix` to the ``.grad``."""
        start = 0
        for p, (kind, rows, shape) in zip(self.params, self.layouts, strict=True):
            size = math.prod(shape)
            piece = direction[start : start + size].view(shape)
            start += size
            if kind == "rows":
                piece = torch.sparse_coo_tensor(rows, piece, p.shape)
            elif kind == "sparse":
                piece = piece.to_sparse(1)
            if p.grad is None:
                p.grad = piece.clone()
            elif p.grad.is_sparse or piece.is_sparse:
                p.grad = p.grad + piece
            else:
                p.grad.add_(piece)  # in place: the flat optimizer reads these views


def _task_columns(p: nn.Parameter, grads: list[torch.Tensor | None]):
    """(the tasks' gradients of ``p`` flattened (T, n), its layout (kind, rows, shape)):
    ``"dense"``; ``"rows"``, the values of the sparse rows ``rows``; ``"sparse"``, a
    sparse gradient whose tasks used different rows, made dense."""
    if not any(g is not None and g.is_sparse for g in grads):
        dense = [torch.zeros_like(p) if g is None else g for g in grads]
        return torch.stack([g.reshape(-1) for g in dense]), ("dense", None, tuple(p.shape))
    grads = [None if g is None else g.coalesce() for g in grads]
    first = next(g for g in grads if g is not None)
    rows = first.indices()
    if all(g is None or torch.equal(g.indices(), rows) for g in grads):
        values = [torch.zeros_like(first.values()) if g is None else g.values() for g in grads]
        layout = ("rows", rows, tuple(first.values().shape))
        return torch.stack([v.reshape(-1) for v in values]), layout
    dense = [torch.zeros_like(p) if g is None else g.to_dense() for g in grads]
    return torch.stack([g.reshape(-1) for g in dense]), ("sparse", None, tuple(p.shape))


def choose_step(
    network: MultiTaskNetwork,
    objective: Objective,
    fast: bool = True,
    balancer: Balancer | None = None,
) -> tuple[AutogradStep | FastStep | BalancedStep, str | None]:
    """The step to train with and, for autograd, why (None when fast). A balancer that
    needs each task's gradient or the batch's losses gets a :class:`BalancedStep`."""
    needs = None if balancer is None else balancer.autograd_reason()
    if needs is not None:
        return BalancedStep(network, objective, balancer), needs
    reason = "fast=False" if not fast else FastStep.declines(network, objective)
    if reason is None:
        return FastStep(network, objective), None
    return AutogradStep(network, objective), reason


# ---------------------------------------------------------------------------- loop

#: a check of the loss (a device sync) every this many steps, for the progress bar and
#: divergence
CHECK_EVERY = 50
#: the loss has diverged when a window of steps averages this many times the first step's
DIVERGED_RATIO = 1e4


class Accumulator:
    """Accumulates whole batches' gradients with the chosen step, in micro-batches,
    the task losses scaled by the balancer's multipliers (default: ``"equal"``)."""

    def __init__(
        self,
        network: MultiTaskNetwork,
        objective: Objective,
        micro_batch: int | None = None,
        fast: bool = True,
        balancer: Balancer | str | None = None,
        group: Group | None = None,
        optimizer: Optimizers | None = None,
    ) -> None:
        self.network, self.objective, self.group = network, objective, group
        self.balancer = make_balancer(balancer)
        if group is not None and self.balancer.autograd_reason() is not None:
            raise ConfigError(
                f"balancer {self.balancer.name!r} needs each task's gradient or the batch's "
                "losses of the whole batch, which a multi-process fit does not gather; use "
                "'equal', 'uncertainty' or 'dwa' with several processes"
            )
        if group is not None and (optimizer is None or optimizer.sparse is not None):
            raise ConfigError(
                "a multi-process fit sums dense gradients: give sparse_embeddings=False"
            )
        #: the gradients a multi-process step sums: the flat buffer, or every parameter's
        self._shared = []
        if group is not None:
            flat = optimizer.flat
            self._shared = [flat.param] if flat is not None else [p for p in network.parameters()]
        self.step, self.reason = choose_step(network, objective, fast, self.balancer)
        # a balanced step needs each whole batch's gradients at once
        self.micro_batch = None if isinstance(self.step, BalancedStep) else micro_batch
        self._scaled: tuple = (None, None, None)  # coefficients, multipliers, product
        kind = type(self.balancer)
        #: whether the balancer acts per step at all (Equal does not: skipped)
        self._weighs = kind.multipliers is not Balancer.multipliers
        self._observes = kind.observe is not Balancer.observe
        if self.reason is None:
            logger.info("training step: fast (the blocks' rules, no autograd graph)")
        else:
            logger.info("training step: autograd (the fast step declines: %s)", self.reason)

    @property
    def path(self) -> str:
        """``"fast"`` or ``"autograd"``: the step that runs now."""
        return self.step.path

    def __call__(
        self, batch: Batch | None
    ) -> tuple[torch.Tensor, torch.Tensor, Normalisers] | None:
        """Accumulate one batch's gradients; (loss, per-task mean losses L_t (T,), the
        batch's normalisers: its label counts N_t, which tasks it carries), detached.
        In a multi-process fit, ``batch`` is this process's part (None when it has
        none left), everything returned is the global batch's, and the gradients
        are summed over the processes; None once no process has rows left."""
        if self.group is not None:
            return self._shared_step(batch)
        normalisers = self.objective.normalisers(batch)
        n = len(batch)
        loss, sums = self._accumulate(batch, normalisers, n, True)
        return loss, sums * normalisers.inverse, normalisers

    def _accumulate(
        self, batch: Batch, normalisers: Normalisers, rows: int, first: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, per-task loss sums S_t) of ``batch``, its gradients added; ``rows`` and
        ``normalisers`` are the whole step's, ``first``: whether it adds the per-step
        terms."""
        coefficients = normalisers.coefficients
        multipliers = self.balancer.multipliers() if self._weighs else None
        if multipliers is not None:
            coefficients = self._scale(coefficients, multipliers)
        n, size = len(batch), self.micro_batch
        if not size or n <= size:
            return self._part(batch, coefficients, rows, first)
        loss_total, sums_total = None, None
        for start in range(0, n, size):
            part = batch.take(slice(start, start + size))
            loss, sums = self._part(part, coefficients, rows, first and start == 0)
            loss_total = loss if loss_total is None else loss_total + loss
            sums_total = sums if sums_total is None else sums_total + sums
        return loss_total, sums_total

    def _shared_step(self, batch: Batch | None):
        """A step of a multi-process fit (see :mod:`mtlrec.distributed`)."""
        group, objective = self.group, self.objective
        device = self._shared[0].device
        tasks = objective.num_tasks
        counted = torch.zeros(tasks + 1, device=device)
        if batch is not None:
            counted[:tasks] = objective.counts(batch)
            counted[tasks] = len(batch)
        group.sum_(counted, "the label counts' all-reduce")
        rows = int(counted[tasks])
        if rows == 0:
            return None
        normalisers = objective.normalisers_of(counted[:tasks])
        summed = torch.zeros(tasks + 1, device=device)
        if batch is not None:
            loss, sums = self._accumulate(batch, normalisers, rows, group.rank == 0)
            summed[0], summed[1:] = loss, sums
        group.sum_gradients_(self._shared, summed)  # and the losses
        return summed[0], summed[1:] * normalisers.inverse, normalisers

    def _scale(self, coefficients: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
        """coefficients x multipliers (a new tensor: the normalisers' is cached), kept
        while both are the same tensors (a balancer's weights constant over an epoch)."""
        source, by, product = self._scaled
        if source is not coefficients or by is not multipliers:
            product = coefficients * multipliers
            self._scaled = (coefficients, multipliers, product)
        return product

    def observe(self, batch: Batch, losses: torch.Tensor, normalisers: Normalisers) -> None:
        """After the optimizer step: the balancer gets the step's per-task mean losses,
        which tasks the batch carries labels of, and, when it asks, the same batch's
        losses after the step."""
        if not self._observes:
            return
        balancer = self.balancer
        after = self.losses(batch) if balancer.looks_after_step else None
        balancer.observe(losses, after, normalisers.present)

    @torch.no_grad()
    def losses(self, batch: Batch) -> torch.Tensor:
        """The batch's per-task mean losses (T,) under the current weights, in training
        mode (dropout as in a step), batch-norm running statistics left unchanged."""
        with _batch_norm_kept(self.network):
            outputs = self.network(batch)
            sums = self.objective.sums(outputs.named(), batch, outputs.stacked)
        return sums * self.objective.normalisers(batch).inverse

    def _part(self, part: Batch, coefficients, rows: int, first: bool):
        try:
            return self.step(part, coefficients, rows, first)
        except Declined as declined:
            self.reason = f"the forward declined mid-fit: {declined}"
            logger.info("training step: switching to autograd (%s)", self.reason)
            self.step = AutogradStep(self.network, self.objective)
            return self.step(part, coefficients, rows, first)


@contextlib.contextmanager
def _batch_norm_kept(network: nn.Module):
    """Within: a forward in training mode; batch norms' running statistics are put
    back afterwards."""
    norms = [
        m
        for m in network.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    saved = [[b.clone() for b in m.buffers(recurse=False)] for m in norms]
    try:
        yield
    finally:
        for m, buffers in zip(norms, saved, strict=True):
            for b, kept in zip(m.buffers(recurse=False), buffers, strict=True):
                b.copy_(kept)


@dataclass
class EpochTotals:
    """What an epoch's record sums over its steps (kept in a checkpoint mid-epoch)."""

    task_sums: torch.Tensor  # S_t over the epoch (T,)
    task_counts: torch.Tensor  # N_t over the epoch, batches with masks or weights (T,)
    every_label: int = 0  # rows of the batches labelled throughout (on the host)
    total: torch.Tensor | None = None  # the steps' losses summed
    window: torch.Tensor | None = None  # the losses since the last check
    steps: int = 0
    seconds: float = 0.0  # spent before a resume

    @classmethod
    def zeros(cls, tasks: int, device: torch.device) -> EpochTotals:
        return cls(
            torch.zeros(tasks, device=device),
            torch.zeros(tasks, device=device),
            total=torch.zeros((), device=device),
            window=torch.zeros((), device=device),
        )

    def state_dict(self) -> dict:
        return {
            "task_sums": self.task_sums,
            "task_counts": self.task_counts,
            "every_label": self.every_label,
            "total": self.total,
            "window": self.window,
            "steps": self.steps,
            "seconds": self.seconds,
        }

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> EpochTotals:
        tensors = {k: v.to(device) for k, v in state.items() if isinstance(v, torch.Tensor)}
        return cls(
            **tensors,
            every_label=int(state["every_label"]),
            steps=int(state["steps"]),
            seconds=float(state["seconds"]),
        )


def rng_state(device: torch.device) -> dict:
    """The random states a step reads: torch's global CPU generator (dropout) and, on
    CUDA, the device's."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def train(
    network: MultiTaskNetwork,
    data: Batch | Source,
    objective: Objective,
    *,
    epochs: int,
    batch_size: int,
    optimizer: Optimizers,
    generator: torch.Generator | None = None,
    validate: Callable[[], dict] | None = None,
    early_stopping: EarlyStopping | None = None,
    verbose: int = 1,
    micro_batch: int | None = None,
    fast: bool = True,
    balancer: Balancer | str | None = None,
    first_epoch: int = 1,
    seed: int | None = None,
    group: Group | None = None,
    checkpoints: Checkpoints | None = None,
    resume: dict | None = None,
) -> list[dict]:
    """Run the training loop; returns one history record per epoch, numbered from
    ``first_epoch`` (a continued fit counts on). ``verbose``: 0 silent, 1 a progress bar
    and a line per epoch on stderr, 2 the lines only.

    ``data``: an encoded Batch (shuffled by ``generator`` every epoch) or a
    :class:`~mtlrec.sources.Source` (a stream, say) that yields the batches.
    ``micro_batch``: batches larger than this are run as consecutive parts whose
    gradients add up to the whole batch's exactly (every part is normalised by the whole
    batch's label counts), so activations stay in cache; the step is the same. Not for
    batch norm, whose statistics depend on the rows seen together. ``fast``: use the
    fast step where it applies. ``balancer``: how the task losses are weighed
    (:mod:`mtlrec.balancers`; a name or a Balancer, default ``"equal"``), started with
    the tasks' weights, the optimizer's learning rate and ``seed`` (default: the
    generator's). ``group``: this process's place in a multi-process fit
    (:mod:`mtlrec.distributed`): each step's gradients, label counts and losses are
    summed over the processes. ``checkpoints``: saves the whole training state every
    ``checkpoints.every`` steps and after every epoch (:mod:`mtlrec.checkpoint`);
    ``resume``: such a state, from which the loop continues exactly where it was.

    Each record holds the epoch, its seconds, the mean loss over steps, ``task_loss``
    (each task's loss summed over the epoch's rows labelled for it, divided by their
    count or total weight: batches without its labels do not dilute it; NaN when no row
    was), the balancer's ``task_weights`` (what multiplied each task's mean loss, see
    :meth:`Balancer.task_weights <mtlrec.balancers.Balancer.task_weights>`), the
    validation metrics (with ``validate``), and ``step``: ``"fast"`` or ``"autograd"``
    (then ``step_reason`` says why). A diverging loss (not finite, or 10^4 times the
    first step's) stops training with :class:`TrainingDivergedError`, after putting back
    the weights of the best epoch so far (early stopping) or of the last completed one.
    """
    history: list[dict] = []
    device = next(network.parameters()).device
    if isinstance(data, Batch):
        if generator is None:
            raise ConfigError("train: a Batch needs the generator that shuffles it")
        source: Source = InMemorySource(objective.training_labels(data), generator)
    else:
        source = data
    if seed is None:
        seed = generator.initial_seed() if generator is not None else 0
    rank, world = (0, 1) if group is None else (group.rank, group.world)
    steps = source.steps(batch_size, rank, world)
    trainer = Accumulator(network, objective, micro_batch, fast, balancer, group, optimizer)
    trainer.balancer.start(
        torch.tensor(objective.task_weights, device=device),
        lr=float(optimizer.dense.param_groups[0]["lr"]),
        seed=seed,
    )
    names = [t.name for t in network.tasks]
    first_loss: float | None = None
    last = first_epoch + epochs - 1
    start_epoch, skip, totals = first_epoch, 0, None
    if resume is not None:
        network.load_state_dict(resume["network"])
        optimizer.load_state_dict(resume["optimizer"])
        trainer.balancer.load_state_dict(resume["balancer"])
        source.restore(resume["source"])
        set_rng_state(resume["rng"], device)
        history = list(resume["history"])
        first_loss = resume["first_loss"]
        start_epoch, skip = int(resume["epoch"]), int(resume["step"])
        if early_stopping is not None and resume.get("early_stopping") is not None:
            early_stopping.load_state_dict(resume["early_stopping"])
        if skip:
            totals = EpochTotals.from_state(resume["totals"], device)
        if resume.get("stopped"):  # early stopping had ended the run
            start_epoch = last + 1

    def checkpoint(epoch: int, step: int, at_end: bool, stopped: bool = False) -> None:
        """Save the state from which the loop continues at ``step`` of ``epoch``."""
        checkpoints.save(
            {
                "network": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "balancer": trainer.balancer.state_dict(),
                "source": source.state(at_end),
                "rng": rng_state(device),
                "history": history,
                "first_loss": first_loss,
                "epoch": epoch + 1 if at_end else epoch,
                "step": 0 if at_end else step,
                "totals": None if at_end else totals.state_dict(),
                "early_stopping": None if early_stopping is None else early_stopping.state_dict(),
                "stopped": stopped,
            },
            epoch=epoch,
            step=step,
        )

    for epoch in range(start_epoch, last + 1):
        network.train()
        # the weights to put back if the loss diverges: early stopping's best epoch once
        # there is one, else the last completed epoch's (copied here)
        has_best = early_stopping is not None and early_stopping.best_state is not None
        kept = None if has_best else copy.deepcopy(network.state_dict())
        start = time.perf_counter()
        if totals is None:
            totals = EpochTotals.zeros(len(names), device)
        bar = tqdm(
            total=steps,
            initial=totals.steps,
            desc=f"epoch {epoch}/{last}",
            disable=verbose != 1,
            leave=False,
            file=sys.stderr,
            mininterval=0.5,
        )
        batches = source.batches(epoch, batch_size, rank, world)
        for _ in range(skip):  # a resumed epoch: the batches trained before the stop
            next(batches, None)
        skip = 0
        while True:
            batch = next(batches, None)
            if batch is not None and len(batch) == 0:
                batch = None
            if batch is None and group is None:
                break
            optimizer.zero_grad()
            result = trainer(batch)
            if result is None:  # every process is done with the epoch
                break
            loss, losses, normalisers = result
            optimizer.step()
            trainer.observe(batch, losses, normalisers)
            totals.task_sums.addcmul_(losses, normalisers.counts)  # on the device: no sync
            if normalisers.present is None:  # every row labelled, weight 1
                totals.every_label += len(batch)
            else:
                totals.task_counts.add_(normalisers.counts)
            totals.total.add_(loss)
            totals.window.add_(loss)
            totals.steps += 1
            step = totals.steps
            if first_loss is None:
                first_loss = abs(float(loss))
            if step % CHECK_EVERY == 0 or step == steps:
                mean = float(totals.window) / ((step - 1) % CHECK_EVERY + 1)
                totals.window.zero_()
                if not math.isfinite(mean) or mean > DIVERGED_RATIO * max(first_loss, 1e-3):
                    bar.close()
                    lr = float(optimizer.dense.param_groups[0]["lr"])
                    _diverged(
                        network,
                        epoch,
                        step,
                        steps,
                        mean,
                        first_loss,
                        lr,
                        early_stopping,
                        kept,
                        history,
                    )
                if verbose >= 1:
                    bar.set_postfix(loss=f"{float(totals.total) / step:.4f}", refresh=False)
                    bar.update(step - bar.n)
            if checkpoints is not None and checkpoints.every and step % checkpoints.every == 0:
                totals.seconds += time.perf_counter() - start
                start = time.perf_counter()
                checkpoint(epoch, step, at_end=False)
        bar.close()
        # each task's mean loss over the rows labelled for it (NaN: no row was)
        task_counts = totals.task_counts + totals.every_label
        task_loss = torch.where(task_counts > 0, totals.task_sums / task_counts, math.nan)
        record = {
            "epoch": epoch,
            "seconds": totals.seconds + time.perf_counter() - start,
            "loss": float(totals.total) / max(totals.steps, 1),
            "task_loss": dict(zip(names, task_loss.tolist(), strict=True)),
            "task_weights": dict(zip(names, trainer.balancer.task_weights(), strict=True)),
            "step": trainer.step.path,
        }
        totals = None
        trainer.balancer.end_epoch(task_loss)
        if trainer.reason is not None:
            record["step_reason"] = trainer.reason
        if validate is not None:
            record["validation"] = validate()
        history.append(record)
        if verbose >= 1:
            tqdm.write(format_epoch(record, last), file=sys.stderr)
        stop = early_stopping is not None and early_stopping.update(
            epoch, record["validation"], network
        )
        if checkpoints is not None:
            checkpoint(epoch, 0, at_end=True, stopped=stop)
        if stop:
            say(
                f"early stopping after epoch {epoch}: {early_stopping.task}/"
                f"{early_stopping.metric} did not improve for {early_stopping.patience} epochs",
                verbose,
            )
            break
    if early_stopping is not None and early_stopping.best is None:
        warn(
            f"early stopping: {early_stopping.task}/{early_stopping.metric} was NaN in every "
            "epoch; the last epoch's weights are kept",
            UndefinedMetricWarning,
        )
    if early_stopping is not None and early_stopping.best_state is not None:
        network.load_state_dict(early_stopping.best_state)
        say(
            f"kept the weights of epoch {early_stopping.best_epoch} (best "
            f"{early_stopping.task}/{early_stopping.metric} {early_stopping.best:.4f})",
            verbose,
        )
    return history


def say(message: str, verbose: int) -> None:
    """Log ``message`` (info) and, with ``verbose >= 1``, write it on stderr."""
    logger.info(message)
    if verbose >= 1:
        tqdm.write(message, file=sys.stderr)


def _diverged(network, epoch, step, steps, mean, first, lr, early_stopping, kept, history):
    """Put back the best weights so far and raise TrainingDivergedError."""
    if early_stopping is not None and early_stopping.best_state is not None:
        network.load_state_dict(early_stopping.best_state)
        which = f"the weights of epoch {early_stopping.best_epoch} (the best so far) were kept"
    else:
        network.load_state_dict(kept)
        which = (
            f"the weights of epoch {epoch - 1} (the last completed) were kept"
            if epoch > 1
            else "the initial weights were kept"
        )
    raise TrainingDivergedError(
        f"training diverged in epoch {epoch} (step {step} of {steps}): the loss reached "
        f"{mean:.3g} (it started at {first:.3g}); the learning rate lr={lr:g} is likely too "
        f"high: try a smaller one, e.g. lr={lr / 100:g}; {which}",
        history=history,
    )


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
