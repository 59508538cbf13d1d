"""The loss-balancer contract: how a fit weighs its tasks against each other.

A balancer acts at one of two levels.

* Loss level: per-task multipliers m_t of the task losses, so a step follows the
  gradient of sum_t weight_t m_t L_t (``weight_t``: ``Task.weight``; L_t: task t's mean
  loss over the rows carrying its label). Multipliers that do not depend on the
  current batch (:meth:`Balancer.multipliers`) scale the loss coefficients before the
  step runs, so the fast step still applies; ones computed from the batch's own losses
  (:meth:`Balancer.batch_multipliers`) need an autograd step.
* Gradient level (``gradient_level``): an autograd step hands the balancer each task's
  gradient of some parameters (by default :meth:`MultiTaskNetwork.shared_parameters
  <mtlrec.models.MultiTaskNetwork.shared_parameters>`), one row per task, and
  :meth:`Balancer.combine` returns the update direction of those parameters; the others
  get the ordinary gradient of sum_t weight_t m_t L_t.

The training loop (:func:`mtlrec.training.train`) calls :meth:`~Balancer.start` once,
then per step :meth:`~Balancer.multipliers` before and :meth:`~Balancer.observe` after
the optimizer step, and per epoch :meth:`~Balancer.task_weights` (kept in the history
record as ``task_weights``) and :meth:`~Balancer.end_epoch`.

A batch need not carry a label of every task (partial labels): the calls of a step
take ``present`` (T,) bool, the tasks the batch has labelled rows of (None: all). An
absent task's loss is 0 and its gradient zero, which is no evidence about it: a
balancer acts on the present tasks only and leaves the absent ones' state and weights
as they were; an epoch's ``losses`` hold NaN for a task no batch carried. A balancer's own
parameters (uncertainty's log variances, GradNorm's weights) are updated in closed form
by :class:`SmallAdam`, at the fit's learning rate unless it says otherwise.

Shape legend: T tasks, P entries of the parameters a gradient-level balancer combines.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from ..registry import Registry

if TYPE_CHECKING:
    from ..models import MultiTaskNetwork

#: balancer name -> Balancer subclass (equal, uncertainty, dwa, gradnorm, pcgrad, ...)
BALANCERS: Registry[type[Balancer]] = Registry("balancer", __package__)


class Balancer:
    """Base of every loss balancer; subclasses register with ``@BALANCERS.register(name)``.

    The base class weighs every task by its ``Task.weight`` alone (what ``"equal"`` is).

    Class attributes:
        gradient_level: :meth:`combine` needs each task's gradient of
            :meth:`gradient_parameters` (an autograd step computes them).
        weighs_batches: :meth:`batch_multipliers` weighs each batch by its own losses
            (an autograd step: the losses are known only after the forward).
        looks_after_step: :meth:`observe` also gets the batch's losses after the
            optimizer step (one more forward, without gradients).
    """

    registered_name: ClassVar[str]
    gradient_level: ClassVar[bool] = False
    weighs_batches: ClassVar[bool] = False
    looks_after_step: ClassVar[bool] = False

    #: each task's ``Task.weight`` (T,), on the training device (set by :meth:`start`)
    weights: torch.Tensor

    @property
    def name(self) -> str:
        """The registered name (the class name for an unregistered subclass)."""
        return getattr(type(self), "registered_name", type(self).__name__)

    @property
    def num_tasks(self) -> int:
        return len(self.weights)

    # ------------------------------------------------------------------ lifecycle
    def start(self, weights: torch.Tensor, lr: float = 1e-3, seed: int = 0) -> None:
        """Reset for a new fit: ``weights`` the tasks' ``Task.weight`` (T,) on the
        training device, ``lr`` the fit's learning rate, ``seed`` the fit's seed (for
        anything random). Subclasses call ``super().start(...)`` first."""
        self.weights = weights
        self._recorded: list[torch.Tensor] = []  # the epoch's recorded multipliers

    def multipliers(self) -> torch.Tensor | None:
        """The multipliers m_t (T,) of the next step's task losses, when they do not
        depend on the batch; None for all 1. Return a tensor that is not changed in place
        afterwards (a new one when the weights change): the step caches its product
        with the loss coefficients on its identity."""
        return None

    def batch_multipliers(
        self, losses: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Multipliers (T,) from the batch's own per-task mean losses (detached) and the
        tasks ``present`` in it, used when ``weighs_batches``; None for all 1."""
        return None

    def gradient_parameters(self, network: MultiTaskNetwork) -> list[torch.nn.Parameter]:
        """The parameters whose per-task gradients :meth:`combine` receives (when
        ``gradient_level``): the network's shared parameters."""
        return network.shared_parameters()

    def combine(
        self, grads: torch.Tensor, losses: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """The update direction (P,) of :meth:`gradient_parameters` from each task's
        gradient ``grads`` (T, P) (of weight_t m_t L_t), the batch's per-task mean
        losses ``losses`` (T,), detached, and the tasks ``present`` in the batch; None
        to keep the ordinary gradient (the sum of the rows) after looking at them."""
        return None

    def observe(
        self,
        losses: torch.Tensor,
        after: torch.Tensor | None = None,
        present: torch.Tensor | None = None,
    ) -> None:
        """After the optimizer step: the step's per-task mean losses (T,), detached,
        with ``looks_after_step`` the same batch's losses after the step, and the tasks
        ``present`` in the batch."""

    def end_epoch(self, losses: torch.Tensor) -> None:
        """After an epoch (and after :meth:`task_weights` was read): each task's mean
        loss over the epoch's rows labelled for it (T,), NaN for a task none was.
        Subclasses call ``super().end_epoch(losses)``."""
        self._recorded = []

    # ------------------------------------------------------------------ reporting
    def current_multipliers(self) -> torch.Tensor | None:
        """The multipliers to report when no step recorded any (default
        :meth:`multipliers`)."""
        return self.multipliers()

    def record(self, multipliers: torch.Tensor, present: torch.Tensor | None = None) -> None:
        """Keep one step's effective multipliers (T,) of the task losses for the epoch's
        summary (for balancers whose weights change with every batch), for the tasks
        ``present`` in its batch; no host sync."""
        value = multipliers.detach().clone()
        if present is not None:
            value = value.masked_fill(~present, math.nan)
        self._recorded.append(value)

    def task_weights(self) -> list[float]:
        """What multiplies each task's mean loss L_t in the updates: weight_t x m_t. For
        balancers that :meth:`record` them per step, the median over the epoch's steps
        whose batches carried the task (robust to the odd batch whose one labelled row
        has a loss near 0, where a gradient-level method may multiply a vanishing
        gradient by thousands); else, and for a task no step carried, the current ones."""
        current = self.current_multipliers()
        weights = self.weights if current is None else self.weights * current
        if self._recorded:
            medians = torch.stack(self._recorded).nanmedian(dim=0).values
            weights = torch.where(torch.isnan(medians), weights, medians)
        return weights.tolist()

    def state_dict(self) -> dict:
        """Everything the balancer learned so far (its tensors, numbers, inner
        optimizers and generators), for a checkpoint; :meth:`load_state_dict` after
        :meth:`start` puts it back."""
        return attribute_state(self)

    def load_state_dict(self, state: dict) -> None:
        load_attribute_state(self, state)

    def autograd_reason(self) -> str | None:
        """Why this balancer needs an autograd step (None when the fast step can run)."""
        if self.gradient_level:
            return f"the balancer {self.name!r} needs each task's gradient of shared parameters"
        if self.weighs_batches:
            return f"the balancer {self.name!r} weighs each batch by that batch's own losses"
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GradientBalancer(Balancer):
    """A gradient-level balancer whose direction is a combination sum_t a_t g_t of the
    task gradients g_t (rows of ``grads``) with coefficients a (T,) that depend only
    on their Gram matrix g_i . g_j and the losses: :meth:`coefficients` computes a
    on the host in float64 (T is small), the direction is one (T,) x (T, P) product."""

    gradient_level = True

    def coefficients(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        """a (T,) from the Gram matrix (T, T) and the per-task mean losses (T,)."""
        raise NotImplementedError

    def combine(
        self, grads: torch.Tensor, losses: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """sum_t a_t g_t over the present tasks: an absent task's zero gradient is left
        out of the combination (it would be its minimum-norm point, say)."""
        rows = None if present is None or bool(present.all()) else present.nonzero().flatten()
        if rows is not None:
            if len(rows) == 0:
                return None  # no task labelled: nothing to combine
            grads, losses = grads[rows], losses[rows]
        gram = (grads @ grads.t()).double().cpu().numpy()
        a = self.coefficients(gram, losses.double().cpu().numpy())
        a = torch.as_tensor(a, dtype=grads.dtype).to(grads.device)
        every = a if rows is None else a.new_zeros(len(present)).index_copy_(0, rows, a)
        self.record(every * self.weights, present)
        return a @ grads


class SmallAdam:
    """Adam (Kingma & Ba, ICLR 2015; torch's defaults) on one small tensor, stepped
    with a gradient given in closed form: a handful of element-wise ops on the
    tensor's device, no autograd and no host sync. A step may move some entries only
    (``present``): the others keep their value and moments, and each entry's bias
    correction counts its own steps."""

    def __init__(
        self,
        param: torch.Tensor,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.steps = 0
        #: steps each entry took, once some step left entries out (else all ``steps``)
        self.counts: torch.Tensor | None = None
        #: torch's fused Adam kernel (one call instead of eight element-wise ops: about
        #: 8 against 30 µs a step on CPU), when this torch has it
        self._fused = getattr(torch, "_fused_adam_", None)
        self._step = torch.zeros((), device=param.device)

    def step(self, grad: torch.Tensor, present: torch.Tensor | None = None) -> None:
        """param <- param - lr m_hat / (sqrt(v_hat) + eps), in place, for the entries
        ``present`` (bool, like ``param``; None: all)."""
        if present is not None or self.counts is not None:
            self._masked_step(grad, present)
            return
        beta1, beta2 = self.betas
        self.steps += 1
        if self._fused is not None:
            try:
                self._step.add_(1)
                self._fused(
                    [self.param],
                    [grad],
                    [self.exp_avg],
                    [self.exp_avg_sq],
                    [],
                    [self._step],
                    amsgrad=False,
                    lr=self.lr,
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=0.0,
                    eps=self.eps,
                    maximize=False,
                )
                return
            except (RuntimeError, TypeError):  # a device or dtype the kernel lacks
                self._fused = None
                self._step.sub_(1)
        self.exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = (self.exp_avg_sq.sqrt() / math.sqrt(1 - beta2**self.steps)).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denominator, value=-self.lr / (1 - beta1**self.steps))

    def _masked_step(self, grad: torch.Tensor, present: torch.Tensor | None) -> None:
        """The update of the ``present`` entries, with per-entry step counts."""
        beta1, beta2 = self.betas
        self.steps += 1
        if self.counts is None:
            self.counts = torch.full_like(self.param, float(self.steps - 1))
        moves = torch.ones_like(self.param, dtype=torch.bool) if present is None else present
        self.exp_avg.copy_(
            torch.where(moves, self.exp_avg * beta1 + grad * (1 - beta1), self.exp_avg)
        )
        self.exp_avg_sq.copy_(
            torch.where(moves, self.exp_avg_sq * beta2 + grad * grad * (1 - beta2), self.exp_avg_sq)
        )
        self.counts.add_(moves.to(self.counts))
        steps = self.counts.clamp_min(1)  # an entry never moved has zero moments
        m_hat = self.exp_avg / (1 - torch.pow(beta1, steps))
        v_hat = self.exp_avg_sq / (1 - torch.pow(beta2, steps))
        update = m_hat / (v_hat.sqrt() + self.eps) * self.lr
        self.param.sub_(torch.where(moves, update, torch.zeros_like(update)))


def attribute_state(owner: object) -> dict:
    """The instance attributes of ``owner`` as plain state: tensors, numbers, strings,
    None, lists of tensors, torch generators (their state) and objects holding such
    attributes (an inner optimizer), recursively; methods and functions left out."""
    state: dict = {}
    for name, value in vars(owner).items():
        if isinstance(value, torch.Generator):
            state[name] = {"generator": value.get_state()}
        elif value is None or isinstance(value, torch.Tensor | int | float | str | bool):
            state[name] = value
        elif isinstance(value, list | tuple) and all(
            isinstance(v, torch.Tensor | int | float) for v in value
        ):
            state[name] = list(value)
        elif hasattr(value, "__dict__") and not callable(value):
            state[name] = {"attributes": attribute_state(value)}
    return state


def load_attribute_state(owner: object, state: dict) -> None:
    """Inverse of :func:`attribute_state`: a tensor of the same shape is copied in place
    (so tensors shared between attributes stay shared), anything else is set."""
    for name, value in state.items():
        current = getattr(owner, name, None)
        if isinstance(current, torch.Generator):
            current.set_state(value["generator"])
        elif isinstance(value, dict) and "attributes" in value and current is not None:
            load_attribute_state(current, value["attributes"])
        elif (
            isinstance(current, torch.Tensor)
            and isinstance(value, torch.Tensor)
            and current.shape == value.shape
        ):
            with torch.no_grad():
                current.copy_(value)
        elif isinstance(value, torch.Tensor) and isinstance(current, torch.Tensor):
            setattr(owner, name, value.to(current.device))
        elif not callable(current) or current is None:
            setattr(owner, name, value)
