"""Softmax gates over experts, all gates of a layer computed together, and the mixture.

Both have fast-path rules (:mod:`mtlrec.layers.tape`): the gate bank's backward runs
the softmax derivative from its output, then its final layers and MLP as banks do.

Shape legend: G gates, E experts, K experts one gate selects, B batch, I input, H units.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .banks import OUTPUT, BankLinear, BankMLP, input_of, stack_backward, stack_forward
from .tape import Tape, Traced, tape_of

_aten = torch.ops.aten


class GateBank(nn.Module):
    """``G`` gates; gate ``g`` mixes the experts listed in ``selections[g]``.

    A gate with no hidden units is the paper's linear softmax gate; hidden units put
    an MLP before the final linear layer. Each gate's final layer has exactly one output
    per expert it selects; gates selecting equally many experts share one batched layer.
    The returned weights cover all E experts, 0 for the ones a gate does not select.

    Args:
        selections: per gate, the indices of the experts it mixes.
        num_experts: E, experts in the layer.
        in_features: size of each gate's input.
        units: hidden units of the gate MLP.
        temperature: softmax temperature (1 = plain softmax).
    """

    def __init__(
        self,
        selections: Sequence[Sequence[int]],
        num_experts: int,
        in_features: int,
        units: Sequence[int] = (),
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        temperature: float = 1.0,
        shared_input: bool = False,
    ) -> None:
        super().__init__()
        self.num_gates, self.num_experts = len(selections), num_experts
        self.temperature = temperature
        self.mlp = BankMLP(
            self.num_gates, in_features, units, activation_name, dropout, batch_norm, shared_input
        )
        self.out_shared = shared_input and not units  # linear gates read the input directly
        sizes = sorted({len(s) for s in selections})
        self.outs = nn.ModuleList()
        order = []  # gates in the order their groups produce them
        for k, size in enumerate(sizes):
            members = [g for g, s in enumerate(selections) if len(s) == size]
            order += members
            self.register_buffer(f"gates_{k}", torch.tensor(members), persistent=False)
            index = torch.tensor([list(selections[g]) for g in members])  # (G_k, K)
            self.register_buffer(f"experts_{k}", index, persistent=False)
            self.outs.append(BankLinear(len(members), self.mlp.out_features, size, self.out_shared))
        # back to gate order, unless the groups already come out in it
        inverse = torch.tensor(order).argsort()
        self.restore_order = not torch.equal(inverse, torch.arange(len(order)))
        self.register_buffer("gate_order", inverse, persistent=False)

    @property
    def selects_every_expert(self) -> bool:
        """True when every gate is one softmax over all experts (MMoE / OMoE gates)."""
        return len(self.outs) == 1 and self.outs[0].out_features == self.num_experts

    def input_readers(self) -> list[BankLinear] | None:
        """The layers reading a shared input directly (for folding)."""
        return list(self.outs) if self.out_shared else self.mlp.input_readers()

    def fast_path_declines(self) -> str | None:
        """Why this gate bank has no fast-path rule (None: it has one)."""
        return self.mlp.fast_path_declines() if self.mlp.layers else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, I) or (G, B, I) -> weights (G, B, E), each row summing to 1."""
        tape = tape_of(x)
        if tape is not None:
            return self._traced(tape, x)
        hidden = x if self.out_shared else self.mlp(x)  # (B, I) or (G, B, H)
        return self.spread(
            [self.softmax(out(self.group_input(hidden, k))) for k, out in enumerate(self.outs)]
        )

    def members(self, k: int) -> torch.Tensor:
        """The gates whose final layer is group ``k`` of ``outs``."""
        return getattr(self, f"gates_{k}")

    def group_input(self, hidden: torch.Tensor, k: int) -> torch.Tensor:
        """The input of group ``k``'s final layer: the hidden (B, I) or its gates' rows."""
        if self.out_shared or len(self.outs) == 1:
            return hidden
        return hidden.index_select(0, self.members(k))  # 2.5x faster than indexing

    def spread(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per group (G_k, B, K) softmax outputs -> weights (G, B, E) in gate order, 0 for
        the experts a gate does not select."""
        if self.selects_every_expert:
            return probs[0]
        b, parts = probs[0].shape[1], []
        for k, w in enumerate(probs):
            index = getattr(self, f"experts_{k}")
            full = w.new_zeros(len(index), b, self.num_experts)
            parts.append(full.scatter_(2, index.unsqueeze(1).expand(-1, b, -1), w))
        weights = torch.cat(parts) if len(parts) > 1 else parts[0]
        return weights[self.gate_order] if self.restore_order else weights

    def gather(self, weights: torch.Tensor) -> list[torch.Tensor]:
        """The inverse of :meth:`spread`: per group, (G_k, B, K) entries of (G, B, E)."""
        if self.selects_every_expert:
            return [weights]
        b, parts = weights.shape[1], []
        for k in range(len(self.outs)):
            index = getattr(self, f"experts_{k}")
            own = weights if len(self.outs) == 1 else weights.index_select(0, self.members(k))
            parts.append(own.gather(2, index.unsqueeze(1).expand(-1, b, -1)))
        return parts

    def softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Gate weights from logits (..., B, K), at the bank's temperature."""
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return softmax_last(logits)

    def _traced(self, tape: Tape, x: Traced) -> Traced:
        """The fast-path rule: the forward without autograd, and its backward."""
        value, keep = input_of(x)
        hidden = stack_forward(self.mlp.stack(), value)  # [x] for linear gates
        groups = []
        for k, out in enumerate(self.outs):
            own = self.group_input(hidden[-1], k)
            groups.append((own, self.softmax(stack_forward(([out], *OUTPUT), own)[-1])))
        weights = tape.value(self.spread([probs for _, probs in groups]))

        def backward(grads):
            parts = []
            for out, (own, probs), d_probs in zip(
                self.outs, groups, self.gather(grads[0]), strict=True
            ):
                d_logits = softmax_backward(d_probs, probs)
                if self.temperature != 1.0:
                    d_logits = d_logits.div_(self.temperature)
                last = keep if self.out_shared else None  # linear gates read the input
                parts.append(stack_backward(([out], *OUTPUT), [own, probs], d_logits, last))
            if len(parts) == 1:
                d_hidden = parts[0]
            elif self.out_shared:  # every group read the one shared input
                d_hidden = None if parts[0] is None else sum(parts)
            else:  # group k read its gates' rows of the hidden output
                d_hidden = torch.cat(parts)
                d_hidden = d_hidden[self.gate_order] if self.restore_order else d_hidden
            if not self.mlp.layers:
                return [d_hidden]
            return [stack_backward(self.mlp.stack(), hidden, d_hidden, keep)]

        tape.record(backward, [x], [weights])
        return weights


#: below this many experts, torch's CPU softmax over the last dimension is not vectorised
SHORT_SOFTMAX = 16


def softmax_last(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension of (..., B, K), the result contiguous.

    On the CPU, torch computes a softmax over a last dimension shorter than 16 one row at
    a time: for a (2, 1024, 8) gate output it takes 160 µs, against 30 µs for the softmax
    over the second-to-last dimension of the transposed view plus a copy back.
    """
    if x.device.type != "cpu" or x.shape[-1] >= SHORT_SOFTMAX or x.dim() < 2:
        return torch.softmax(x, dim=-1)
    return torch.softmax(x.transpose(-1, -2), dim=-2).transpose(-1, -2).contiguous()


def softmax_backward(grad: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Gradient of a softmax's input over the last dimension of (G, B, K), from its output
    (transposed first where the last dimension is short: see :func:`softmax_last`)."""
    if probs.device.type != "cpu" or probs.shape[-1] >= SHORT_SOFTMAX:
        return _aten._softmax_backward_data(grad, probs, -1, probs.dtype)
    g, p = grad.transpose(-1, -2), probs.transpose(-1, -2)
    return _aten._softmax_backward_data(g, p, -2, p.dtype).transpose(-1, -2)


def mix(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Gate-weighted sum of expert outputs: (G, B, E) x (E, B, H) -> (G, B, H)."""
    tape = tape_of(weights, experts)
    if tape is not None:
        return _traced_mix(tape, weights, experts)
    # per row b: (G, E) @ (E, H); batched over B
    return torch.bmm(weights.transpose(0, 1), experts.transpose(0, 1)).transpose(0, 1)


def _traced_mix(tape: Tape, weights: Traced, experts: Traced) -> Traced:
    """The mixture's fast-path rule."""
    w, e = input_of(weights)[0], input_of(experts)[0]
    mixed = tape.value(torch.bmm(w.transpose(0, 1), e.transpose(0, 1)).transpose(0, 1))

    def backward(grads):
        d_mixed = grads[0].transpose(0, 1)  # (B, G, H)
        e_t = e.transpose(0, 1)  # (B, E, H)
        if d_mixed.shape[1] <= 2:  # (G, B, E); MKL's batched product is fast for 1-2 rows
            d_weights = torch.bmm(d_mixed, e_t.transpose(1, 2)).transpose(0, 1)
        else:  # transposed, (B, E, G) = (B, E, H) @ (B, H, G): 1.4x faster for 3-4 gates
            d_weights = torch.bmm(e_t, d_mixed.transpose(1, 2)).permute(2, 0, 1)
        d_experts = torch.bmm(w.transpose(0, 1).transpose(1, 2), d_mixed)  # (B, E, H)
        return [d_weights, d_experts.transpose(0, 1)]

    tape.record(backward, [weights, experts], [mixed])
    return mixed
