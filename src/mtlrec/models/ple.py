"""CGC and PLE (Tang et al., RecSys 2020): task-specific plus shared experts, stacked.

Each level has, per task, ``num_specific_experts`` experts, plus ``num_shared_experts``
shared ones. Task t's gate mixes its own experts with the shared ones; in every level
but the last a shared gate mixes all experts and feeds the next level's shared experts,
while task t's mixture feeds the next level's task-t experts. One level is CGC.

With ``entity_experts`` the first level (the one reading the features) also has
experts per feature group, each reading only its group's features; every gate of the
level mixes them as it mixes the shared experts.

Shape legend: T tasks, E experts of a level, G gates, B batch, H expert units.
Groups: 0..T-1 are the tasks, T is the shared group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..exceptions import ConfigError
from ..layers import BankMLP, GateBank, mix
from ..layers.banks import member_runs
from .base import (
    ARCHITECTURES,
    InputSpec,
    MultiTaskNetwork,
    NetworkConfig,
    Outputs,
    check_positive,
    check_units,
)


@dataclass(kw_only=True)
class PLEConfig(NetworkConfig):
    """num_specific_experts: experts of each task per level; num_shared_experts: shared
    experts per level; num_levels: extraction levels (1 = CGC); expert_units / gate_units:
    hidden units of each expert / before each gate's softmax (empty = linear gate)."""

    num_specific_experts: int = 8
    num_shared_experts: int = 4
    num_levels: int = 2
    expert_units: Sequence[int] = (64, 64)
    gate_units: Sequence[int] = (16, 16)
    tower_units: Sequence[int] | Sequence[Sequence[int]] = (32, 32)

    takes_entity_experts = True

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_positive("num_specific_experts", self.num_specific_experts, minimum=0)
        check_positive("num_shared_experts", self.num_shared_experts, minimum=0)
        check_positive("num_levels", self.num_levels)
        check_units("expert_units", self.expert_units)
        check_units("gate_units", self.gate_units)
        if self.num_specific_experts + self.num_shared_experts == 0:
            raise ConfigError("num_specific_experts + num_shared_experts must be >= 1")


@dataclass(kw_only=True)
class CGCConfig(PLEConfig):
    """CGC is PLE with one level."""

    num_levels: int = 1

    def validate(self, num_tasks: int) -> None:
        if self.num_levels != 1:
            raise ConfigError(
                f"CGC has exactly one level, got num_levels={self.num_levels}; "
                "use PLE for more levels"
            )
        super().validate(num_tasks)


class ExtractionLevel(nn.Module):
    """One CGC level: all experts in one bank, all gates in one gate bank."""

    def __init__(
        self,
        num_tasks: int,
        in_features: int,
        c: PLEConfig,
        first: bool,
        last: bool,
        experts: nn.Module | None = None,
    ) -> None:
        """``experts``: the first level's bank (task experts, shared experts, then any
        entity experts; :meth:`MultiTaskNetwork.make_experts`)."""
        super().__init__()
        s, n = c.num_specific_experts, c.num_shared_experts
        num_experts = num_tasks * s + n if experts is None else experts.members
        # expert e belongs to group e // s for task experts, group T for shared experts
        group = torch.cat(
            [
                torch.arange(num_tasks).repeat_interleave(s),
                torch.full((num_experts - num_tasks * s,), num_tasks),
            ]
        )
        self.expert_runs = member_runs(group.tolist())  # the group input each expert reads
        # a shared gate feeds the next level's shared experts: none in the last level
        gates = num_tasks if last or n == 0 else num_tasks + 1
        shared = list(range(num_tasks * s, num_experts))
        selections = [list(range(t * s, (t + 1) * s)) + shared for t in range(num_tasks)]
        if gates > num_tasks:
            selections.append(list(range(num_experts)))  # the shared gate sees every expert
        # the first level reads the embeddings; later ones group inputs
        self.experts = experts or BankMLP(
            num_experts,
            in_features,
            tuple(c.expert_units),
            c.activation,
            c.dropout,
            c.batch_norm,
            shared_input=first,
        )
        self.gates = GateBank(
            selections,
            num_experts,
            in_features,
            tuple(c.gate_units),
            c.activation,
            c.dropout,
            c.batch_norm,
            shared_input=first,
        )
        self.num_gates = gates
        self.first = first
        self.out_features = self.experts.out_features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, I) shared input or (T+1, B, I) group inputs -> ((G, B, H), weights (G, B, E))."""
        gate_in = x if self.first else x[: self.num_gates]
        # later levels: each expert reads its group's input (task t's or the shared mixture)
        experts = self.experts(x) if self.first else self.experts(x, self.expert_runs)
        weights = self.gates(gate_in)  # (G, B, E)
        return mix(weights, experts), weights


@ARCHITECTURES.register("ple", rank=50)
class PLENet(MultiTaskNetwork):
    """Progressive layered extraction: stacked CGC levels (Tang et al., RecSys 2020)."""

    config_class = PLEConfig
    facade_name = "PLE"

    def __init__(self, inputs: InputSpec, tasks, config: PLEConfig) -> None:
        super().__init__(inputs, tasks, config)
        width, levels, c = self.embedding.out_features, [], config
        first_bank = self.make_experts(
            len(self.tasks) * c.num_specific_experts + c.num_shared_experts, c.expert_units
        )
        for level in range(config.num_levels):
            last, bank = level == config.num_levels - 1, first_bank if level == 0 else None
            levels.append(ExtractionLevel(len(tasks), width, config, level == 0, last, bank))
            width = levels[-1].out_features
        self.levels = nn.ModuleList(levels)
        self.towers = self.make_towers(width)

    def input_readers(self):
        return self.readers_of(self.levels[0].experts, self.levels[0].gates)

    def expert_groups(self) -> dict[str, list[str]]:
        s = self.config.num_specific_experts
        groups = {}
        for i, level in enumerate(self.levels):
            own = [t for t in self.task_names for _ in range(s)]
            rest = getattr(level.experts, "member_groups", None)
            rest = (
                ["shared"] * (level.experts.members - len(own))
                if rest is None
                else rest[len(own) :]
            )
            groups[f"level{i}"] = own + list(rest)
        return groups

    def forward(self, batch) -> Outputs:
        x = self.embedding(batch)  # (B, I)
        names = [*self.task_names, "shared"]
        gates = {}
        for i, level in enumerate(self.levels):
            x, weights = level(x)  # (G, B, H): one input per task (+ shared) for what follows
            parts = weights.unbind(0)
            gates.update({f"level{i}/{n}": w for n, w in zip(names, parts, strict=False)})
        return self.outputs(self.towers(x), gates)  # the last level has exactly T gates


@ARCHITECTURES.register("cgc", rank=40)
class CGCNet(PLENet):
    """Customized gate control: task-specific and shared experts (Tang et al., RecSys 2020)."""

    config_class = CGCConfig
    facade_name = "CGC"
