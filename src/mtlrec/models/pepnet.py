"""PEPNet: parameter and embedding personalised network (Chang, Zhang, Fu, Zang, Guan, Lu,
Niu, Song, Jiang, Li, Zhou and Gai, Kuaishou, "PEPNet: Parameter and Embedding
Personalized Network for Infusing with Personalized Prior Information", KDD 2023, arXiv
2302.01115).

Both parts are gate neural units, g(v) = C sigmoid(W'' relu(W' v + b') + b''), C = 2,
that scale what they gate element by element; the gated values themselves pass no
gradient into the gates' inputs (stop gradient, written sg):

* EPNet (embedding personalisation), with ``domain_group``: the input row e is scaled by
  a gate of the domain features and the rest of the row, e' = g_ep([e_domain, sg(e)]) * e.
  Without a domain group (one domain) e' = e.
* PPNet (parameter personalisation): each task has its own tower MLP; every hidden layer
  of it is scaled by a gate of the personalisation features (``personal_group``: the
  user / item / author features) and the row,
      h_l = g_pp,l([e_personal, sg(e')]) * act(W_l h_{l-1} + b_l),    h_0 = e'
  and a linear layer of the last h gives the task's logit.

The gate neural units and gated towers are :mod:`mtlrec.layers.gated_mlp`'s (POSO's
too); they have no fast-path rule: the step trains by autograd (``history_`` says so).
Shape legend: T tasks, B batch, I input row, H_l units of tower layer l.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..exceptions import ConfigError
from ..layers import Towers
from ..layers.gated_mlp import GatedMLP, ScalingGate
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs, check_units


@dataclass(kw_only=True)
class PEPNetConfig(NetworkConfig):
    """tower_units: each task's tower, every layer gated (PPNet); personal_group: the
    feature group whose columns feed PPNet's gates; domain_group: the group whose columns
    feed EPNet's gate (None: one domain, no EPNet); gate_units: hidden units of each
    gate; gate_scale: C, the gates' maximum."""

    tower_units: Sequence[int] = (128, 64)
    personal_group: str = "user"
    domain_group: str | None = None
    gate_units: int = 32
    gate_scale: float = 2.0

    towers_may_differ = False  # one gated tower bank
    reference: ClassVar[dict[str, Any]] = {"tower_units": [128, 64]}

    def check_groups(self, groups: Sequence[str]) -> None:
        super().check_groups(groups)
        for option in ("personal_group", "domain_group"):
            group = getattr(self, option)
            if group is not None and group not in groups:
                raise ConfigError(
                    f"pepnet: {option}={group!r} names a group no feature has (the feature "
                    f"groups are {list(groups)}); set group={group!r} on its features"
                )

    def validate(self, num_tasks: int) -> None:
        if not self.tower_units or not all(isinstance(u, int) for u in self.tower_units):
            raise ConfigError(
                "pepnet: tower_units is one list of hidden units for every task's gated "
                f"tower, e.g. [128, 64]; got {self.tower_units!r}"
            )
        super().validate(num_tasks)
        check_units("tower_units", self.tower_units)
        if not (isinstance(self.gate_units, int) and self.gate_units > 0):
            raise ConfigError(f"gate_units must be a positive int, got {self.gate_units!r}")
        if not self.gate_scale > 0:
            raise ConfigError(f"gate_scale must be > 0, got {self.gate_scale!r}")


class PersonalisedTowers(nn.Module):
    """EPNet on the input row, then one PPNet-gated tower MLP per task:
    (B, I) -> (T, B, H_L)."""

    def __init__(
        self,
        tasks: int,
        width: int,
        personal: torch.Tensor,
        domain: torch.Tensor | None,
        config: PEPNetConfig,
    ) -> None:
        super().__init__()
        c = config
        self.register_buffer("personal", personal, persistent=False)
        self.register_buffer("domain", domain, persistent=False)
        self.ep = (
            None
            if domain is None
            else ScalingGate(len(domain) + width, c.gate_units, width, c.gate_scale)
        )
        self.towers = nn.ModuleList(
            GatedMLP(
                width,
                len(personal) + width,
                c.tower_units,
                c.gate_units,
                c.gate_scale,
                c.activation,
                c.dropout,
            )
            for _ in range(tasks)
        )
        self.out_features = self.towers[0].out_features

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        if self.ep is not None:  # EPNet
            e = self.ep(torch.cat([e.index_select(1, self.domain), e.detach()], 1)) * e
        gate_in = torch.cat([e.index_select(1, self.personal), e.detach()], 1)
        return torch.stack([tower(e, gate_in) for tower in self.towers])  # PPNet per task


@ARCHITECTURES.register("pepnet", rank=39)
class PEPNetNet(MultiTaskNetwork):
    """PEPNet: an embedding gate from the domain features (EPNet) and per-task towers
    gated by the user / item / author features (PPNet) (Chang et al., KDD 2023)."""

    config_class = PEPNetConfig
    facade_name = "PEPNet"

    def __init__(self, inputs: InputSpec, tasks, config: PEPNetConfig) -> None:
        super().__init__(inputs, tasks, config)
        c, layer = config, self.embedding
        domain = None if c.domain_group is None else layer.group_columns(c.domain_group)
        self.personalised = PersonalisedTowers(
            len(tasks), layer.out_features, layer.group_columns(c.personal_group), domain, c
        )
        self.towers = Towers(
            self.personalised.out_features, [()] * len(tasks), c.activation,
            outputs=self.task_outputs,
        )  # fmt: skip

    def forward(self, batch) -> Outputs:
        return self.outputs(self.towers(self.personalised(self.embedding(batch))))
