"""All trainable parameters as views of one contiguous buffer, their gradients of another.

The optimizer then sees a single tensor: one fused kernel per step, no per-step grouping
of dozens of small tensors, and zeroing gradients is one fill. This is the layout that
distributed engines use for gradient buckets, applied to the optimizer step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class FlatParameters:
    """Re-homes ``params`` into one buffer; ``param`` is what the optimizer should update.

    Each original parameter keeps its identity, shape and value, but its storage (and its
    ``.grad``) becomes a view of the shared buffers, so autograd accumulates straight into
    the flat gradient. Zero gradients with :meth:`zero_grad`, never by setting them to None.
    """

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        params = [p for p in params if p.requires_grad]
        first = params[0]
        if any(p.dtype != first.dtype or p.device != first.device for p in params):
            raise ValueError("FlatParameters needs parameters of one dtype on one device")
        starts, total = [], 0
        for p in params:  # every tensor starts on a 64-byte boundary, as BLAS kernels prefer
            starts.append(total)
            total += -(-p.numel() * p.element_size() // 64) * 64 // p.element_size()
        data = torch.zeros(total, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(data)
        for p, start in zip(params, starts, strict=True):
            end = start + p.numel()
            data[start:end].copy_(p.detach().reshape(-1))
            p.data = data[start:end].view_as(p)
            p.grad = self.grad[start:end].view_as(p)
        self.param = nn.Parameter(data)
        self.param.grad = self.grad

    def zero_grad(self) -> None:
        self.grad.zero_()


def can_flatten(params: Iterable[nn.Parameter]) -> bool:
    """True when every trainable parameter is a dense tensor of one dtype and device."""
    params = [p for p in params if p.requires_grad]
    return bool(params) and all(
        p.layout == torch.strided and p.dtype == params[0].dtype and p.device == params[0].device
        for p in params
    )
