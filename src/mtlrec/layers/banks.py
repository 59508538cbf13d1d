"""Banks of parallel linear layers / MLPs computed as one batched matmul.

Shape legend: E bank members (experts, gates or towers), B batch, I input, H hidden.
A bank's input is either shared by every member, (B, I), or one input per member,
(E, B, I); its output is (E, B, H) (for a shared input, a transposed view of a (B, E, H)
buffer, so no copy is made).

Each bank MLP also has its fast-path rule (:mod:`mtlrec.layers.tape`): the forward
without autograd, keeping each layer's output, and the backward as two matmuls, a bias
sum and an activation derivative per layer, added straight into the parameters'
``.grad`` (``addmm_`` / ``baddbmm_``). The derivative comes from the activation's
output, so the rule covers the activations in :data:`ACTIVATION_BACKWARD`; dropout only
after relu (the output is 0 wherever relu or the mask zeroed it); no batch norm.
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
from .folding import ProjectedInput
from .tape import Declined, Tape, Traced, tape_of

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


_aten = torch.ops.aten

#: activation name -> grad x d(activation)/d(input) from the activation's output, written
#: into ``into`` (``grad`` itself or a fresh buffer: writing in place saves a third of the
#: time, and writing into a transposed buffer saves the copy a reshape would make)
ACTIVATION_BACKWARD: dict[
    str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
] = {
    "relu": lambda g, out, into: _aten.threshold_backward.grad_input(g, out, 0, grad_input=into),
    "leaky_relu": lambda g, out, into: _aten.leaky_relu_backward.grad_input(
        g, out, 0.01, True, grad_input=into
    ),
    "tanh": lambda g, out, into: _aten.tanh_backward.grad_input(g, out, grad_input=into),
    "sigmoid": lambda g, out, into: _aten.sigmoid_backward.grad_input(g, out, grad_input=into),
    "linear": lambda g, out, into: g if into is g else into.copy_(g),
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


def run_groups(runs: Runs) -> list[int]:
    """The group input each member reads (the inverse of :func:`member_runs`)."""
    return [g for g, start, stop in runs for _ in range(start, stop)]


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


#: layers, the activation after each, the dropout rate after each (0: none)
Stack = tuple[Sequence[BankLinear], Sequence[str], Sequence[float]]
#: what follows a final linear layer: no activation, no dropout
OUTPUT: tuple[list[str], list[float]] = (["linear"], [0.0])


def stack_forward(stack: Stack, x: torch.Tensor | ProjectedInput) -> list:
    """Without autograd: inputs of every layer plus the last output, [x, y1, ..., yL];
    yL is (E, B, O). Dropout draws the same masks as :meth:`BankMLP.forward`, in order."""
    outputs = [x]
    for layer, name, rate in zip(*stack, strict=True):
        if isinstance(x, ProjectedInput):  # the folded input holds the first layer's output
            y = x.output(layer)
        elif layer.shared_input:
            b, i = x.shape
            y = torch.addmm(layer.bias.view(1, -1), x, layer.weight.view(i, -1))
            y = y.view(b, layer.members, layer.out_features).transpose(0, 1)
        else:
            y = torch.bmm(x, layer.weight).add_(layer.bias)
        x = activation(name, inplace=True)(y)
        if rate:
            x = dropout(x, rate, training=True, inplace=True)
        outputs.append(x)
    return outputs


def stack_backward(
    stack: Stack, outputs: list, grad: torch.Tensor, keep: int | None = None
) -> torch.Tensor:
    """Add the layers' weight and bias gradients for ``grad`` (E, B, O) of the last
    output (overwritten) to their ``.grad``; returns the gradient of the stack's input,
    of its first ``keep`` features only when given. For a folded input the first layer's
    gradient goes to its block of the projection's buffer (the folded input's rule takes
    it on) and the result is None. Layers with dropout must use relu."""
    layers, names, rates = stack
    for k in range(len(layers) - 1, -1, -1):
        layer, x = layers[k], outputs[k]
        rows = layer.in_features if k > 0 or keep is None else keep
        if rates[k]:  # relu, then dropout: the output is 0 where either zeroed it, and
            grad = grad.mul_(1.0 / (1.0 - rates[k]))  # y / (1 - p) elsewhere
        if isinstance(x, ProjectedInput):
            ACTIVATION_BACKWARD[names[k]](grad, outputs[k + 1], x.grad_of(layer))
            return None
        if layer.shared_input:
            b, i = x.shape
            flat = grad.new_empty(b, layer.width)  # (B, E*O)
            into = flat.view(b, layer.members, -1).transpose(0, 1)
            ACTIVATION_BACKWARD[names[k]](grad, outputs[k + 1], into)
            layer.weight.grad.view(i, -1).addmm_(x.t(), flat)
            layer.bias.grad.view(-1).add_(flat.sum(0))
            grad = flat @ layer.weight.view(i, -1)[:rows].t()  # (B, rows)
        else:
            grad = ACTIVATION_BACKWARD[names[k]](grad, outputs[k + 1], grad)
            layer.weight.grad.baddbmm_(x.transpose(1, 2), grad)
            layer.bias.grad.add_(grad.sum(1, keepdim=True))
            grad = torch.bmm(grad, layer.weight[:, :rows].transpose(1, 2))
    return grad


def stack_declines(activation_name: str, dropout_rate: float, batch_norm: bool) -> str | None:
    """Why layers with these settings have no fast-path rule; None when they have one."""
    if batch_norm:
        return "batch norm (its statistics couple the rows)"
    if activation_name not in ACTIVATION_BACKWARD:
        return f"activation {activation_name!r} (its derivative needs the input, not the output)"
    if dropout_rate and activation_name != "relu":
        return f"dropout after {activation_name!r} (only relu's zeros hide the mask)"
    return None


def input_of(x: Traced | ProjectedInput) -> tuple[torch.Tensor | ProjectedInput, int | None]:
    """(the tensor or projection a rule computes on, the features needing a gradient)."""
    if isinstance(x, Traced):
        return x.value, x.grad_width
    if isinstance(x, ProjectedInput):
        return x, None
    raise Declined(f"a block was given a {type(x).__name__}, not a traced value")


def trace_stack(tape: Tape, stack: Stack, x: Traced | ProjectedInput) -> Traced:
    """Run ``stack`` as a rule on the tape: its output, traced."""
    value, keep = input_of(x)
    outputs = stack_forward(stack, value)
    out = tape.value(outputs[-1])

    def backward(grads):
        return [stack_backward(stack, outputs, grads[0], keep)]

    tape.record(backward, [x], [out])
    return out


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
        self.batch_norm = batch_norm
        self._group_indices: dict[tuple, torch.Tensor] = {}
        self._stacks: dict[tuple, Stack] = {}
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

    def stack(self, out: BankLinear | None = None) -> Stack:
        """The layers with the activation and dropout after each, then ``out`` (neither)."""
        key = (None if out is None else id(out), self.activation_name, self.dropout)
        stack = self._stacks.get(key)
        if stack is None:  # structural: built once
            layers = list(self.layers)
            names = [self.activation_name] * len(layers)
            rates = [self.dropout] * len(layers)
            if out is not None:
                layers, names, rates = [*layers, out], [*names, *OUTPUT[0]], [*rates, *OUTPUT[1]]
            stack = self._stacks[key] = (layers, names, rates)
        return stack

    def fast_path_declines(self) -> str | None:
        """Why this bank has no fast-path rule (None: it has one)."""
        return stack_declines(self.activation_name, self.dropout, self.batch_norm)

    def _group_index(self, runs: Runs, device: torch.device) -> torch.Tensor:
        """The group input of each member as an index tensor (built once per device)."""
        key = (tuple(runs), device)
        index = self._group_indices.get(key)
        if index is None:
            index = self._group_indices[key] = torch.tensor(run_groups(runs), device=device)
        return index

    def forward(self, x: torch.Tensor, runs: Runs | None = None) -> torch.Tensor:
        """(B, I) shared or (E, B, I) -> (E, B, H_last); with ``runs``, x is (G, B, I)
        group inputs, member e reading the input of its run's group (one ``bmm`` per run
        without autograd, :meth:`BankLinear.grouped`; a gather of the inputs otherwise)."""
        tape = tape_of(x)
        if runs is not None and (tape is not None or torch.is_grad_enabled() or not self.layers):
            x = x.index_select(0, self._group_index(runs, x.device))
            runs = None
        if tape is not None:
            stack = self.stack()
            if not stack[0]:
                raise Declined("a bank without hidden layers")
            return trace_stack(tape, stack, x)
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
