"""DSelect-k: multi-gate mixture of experts whose gates select k experts through
differentiable binary codes (Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder,
Hong and Chi, "DSelect-k: Differentiable Selection in the Mixture of Experts with
Applications to Multi-Task Learning", NeurIPS 2021, arXiv 2106.03760).

Each task's gate holds k single-expert selectors. Selector i reads m = ceil(log2 E)
logits z_i(x) of the input row and picks expert j with weight

    r_i(x)_j = prod_{b=1..m} [ S(z_ib) if bit b of j is 1 else 1 - S(z_ib) ]
    S(t) = 0 (t <= -gamma/2),  1 (t >= gamma/2),  -2 t^3 / gamma^3 + 3 t / (2 gamma) + 1/2

(the smooth step: exactly 0 or 1 outside [-gamma/2, gamma/2], so a selector can reach
one expert exactly and stop there). The gate is the softmax-weighted sum of the
selectors, w(x) = sum_i softmax(a(x))_i r_i(x), and the task reads sum_j w_j f_j(x) as in
MMoE. Both z(x) and a(x) are linear in the input (the paper's per-example gating).

Here, with E not a power of two, the codes beyond expert E - 1 select nothing and w is
renormalised over the E experts. The paper's regulariser that pushes each selector to a
single expert, ``entropy_weight`` x the mean over rows of sum_{t, i} H(r_ti(x)), is the
loss term :class:`SelectorEntropy` (off by default, 0). The
gates have no fast-path rule: the step trains by autograd (``history_`` says so).
Shape legend: T tasks, B batch, E experts, k selectors, m code bits, H expert units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..exceptions import ConfigError
from ..layers import BankLinear, mix
from ..objective import Term
from .base import (
    ARCHITECTURES,
    ExpertsConfig,
    InputSpec,
    MultiTaskNetwork,
    Outputs,
    check_positive,
)


@dataclass(kw_only=True)
class DSelectKConfig(ExpertsConfig):
    """num_experts: experts in the bank; expert_units: hidden units of each expert;
    num_selectors: k, the experts each task's gate may end up selecting; gamma: the width
    of the smooth step's transition."""

    num_selectors: int = 2
    gamma: float = 1.0
    entropy_weight: float = 0.0
    tower_units: Sequence[int] | Sequence[Sequence[int]] = (32, 32)

    min_experts = 2
    #: MMoE's reference experts and towers, two selectors per gate
    reference: ClassVar[dict[str, Any]] = {
        "num_experts": 8,
        "expert_units": [64, 64],
        "num_selectors": 2,
        "tower_units": [32, 32],
    }
    #: MMoE's synthetic experts and towers
    reference_synthetic: ClassVar[dict[str, Any] | None] = {
        "num_experts": 8,
        "expert_units": [16],
        "tower_units": [8],
    }

    def loss_terms(self) -> list[Term]:
        terms = super().loss_terms()
        return [*terms, SelectorEntropy(self.entropy_weight)] if self.entropy_weight else terms

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        check_positive("num_selectors", self.num_selectors)
        if not self.entropy_weight >= 0:
            raise ConfigError(f"entropy_weight must be >= 0, got {self.entropy_weight!r}")
        if not self.gamma > 0:
            raise ConfigError(f"gamma must be > 0, got {self.gamma!r}")


class SelectorEntropy(Term):
    """weight x sum over rows, tasks and selectors of the entropy of the selector's
    expert weights r_ti(x) (Hazimeh et al., section 3.3), from the gates' last forward."""

    name = "dselect_k_entropy"
    per_row = True

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def value(self, network, batch) -> torch.Tensor:
        picks = network.gates.last_picks  # (T, B, k, E), this batch's
        # p log p, with log's argument floored: a selector at exactly 0 has gradient
        # log(1e-12) there, not -inf
        return -self.weight * (picks * picks.clamp_min(1e-12).log()).sum()


def smooth_step(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """S(t): 0 below -gamma/2, 1 above gamma/2, a cubic between (Hazimeh et al., eq. 3)."""
    cubic = (-2.0 / gamma**3) * t**3 + (1.5 / gamma) * t + 0.5
    return torch.where(t <= -gamma / 2, 0.0, torch.where(t >= gamma / 2, 1.0, cubic))


class DSelectKGates(nn.Module):
    """T gates of k smooth-step selectors each: (B, I) -> weights (T, B, E), rows
    summing to 1."""

    def __init__(
        self, tasks: int, experts: int, in_features: int, selectors: int, gamma: float
    ) -> None:
        super().__init__()
        self.experts, self.selectors, self.gamma = experts, selectors, gamma
        self.bits = max(1, math.ceil(math.log2(experts)))
        codes = (torch.arange(experts).unsqueeze(1) >> torch.arange(self.bits)) & 1
        self.register_buffer("codes", codes.bool(), persistent=False)  # (E, m)
        # per task: k x m code logits and k selector-weight logits, linear in the input
        self.logits = BankLinear(tasks, in_features, selectors * (self.bits + 1), True)
        with torch.no_grad():  # start every code in the smooth step's transition
            bound = gamma / 2
            self.logits.weight.uniform_(
                -bound / math.sqrt(in_features), bound / math.sqrt(in_features)
            )
            self.logits.bias.uniform_(-bound, bound)

    #: no fast-path rule: a step over these gates runs autograd (it says so)
    has_fast_rule = False

    def fast_path_declines(self) -> str | None:
        return "DSelect-k's smooth-step gates have no fast-path rule"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.logits.members
        b, k, m = x.shape[0], self.selectors, self.bits
        out = self.logits(x)  # (T, B, k (m + 1))
        z = out[..., : k * m].reshape(t, b, k, 1, m)
        s = smooth_step(z, self.gamma)
        picks = torch.where(self.codes, s, 1.0 - s).prod(-1)  # (T, B, k, E)
        self.last_picks = picks  # for SelectorEntropy
        share = torch.softmax(out[..., k * m :], dim=-1)  # (T, B, k)
        weights = (share.unsqueeze(-1) * picks).sum(2)  # (T, B, E)
        if self.experts < 2**m:  # codes past the last expert select nothing
            weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
        return weights


@ARCHITECTURES.register("dselect_k", rank=33)
class DSelectKNet(MultiTaskNetwork):
    """DSelect-k: MMoE with gates that select k experts by differentiable binary codes
    (Hazimeh et al., NeurIPS 2021)."""

    config_class = DSelectKConfig
    facade_name = "DSelectK"

    def __init__(self, inputs: InputSpec, tasks, config: DSelectKConfig) -> None:
        super().__init__(inputs, tasks, config)
        c = config
        self.experts = self.make_experts(c.num_experts, c.expert_units)
        self.gates = DSelectKGates(
            len(tasks), c.num_experts, self.embedding.out_features, c.num_selectors, c.gamma
        )
        self.towers = self.make_towers(self.experts.out_features)

    def forward(self, batch) -> Outputs:
        x = self.embedding(batch)  # (B, I)
        experts = self.experts(x)  # (E, B, H)
        weights = self.gates(x)  # (T, B, E)
        gates = dict(zip(self.task_names, weights.unbind(0), strict=True))
        return self.outputs(self.towers(mix(weights, experts)), gates)
