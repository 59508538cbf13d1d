"""Shared-Bottom (Caruana, 1997): one shared MLP feeding a tower per task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..layers import BankMLP
from .base import InputSpec, MultiTaskNetwork, NetworkConfig, check_units


@dataclass(kw_only=True)
class SharedBottomConfig(NetworkConfig):
    """bottom_units: hidden units of the shared bottom MLP."""

    bottom_units: Sequence[int] = (128, 128)

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_units("bottom_units", self.bottom_units)


class SharedBottomNet(MultiTaskNetwork):
    """Hard parameter sharing: every task reads the same bottom representation."""

    config_class = SharedBottomConfig

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

    def compute(self, sparse, dense):
        # squeeze, not [0]: a view's backward is free, a select's fills a zero tensor
        shared = self.bottom(self.embedding(sparse, dense)).squeeze(0)  # (B, H)
        return self.towers(shared), {}  # (T, B)
