"""Cross-stitch networks (Misra, Shrivastava, Gupta and Hebert, "Cross-stitch Networks
for Multi-task Learning", CVPR 2016, arXiv 1604.03539).

One column (an MLP) per task; after each hidden layer l a cross-stitch unit mixes the
columns' activations with a learned T x T matrix alpha^l:

    x^l_t = act(W^l_t h^{l-1}_t + b^l_t)              (T, B, H^l), h^0_t = the input row
    h^l_t = sum_s alpha^l_{ts} x^l_s                  (T, B, H^l)

and task t's tower reads h^L_t. alpha^l starts with ``self_weight`` on the diagonal and
(1 - self_weight) / (T - 1) elsewhere (the paper's (0.9, 0.1) for two tasks), so each
task starts mostly on its own column; a fixed identity is T single-task networks.
Shape legend: T tasks, B batch, H^l units of layer l.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..exceptions import ConfigError
from ..layers import BankMLP
from ..layers.tape import Tape, Traced, tape_of
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs, check_units


@dataclass(kw_only=True)
class CrossStitchConfig(NetworkConfig):
    """column_units: hidden units of each task's column, one cross-stitch unit after
    each layer; self_weight: the starting weight of a task's own column in each unit."""

    column_units: Sequence[int] = (64, 64)
    self_weight: float = 0.9
    tower_units: Sequence[int] | Sequence[Sequence[int]] = (32,)

    #: a column per task as wide as Shared-Bottom's reference bottom is per task
    reference: ClassVar[dict[str, Any]] = {"column_units": [64, 64], "tower_units": [32, 32]}
    reference_synthetic: ClassVar[dict[str, Any] | None] = {
        "column_units": [68],
        "tower_units": [8],
    }

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_units("column_units", self.column_units)
        if not self.column_units:
            raise ConfigError("column_units: give at least one layer, e.g. [64, 64]")
        if not 0.0 <= self.self_weight <= 1.0:
            raise ConfigError(f"self_weight must be in [0, 1], got {self.self_weight!r}")


class CrossStitchUnit(nn.Module):
    """h_t = sum_s alpha_ts x_s over the task columns: (T, B, H) -> (T, B, H)."""

    def __init__(self, tasks: int, self_weight: float) -> None:
        super().__init__()
        other = (1.0 - self_weight) / (tasks - 1) if tasks > 1 else 0.0
        start = torch.full((tasks, tasks), other)
        start.fill_diagonal_(self_weight if tasks > 1 else 1.0)
        self.alpha = nn.Parameter(start)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tape = tape_of(x)
        if tape is not None:
            return self._traced(tape, x)
        t, b, h = x.shape
        return (self.alpha @ x.reshape(t, b * h)).view(t, b, h)

    def _traced(self, tape: Tape, x: Traced) -> Traced:
        """The unit's rule: d alpha = dY X^T over rows and units, dX = alpha^T dY."""
        t, b, h = x.shape
        flat = x.value.reshape(t, b * h)
        out = tape.value((self.alpha.detach() @ flat).view(t, b, h))

        def backward(grads):
            d_out = grads[0].reshape(t, b * h)
            self.alpha.grad.addmm_(d_out, flat.t())
            return [(self.alpha.detach().t() @ d_out).view(t, b, h)]

        tape.record(backward, [x], [out])
        return out


@ARCHITECTURES.register("cross_stitch", rank=35)
class CrossStitchNet(MultiTaskNetwork):
    """Cross-stitch: a column per task, mixed after each layer by learned T x T units
    (Misra et al., CVPR 2016)."""

    config_class = CrossStitchConfig
    facade_name = "CrossStitch"

    def __init__(self, inputs: InputSpec, tasks, config: CrossStitchConfig) -> None:
        super().__init__(inputs, tasks, config)
        c, n = config, len(tasks)
        sizes = [self.embedding.out_features, *c.column_units]
        self.columns = nn.ModuleList(
            BankMLP(
                n,
                sizes[i],
                [sizes[i + 1]],
                c.activation,
                c.dropout,
                c.batch_norm,
                shared_input=i == 0,
            )
            for i in range(len(c.column_units))
        )
        self.stitches = nn.ModuleList(CrossStitchUnit(n, c.self_weight) for _ in c.column_units)
        self.towers = self.make_towers(sizes[-1])

    def input_readers(self):
        return self.columns[0].input_readers()

    def forward(self, batch) -> Outputs:
        h = self.embedding(batch)  # (B, I)
        for column, stitch in zip(self.columns, self.stitches, strict=True):
            h = stitch(column(h))  # (T, B, H^l)
        return self.outputs(self.towers(h))
