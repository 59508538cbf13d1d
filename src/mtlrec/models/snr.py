"""SNR: sub-network routing (Ma, Zhao, Yi, Yang, Chen, Lu and Chi, "SNR: Sub-Network
Routing for Flexible Parameter Sharing in Multi-Task Learning", AAAI 2019).

The shared layer is split into E sub-networks (experts) u_i(x) (B, H); task t reads a
routed combination of them, each connection (t, i) switched by a coding variable z_ti in
[0, 1]:

    SNR-Trans:  v_t = sum_i z_ti W_ti u_i      (a transform per connection, H -> H_v)
    SNR-Aver:   v_t = sum_i z_ti u_i

The coding variables follow the hard concrete distribution of Louizos et al. (ICLR
2018) with a learned log alpha per connection: in training
s = sigmoid((log u - log(1 - u) + log alpha) / beta), u ~ U(0, 1), at prediction
s = sigmoid(log alpha), and z = min(1, max(0, s (zeta - gamma) + gamma)) with
beta = 2/3, gamma = -0.1, zeta = 1.1 (the paper's values). Task t's tower reads v_t.
The paper's L0 penalty, ``l0_weight`` x sum_ti P(z_ti > 0) with
P(z > 0) = sigmoid(log alpha - beta log(-gamma / zeta)), is the loss term
:class:`ExpectedConnections` (off by default, 0); without it the connections are learned
gates that can still close exactly (z clips at 0). The noise is drawn from
torch's generator, so a fit is reproducible from its seed and resumes exactly.

No fast-path rule (the sampled gates): the step trains by autograd (``history_`` says
so). Shape legend: T tasks, E sub-networks, B batch, H sub-network units, H_v routed units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..exceptions import ConfigError
from ..objective import Term
from .base import (
    ARCHITECTURES,
    ExpertsConfig,
    InputSpec,
    MultiTaskNetwork,
    Outputs,
    check_positive,
)

#: the hard concrete distribution's temperature and stretch (Louizos et al., 2018)
BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1


@dataclass(kw_only=True)
class SNRConfig(ExpertsConfig):
    """num_experts: E sub-networks; expert_units: hidden units of each; routed_units:
    H_v, each connection's transform output (SNR-Trans only)."""

    num_experts: int = 4
    routed_units: int = 64
    l0_weight: float = 0.0
    tower_units: Sequence[int] | Sequence[Sequence[int]] = (32, 32)

    reference: ClassVar[dict[str, Any]] = {
        "num_experts": 8,
        "expert_units": [64, 64],
        "routed_units": 64,
        "tower_units": [32, 32],
    }
    reference_synthetic: ClassVar[dict[str, Any] | None] = {
        "num_experts": 8,
        "expert_units": [16],
        "routed_units": 7,
        "tower_units": [8],
    }

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_positive("routed_units", self.routed_units)
        if not self.l0_weight >= 0:
            raise ConfigError(f"l0_weight must be >= 0, got {self.l0_weight!r}")

    def loss_terms(self) -> list[Term]:
        terms = super().loss_terms()
        return [*terms, ExpectedConnections(self.l0_weight)] if self.l0_weight else terms


@dataclass(kw_only=True)
class SNRAverConfig(SNRConfig):
    """SNR-Aver's hyperparameters: SNR-Trans's (``routed_units`` unused: a gated sum
    keeps the sub-networks' width)."""

    #: the sub-networks widened to MMoE's parameters: no transforms to spend them on
    reference_synthetic: ClassVar[dict[str, Any] | None] = {
        "num_experts": 8,
        "expert_units": [18],
        "tower_units": [8],
    }


class ExpectedConnections(Term):
    """weight x the expected number of open connections, sum_ti P(z_ti > 0), once per
    step (Louizos et al.'s L0 penalty)."""

    name = "snr_l0"
    per_row = False

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def value(self, network, batch) -> torch.Tensor:
        log_alpha = network.routing.log_alpha
        return self.weight * torch.sigmoid(log_alpha - BETA * math.log(-GAMMA / ZETA)).sum()


class Routing(nn.Module):
    """Hard-concrete coding variables z (T, E) and the routed sum: (E, B, H) -> (T, B, H_v)."""

    #: no fast-path rule: a step over the sampled gates runs autograd (it says so)
    has_fast_rule = False

    def __init__(self, tasks: int, experts: int, units: int, routed: int | None) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full((tasks, experts), 2.0))  # z starts near 1
        self.transform = None
        if routed is not None:  # SNR-Trans: W_ti per connection (T, E, H, H_v)
            bound = math.sqrt(6.0 / (units + routed))
            self.transform = nn.Parameter(
                torch.empty(tasks, experts, units, routed).uniform_(-bound, bound)
            )

    def fast_path_declines(self) -> str | None:
        return "SNR's sampled routing gates have no fast-path rule"

    def gates(self) -> torch.Tensor:
        """z (T, E): sampled in training, the expectation-free point at prediction."""
        if self.training:
            u = torch.rand_like(self.log_alpha).clamp_(1e-6, 1 - 1e-6)
            s = torch.sigmoid((u.log() - (-u).log1p() + self.log_alpha) / BETA)
        else:
            s = torch.sigmoid(self.log_alpha)
        return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)

    def forward(self, experts: torch.Tensor) -> torch.Tensor:
        z = self.gates()  # (T, E)
        if self.transform is None:  # SNR-Aver
            return torch.einsum("te,ebh->tbh", z, experts)
        return torch.einsum("te,ebh,tehv->tbv", z, experts, self.transform)


@ARCHITECTURES.register("snr_trans", rank=41)
class SNRTransNet(MultiTaskNetwork):
    """SNR-Trans: sub-networks routed to each task through gated transforms (Ma et al.,
    AAAI 2019)."""

    config_class = SNRConfig
    facade_name = "SNRTrans"
    transforms = True

    def __init__(self, inputs: InputSpec, tasks, config: SNRConfig) -> None:
        super().__init__(inputs, tasks, config)
        c = config
        self.experts = self.make_experts(c.num_experts, c.expert_units)
        units = self.experts.out_features
        routed = c.routed_units if self.transforms else None
        self.routing = Routing(len(tasks), self.experts.members, units, routed)
        self.towers = self.make_towers(routed or units)

    def input_readers(self):
        return self.experts.input_readers()

    def forward(self, batch) -> Outputs:
        experts = self.experts(self.embedding(batch))  # (E, B, H)
        return self.outputs(self.towers(self.routing(experts)))


@ARCHITECTURES.register("snr_aver", rank=42)
class SNRAverNet(SNRTransNet):
    """SNR-Aver: sub-networks routed to each task by gated sums (Ma et al., AAAI 2019)."""

    config_class = SNRAverConfig
    facade_name = "SNRAver"
    transforms = False
