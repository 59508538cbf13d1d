"""FlatParameters: one buffer for every parameter, same training as per-tensor Adam."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlrec._flat import FlatParameters, can_flatten
from mtlrec.training import direct_adam_step, make_optimizer


def twin_networks():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    b = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    b.load_state_dict(a.state_dict())
    return a, b


def test_parameters_keep_values_and_become_views_of_one_buffer():
    net, twin = twin_networks()
    flat = FlatParameters(net.parameters())
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q)
        assert p.untyped_storage().data_ptr() == flat.param.untyped_storage().data_ptr()
        assert p.data_ptr() % 64 == 0  # each tensor starts on a 64-byte boundary
    assert flat.param.numel() >= sum(p.numel() for p in twin.parameters())


def test_training_matches_per_tensor_adam():
    net, twin = twin_networks()
    flat = FlatParameters(net.parameters())
    opt_flat = make_optimizer("adam", [flat.param], lr=1e-2)
    opt_plain = make_optimizer("adam", twin.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        x, y = torch.randn(16, 5, generator=g), torch.randn(16, 3, generator=g)
        for model, opt in ((net, opt_flat), (twin, opt_plain)):
            opt.zero_grad(set_to_none=False)
            (model(x) - y).square().mean().backward()
            opt.step()
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # gradients were accumulated into the flat buffer, not into fresh tensors
    assert flat.grad.abs().sum() > 0
    flat.zero_grad()
    assert all(p.grad.abs().sum() == 0 for p in net.parameters())


def test_can_flatten_refuses_mixed_dtypes():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double())
    assert not can_flatten(net.parameters())
    assert can_flatten(nn.Linear(2, 2).parameters())


@pytest.mark.parametrize(("name", "weight_decay"), [("adam", 0.0), ("adam", 0.1), ("adamw", 0.1)])
def test_direct_adam_step_is_bit_identical_to_optimizer_step(name, weight_decay):
    net, twin = twin_networks()
    flats = [FlatParameters(m.parameters()) for m in (net, twin)]
    opts = [make_optimizer(name, [f.param], lr=1e-2, weight_decay=weight_decay) for f in flats]
    direct = direct_adam_step(opts[0])
    assert direct is not None
    g = torch.Generator().manual_seed(1)
    for i in range(12):
        if i == 6:  # a changed learning rate is picked up at the next step
            for opt in opts:
                opt.param_groups[0]["lr"] = 3e-3
        x, y = torch.randn(16, 5, generator=g), torch.randn(16, 3, generator=g)
        for model, flat, step in ((net, flats[0], direct), (twin, flats[1], opts[1].step)):
            flat.zero_grad()
            (model(x) - y).square().mean().backward()
            step()
    assert torch.equal(flats[0].param, flats[1].param)
    state, reference = opts[0].state[flats[0].param], opts[1].state[flats[1].param]
    assert torch.equal(state["step"], reference["step"])
    assert torch.equal(state["exp_avg_sq"], reference["exp_avg_sq"])


def test_direct_adam_step_only_for_one_tensor_fused_adam():
    params = [nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))]
    assert direct_adam_step(make_optimizer("adam", params, lr=1e-2)) is None  # two tensors
    assert direct_adam_step(make_optimizer("sgd", params[:1], lr=1e-2)) is None
    plain = torch.optim.Adam(params[:1], lr=1e-2)  # not fused
    assert direct_adam_step(plain) is None
