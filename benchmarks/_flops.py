"""Analytic FLOPs per sample of an mtlrec network, from its structure.

Counted: every :class:`BankLinear` does ``members x in x out`` multiply-adds per sample
(each member sees each sample once, whether the input is shared or per member); every
gate mixture ``mix(weights (G,B,E), experts (E,B,H))`` does ``G x E x H``. Forward FLOPs
are 2 x MACs; training is taken as 3 x forward (forward, backward to inputs, backward
to weights; the first layer's input gradient is needed since embeddings train).
Ignored: embedding lookups, biases, activations, softmax, loss, optimizer step.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from mtlrec import Batch
from mtlrec.layers.banks import BankLinear, BankMLP
from mtlrec.layers.gates import GateBank


def network_macs(network: torch.nn.Module) -> int:
    """Multiply-adds per sample of one forward pass."""
    macs = 0
    for module in network.modules():
        if isinstance(module, BankLinear):
            macs += module.members * module.in_features * module.out_features
        experts, gates = getattr(module, "experts", None), getattr(module, "gates", None)
        if isinstance(experts, BankMLP) and isinstance(gates, GateBank):
            macs += gates.num_gates * experts.members * experts.out_features
    return macs


def flops_per_sample(network: torch.nn.Module) -> dict[str, float]:
    """{"forward": 2 x MACs, "train": 3 x forward} per sample."""
    forward = 2.0 * network_macs(network)
    return {"forward": forward, "train": 3.0 * forward}


@torch.no_grad()
def counted_forward_flops(
    network: torch.nn.Module, sparse: torch.Tensor, dense: torch.Tensor
) -> float:
    """Forward FLOPs per sample as torch's FlopCounterMode counts them (a cross-check)."""
    network.eval()
    with FlopCounterMode(display=False) as counter:
        network(Batch(sparse, dense))
    return counter.get_total_flops() / sparse.shape[0]
