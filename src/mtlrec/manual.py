"""Training steps with hand-derived gradients for networks of MLP banks and softmax gates.

Autograd records several nodes per layer (matmul, bias, views, activation) and walks
them one by one; for the small matrices of a Shared-Bottom or ESMM step that
bookkeeping costs more than the arithmetic. For those architectures, the single-task
baseline, MMoE and OMoE, :class:`ManualStep` runs the forward pass without autograd,
keeping each layer's output, and the backward pass as two matmuls, a bias sum and an
activation derivative per layer, accumulating every gradient straight into the
parameter's ``.grad`` (``addmm_`` / ``baddbmm_`` / ``index_add_``). The result is the
gradient autograd computes (tested to float rounding), so training is unchanged.

Used only when it applies: activations whose derivative follows from their output, no
batch norm, dropout only after relu (it draws the same masks as the network's forward,
in the same order), no L2 penalty, dense embedding gradients, and gradients that are
views of the flat buffer (see :mod:`mtlrec.flat`). Everything else uses autograd.

Shape legend: E bank members, T tasks, B batch, I input, O output units, C copies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from .data import ColumnBatch
from .layers import BankLinear, BankMLP, InputLayer, Towers, activation
from .layers.dropout import dropout
from .layers.folding import FoldedInput, ProjectedInput
from .layers.gates import SHORT_SOFTMAX, GateBank, mix
from .models import (
    ESMMNet,
    MMoENet,
    MultiTaskNetwork,
    PLENet,
    SharedBottomNet,
    SingleTaskNet,
)
from .models.esmm import product_logit_terms

if TYPE_CHECKING:
    from .training import Objective

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

#: layers, the activation after each, the dropout rate after each (0: none)
Stack = tuple[Sequence[BankLinear], Sequence[str], Sequence[float]]
OUTPUT: tuple[list[str], list[float]] = (["linear"], [0.0])  # a final linear layer's rest


def stack_forward(stack: Stack, x: torch.Tensor | ProjectedInput) -> list:
    """Inputs of every layer plus the last output: [x, y1, ..., yL]; yL is (E, B, O)."""
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
        if rate:  # the same masks as the network's forward draws (same order)
            x = dropout(x, rate, training=True, inplace=True)
        outputs.append(x)
    return outputs


def stack_backward(
    stack: Stack, outputs: list[torch.Tensor], grad: torch.Tensor, keep: int | None = None
) -> torch.Tensor:
    """Accumulate the layers' weight and bias gradients for ``grad`` (E, B, O) of the last
    output (overwritten); returns the gradient of the stack's input, of its first ``keep``
    features only when given (the embedding columns of the network's input). For a
    folded input the first layer's gradient goes to its block of the projected input's
    buffer (:meth:`FoldedInput.backward` takes it on) and the result is (B, 0). Layers
    with dropout must use relu (see :func:`_activations_ok`)."""
    layers, names, rates = stack
    for k in range(len(layers) - 1, -1, -1):
        layer, x = layers[k], outputs[k]
        rows = layer.in_features if k > 0 or keep is None else keep
        if rates[k]:  # relu, then dropout: the output is 0 where either zeroed it, and
            grad = grad.mul_(1.0 / (1.0 - rates[k]))  # y / (1 - p) elsewhere
        if isinstance(x, ProjectedInput):
            ACTIVATION_BACKWARD[names[k]](grad, outputs[k + 1], x.grad_of(layer))
            grad = x.out.new_empty(x.out.shape[0], 0)  # sums and adds like an input gradient
        elif layer.shared_input:
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


def input_backward(layer: InputLayer, sparse: torch.Tensor, grad: torch.Tensor) -> None:
    """Add the embedding rows' gradients; grad is (B, W) for the W embedding columns that
    lead the input, or (C, B, W) with copies."""
    start = 0
    for g, (table, (dim, columns)) in enumerate(zip(layer.tables, layer.groups, strict=True)):
        width = len(columns) * dim
        part = grad[..., start : start + width]
        if layer.copies > 1:  # (C, B, S_g * dim) -> rows (B * S_g, C * dim)
            c, b = part.shape[:2]
            part = part.reshape(c, b, len(columns), dim).permute(1, 2, 0, 3)
        table.weight.grad.index_add_(
            0, layer.row_ids(sparse, g).reshape(-1), part.reshape(-1, table.embedding_dim)
        )
        start += width


def mlp_stack(mlp: BankMLP, out: BankLinear | None = None) -> Stack:
    """An MLP bank's layers with its activation and dropout after each, then ``out``
    (neither)."""
    names, rates = [mlp.activation_name] * len(mlp.layers), [mlp.dropout] * len(mlp.layers)
    if out is None:
        return mlp.layers, names, rates
    return [*mlp.layers, out], [*names, *OUTPUT[0]], [*rates, *OUTPUT[1]]


def _tower_stacks(towers: Towers) -> list[Stack]:
    return [mlp_stack(mlp, out) for mlp, out in zip(towers.mlps, towers.outs, strict=True)]


def towers_forward(towers: Towers, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Logits (T, B) of (T, B, I) per-task inputs or a shared (B, I) input, and what the
    backward pass needs."""
    saved = []
    for t, stack in enumerate(_tower_stacks(towers)):
        own = x if towers.shared_input or len(towers.mlps) == 1 else x[t : t + 1]
        saved.append(stack_forward(stack, own))
    logits = torch.cat([s[-1] for s in saved]) if len(saved) > 1 else saved[0][-1]
    return logits.squeeze(-1), saved


def towers_backward(
    towers: Towers, saved: list, grad: torch.Tensor, keep: int | None = None
) -> torch.Tensor:
    """Gradient of the towers' input (its first ``keep`` features) for logits' gradient
    (T, B)."""
    stacks, start, parts = _tower_stacks(towers), 0, []
    for stack, outputs in zip(stacks, saved, strict=True):
        n = outputs[-1].shape[0]
        part = grad[start : start + n].unsqueeze(-1)
        parts.append(stack_backward(stack, outputs, part, keep))
        start += n
    if len(parts) == 1:
        return parts[0]
    return sum(parts) if towers.shared_input else torch.cat(parts)


def softmax_backward(grad: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Gradient of a softmax's input over the last dimension of (G, B, K), from its output
    (transposed first where the last dimension is short: see ``gates.softmax_last``)."""
    if probs.device.type != "cpu" or probs.shape[-1] >= SHORT_SOFTMAX:
        return _aten._softmax_backward_data(grad, probs, -1, probs.dtype)
    g, p = grad.transpose(-1, -2), probs.transpose(-1, -2)
    return _aten._softmax_backward_data(g, p, -2, p.dtype).transpose(-1, -2)


def gates_forward(gates: GateBank, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """Weights (G, B, E) for gate input (B, I) or (G, B, I), and what the backward needs."""
    hidden = stack_forward(mlp_stack(gates.mlp), x)  # [x] for linear gates
    groups = []
    for k, out in enumerate(gates.outs):
        own = gates.group_input(hidden[-1], k)
        groups.append((own, gates.softmax(stack_forward(([out], *OUTPUT), own)[-1])))
    return gates.spread([probs for _, probs in groups]), (hidden, groups)


def gates_backward(
    gates: GateBank, saved: tuple, grad: torch.Tensor, keep: int | None = None
) -> torch.Tensor:
    """Gradient of the gate input (its first ``keep`` features) for the weights' gradient
    (G, B, E)."""
    hidden, groups = saved
    parts = []
    for out, (own, probs), d_probs in zip(gates.outs, groups, gates.gather(grad), strict=True):
        d_logits = softmax_backward(d_probs, probs)
        if gates.temperature != 1.0:
            d_logits = d_logits.div_(gates.temperature)
        last = keep if gates.out_shared else None  # linear gates read the input directly
        parts.append(stack_backward(([out], *OUTPUT), [own, probs], d_logits, last))
    if len(parts) == 1:
        d_hidden = parts[0]
    elif gates.out_shared:  # every group read the one shared input
        d_hidden = sum(parts)
    else:  # group k read its gates' rows of the hidden output
        d_hidden = torch.cat(parts)
        d_hidden = d_hidden[gates.gate_order] if gates.restore_order else d_hidden
    if not gates.mlp.layers:
        return d_hidden
    return stack_backward(mlp_stack(gates.mlp), hidden, d_hidden, keep)


def level_forward(
    experts: BankMLP, gates: GateBank, expert_in: torch.Tensor, gate_in: torch.Tensor
) -> tuple[torch.Tensor, tuple]:
    """Gate-weighted expert mixtures (G, B, H) of a level, and what the backward needs."""
    expert_out = stack_forward(mlp_stack(experts), expert_in)
    weights, gate_saved = gates_forward(gates, gate_in)
    return mix(weights, expert_out[-1]), (expert_out, weights, gate_saved)


def level_backward(
    experts: BankMLP, gates: GateBank, saved: tuple, grad: torch.Tensor, keep: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the expert and the gate inputs (their first ``keep`` features) for the
    mixtures' gradient (G, B, H)."""
    expert_out, weights, gate_saved = saved
    d_mixed = grad.transpose(0, 1)  # (B, G, H)
    e_t = expert_out[-1].transpose(0, 1)  # (B, E, H)
    if d_mixed.shape[1] <= 2:  # (G, B, E); MKL's batched product is fast for 1-2 rows
        d_weights = torch.bmm(d_mixed, e_t.transpose(1, 2)).transpose(0, 1)
    else:  # transposed, (B, E, G) = (B, E, H) @ (B, H, G): 1.4x faster for 3-4 gates
        d_weights = torch.bmm(e_t, d_mixed.transpose(1, 2)).permute(2, 0, 1)
    d_experts = torch.bmm(weights.transpose(0, 1).transpose(1, 2), d_mixed)  # (B, E, H)
    d_expert_in = stack_backward(mlp_stack(experts), expert_out, d_experts.transpose(0, 1), keep)
    return d_expert_in, gates_backward(gates, gate_saved, d_weights, keep)


def _activations_ok(network: MultiTaskNetwork) -> bool:
    c = network.config
    return (
        c.activation in ACTIVATION_BACKWARD
        and not c.batch_norm
        and (not c.dropout or c.activation == "relu")  # see stack_backward
        and not c.l2_embedding
        and not c.l2_dense
    )


class ManualStep:
    """Forward, loss and backward of one batch for Shared-Bottom, ESMM, the single-task
    baseline, MMoE or OMoE, with gradients accumulated into ``.grad``; see the module
    docstring."""

    def __init__(self, network: MultiTaskNetwork, objective: Objective):
        self.network, self.objective = network, objective

    @classmethod
    def for_network(cls, network: MultiTaskNetwork, objective: Objective) -> ManualStep | None:
        """A manual step for ``network``, or None when it does not apply."""
        if not isinstance(network, SharedBottomNet | ESMMNet | SingleTaskNet | MMoENet | PLENet):
            return None
        banks = network.levels if isinstance(network, PLENet) else [network]
        if isinstance(network, MMoENet | PLENet) and not all(b.experts.layers for b in banks):
            return None  # experts without layers pass their input through
        if not _activations_ok(network) or network.embedding.sparse_grad:
            return None
        if any(p.grad is None for p in network.parameters()):  # grads live in a flat buffer
            return None
        return cls(network, objective)

    @torch.no_grad()
    def __call__(self, batch: ColumnBatch, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Accumulate ``scale`` x the batch's gradients; returns (loss, per-task losses)."""
        net, sparse, dense = self.network, batch.sparse, batch.dense
        fold = FoldedInput.build(net.embedding, net.input_readers(), len(batch), training=True)
        x = fold(sparse, dense) if fold is not None else net.embedding(sparse, dense)
        keep = net.embedding.out_features - net.embedding.num_dense  # no gradient for dense
        if isinstance(net, ESMMNet):  # logits ctr, ctcvr = logit(sigmoid(ctr) sigmoid(cvr))
            towers, saved = towers_forward(net.towers, x)
            ctr, cvr = towers
            u = product_logit_terms(ctr, cvr)  # product_logit, keeping u for the derivative
            ctcvr = u.logsumexp(0).neg_()
            loss, losses, d_logits = self._loss(torch.stack([ctr, ctcvr]), batch.labels, scale)
            w = u.add_(ctcvr).exp_()  # softmax of u: d ctcvr/d ctr = w0 + w2, d/d cvr = w1 + w2
            d_ctr, d_ctcvr = d_logits
            d_towers = torch.stack([d_ctr + d_ctcvr * (w[0] + w[2]), d_ctcvr * (w[1] + w[2])])
            d_x = towers_backward(net.towers, saved, d_towers, keep)
        elif isinstance(net, MMoENet):  # MMoE / OMoE: gate-weighted experts under towers
            mixed, saved_level = level_forward(net.experts, net.gates, x, x)  # (G, B, H)
            one = not net.num_gates_is_tasks  # OMoE: every tower reads the one mixture
            logits, saved = towers_forward(net.towers, mixed.squeeze(0) if one else mixed)
            loss, losses, d_logits = self._loss(logits, batch.labels, scale)
            d_mixed = towers_backward(net.towers, saved, d_logits)
            d_mixed = d_mixed.unsqueeze(0) if one else d_mixed
            d_experts, d_gates = level_backward(net.experts, net.gates, saved_level, d_mixed, keep)
            d_x = d_experts.add_(d_gates)
        elif isinstance(net, PLENet):  # CGC / PLE: stacked levels under per-task towers
            levels, top = [], x
            for level in net.levels:
                expert_in = top if level.first else top.index_select(0, level.expert_group)
                gate_in = top if level.first else top[: level.num_gates]
                top, saved_level = level_forward(level.experts, level.gates, expert_in, gate_in)
                levels.append(saved_level)
            logits, saved = towers_forward(net.towers, top)
            loss, losses, d_logits = self._loss(logits, batch.labels, scale)
            d_top = towers_backward(net.towers, saved, d_logits)
            for i in range(len(net.levels) - 1, -1, -1):
                level = net.levels[i]
                d_experts, d_gates = level_backward(
                    level.experts, level.gates, levels[i], d_top, keep if i == 0 else None
                )
                if i == 0:  # the first level's experts and gates read the embeddings
                    d_top = d_experts.add_(d_gates)
                else:  # experts read their group's mixture, gates the first G mixtures
                    below = net.levels[i - 1].num_gates
                    d_top = d_experts.new_zeros(below, *d_experts.shape[1:])
                    d_top.index_add_(0, level.expert_group, d_experts)
                    d_top[: level.num_gates] += d_gates
            d_x = d_top
        else:  # a bank (Shared-Bottom's one bottom, or one bottom per task) under towers
            shared = isinstance(net, SharedBottomNet)
            stack = mlp_stack(net.bottom if shared else net.bottoms)
            hidden = stack_forward(stack, x)
            top = hidden[-1].squeeze(0) if shared else hidden[-1]  # (B, H) or (T, B, H)
            logits, saved = towers_forward(net.towers, top)
            loss, losses, d_logits = self._loss(logits, batch.labels, scale)
            d_top = towers_backward(net.towers, saved, d_logits)
            d_hidden = d_top.unsqueeze(0) if shared else d_top
            d_x = stack_backward(stack, hidden, d_hidden, keep)
        if fold is not None:
            fold.backward(x, sparse, dense)
        else:
            input_backward(net.embedding, sparse, d_x)
        return loss, losses

    def _loss(
        self, logits: torch.Tensor, labels: torch.Tensor, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weighted loss, per-task losses, d loss / d logits x scale) for logits (T, B)."""
        objective = self.objective
        losses = objective.task_losses(logits, labels)
        labels = labels.t()
        grad = torch.sigmoid(logits).sub_(labels)  # log loss; squared error: 2 (z - y)
        if not objective.all_binary:
            grad = torch.where(objective.binary.unsqueeze(1), grad, (logits - labels).mul_(2))
        grad.mul_((objective.weights * (scale / logits.shape[1])).unsqueeze(1))
        return torch.dot(losses, objective.weights), losses, grad
