"""Shared-Bottom (Caruana, 1997): one shared MLP feeding a tower per task.

With ``entity_experts`` (e.g. ``{"user": 1, "item": 1}``) each feature group gets bottoms
of its own that read only its features, side by side with the shared bottom (or
instead of it, ``shared_bottom=False``: a two-tower bottom), concatenated into the
towers' input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..exceptions import ConfigError
from ..layers.tape import side_by_side
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs, check_units


@dataclass(kw_only=True)
class SharedBottomConfig(NetworkConfig):
    """bottom_units: hidden units of the shared bottom MLP (and of each group bottom);
    shared_bottom: keep the bottom over every feature beside the groups' bottoms."""

    bottom_units: Sequence[int] = (128, 128)
    shared_bottom: bool = True

    takes_entity_experts = True

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_units("bottom_units", self.bottom_units)
        if not self.shared_bottom and not self.entity_experts:
            raise ConfigError(
                "shared_bottom=False leaves no bottom: give entity_experts, e.g. "
                "{'user': 1, 'item': 1}, or keep the shared bottom"
            )


@ARCHITECTURES.register("shared_bottom", rank=10)
class SharedBottomNet(MultiTaskNetwork):
    """Shared-Bottom: a shared MLP under one tower per task (Caruana, 1997)."""

    config_class = SharedBottomConfig
    facade_name = "SharedBottom"

    def __init__(self, inputs: InputSpec, tasks, config: SharedBottomConfig) -> None:
        super().__init__(inputs, tasks, config)
        c = config
        self.bottom = self.make_experts(int(c.shared_bottom), c.bottom_units)
        width = self.bottom.out_features * self.bottom.members
        self.towers = self.make_towers(width, shared_input=True)

    def input_readers(self):
        return self.bottom.input_readers()

    def forward(self, batch) -> Outputs:
        bottoms = self.bottom(self.embedding(batch))  # (E, B, H)
        # squeeze, not [0]: a view's backward is free, a select's fills a zero tensor
        shared = bottoms.squeeze(0) if self.bottom.members == 1 else side_by_side(bottoms)
        return self.outputs(self.towers(shared))  # (B, E * H) in
