"""Banks of parallel linear layers / MLPs computed as one batched matmul.

Shape legend: E bank members (experts, gates or towers), B batch, I input, H hidden.
A bank's input is either shared by every member, (B, I), or one input per member,
(E, B, I); its output is always (E, B, H).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import ConfigError

_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "leaky_relu": F.leaky_relu,
    "linear": lambda x: x,
}


def activation(name: str):
    """The activation function called ``name``."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"activation: unknown name {name!r}; choose one of {sorted(_ACTIVATIONS)}"
        ) from None


class BankLinear(nn.Module):
    """``members`` independent linear layers ``in_features -> out_features``.

    Weights are initialised per member with Glorot-uniform (Keras' default), so every
    expert starts from its own random weights; biases start at zero.
    """

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))
        bound = math.sqrt(6.0 / (in_features + out_features))
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, I) or (E, B, I) -> (E, B, O)."""
        if x.dim() == 2:  # shared input: one (B, I) @ (I, E*O) matmul
            b = x.shape[0]
            w = self.weight.permute(1, 0, 2).reshape(self.in_features, -1)  # (I, E*O)
            out = (x @ w).view(b, self.members, self.out_features).transpose(0, 1)
            return out + self.bias
        return torch.baddbmm(self.bias, x, self.weight)  # (E, B, O)


class BankMLP(nn.Module):
    """``members`` independent MLPs with the same hidden units, run as batched matmuls.

    Each hidden layer: linear -> (batch norm) -> activation -> (dropout).
    With no hidden units the bank is the identity (output = input, broadcast to members).
    """

    def __init__(
        self,
        members: int,
        in_features: int,
        units: Sequence[int],
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.members = members
        self.act = activation(activation_name)
        self.dropout = dropout
        sizes = [in_features, *units]
        self.layers = nn.ModuleList(
            BankLinear(members, a, b) for a, b in itertools.pairwise(sizes)
        )
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(members * b) if batch_norm else nn.Identity() for b in units
        )
        self.out_features = sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, I) or (E, B, I) -> (E, B, H_last)."""
        if not self.layers:
            return x.expand(self.members, *x.shape) if x.dim() == 2 else x
        for layer, norm in zip(self.layers, self.norms, strict=True):
            x = layer(x)
            if not isinstance(norm, nn.Identity):
                e, b, h = x.shape  # normalise each member's units separately
                x = norm(x.transpose(0, 1).reshape(b, e * h)).view(b, e, h).transpose(0, 1)
            x = self.act(x)
            if self.dropout:
                x = F.dropout(x, self.dropout, self.training)
        return x

    def weights(self) -> list[torch.Tensor]:
        """Weight matrices (not biases), for L2 regularisation."""
        return [layer.weight for layer in self.layers]
