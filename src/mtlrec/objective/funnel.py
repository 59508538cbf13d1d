"""Funnels: a task observed only after another one (a conversion after a click).

A funnel step is a binary task declared ``Task("conversion", after="click")``. Its label
is the post-click outcome: on rows whose click label is 0 it carries no label of its
own, whatever the column holds there (NaN, 0, or the click-and-conversion label are all
fine); a row with conversion = 1 and click = 0 is an error. For every row the network
predicts P(click) (the click task's logit c), P(conversion | click) (the step's logit v)
and the joint P(click and conversion) (the output ``Task.joint_name``). How the step is
trained (``Task.funnel``):

* ``conditional`` (default): v's loss on the rows with click = 1; the joint is
  sigmoid(c) sigmoid(v).
* ``entire_space`` (ESMM; Ma et al., SIGIR 2018): the joint sigmoid(c) sigmoid(v)
  (:func:`~mtlrec.layers.product_logit`) against click AND conversion over every row
  with a click label; v is learned through the product only, over the entire space.
* ``direct``: the step's tower predicts the joint j itself over every row, v is its
  ratio to P(click) (:func:`~mtlrec.layers.ratio_logit`, capped below 1), and
  ``penalty`` lambda adds lambda / B sum relu(sigmoid(j) - sigmoid(c)): the soft
  constraint P(click) >= P(click and conversion).

``ipw`` lambda adds ESCM^2's counterfactual post-click loss (Wang et al., SIGIR 2022):
lambda / B sum over the rows with click = 1 of v's loss divided by the propensity
sigmoid(c) (clipped at 0.05, no gradient through it).

Steps chain (click -> cart -> purchase): a step's "click" is then the joint of every
step before it (``Step.parent_output``), its rows with click = 1 those where all of them
are 1, and its joint the product along the chain.

Everything here works on whole label tensors: :func:`training_labels` rewrites a funnel
step's label and mask once per fit into what its loss reads, so the objective treats it
as any binary task. Shape legend: N rows, T tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Batch
from ..exceptions import DataError
from ..layers.product import product_logit, ratio_logit
from ..tasks import Task
from .terms import OutputTerm

#: smallest propensity P(click) an inverse-propensity weight divides by
MIN_PROPENSITY = 0.05


@dataclass(frozen=True)
class Step:
    """One funnel step: task ``name`` (index ``task``) after ``parent`` (index), whose
    probability of being reached is the output ``parent_output`` (the parent itself, or
    the parent's joint when the parent is a step too: click -> cart -> purchase)."""

    task: int
    parent: int
    name: str
    parent_name: str
    parent_output: str
    joint: str
    mode: str
    penalty: float
    ipw: float

    @property
    def loss_output(self) -> str:
        """The output the step's loss reads: its own logit, or the joint."""
        return self.name if self.mode == "conditional" else self.joint


def steps_of(tasks: Sequence[Task]) -> list[Step]:
    """The funnel steps among ``tasks``, each after the step it follows (checked by
    ``tasks.check_tasks``: no cycles, binary parents)."""
    by_name = {t.name: t for t in tasks}
    index = {t.name: i for i, t in enumerate(tasks)}

    def depth(task: Task) -> int:
        return 0 if task.after is None else 1 + depth(by_name[task.after])

    steps = sorted((t for t in tasks if t.after is not None), key=depth)
    return [
        Step(
            index[t.name],
            index[t.after],
            t.name,
            t.after,
            by_name[t.after].joint_name or t.after,
            t.joint_name,
            t.funnel,
            float(t.penalty),
            float(t.ipw),
        )
        for t in steps
    ]


def _mask_column(labels: torch.Tensor, mask: torch.Tensor | None, t: int) -> torch.Tensor:
    if mask is None:
        return torch.ones(labels.shape[0], dtype=torch.bool, device=labels.device)
    return mask[:, t]


@dataclass
class _Chain:
    """Per row, for one step: ``joint`` (the step and every one before it are 1),
    ``known`` (where that is determined), ``reached`` (every step before it is 1) and
    ``labelled`` (the step's own label is there)."""

    joint: torch.Tensor
    known: torch.Tensor
    reached: torch.Tensor
    labelled: torch.Tensor


def _chains(
    labels: torch.Tensor, mask: torch.Tensor | None, steps: Sequence[Step], table: str
) -> dict[int, _Chain]:
    """{task index: _Chain} of every step, parents first, from the raw labels; DataError
    naming the rows of ``table`` where a step's label is 1 but the step before is 0."""
    chains: dict[int, _Chain] = {}
    for s in steps:
        if s.parent in chains:
            before, known_before = chains[s.parent].joint, chains[s.parent].known
        else:
            before, known_before = labels[:, s.parent], _mask_column(labels, mask, s.parent)
        own, labelled = labels[:, s.task], _mask_column(labels, mask, s.task)
        reached = known_before & (before == 1)
        bad = labelled & (own == 1) & known_before & ~reached
        if bad.any():
            rows = torch.nonzero(bad).flatten()
            earlier = (
                f"{s.parent_name!r} or a step before it is 0"
                if s.parent in chains
                else f"{s.parent_name!r} = 0"
            )
            raise DataError(
                f"{table}: {len(rows)} rows have {s.name!r} = 1 but {earlier} "
                f"(first rows {rows[:5].tolist()}); task {s.name!r} follows "
                f"{s.parent_name!r} (after={s.parent_name!r}), so it can only be 1 where "
                f"{s.parent_name!r} is 1: fix those labels, or check that the two tasks "
                "are not swapped"
            )
        joint = torch.where(reached & labelled, own, torch.zeros_like(own))
        known = known_before & ((before == 0) | labelled)
        chains[s.task] = _Chain(joint, known, reached, labelled)
    return chains


def _learnable_chains(
    labels: torch.Tensor, mask: torch.Tensor | None, steps: Sequence[Step], table: str
) -> dict[int, _Chain]:
    """:func:`_chains` of training labels; DataError naming a step that no row of
    ``table`` can teach: none where the steps before it are 1 and it is labelled (no
    click at all, say), so P(step | steps before) would stay at its initial value."""
    chains = _chains(labels, mask, steps, table)
    for s in steps:
        chain = chains[s.task]
        if (chain.reached & chain.labelled).any():
            continue
        reached = int(chain.reached.sum())
        parent = (
            f"{s.parent_name!r} and every step before it are"
            if s.parent in chains
            else f"{s.parent_name!r} is"
        )
        found = (
            f"none of the {len(labels)} rows has {s.parent_output!r} = 1"
            if reached == 0
            else f"the {reached} rows where {parent} 1 carry no label of {s.name!r}"
        )
        raise DataError(
            f"{table}: task {s.name!r} follows {s.parent_name!r} (after="
            f"{s.parent_name!r}) and learns P({s.name} | {s.parent_name}) from the rows "
            f"where {parent} 1 and {s.name!r} is labelled, but {found}; it would stay at "
            f"its initial output. Give training rows where {parent} 1 with a "
            f"{s.name!r} label, or remove the step"
        )
    return chains


def training_labels(
    batch: Batch, steps: Sequence[Step], table: str = "the training data", tower: bool = False
) -> Batch:
    """The batch with each step's label and mask replaced by what its loss reads:
    conditional: its label on the rows where every step before it is 1; entire_space
    and direct: the joint (it and every step before it) over the rows where that is
    known. With ``tower``: what the step's own tower predicts instead (entire_space
    steps as conditional ones: P(step | the steps before)). Unchanged without steps;
    DataError for labels that break the funnel or cannot teach a step."""
    if not steps or batch.labels is None:
        return batch
    chains = _learnable_chains(batch.labels, batch.mask, steps, table)
    labels = batch.labels.clone()
    mask = torch.ones_like(labels, dtype=torch.bool) if batch.mask is None else batch.mask.clone()
    for s in steps:
        chain = chains[s.task]
        if s.mode == "conditional" or (tower and s.mode == "entire_space"):
            mask[:, s.task] = chain.reached & chain.labelled
        else:
            labels[:, s.task] = chain.joint
            mask[:, s.task] = chain.known
    return dataclasses.replace(batch, labels=labels, mask=None if mask.all() else mask)


def evaluation_targets(
    labels: torch.Tensor, mask: torch.Tensor | None, steps: Sequence[Step], table: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{output: (rows, targets)} (numpy) the steps are judged on: P(step | the steps
    before) on the rows where those are 1 and the step is labelled, the joint where it
    is known; DataError for labels of ``table`` that break the funnel."""
    judged, chains = {}, _chains(labels, mask, steps, table)
    for s in steps:
        chain = chains[s.task]
        judged[s.name] = (
            (chain.reached & chain.labelled).cpu().numpy(),
            labels[:, s.task].cpu().numpy(),
        )
        judged[s.joint] = (chain.known.cpu().numpy(), chain.joint.cpu().numpy())
    return judged


def add_joint_outputs(logits: dict[str, Any], extras: dict[str, Any], steps: Sequence[Step]):
    """Fill the joint outputs into ``extras`` (and, for ``direct`` steps, the step's
    conditional logit into ``logits``) from the towers' logits, parents first."""
    for s in steps:
        before = extras[s.parent_output] if s.parent_output in extras else logits[s.parent_name]
        own = logits[s.name]
        if s.mode == "direct":  # the tower predicts the joint
            extras[s.joint] = own
            logits[s.name] = ratio_logit(own, before)
        else:
            extras[s.joint] = product_logit(before, own)


def output_terms(steps: Sequence[Step]) -> list[OutputTerm]:
    """The funnels' penalty and inverse-propensity terms."""
    terms: list[OutputTerm] = []
    for s in steps:
        if s.penalty > 0:
            terms.append(JointPenalty(s))
        if s.ipw > 0:
            terms.append(InversePropensityLoss(s))
    return terms


class JointPenalty(OutputTerm):
    """penalty x sum over rows of relu(sigmoid(j) - sigmoid(c)): a joint predicted above
    its parent's probability (``funnel="direct"``)."""

    name = "funnel_penalty"

    def __init__(self, step: Step) -> None:
        self.step = step
        self.reads = (step.joint, step.parent_output)

    def value(self, logits, batch) -> torch.Tensor:
        j, c = logits[self.step.joint], logits[self.step.parent_output]
        excess = torch.relu(torch.sigmoid(j) - torch.sigmoid(c))
        if batch.weights is not None:
            excess = excess * batch.weights
        return self.step.penalty * excess.sum()

    def gradients(self, logits, batch, scale):
        j, c = logits[self.step.joint], logits[self.step.parent_output]
        pj, pc = torch.sigmoid(j), torch.sigmoid(c)
        excess = pj - pc
        factor = (excess > 0).to(j.dtype) * self.step.penalty  # rows above the parent
        if batch.weights is not None:
            factor = factor * batch.weights
        value = (excess.clamp_min(0) * factor).sum()
        factor = factor * scale
        return {
            self.step.joint: factor * pj * (1 - pj),
            self.step.parent_output: -factor * pc * (1 - pc),
        }, value


class InversePropensityLoss(OutputTerm):
    """ipw x sum over the rows with parent = 1 (and a step label) of the step's log loss
    on its conditional logit divided by the propensity max(sigmoid(c), 0.05) (ESCM^2)."""

    name = "funnel_ipw"

    def __init__(self, step: Step) -> None:
        self.step = step
        self.reads = (step.name, step.parent_output)

    def _parts(self, logits, batch):
        s = self.step
        labels, mask = batch.labels, batch.mask
        rows = (labels[:, s.parent] == 1) & _mask_column(labels, mask, s.parent)
        rows = rows & _mask_column(labels, mask, s.task)
        factor = rows.to(labels.dtype)
        if batch.weights is not None:
            factor = factor * batch.weights
        c = logits[s.parent_output].detach()
        factor = factor / torch.sigmoid(c).clamp_min(MIN_PROPENSITY)
        return logits[s.name], labels[:, s.task], factor * s.ipw

    def value(self, logits, batch) -> torch.Tensor:
        v, y, factor = self._parts(logits, batch)
        return (F.binary_cross_entropy_with_logits(v, y, reduction="none") * factor).sum()

    def gradients(self, logits, batch, scale):
        v, y, factor = self._parts(logits, batch)
        loss = F.binary_cross_entropy_with_logits(v, y, reduction="none")
        return {self.step.name: (torch.sigmoid(v) - y) * factor * scale}, (loss * factor).sum()
