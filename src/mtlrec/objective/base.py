"""The training objective: per-task loss sums and counts, task weights, extra terms.

The loss of a batch is

    sum_t  weight_t * S_t / N_t   +   sum_k  term_k

where S_t is the sum over the batch's rows of task t's per-row loss (from its head,
times the row's sample weight where rows carry one, over the rows that carry a label of
task t) and N_t the number of those rows (their total weight). Keeping sums and counts
apart makes a loss over a subset of rows exact when a batch is split into micro-batches
(every part divides by the whole batch's N_t; later, across processes), and a task with
no labelled row in a batch contributes nothing instead of NaN. Terms are either sums
over rows, divided by the batch's rows, or once per step (an L2 penalty on weights).

A fast training step (:mod:`mtlrec.layers.tape`) needs the loss's gradient in closed
form: each head's ``gradient`` for the logits, each term's own rules; the objective
says when it cannot give them (:meth:`Objective.fast_path_declines`).

Shape legend: B batch rows, T tasks, K logits of a task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..data import Batch
from ..heads import Head
from ..tasks import Task

#: a count below this is empty: its task's sum (then 0) is divided by 1 instead
_EMPTY = 1e-12


class Term:
    """An addend of the training loss beyond the task losses (e.g. an L2 penalty).

    ``per_row`` terms return a sum over the batch's rows, divided by the whole batch's
    rows; the others are added once per step. A term may give the fast step its
    gradient through :meth:`add_gradients`; one that returns False makes it decline.
    """

    name = "term"
    per_row = True

    def value(self, network: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """The term's value for ``batch`` (a sum over rows when ``per_row``), through autograd."""
        raise NotImplementedError

    def add_gradients(self, network: torch.nn.Module, batch: Batch, scale: float) -> bool:
        """Add ``scale`` x the gradient of :meth:`value` to the parameters' ``.grad``;
        False when the term has no such rule."""
        return False


class Objective:
    """Per-task losses from each task's head, weighted and combined with extra terms.

    Args:
        tasks: the tasks, in output order.
        heads: each task's (fitted) head, by task name.
        terms: extra loss terms (:class:`Term`).
    """

    def __init__(
        self, tasks: Sequence[Task], heads: dict[str, Head], terms: Sequence[Term] = ()
    ) -> None:
        self.tasks = tuple(tasks)
        self.heads = [heads[t.name] for t in self.tasks]
        self.task_weights = [float(t.weight) for t in self.tasks]
        self.terms = list(terms)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    # ------------------------------------------------------------------ pieces
    def counts(self, batch: Batch) -> torch.Tensor:
        """N_t: per task, the rows carrying its label (their total weight), (T,)."""
        assert batch.labels is not None, "training needs labels"
        if batch.mask is None and batch.weights is None:
            return torch.full((self.num_tasks,), float(len(batch)), device=batch.device)
        mask = torch.ones_like(batch.labels) if batch.mask is None else batch.mask.to(batch.labels)
        if batch.weights is not None:
            mask = mask * batch.weights.unsqueeze(1)
        return mask.sum(0)

    def _row_factors(self, batch: Batch, t: int) -> torch.Tensor | None:
        """Per-row multiplier of task t's loss (mask x weight), or None for all ones."""
        factor = None
        if batch.mask is not None:
            factor = batch.mask[:, t].to(batch.labels.dtype)
        if batch.weights is not None:
            factor = batch.weights if factor is None else factor * batch.weights
        return factor

    def _targets(self, batch: Batch, t: int) -> torch.Tensor:
        targets = batch.labels[:, t]
        if batch.mask is not None:  # missing labels may hold anything: make them valid
            targets = torch.where(batch.mask[:, t], targets, torch.zeros_like(targets))
        return targets

    def sums(self, logits: dict[str, Any], batch: Batch) -> torch.Tensor:
        """S_t: per task, the sum of its per-row losses (x factors), (T,); differentiable."""
        parts = []
        for t, (task, head) in enumerate(zip(self.tasks, self.heads, strict=True)):
            loss = head.loss(logits[task.name], self._targets(batch, t))  # (B,)
            factor = self._row_factors(batch, t)
            parts.append((loss if factor is None else loss * factor).sum())
        return torch.stack(parts)

    def combine(self, sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """sum_t weight_t S_t / N_t."""
        weights = torch.tensor(self.task_weights, device=sums.device, dtype=sums.dtype)
        return (sums / counts.clamp_min(_EMPTY) * weights).sum()

    def term_loss(
        self, network: torch.nn.Module, batch: Batch, rows: int, first: bool
    ) -> torch.Tensor | None:
        """The extra terms for a part of a batch of ``rows`` rows (``first``: the part
        that carries the once-per-step terms); None without terms."""
        total = None
        for term in self.terms:
            if term.per_row:
                value = term.value(network, batch) / rows
            elif first:
                value = term.value(network, batch)
            else:
                continue
            total = value if total is None else total + value
        return total

    # ------------------------------------------------------------------ fast step
    def fast_path_declines(self) -> str | None:
        """Why the fast step cannot have this objective's gradient; None when it can."""
        for task, head in zip(self.tasks, self.heads, strict=True):
            if type(head).gradient is Head.gradient:
                return (
                    f"task {task.name!r}: head {head.registered_name!r} has no closed-form gradient"
                )
        return None

    def logit_gradients(
        self, logits: dict[str, torch.Tensor], batch: Batch, counts: torch.Tensor, scale: float
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(d loss / d logits x scale per task, the sums S_t (T,)), without autograd."""
        grads, sums = {}, []
        normalisers = (scale / counts.clamp_min(_EMPTY)).tolist()
        for t, (task, head) in enumerate(zip(self.tasks, self.heads, strict=True)):
            z, y = logits[task.name], self._targets(batch, t)
            factor = self._row_factors(batch, t)
            loss = head.loss(z, y)
            grad = head.gradient(z, y)
            if factor is not None:
                loss = loss * factor
                grad = grad * (factor if grad.dim() == 1 else factor.unsqueeze(1))
            sums.append(loss.sum())
            grads[task.name] = grad.mul_(self.task_weights[t] * normalisers[t])
        return grads, torch.stack(sums)

    def add_term_gradients(
        self, network: torch.nn.Module, batch: Batch, rows: int, first: bool
    ) -> bool:
        """Add the extra terms' gradients for a part of a batch; False when one has no rule."""
        for term in self.terms:
            if term.per_row:
                ok = term.add_gradients(network, batch, 1.0 / rows)
            elif first:
                ok = term.add_gradients(network, batch, 1.0)
            else:
                continue
            if not ok:
                return False
        return True

    def term_values(self, network: torch.nn.Module, batch: Batch, rows: int, first: bool):
        """The extra terms' value (no autograd), for reporting the loss of a fast step."""
        with torch.no_grad():
            return self.term_loss(network, batch, rows, first)
