"""Per-task towers, each ending in its head's logits (1, or K for a multiclass task).

The fast-path rule (:mod:`mtlrec.layers.tape`) runs each tower group's MLP and output
layer as one stack of bank layers.

Shape legend: T tasks, B batch, I input, K logits of a task.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .banks import BankLinear, BankMLP, input_of, stack_backward, stack_forward
from .tape import Tape, Traced, tape_of


class Towers(nn.Module):
    """One tower per task: MLP -> linear -> logits, each with its own output bias.

    Tasks with the same hidden units and the same number of logits run as one bank;
    otherwise each tower is its own one-member bank (towers may differ per task).

    Args:
        units: one hidden-unit list per task.
        outputs: logits per row of each task (default 1 each).
    """

    def __init__(
        self,
        in_features: int,
        units: Sequence[Sequence[int]],
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        shared_input: bool = False,
        outputs: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.num_tasks = len(units)
        self.outputs = list(outputs) if outputs is not None else [1] * self.num_tasks
        uniform = all(tuple(u) == tuple(units[0]) for u in units) and len(set(self.outputs)) == 1
        groups = [(self.num_tasks, units[0])] if uniform else [(1, u) for u in units]
        self.shared_input = shared_input
        self.mlps = nn.ModuleList(
            BankMLP(n, in_features, u, activation_name, dropout, batch_norm, shared_input)
            for n, u in groups
        )
        self.outs = nn.ModuleList(
            BankLinear(
                n,
                m.out_features,
                self.outputs[0] if uniform else self.outputs[t],
                shared_input and not u,
            )
            for t, ((n, u), m) in enumerate(zip(groups, self.mlps, strict=True))
        )

    def output_bias(self, task: int) -> torch.Tensor:
        """The output bias (K,) of task ``task``'s tower, a view into its bank."""
        if len(self.outs) == 1:
            return self.outs[0].bias[task, 0]
        return self.outs[task].bias[0, 0]

    def input_readers(self) -> list[BankLinear] | None:
        """The layers reading a shared input directly (for folding)."""
        if not self.shared_input:
            return None
        return [m.layers[0] if m.layers else o for m, o in zip(self.mlps, self.outs, strict=True)]

    def fast_path_declines(self) -> str | None:
        """Why the towers have no fast-path rule (None: they have one)."""
        return next(filter(None, (m.fast_path_declines() for m in self.mlps)), None)

    def _group_input(self, x, k: int):
        """What group ``k`` reads: the shared input, or its task's rows of (T, B, I)."""
        return x if self.shared_input or len(self.mlps) == 1 else x[k : k + 1]

    @staticmethod
    def _logits(group_out: torch.Tensor) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """(n, B, K) -> (the (n, B) logits when K = 1, else None; n per-task logits,
        (B,) when K = 1)."""
        if group_out.shape[-1] == 1:
            stacked = group_out.squeeze(-1)
            return stacked, list(stacked.unbind(0))
        return None, list(group_out.unbind(0))

    def forward(self, x: torch.Tensor) -> TowerLogits:
        """(T, B, I) per-task inputs, or (B, I) shared by all towers -> one logits tensor
        per task: (B,) for one logit, (B, K) for K (with ``stacked`` (T, B) when all
        towers are one bank of one logit each)."""
        tape = tape_of(x)
        if tape is not None:
            return self._traced(tape, x)
        logits: list[torch.Tensor] = []
        stacked = None
        for k, (mlp, out) in enumerate(zip(self.mlps, self.outs, strict=True)):
            own = self._group_input(x, k)
            stacked, per_task = self._logits(out(own if out.shared_input else mlp(own)))
            logits += per_task
        return TowerLogits(logits, stacked if len(self.mlps) == 1 else None)

    def _stacks(self) -> list:
        """Each group's MLP and output layer as one stack (structural: built once)."""
        stacks = self.__dict__.get("_group_stacks")
        if stacks is None:
            stacks = [mlp.stack(out) for mlp, out in zip(self.mlps, self.outs, strict=True)]
            self.__dict__["_group_stacks"] = stacks
        return stacks

    def _traced(self, tape: Tape, x: Traced) -> TowerLogits:
        """The fast-path rule: every group's MLP and output layer as one stack."""
        stacks = self._stacks()
        groups = len(stacks)
        if groups > 1 and not self.shared_input:
            x = _split(tape, x, groups)
        saved, logits = [], []
        for k, stack in enumerate(stacks):
            value, keep = input_of(x[k] if isinstance(x, list) else x)
            outputs = stack_forward(stack, value)
            saved.append((stack, outputs, keep))
            stacked, per_task = self._logits(outputs[-1])
            logits += per_task
        traced = [tape.value(t) for t in logits]
        one = groups == 1 and stacked is not None
        whole = tape.value(stacked) if one else None  # (T, B): the objective's fast seed

        def backward(grads):
            start, parts = 0, []
            for stack, outputs, keep in saved:
                n, b, k = outputs[-1].shape
                given = grads[start : start + n]
                if one and grads[-1] is not None:  # the stacked logits' gradient
                    g = grads[-1].reshape(n, b, 1)
                    for t, d in enumerate(given):
                        if d is not None:
                            g[t] += d.reshape(b, 1)
                else:
                    g = torch.stack(
                        [
                            torch.zeros(b, k, dtype=outputs[-1].dtype, device=outputs[-1].device)
                            if d is None
                            else d.reshape(b, k)
                            for d in given
                        ]
                    )
                parts.append(stack_backward(stack, outputs, g, keep))
                start += n
            if isinstance(x, list):
                return parts
            if len(parts) == 1 or parts[0] is None:
                return [parts[0]]
            return [sum(parts[1:], parts[0])]

        produced = [*traced, whole] if one else traced
        tape.record(backward, x if isinstance(x, list) else [x], produced)
        return TowerLogits(traced, whole)


class TowerLogits(tuple):
    """The towers' per-task logits; ``stacked`` holds them as one (T, B) tensor when
    every tower has one logit and they ran as one bank (the objective then computes
    their losses at once), else None."""

    stacked: object

    def __new__(cls, logits, stacked=None):
        self = super().__new__(cls, logits)
        self.stacked = stacked
        return self


def _split(tape: Tape, x: Traced, n: int) -> list[Traced]:
    """(n, B, I) -> n traced (1, B, I) slices, one per tower group."""
    parts = [tape.value(x.value[k : k + 1], x.grad_width) for k in range(n)]

    def backward(grads):
        return [
            torch.cat(
                [
                    g if g is not None else torch.zeros_like(p.value)
                    for g, p in zip(grads, parts, strict=True)
                ]
            )
        ]

    tape.record(backward, [x], parts)
    return parts
