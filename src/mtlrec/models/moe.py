"""Mixture-of-experts sharing: one-gate MoE and MMoE (Ma et al., KDD 2018).

Shape legend: E experts, T tasks, B batch, H expert output units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..exceptions import ConfigError
from ..layers import GateBank, mix
from .base import (
    ARCHITECTURES,
    ExpertsConfig,
    InputSpec,
    MultiTaskNetwork,
    Outputs,
    check_units,
)


@dataclass(kw_only=True)
class MoEConfig(ExpertsConfig):
    """num_experts: experts in the bank; expert_units: hidden units of each expert;
    gate_units: hidden units before each gate's softmax layer (empty = linear gate);
    gate_temperature: softmax temperature of the gates; entity_experts: experts per
    feature group beside the ``num_experts`` shared ones (which may then be 0)."""

    gate_units: Sequence[int] = (32, 32)
    gate_temperature: float = 1.0
    tower_units: Sequence[int] | Sequence[Sequence[int]] = (32, 32)

    takes_entity_experts = True

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_units("gate_units", self.gate_units)
        if not self.gate_temperature > 0:
            raise ConfigError(f"gate_temperature must be > 0, got {self.gate_temperature!r}")


@ARCHITECTURES.register("mmoe", rank=30)
class MMoENet(MultiTaskNetwork):
    """MMoE: each task mixes the shared experts with its own gate (Ma et al., KDD 2018)."""

    config_class = MoEConfig
    facade_name = "MMoE"
    num_gates_is_tasks = True

    def __init__(self, inputs: InputSpec, tasks, config: MoEConfig) -> None:
        super().__init__(inputs, tasks, config)
        c = config
        width = self.embedding.out_features
        self.experts = self.make_experts(c.num_experts, c.expert_units)
        experts = self.experts.members
        gates = len(tasks) if self.num_gates_is_tasks else 1
        every_expert = [list(range(experts))] * gates
        self.gates = GateBank(
            every_expert,
            experts,
            width,
            tuple(c.gate_units),
            c.activation,
            c.dropout,
            c.batch_norm,
            c.gate_temperature,
            shared_input=True,
        )
        one_mixture = not self.num_gates_is_tasks  # OMoE: every tower reads the one mixture
        self.towers = self.make_towers(self.experts.out_features, shared_input=one_mixture)

    def input_readers(self):
        return self.readers_of(self.experts, self.gates)

    def expert_groups(self) -> dict[str, list[str]]:
        return {"": list(getattr(self.experts, "member_groups", ["shared"] * self.experts.members))}

    def forward(self, batch) -> Outputs:
        x = self.embedding(batch)  # (B, I)
        experts = self.experts(x)  # (E, B, H)
        weights = self.gates(x)  # (G, B, E)
        mixed = mix(weights, experts)  # (G, B, H)
        names = self.task_names if self.num_gates_is_tasks else ["shared"]
        tower_in = mixed if self.num_gates_is_tasks else mixed.squeeze(0)  # (T, B, H) or (B, H)
        gates = dict(zip(names, weights.unbind(0), strict=True))
        return self.outputs(self.towers(tower_in), gates)


@ARCHITECTURES.register("omoe", rank=20)
class OMoENet(MMoENet):
    """One-gate mixture of experts: all tasks share a single gate's mixture."""

    facade_name = "OMoE"
    num_gates_is_tasks = False
