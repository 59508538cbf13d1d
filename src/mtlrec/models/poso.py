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

The gated MLP is :class:`mtlrec.layers.gated_mlp.GatedMLP` (PEPNet's towers are too); it
has no fast-path rule: the step trains by autograd (``history_`` says so).
Shape legend: B batch, P personalisation columns, H_l units of layer l.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..exceptions import ConfigError
from ..layers.gated_mlp import GatedMLP
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
        self.register_buffer("personal", personal, persistent=False)  # (P,) column indices
        self.bottom = GatedMLP(
            self.embedding.out_features,
            len(personal),
            c.bottom_units,
            c.gate_units,
            c.gate_scale,
            c.activation,
            c.dropout,
        )
        self.towers = self.make_towers(self.bottom.out_features, shared_input=True)

    def forward(self, batch) -> Outputs:
        x = self.embedding(batch)  # (B, I)
        return self.outputs(self.towers(self.bottom(x, x.index_select(1, self.personal))))
