"""Hashed dropout masks: the right rate and scale, reproducible, independent of layout."""

from __future__ import annotations

import pytest
import torch

from mtlrec.layers.dropout import dropout, keep_scale, splitmix64

MASK64 = (1 << 64) - 1


def reference_splitmix64(k: int) -> int:
    """Output number k of splitmix64 seeded with 0, in Python integers (Vigna's C code)."""
    z = (k * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def test_splitmix64_matches_the_reference_generator():
    counters = [0, 1, 2, 12345, 2**40 + 7, 2**62 - 1]
    got = splitmix64(torch.tensor(counters)).tolist()
    assert [g & MASK64 for g in got] == [reference_splitmix64(k) for k in counters]
    assert reference_splitmix64(1) == 0xE220A8397B1DCDAF  # seed 0's first output


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keeps_units_at_rate_one_minus_p_and_scales_them(p):
    torch.manual_seed(0)
    scale = keep_scale(torch.Size([1000, 1000]), p, torch.device("cpu"))
    kept = scale > 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.002  # 1e6 units: sd 0.0005
    assert torch.allclose(scale[kept], torch.tensor(1 / (1 - p)))
    # neighbours (same 64-bit output, or the next one) are independent
    a, b = kept.flatten()[:-1].float(), kept.flatten()[1:].float()
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.005


def test_masks_follow_the_seed_and_not_the_memory_layout():
    x = torch.randn(3, 64, 5)
    torch.manual_seed(7)
    first, second = dropout(x, 0.3, True), dropout(x, 0.3, True)
    assert not torch.equal(first, second)  # every call draws a new seed
    torch.manual_seed(7)
    transposed = x.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    assert torch.equal(dropout(transposed, 0.3, True), first)
    torch.manual_seed(7)
    assert torch.equal(dropout(x.clone(), 0.3, True, inplace=True), first)


def test_no_dropout_in_eval_mode_or_at_rate_zero():
    x = torch.randn(4, 4)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x


def test_gradient_flows_through_kept_units_only():
    x = torch.randn(50, 20, requires_grad=True)
    torch.manual_seed(3)
    y = dropout(x, 0.4, True)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() != 0).float() / 0.6)
