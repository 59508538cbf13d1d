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

    def _logits(self, group_out: torch.Tensor) -> list[torch.Tensor]:
        """(n, B, K) -> n per-task logits, (B,) when K = 1."""
        return [o.squeeze(-1) if o.shape[-1] == 1 else o for o in group_out.unbind(0)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(T, B, I) per-task inputs, or (B, I) shared by all towers -> one logits tensor
        per task: (B,) for one logit, (B, K) for K."""
        tape = tape_of(x)
        if tape is not None:
            return self._traced(tape, x)
        logits: list[torch.Tensor] = []
        for k, (mlp, out) in enumerate(zip(self.mlps, self.outs, strict=True)):
            own = self._group_input(x, k)
            logits += self._logits(out(own if out.shared_input else mlp(own)))  # (n, B, K)
        return tuple(logits)

    def _traced(self, tape: Tape, x: Traced) -> tuple[Traced, ...]:
        """The fast-path rule: every group's MLP and output layer as one stack."""
        if len(self.mlps) > 1 and not self.shared_input:
            x = _split(tape, x, len(self.mlps))
        saved, logits = [], []
        for k, (mlp, out) in enumerate(zip(self.mlps, self.outs, strict=True)):
            own = x[k] if isinstance(x, list) else x
            value, keep = input_of(own)
            stack = mlp.stack(out)
            outputs = stack_forward(stack, value)
            saved.append((stack, outputs, keep, own))
            logits += self._logits(outputs[-1])
        traced = [tape.value(t) for t in logits]

        def backward(_, grads):
            start, parts = 0, []
            for stack, outputs, keep, _own in saved:
                n, b, k = outputs[-1].shape
                g = [
                    torch.zeros(b, k, dtype=outputs[-1].dtype, device=outputs[-1].device)
                    if d is None
                    else d.reshape(b, k)
                    for d in grads[start : start + n]
                ]
                parts.append(stack_backward(stack, outputs, torch.stack(g), keep))
                start += n
            if isinstance(x, list):
                return parts
            if len(parts) == 1 or parts[0] is None:
                return [parts[0]]
            return [sum(parts[1:], parts[0])]

        tape.record(backward, None, x if isinstance(x, list) else [x], traced)
        return tuple(traced)


def _split(tape: Tape, x: Traced, n: int) -> list[Traced]:
    """(n, B, I) -> n traced (1, B, I) slices, one per tower group."""
    parts = [tape.value(x.value[k : k + 1], x.grad_width) for k in range(n)]

    def backward(_, grads):
        return [
            torch.cat(
                [
                    g if g is not None else torch.zeros_like(p.value)
                    for g, p in zip(grads, parts, strict=True)
                ]
            )
        ]

    tape.record(backward, None, [x], parts)
    return parts
