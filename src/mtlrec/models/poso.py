"""POSO: personalised cold-start modules (Dai, Wang, Huang, Zhang, Yang, Huang, Li, Xu
and Zhang, Kuaishou, "POSO: Personalized Cold Start Modules for Large-scale Recommender
Systems", arXiv 2108.04690).

New and regular users behave differently, and their few personalisation features (user
age on the platform, activity, a new-user flag) drown in a wide input row. POSO gives
those features a direct say in every hidden layer: a personalised gate, computed from
the personalisation features only, scales each hidden unit (POSO applied to an MLP):

    g_l(pc) = C * sigmoid(W''_l relu(W'_l pc + b'_l) + b''_l)      (B, H_l), C = 2
    h_l = g_l(pc) * act(W_l h_{l-1} + b_l)                           (B, H_l)

with pc the input row's columns of the features in ``personal_group`` (``group=`` on
those features) and h_0 the whole input row; the shared MLP then feeds a tower per
task, as Shared-Bottom does. C = 2 makes a gate start near 1 (sigmoid(0) = 1/2).

The gates have no fast-path rule: the step trains by autograd (``history_`` says so).
Shape legend: B batch, P personalisation columns, H_l units of layer l.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..exceptions import ConfigError
from ..layers import activation
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs, check_units


@dataclass(kw_only=True)
class POSOConfig(NetworkConfig):
    """bottom_units: the shared MLP's hidden units, each layer gated; personal_group: the
    feature group (``group=`` on features) whose columns compute the gates; gate_units:
    hidden units of each gate's MLP; gate_scale: C, the gates' maximum."""

    bottom_units: Sequence[int] = (128, 128)
    personal_group: str = "user"
    gate_units: int = 32
    gate_scale: float = 2.0

    reference: ClassVar[dict[str, Any]] = {"bottom_units": [128, 128], "tower_units": [64, 32]}

    def check_groups(self, groups: Sequence[str]) -> None:
        super().check_groups(groups)
        if self.personal_group not in groups:
            raise ConfigError(
                f"poso: no feature has group={self.personal_group!r} (the personalisation "
                f"features); the feature groups are {list(groups)}: give such features "
                f"group={self.personal_group!r}, or set personal_group to one of them"
            )

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_units("bottom_units", self.bottom_units)
        if not self.bottom_units:
            raise ConfigError("bottom_units: give at least one layer to personalise, e.g. [128]")
        if not (isinstance(self.gate_units, int) and self.gate_units > 0):
            raise ConfigError(f"gate_units must be a positive int, got {self.gate_units!r}")
        if not self.gate_scale > 0:
            raise ConfigError(f"gate_scale must be > 0, got {self.gate_scale!r}")


class PersonalisedMLP(nn.Module):
    """An MLP whose every hidden layer is scaled unit by unit by a gate of the
    personalisation columns: (B, I) -> (B, H_L)."""

    #: no fast-path rule: a step over these gates runs autograd (it says so)
    has_fast_rule = False

    def __init__(
        self,
        in_features: int,
        personal: torch.Tensor,
        units: Sequence[int],
        gate_units: int,
        scale: float,
        activation_name: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.register_buffer("personal", personal, persistent=False)  # (P,) column indices
        self.scale, self.act, self.dropout = scale, activation(activation_name), dropout
        sizes = [in_features, *units]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, units, strict=False))
        self.gates = nn.ModuleList(
            nn.Sequential(nn.Linear(len(personal), gate_units), nn.ReLU(), nn.Linear(gate_units, u))
            for u in units
        )
        self.out_features = sizes[-1]

    def fast_path_declines(self) -> str | None:
        return "POSO's personalised gates have no fast-path rule"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pc = x.index_select(1, self.personal)  # (B, P)
        h = x
        for layer, gate in zip(self.layers, self.gates, strict=True):
            h = self.act(layer(h)) * (self.scale * torch.sigmoid(gate(pc)))
            if self.dropout:
                h = nn.functional.dropout(h, self.dropout, self.training)
        return h


@ARCHITECTURES.register("poso", rank=38)
class POSONet(MultiTaskNetwork):
    """POSO: a shared MLP whose hidden units are gated by the personalisation features
    (Dai et al., arXiv 2108.04690), under one tower per task."""

    config_class = POSOConfig
    facade_name = "POSO"

    def __init__(self, inputs: InputSpec, tasks, config: POSOConfig) -> None:
        super().__init__(inputs, tasks, config)
        c = config
        personal = self.embedding.group_columns(c.personal_group)  # checked: check_groups
        self.bottom = PersonalisedMLP(
            self.embedding.out_features,
            personal,
            c.bottom_units,
            c.gate_units,
            c.gate_scale,
            c.activation,
            c.dropout,
        )
        self.towers = self.make_towers(self.bottom.out_features, shared_input=True)

    def forward(self, batch) -> Outputs:
        return self.outputs(self.towers(self.bottom(self.embedding(batch))))
