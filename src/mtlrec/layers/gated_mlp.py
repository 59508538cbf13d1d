"""Gate neural units and the MLPs they personalise (POSO, Dai et al., arXiv 2108.04690;
PEPNet, Chang et al., KDD 2023).

A gate neural unit scales what it gates element by element,

    g(v) = C sigmoid(W'' relu(W' v + b') + b'')            (B, O), C = 2 by default

so it starts near 1 (sigmoid(0) = 1/2). A gated MLP scales every hidden layer's units by
its own gate of a separate gate input (the personalisation features):

    h_l = g_l(v) * act(W_l h_{l-1} + b_l),   h_0 = x      (B, H_l)

Neither has a fast-path rule: a step over them trains by autograd (it says so).
Shape legend: B batch, I input, G gate input, H_l units of layer l.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .banks import activation


class ScalingGate(nn.Module):
    """A gate neural unit: (B, G) -> (B, O) in (0, scale)."""

    #: no fast-path rule: a step over it runs autograd (it says so)
    has_fast_rule = False

    def __init__(self, inputs: int, hidden: int, outputs: int, scale: float = 2.0) -> None:
        super().__init__()
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def fast_path_declines(self) -> str | None:
        return "gate neural units (POSO, PEPNet) have no fast-path rule"

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.sigmoid(self.mlp(v))


class GatedMLP(nn.Module):
    """An MLP whose every hidden layer is scaled by a gate of the gate input:
    (B, I), (B, G) -> (B, H_L)."""

    #: no fast-path rule: a step over it runs autograd (it says so)
    has_fast_rule = False

    def __init__(
        self,
        in_features: int,
        gate_features: int,
        units: Sequence[int],
        gate_units: int,
        scale: float = 2.0,
        activation_name: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.act, self.dropout = activation(activation_name), dropout
        sizes = [in_features, *units]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, units, strict=False))
        self.gates = nn.ModuleList(ScalingGate(gate_features, gate_units, u, scale) for u in units)
        self.out_features = sizes[-1]

    def fast_path_declines(self) -> str | None:
        return "gated MLPs (POSO, PEPNet) have no fast-path rule"

    def forward(self, x: torch.Tensor, gate_input: torch.Tensor) -> torch.Tensor:
        h = x
        for layer, gate in zip(self.layers, self.gates, strict=True):
            h = self.act(layer(h)) * gate(gate_input)
            if self.dropout:
                h = nn.functional.dropout(h, self.dropout, self.training)
        return h
