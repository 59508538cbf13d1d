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
from typing import Any, NamedTuple

import torch

from ..data import Batch
from ..heads import Head
from ..tasks import Task
from . import funnel
from .terms import OutputTerm, Term

#: a count below this is empty: its task's sum (then 0) is divided by 1 instead
_EMPTY = 1e-12


class Normalisers(NamedTuple):
    """A whole batch's per-task label counts and what they make of the sums S_t (T,)
    each: ``counts`` N_t (labelled rows, their total weight), ``inverse`` 1 / N_t (an
    empty task's S_t is 0, and so is its L_t = S_t / N_t), ``coefficients`` weight_t
    / N_t, and ``present`` (bool) where N_t > 0: the tasks the batch carries a label
    of, None when every row carries every label with weight 1."""

    counts: torch.Tensor
    inverse: torch.Tensor
    coefficients: torch.Tensor
    present: torch.Tensor | None


class Objective:
    """Per-task losses from each task's head, weighted and combined with extra terms.

    Tasks whose heads compute the same per-row loss on one logit (several binary tasks,
    say) are computed together, as one (T', B) loss: one call per group, not per task.

    A funnel step's loss reads the output its ``funnel`` mode names (the joint for
    ``entire_space`` and ``direct``) against the labels :meth:`training_labels` forms;
    its penalty and inverse-propensity terms are :class:`OutputTerm` s
    (:mod:`mtlrec.objective.funnel`).

    Args:
        tasks: the tasks, in output order.
        heads: each task's (fitted) head, by task name.
        terms: extra loss terms (:class:`Term`).
    """

    def __init__(
        self, tasks: Sequence[Task], heads: dict[str, Head], terms: Sequence[Term] = ()
    ) -> None:
        self.tasks = tuple(tasks)
        self.steps = funnel.steps_of(self.tasks)
        loss_outputs = {s.name: s.loss_output for s in self.steps}
        #: the output each task's loss reads, in task order
        self.names = [loss_outputs.get(t.name, t.name) for t in self.tasks]
        self.output_terms: list[OutputTerm] = funnel.output_terms(self.steps)
        #: every output the loss reads (the tasks' and the output terms')
        self.read_outputs = list(
            dict.fromkeys(self.names + [n for t in self.output_terms for n in t.reads])
        )
        self.heads = [heads[t.name] for t in self.tasks]
        self.task_weights = [float(t.weight) for t in self.tasks]
        self.terms = list(terms)
        groups: dict[Any, list[int]] = {}
        for t, head in enumerate(self.heads):
            key = (type(head), head.loss_key()) if head.num_outputs == 1 else ("alone", t)
            groups.setdefault(key, []).append(t)
        #: (head, task indices, how they index the label columns: see _columns)
        self.groups = [(self.heads[idx[0]], idx, _columns(idx)) for idx in groups.values()]
        #: the group that holds every task in order, which can read stacked logits (the
        #: towers' (T, B) output) when every task's loss reads its own tower's logit
        own = self.names == [t.name for t in self.tasks]
        one = len(self.groups) == 1 and self.num_tasks > 1 and own
        self._whole = 0 if one and self.groups[0][1] == list(range(self.num_tasks)) else None
        order = [t for _, idx, _ in self.groups for t in idx]
        self._restore = None if order == sorted(order) else torch.tensor(order).argsort()
        self._weights: dict[torch.device, torch.Tensor] = {}
        self._normalisers: dict[tuple, Normalisers] = {}
        self._coefficient_columns: tuple[torch.Tensor | None, list] = (None, [])

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    # ------------------------------------------------------------------ pieces
    def training_labels(self, batch: Batch, table: str = "the training data") -> Batch:
        """The batch with funnel steps' labels and masks as their losses read them
        (:func:`funnel.training_labels`); the batch itself without funnel steps. Called
        once per fit on the whole training data."""
        return funnel.training_labels(batch, self.steps, table)

    def output_priors(
        self, batch: Batch, table: str = "the training data"
    ) -> list[torch.Tensor | None]:
        """Per task, the constant logits (K,) its tower's output starts from: its head's
        :meth:`~mtlrec.heads.Head.prior` of what the tower predicts (a funnel step's
        P(step | the steps before), or its joint for ``direct``) over the labelled rows
        of ``batch`` (the training data) with their weights; None for a task that no row
        labels."""
        batch = funnel.training_labels(batch, self.steps, table, tower=True)
        priors: list[torch.Tensor | None] = []
        for t, head in enumerate(self.heads):
            y = batch.labels[:, t]
            w = torch.ones_like(y) if batch.weights is None else batch.weights
            if batch.mask is not None:
                rows = batch.mask[:, t]
                y, w = y[rows], w[rows]
            priors.append(head.prior(y, w) if w.sum() > 0 else None)
        return priors

    def counts(self, batch: Batch) -> torch.Tensor:
        """N_t: per task, the rows carrying its label (their total weight), (T,)."""
        assert batch.labels is not None, "training needs labels"
        if batch.mask is None and batch.weights is None:
            return torch.full((self.num_tasks,), float(len(batch)), device=batch.device)
        mask = torch.ones_like(batch.labels) if batch.mask is None else batch.mask.to(batch.labels)
        if batch.weights is not None:
            mask = mask * batch.weights.unsqueeze(1)
        return mask.sum(0)

    def coefficients(self, counts: torch.Tensor) -> torch.Tensor:
        """weight_t / N_t (T,): what multiplies S_t in the loss (0 for an empty task)."""
        weights = self._weights.get(counts.device)
        if weights is None:
            weights = torch.tensor(self.task_weights, device=counts.device)
            self._weights[counts.device] = weights
        return weights / counts.clamp_min(_EMPTY)

    def normalisers(self, batch: Batch) -> Normalisers:
        """What a whole batch's sums S_t are divided and multiplied by (:class:`Normalisers`);
        cached by batch size when every row carries every label with weight 1 (most
        batches of a fit)."""
        plain = batch.mask is None and batch.weights is None
        key = (len(batch), batch.device)
        if plain and key in self._normalisers:
            return self._normalisers[key]
        result = self.normalisers_of(self.counts(batch), plain)
        if plain:
            self._normalisers[key] = result
        return result

    def normalisers_of(self, counts: torch.Tensor, plain: bool = False) -> Normalisers:
        """The :class:`Normalisers` of label counts N_t (T,) (summed over the processes
        of a distributed step, say); ``plain``: every row labelled with weight 1."""
        return Normalisers(
            counts,
            1.0 / counts.clamp_min(_EMPTY),
            self.coefficients(counts),
            None if plain else counts > _EMPTY,
        )

    def _group_coefficients(self, coefficients: torch.Tensor) -> list[torch.Tensor]:
        """Per group, its coefficients shaped to scale its gradient ((T', 1) or ()); kept
        for the last coefficients tensor seen (the normalisers' cache hands out the same
        one batch after batch)."""
        source, columns = self._coefficient_columns
        if source is not coefficients:
            columns = [
                coefficients[cols].unsqueeze(1) if len(idx) > 1 else coefficients[cols]
                for _, idx, cols in self.groups
            ]
            self._coefficient_columns = (coefficients, columns)
        return columns

    def combine(self, sums: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        """sum_t weight_t S_t / N_t, from the sums and :meth:`coefficients`."""
        return torch.dot(sums, coefficients)

    def _group_terms(self, logits: dict[str, Any], batch: Batch, g: int, stacked=None):
        """(logits (T', B) or (B, K), targets, row factors or None) of group ``g``;
        ``stacked``: every task's logits as one (T, B) tensor, when the network has it."""
        _, idx, columns = self.groups[g]
        if len(idx) == 1:
            z = logits[self.names[idx[0]]]
        elif stacked is not None and g == self._whole:
            z = stacked
        else:
            z = torch.stack([logits[self.names[t]] for t in idx])
        labels = batch.labels
        if isinstance(columns, int):
            y = labels.select(1, columns)
        elif isinstance(columns, slice):
            y = labels.narrow(1, columns.start, columns.stop - columns.start)
        else:
            y = labels[:, columns]
        factor = None
        if batch.mask is not None:
            mask = batch.mask[:, columns]
            y = torch.where(mask, y, torch.zeros_like(y))  # missing labels: any valid value
            factor = mask.to(y.dtype)
        if batch.weights is not None:
            w = batch.weights if y.dim() == 1 else batch.weights.unsqueeze(1)
            factor = w if factor is None else factor * w
        if len(idx) > 1:
            y = y.t()
            factor = None if factor is None or factor.dim() == 1 else factor.t()
        return z, y, factor

    def _ordered(self, parts: list[torch.Tensor]) -> torch.Tensor:
        sums = torch.cat(parts) if len(parts) > 1 else parts[0]
        return sums if self._restore is None else sums[self._restore.to(sums.device)]

    def sums(self, logits: dict[str, Any], batch: Batch, stacked=None) -> torch.Tensor:
        """S_t: per task, the sum of its per-row losses (x factors), (T,); differentiable.
        ``stacked``: the task logits as one (T, B) tensor (``Outputs.stacked``)."""
        parts = []
        for g, (head, idx, _) in enumerate(self.groups):
            z, y, factor = self._group_terms(logits, batch, g, stacked)
            loss = head.loss(z, y)  # (T', B) or (B,)
            if factor is not None:
                loss = loss * factor
            total = loss.sum(-1)
            parts.append(total if len(idx) > 1 else total.reshape(1))
        return self._ordered(parts)

    def term_loss(
        self,
        network: torch.nn.Module,
        batch: Batch,
        rows: int,
        first: bool,
        logits: dict[str, Any] | None = None,
    ) -> torch.Tensor | None:
        """The extra terms for a part of a batch of ``rows`` rows (``first``: the part
        that carries the once-per-step terms), the output terms from ``logits`` (every
        output by name); None without terms."""
        total = None
        for term in self.output_terms if logits is not None else ():
            value = term.value(logits, batch) / rows
            total = value if total is None else total + value
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
        for term in self.terms:
            if type(term).add_gradients is Term.add_gradients:
                return f"loss term {term.name!r} has no gradient rule"
        return None

    def logit_gradients(
        self,
        logits: dict[str, torch.Tensor],
        batch: Batch,
        coefficients: torch.Tensor,
        stacked: torch.Tensor | None = None,
        rows: int | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """(d loss / d logits per output, d loss / d ``stacked`` (T, B) when the stacked
        logits served (the per-task entries are then left out), the sums S_t (T,), the
        output terms' value (None without)), without autograd; ``logits``: every output
        by name; ``rows``: the whole batch's rows (for the output terms)."""
        grads, whole, parts = {}, None, []
        for g, ((head, idx, _), coef) in enumerate(
            zip(self.groups, self._group_coefficients(coefficients), strict=True)
        ):
            z, y, factor = self._group_terms(logits, batch, g, stacked)
            loss, grad = head.loss(z, y), head.gradient(z, y)
            if factor is not None:
                loss = loss * factor
                grad = grad.mul_(factor if grad.dim() == factor.dim() else factor.unsqueeze(1))
            total = loss.sum(-1)
            parts.append(total if len(idx) > 1 else total.reshape(1))
            grad = grad.mul_(coef)
            if len(idx) == 1:
                grads[self.names[idx[0]]] = grad
            elif z is stacked:
                whole = grad
            else:
                grads.update(zip((self.names[t] for t in idx), grad.unbind(0), strict=True))
        extra, rows = None, rows or len(batch)
        for term in self.output_terms:
            term_grads, value = term.gradients(logits, batch, 1.0 / rows)
            for name, grad in term_grads.items():
                grads[name] = grad if name not in grads else grads[name] + grad
            extra = value / rows if extra is None else extra + value / rows
        return grads, whole, self._ordered(parts), extra

    def add_term_gradients(
        self, network: torch.nn.Module, batch: Batch, rows: int, first: bool
    ) -> None:
        """Add the extra terms' gradients for a part of a batch (rules checked by
        :meth:`fast_path_declines`)."""
        for term in self.terms:
            if term.per_row:
                term.add_gradients(network, batch, 1.0 / rows)
            elif first:
                term.add_gradients(network, batch, 1.0)

    def term_values(self, network: torch.nn.Module, batch: Batch, rows: int, first: bool):
        """The extra terms' value (no autograd), for reporting the loss of a fast step."""
        if not self.terms:
            return None
        with torch.no_grad():
            return self.term_loss(network, batch, rows, first)


def _columns(idx: list[int]) -> int | slice | list[int]:
    """How a group of tasks indexes the label columns: an int for one task, a slice for
    consecutive tasks (a view, no copy), else the list."""
    if len(idx) == 1:
        return idx[0]
    return slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) else idx
