"""Single-task baseline: one independent network (embeddings, bottom, tower) per task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..layers import BankMLP
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs, check_units


@dataclass(kw_only=True)
class SingleTaskConfig(NetworkConfig):
    """bottom_units: hidden units of each task's own bottom MLP (before its tower)."""

    bottom_units: Sequence[int] = (128, 128)

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_units("bottom_units", self.bottom_units)


@ARCHITECTURES.register("single_task", rank=0)
class SingleTaskNet(MultiTaskNetwork):
    """Single-task baseline: one independent network per task, sharing nothing.

    The networks run side by side as one bank."""

    config_class = SingleTaskConfig
    facade_name = "SingleTask"

    def __init__(self, inputs: InputSpec, tasks, config: SingleTaskConfig) -> None:
        self.copies = len(tasks)
        super().__init__(inputs, tasks, config)
        c = config
        self.bottoms = BankMLP(
            len(tasks),
            self.embedding.out_features,
            tuple(c.bottom_units),
            c.activation,
            c.dropout,
            c.batch_norm,
            shared_input=len(tasks) == 1,  # one task: one embedding set, a (B, I) input
        )
        self.towers = self.make_towers(self.bottoms.out_features)

    def forward(self, batch) -> Outputs:
        x = self.embedding(batch)  # (T, B, I); for one task (B, I)
        return self.outputs(self.towers(self.bottoms(x)))
