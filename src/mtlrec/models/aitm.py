"""AITM: adaptive information transfer between the steps of a conversion funnel (Xi, Chen,
Liu, Yu, Yang, Zhang and Chen, "Modeling the Sequential Dependence among Audience
Multi-step Conversions with Multi-task Learning in Targeted Display Advertising",
KDD 2021, arXiv 2105.08489).

The tasks, in the order given, are the funnel's steps (impression -> click ->
conversion ...). Each task t has a tower over the shared embedding, q_t = f_t(x)
(T, B, H). From the second task on, an adaptive information transfer (AIT) module
mixes what the step before passes on, p_{t-1} = g_{t-1}(z_{t-1}), with the task's own
q_t by attention over the two:

    w_u = softmax_{u in {p_{t-1}, q_t}} ( <h2(u), h3(u)> / sqrt(H) )
    z_t = sum_u w_u h1(u),        z_1 = q_1

with g a dense layer with ReLU and h1, h2, h3 linear maps of each AIT module; task t's
logit is a linear layer of z_t. The paper's behavioural expectation calibrator, a
penalty on a later step predicted above the one before it, is mtlrec's funnel penalty:
``Task("purchase", after="click", funnel="direct", penalty=0.6)``; AITM's own loss is the
tasks' losses over every impression, which is what ``funnel="direct"`` trains.

The attention has no fast-path rule: the step trains by autograd (``history_`` says so).
Shape legend: T tasks, B batch, H the towers' last units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..exceptions import ConfigError
from ..layers import BankMLP, Towers
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs, check_units


@dataclass(kw_only=True)
class AITMConfig(NetworkConfig):
    """tower_units: hidden units of each task's tower f_t (the last is H, the size the
    information is transferred at); transfer_units is not separate: g, h1, h2, h3 are
    H x H."""

    tower_units: Sequence[int] = (128, 64, 32)

    towers_may_differ = False  # the transfer needs every tower's width
    #: the paper's towers (128-64-32)
    reference: ClassVar[dict[str, Any]] = {"tower_units": [128, 64, 32]}
    reference_synthetic: ClassVar[dict[str, Any] | None] = {"tower_units": [67, 8]}

    def validate(self, num_tasks: int) -> None:
        if not self.tower_units or not all(isinstance(u, int) for u in self.tower_units):
            raise ConfigError(
                "aitm: tower_units is one list of hidden units for every task's tower "
                f"(the transfer needs one width), e.g. [128, 64, 32]; got {self.tower_units!r}"
            )
        super().validate(num_tasks)
        check_units("tower_units", self.tower_units)


class AdaptiveTransfer(nn.Module):
    """The AIT modules of tasks 2..T: (T, B, H) towers' outputs q -> (T, B, H) z."""

    #: no fast-path rule: a step over this attention runs autograd (it says so)
    has_fast_rule = False

    def __init__(self, tasks: int, units: int) -> None:
        super().__init__()
        links = max(tasks - 1, 0)
        self.transfer = nn.ModuleList(nn.Linear(units, units) for _ in range(links))  # g
        self.h1 = nn.ModuleList(nn.Linear(units, units) for _ in range(links))
        self.h2 = nn.ModuleList(nn.Linear(units, units) for _ in range(links))
        self.h3 = nn.ModuleList(nn.Linear(units, units) for _ in range(links))
        self.scale = 1.0 / math.sqrt(units)

    def fast_path_declines(self) -> str | None:
        return "AITM's information-transfer attention has no fast-path rule"

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        z = [q[0]]
        for t in range(1, q.shape[0]):
            p = torch.relu(self.transfer[t - 1](z[-1]))  # (B, H)
            pair = torch.stack([p, q[t]], dim=1)  # (B, 2, H)
            scores = (self.h2[t - 1](pair) * self.h3[t - 1](pair)).sum(-1) * self.scale
            weights = torch.softmax(scores, dim=1).unsqueeze(-1)  # (B, 2, 1)
            z.append((weights * self.h1[t - 1](pair)).sum(1))
        return torch.stack(z)


@ARCHITECTURES.register("aitm", rank=36)
class AITMNet(MultiTaskNetwork):
    """AITM: per-task towers with attention-based information transfer from each funnel
    step to the next (Xi et al., KDD 2021)."""

    config_class = AITMConfig
    facade_name = "AITM"

    def __init__(self, inputs: InputSpec, tasks, config: AITMConfig) -> None:
        super().__init__(inputs, tasks, config)
        c, n = config, len(tasks)
        self.task_towers = BankMLP(
            n,
            self.embedding.out_features,
            tuple(c.tower_units),
            c.activation,
            c.dropout,
            c.batch_norm,
            shared_input=True,
        )
        units = self.task_towers.out_features
        self.transfer = AdaptiveTransfer(n, units)
        self.towers = Towers(units, [()] * n, c.activation, outputs=self.task_outputs)

    def input_readers(self):
        return self.task_towers.input_readers()

    def forward(self, batch) -> Outputs:
        q = self.task_towers(self.embedding(batch))  # (T, B, H)
        return self.outputs(self.towers(self.transfer(q)))
