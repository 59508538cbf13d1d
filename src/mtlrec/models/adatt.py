"""AdaTT: adaptive task-to-task fusion (Li, Hu, Yang, Wang, Liu, Zhu, Li, Chen, Fu and
Cao, Meta, "AdaTT: Adaptive Task-to-Task Fusion Network for Multitask Learning in
Recommendations", KDD 2023, arXiv 2304.04959).

AdaTT-sp, the paper's variant without shared experts: every level has ``m`` experts per
task, and task t's fusion unit combines *every* task's experts, gated by its own input,
with a linear combination of its own experts (the residual that keeps each task's own
knowledge):

    g_t = softmax(W_t x_t)                                          (B, T m)
    f_t = sum_j g_tj E_j(x_task(j)) + sum_k v_tk E_(t,k)(x_t)        (B, H)

with x_t task t's input to the level (the input row at the first level, f_t of the
level below after it), E_j the T m experts (each reads its own task's input) and v_t
(m,) learned, starting at 1/m (the paper adds the single expert unweighted when m = 1;
here that weight starts at 1 and trains). The last level's f_t feeds task t's tower.
Gates are linear, as in the paper, unless ``gate_units`` asks for hidden layers.

The experts and gates are mtlrec's banks; the native combination has no fast-path rule,
so the step trains by autograd (``history_`` says so).
Shape legend: T tasks, m experts per task, E = T m experts, B batch, I level input
units, H expert units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

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
class AdaTTConfig(NetworkConfig):
    """num_task_experts: m, experts of each task per level; num_levels: fusion levels;
    expert_units: hidden units of each expert; gate_units: hidden units before each
    gate's softmax (empty = the paper's linear gate)."""

    num_task_experts: int = 2
    num_levels: int = 2
    expert_units: Sequence[int] = (64, 64)
    gate_units: Sequence[int] = ()
    tower_units: Sequence[int] | Sequence[Sequence[int]] = (32, 32)

    #: PLE's reference experts per task (8 in all with 2 tasks and 4 each), two levels
    reference: ClassVar[dict[str, Any]] = {
        "num_task_experts": 4,
        "num_levels": 2,
        "expert_units": [64, 64],
        "tower_units": [32, 32],
    }
    #: MMoE's 8 experts of 16 units, as 4 per task, one level
    reference_synthetic: ClassVar[dict[str, Any] | None] = {
        "num_task_experts": 4,
        "num_levels": 1,
        "expert_units": [16],
        "tower_units": [8],
    }

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_positive("num_task_experts", self.num_task_experts)
        check_positive("num_levels", self.num_levels)
        check_units("expert_units", self.expert_units)
        check_units("gate_units", self.gate_units)


class FusionLevel(nn.Module):
    """One AdaTT level: T m experts in one bank, T gates over all of them, and each
    task's native combination of its own m experts. (B, I) or (T, B, I) -> (T, B, H)."""

    #: no fast-path rule for the native combination: a step runs autograd (it says so)
    has_fast_rule = False

    def __init__(
        self, num_tasks: int, in_features: int, c: AdaTTConfig, experts: BankMLP | None
    ) -> None:
        """``experts``: the first level's bank, reading the input row; later levels
        build their own, each expert reading its task's input."""
        super().__init__()
        m = c.num_task_experts
        self.tasks, self.per_task, self.first = num_tasks, m, experts is not None
        every = num_tasks * m
        self.expert_runs = member_runs([e // m for e in range(every)])
        self.experts = experts or BankMLP(
            every,
            in_features,
            tuple(c.expert_units),
            c.activation,
            c.dropout,
            c.batch_norm,
            shared_input=False,
        )
        self.gates = GateBank(
            [list(range(every))] * num_tasks,
            every,
            in_features,
            tuple(c.gate_units),
            c.activation,
            c.dropout,
            c.batch_norm,
            shared_input=self.first,
        )
        self.native = nn.Parameter(torch.full((num_tasks, m), 1.0 / m))  # v (T, m)
        self.out_features = self.experts.out_features

    def fast_path_declines(self) -> str | None:
        return "AdaTT's native-expert combination has no fast-path rule"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, I) at the first level, else (T, B, I) -> (f (T, B, H), gates (T, B, E))."""
        experts = self.experts(x) if self.first else self.experts(x, self.expert_runs)
        weights = self.gates(x)  # (T, B, E)
        own = experts.unflatten(0, (self.tasks, self.per_task))  # (T, m, B, H)
        native = torch.einsum("tm,tmbh->tbh", self.native, own)
        return mix(weights, experts) + native, weights


@ARCHITECTURES.register("adatt", rank=55)
class AdaTTNet(MultiTaskNetwork):
    """AdaTT: task-specific experts fused across tasks by gates plus a native residual
    (Li et al., KDD 2023)."""

    config_class = AdaTTConfig
    facade_name = "AdaTT"

    def __init__(self, inputs: InputSpec, tasks, config: AdaTTConfig) -> None:
        super().__init__(inputs, tasks, config)
        c, width, levels = config, self.embedding.out_features, []
        first = self.make_experts(len(tasks) * c.num_task_experts, c.expert_units)
        for level in range(c.num_levels):
            bank = first if level == 0 else None
            levels.append(FusionLevel(len(tasks), width, c, bank))
            width = levels[-1].out_features
        self.levels = nn.ModuleList(levels)
        self.towers = self.make_towers(width)

    def input_readers(self):
        return self.readers_of(self.levels[0].experts, self.levels[0].gates)

    def expert_groups(self) -> dict[str, list[str]]:
        m = self.config.num_task_experts
        own = [t for t in self.task_names for _ in range(m)]
        return {f"level{i}": list(own) for i in range(len(self.levels))}

    def forward(self, batch) -> Outputs:
        x = self.embedding(batch)  # (B, I)
        gates = {}
        for i, level in enumerate(self.levels):
            x, weights = level(x)  # (T, B, H): task t's input to what follows
            names = zip(self.task_names, weights.unbind(0), strict=True)
            gates.update({f"level{i}/{name}": w for name, w in names})
        return self.outputs(self.towers(x), gates)
