"""Banks of parallel linear layers / MLPs computed as one batched matmul.

Shape legend: E bank members (experts, gates or towers), B batch, I input, H hidden.
A bank's input is either shared by every member, (B, I), or one input per member,
(E, B, I); its output is (E, B, H) (for a shared input, a transposed view of a (B, E, H)
buffer, so no copy is made).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import ConfigError
from .dropout import dropout

#: name -> (function, in-place variant or None)
_ACTIVATIONS: dict[str, tuple[Callable, Callable | None]] = {
    "relu": (F.relu, torch.relu_),
    "gelu": (F.gelu, None),
    "silu": (F.silu, lambda x: F.silu(x, inplace=True)),
    "tanh": (torch.tanh, torch.tanh_),
    "sigmoid": (torch.sigmoid, None),
    "leaky_relu": (F.leaky_relu, F.leaky_relu_),
    "linear": (lambda x: x, lambda x: x),
}


Runs = list[tuple[int, int, int]]  # (group input, first member, end member)


def member_runs(group: Sequence[int]) -> Runs:
    """Consecutive members reading the same group input, as (group, start, stop)."""
    runs: Runs = []
    for e, g in enumerate(group):
        if runs and runs[-1][0] == g:
            runs[-1] = (g, runs[-1][1], e + 1)
        else:
            runs.append((g, e, e + 1))
    return runs


def activation(name: str, inplace: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function called ``name`` (its in-place form when asked and available)."""
    try:
        function, in_place = _ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"activation: unknown name {name!r}; choose one of {sorted(_ACTIVATIONS)}"
        ) from None
    return in_place if inplace and in_place is not None else function


class BankLinear(nn.Module):
    """``members`` independent linear layers ``in_features -> out_features``.

    With ``shared_input`` every member reads the same (B, I) input and the bank is one
    (B, I) @ (I, E*O) matmul with the bias fused in; the weight is stored as (I, E, O).
    Otherwise each member reads its own (E, B, I) input through one batched matmul;
    the weight is stored as (E, I, O). Weights are initialised per member with
    Glorot-uniform (Keras' default), so every expert starts from its own random weights;
    biases start at zero.
    """

    def __init__(
        self, members: int, in_features: int, out_features: int, shared_input: bool = False
    ) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.shared_input = shared_input
        shape = (
            (in_features, members, out_features)
            if shared_input
            else (members, in_features, out_features)
        )
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))
        bound = math.sqrt(6.0 / (in_features + out_features))
        nn.init.uniform_(self.weight, -bound, bound)

    @property
    def width(self) -> int:
        """Outputs of all members side by side (members x out_features)."""
        return self.members * self.out_features

    def member_weight(self, e: int) -> torch.Tensor:
        """The (I, O) weight of member ``e``."""
        return self.weight[:, e] if self.shared_input else self.weight[e]

    def grouped(self, x: torch.Tensor, runs: Runs) -> torch.Tensor:
        """(G, B, I) group inputs -> (E, B, O), members ``start:stop`` of each run
        ``(g, start, stop)`` reading ``x[g]``: one ``bmm`` per run over the input broadcast
        to its members, into that run's rows of the output, instead of a copy of the input
        per member (PLE's later levels: 1.4x faster). Not differentiable (``out=``)."""
        out = x.new_empty(self.members, x.shape[1], self.out_features)
        for g, start, stop in runs:
            member_in = x[g].expand(stop - start, *x.shape[1:])
            torch.bmm(member_in, self.weight[start:stop], out=out[start:stop])
        return out.add_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, I) if ``shared_input`` else (E, B, I) -> (E, B, O); a shared-input layer
        also takes a ``ProjectedInput`` (layers.folding) holding its output."""
        if not isinstance(x, torch.Tensor):  # a ProjectedInput: the output is computed
            return x.output(self)
        if self.shared_input:
            b = x.shape[0]
            out = torch.addmm(self.bias.view(1, -1), x, self.weight.view(self.in_features, -1))
            return out.view(b, self.members, self.out_features).transpose(0, 1)
        return torch.bmm(x, self.weight).add_(self.bias)  # cheaper than baddbmm's bias copy


class BankMLP(nn.Module):
    """``members`` independent MLPs with the same hidden units, run as batched matmuls.

    Each hidden layer: linear -> (batch norm) -> activation -> (dropout). With
    ``shared_input`` the first layer reads one (B, I) input shared by every member. With
    no hidden units the bank is the identity (a shared input is broadcast to members).
    """

    def __init__(
        self,
        members: int,
        in_features: int,
        units: Sequence[int],
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        shared_input: bool = False,
    ) -> None:
        super().__init__()
        self.members = members
        self.activation_name = activation_name
        self.act = activation(activation_name)
        self.act_ = activation(activation_name, inplace=True)
        self.dropout = dropout
        sizes = [in_features, *units]
        self.layers = nn.ModuleList(
            BankLinear(members, a, b, shared_input=shared_input and i == 0)
            for i, (a, b) in enumerate(itertools.pairwise(sizes))
        )
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(members * b) if batch_norm else nn.Identity() for b in units
        )
        self.out_features = sizes[-1]

    def input_readers(self) -> list[BankLinear] | None:
        """The layers reading a shared input directly (for folding); None when the bank
        is the identity and hands the input on."""
        return [self.layers[0]] if self.layers else None

    def forward(self, x: torch.Tensor, runs: Runs | None = None) -> torch.Tensor:
        """(B, I) shared or (E, B, I) -> (E, B, H_last); with ``runs``, x is (G, B, I)
        group inputs read as :meth:`BankLinear.grouped` describes (needs hidden layers)."""
        if not self.layers:
            return x.expand(self.members, *x.shape) if x.dim() == 2 else x
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            x = layer.grouped(x, runs) if runs is not None and i == 0 else layer(x)
            if not isinstance(norm, nn.Identity):
                e, b, h = x.shape  # normalise each member's units separately
                x = norm(x.transpose(0, 1).reshape(b, e * h)).view(b, e, h).transpose(0, 1)
            # in place on fresh buffers; not on views that autograd tracks (that would cost
            # an as_strided copy in backward)
            x = self.act(x) if x.requires_grad and x._is_view() else self.act_(x)
            if self.dropout:
                x = dropout(x, self.dropout, self.training)
        return x
