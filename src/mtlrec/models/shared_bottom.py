"""Shared-Bottom (Caruana, 1997): one shared MLP feeding a tower per task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..layers import BankMLP
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs, check_units


@dataclass(kw_only=True)
class SharedBottomConfig(NetworkConfig):
    """bottom_units: hidden units of the shared bottom MLP."""

    bottom_units: Sequence[int] = (128, 128)

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_units("bottom_units", self.bottom_units)


@ARCHITECTURES.register("shared_bottom", rank=10)
class SharedBottomNet(MultiTaskNetwork):
    """Shared-Bottom: a shared MLP under one tower per task (Caruana, 1997)."""

    config_class = SharedBottomConfig
    facade_name = "SharedBottom"

    def __init__(self, inputs: InputSpec, tasks, config: SharedBottomConfig) -> None:
        super().__init__(inputs, tasks, config)
        c = config
        self.bottom = BankMLP(
            1,
            self.embedding.out_features,
            tuple(c.bottom_units),
            c.activation,
            c.dropout,
            c.batch_norm,
            shared_input=True,
        )
        self.towers = self.make_towers(self.bottom.out_features, shared_input=True)

    def input_readers(self):
        return self.bottom.input_readers()

    def forward(self, batch) -> Outputs:
        # squeeze, not [0]: a view's backward is free, a select's fills a zero tensor
        shared = self.bottom(self.embedding(batch)).squeeze(0)  # (B, H)
        return self.outputs(self.towers(shared))
