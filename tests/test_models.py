"""Contract tests over every registered architecture, and each one's invariants."""

from __future__ import annotations

import itertools

import pytest
import torch

from mtlrec import Batch, ConfigError, Task
from mtlrec.layers import BankLinear, BankMLP, product_logit
from mtlrec.layers.banks import member_runs
from mtlrec.layers.gates import GateBank, softmax_last
from mtlrec.models import InputSpec, list_models, make_config, network_class

SPEC = InputSpec(
    vocabulary_sizes=[7, 11, 5],
    embedding_dims=[4, 4, 8],
    num_dense=3,
    layout={"groups": ["user", None, None, None, None, None]},  # POSO reads the user group
)
TASKS = (Task("a"), Task("b"))
WIDTH = 4 + 4 + 8 + 3  # embedding widths + dense columns


#: ESMM's roles are named: b follows a
FUNNEL = (Task("a"), Task("b", after="a"))


def build(name: str, tasks=None, seed: int = 0, **params):
    tasks = tasks or (FUNNEL if name == "esmm" else TASKS)
    torch.manual_seed(seed)
    return network_class(name)(SPEC, tasks, make_config(name, params, len(tasks)))


def inputs(batch: int = 6, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    sparse = torch.stack([torch.randint(0, v, (batch,), generator=g) for v in (7, 11, 5)], 1)
    return Batch(sparse, torch.randn(batch, 3, generator=g))


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", list_models())
def test_forward_shapes_and_batch_of_one(name):
    net = build(name)
    for batch in (1, 6):
        out = net(inputs(batch)).named()
        assert set(out) == set(net.output_names)
        assert all(v.shape == (batch,) and torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("name", list_models())
def test_gradients_reach_every_parameter(name):
    net = build(name)
    out = net(inputs(16)).named()
    sum(v.sum() for k, v in out.items() if k in {"a", "b"}).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


@pytest.mark.parametrize("name", list_models())
def test_same_seed_same_weights_other_seed_other_weights(name):
    a, b, c = build(name, seed=3), build(name, seed=3), build(name, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize(
    "name",
    [n for n in list_models() if n != "esmm" and network_class(n).config_class.towers_may_differ],
)
def test_three_tasks_and_towers_that_differ(name):
    tasks = (Task("a"), Task("b"), Task("c", type="regression"))
    net = build(name, tasks=tasks, tower_units=[[8], [16, 4], [3]])
    out = net(inputs(5)).named()
    assert [tuple(v.shape) for v in out.values()] == [(5,)] * 3
    widths = [
        p.shape[-1]
        for n, p in net.towers.named_parameters()
        if n.startswith("mlps") and n.endswith("weight")
    ]
    assert widths == [8, 16, 4, 3]


def test_bank_linear_matches_a_loop_of_linear_layers():
    bank = BankLinear(5, 7, 3)
    x_shared, x_each = torch.randn(4, 7), torch.randn(5, 4, 7)
    shared = BankLinear(5, 7, 3, shared_input=True)
    loop_shared = torch.stack(
        [x_shared @ shared.member_weight(e) + shared.bias[e] for e in range(5)]
    )
    loop_each = torch.stack([x_each[e] @ bank.member_weight(e) + bank.bias[e] for e in range(5)])
    torch.testing.assert_close(shared(x_shared), loop_shared)
    torch.testing.assert_close(bank(x_each), loop_each)


def test_every_expert_starts_from_its_own_weights():
    torch.manual_seed(0)
    experts = BankMLP(8, 10, (6, 6), shared_input=True)
    for layer in experts.layers:
        flat = torch.stack([layer.member_weight(e).flatten() for e in range(8)])
        distinct = {tuple(row.tolist()) for row in flat}
        assert len(distinct) == 8


@pytest.mark.parametrize("name", ["omoe", "mmoe", "cgc", "ple"])
@pytest.mark.parametrize("gate_units", [(), (5,)])
def test_gate_weights_sum_to_one(name, gate_units):
    net = build(name, gate_units=gate_units)
    gates = net(inputs(9)).gates
    assert gates
    for w in gates.values():
        assert w.shape[0] == 9 and (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(9))


def test_cgc_gates_select_own_and_shared_experts_only():
    net = build("cgc", num_specific_experts=2, num_shared_experts=3)
    gates = net(inputs(4)).gates
    # experts: a0 a1 | b0 b1 | s0 s1 s2
    assert (gates["level0/a"][:, 2:4] == 0).all() and (
        gates["level0/a"][:, [0, 1, 4, 5, 6]] > 0
    ).all()
    assert (gates["level0/b"][:, 0:2] == 0).all() and (gates["level0/b"][:, 2:] > 0).all()


@pytest.mark.parametrize(
    "selections",
    [
        [[0, 1, 4], [2, 3, 4], [0, 1, 2, 3, 4]],
        [[0, 1, 2, 3, 4], [0, 1, 4], [2, 3, 4]],  # groups come out in another order
        [[0, 1, 4], [2, 3, 4]],
    ],
    ids=["two-sizes", "two-sizes-reordered", "one-size"],
)
def test_gate_bank_matches_a_loop_of_softmax_gates(selections):
    bank = GateBank(selections, 5, 6, units=())
    x = torch.randn(len(selections), 4, 6, requires_grad=True)
    w = bank(x)
    w.square().sum().backward()  # the scatter into all experts passes gradients back
    assert x.grad.abs().sum() > 0
    for g, sel in enumerate(selections):
        k = [i for i, s in enumerate(selections) if len(s) == len(sel)]
        out = bank.outs[0 if len(sel) == 3 else 1]
        member = k.index(g)
        logits = x[g] @ out.weight[member] + out.bias[member]
        expected = torch.zeros(4, 5)
        expected[:, sel] = torch.softmax(logits, -1)
        torch.testing.assert_close(w[g], expected)


@pytest.mark.parametrize(
    "selections",
    [[[0, 1, 4], [2, 3, 4], [0, 1, 2, 3, 4]], [[0, 1, 2, 3, 4], [0, 1, 4], [2, 3, 4]]],
    ids=["in-order", "reordered"],
)
def test_gate_bank_gather_inverts_spread(selections):
    bank = GateBank(selections, 5, 6, units=())
    probs = [
        torch.rand(len(bank.members(k)), 4, out.out_features) for k, out in enumerate(bank.outs)
    ]
    weights = bank.spread(probs)
    for g, sel in enumerate(selections):  # each gate's row holds its own group's values
        others = [e for e in range(5) if e not in sel]
        assert (weights[g][:, others] == 0).all()
    for got, expected in zip(bank.gather(weights), probs, strict=True):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("k", [1, 3, 8, 15, 16, 40])
def test_softmax_last_equals_torch_softmax_with_its_gradient(k):
    x = torch.randn(3, 7, k, dtype=torch.float64, requires_grad=True)
    w = softmax_last(x)
    assert w.is_contiguous()
    torch.testing.assert_close(w, torch.softmax(x, -1))
    assert torch.autograd.gradcheck(softmax_last, (x,))


def mlp_params(sizes) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


@pytest.mark.parametrize(
    ("specific", "shared", "levels"),
    [(8, 4, 1), (8, 4, 2), (2, 5, 2), (1, 3, 3), (0, 3, 2), (3, 0, 2)],
)
def test_cgc_ple_parameter_count_equals_formula(specific, shared, levels):
    name = "cgc" if levels == 1 else "ple"
    params = dict(
        num_specific_experts=specific,
        num_shared_experts=shared,
        expert_units=(6, 5),
        gate_units=(4,),
        tower_units=(3,),
    )
    if name == "ple":
        params["num_levels"] = levels
    net = build(name, **params)
    t, embeddings = 2, (7 + 11) * 4 + 5 * 8
    expected, width = embeddings, WIDTH
    for level in range(levels):
        experts = t * specific + shared
        expected += experts * mlp_params([width, 6, 5])
        has_shared_gate = level < levels - 1 and shared > 0
        gates = t + int(has_shared_gate)
        expected += gates * mlp_params([width, 4])
        expected += t * mlp_params([4, specific + shared])  # task gates: own + shared experts
        if has_shared_gate:
            expected += mlp_params([4, experts])  # shared gate: every expert
        width = 5
    expected += t * mlp_params([5, 3, 1])
    assert count(net) == expected
    # and the experts really exist in those numbers
    for level in net.levels:
        assert level.experts.members == t * specific + shared


@pytest.mark.parametrize(
    ("specific", "shared", "levels"), [(2, 3, 2), (1, 2, 3), (0, 3, 2), (3, 0, 2)]
)
def test_ple_later_levels_read_group_inputs_without_copies_alike(specific, shared, levels):
    net = build(
        "ple",
        num_specific_experts=specific,
        num_shared_experts=shared,
        num_levels=levels,
        expert_units=(6, 5),
    )
    x = inputs(9)
    with torch.no_grad():  # experts of later levels: one bmm per group input
        grouped = torch.stack(list(net(x).logits.values()))
    copied = torch.stack(list(net(x).logits.values()))  # with autograd: inputs gathered
    assert copied.requires_grad
    torch.testing.assert_close(grouped, copied.detach())


def test_member_runs_groups_consecutive_members():
    assert member_runs([0, 0, 1, 1, 1, 2]) == [(0, 0, 2), (1, 2, 5), (2, 5, 6)]
    assert member_runs([2, 2]) == [(2, 0, 2)]
    assert member_runs([0, 1, 0]) == [(0, 0, 1), (1, 1, 2), (0, 2, 3)]


def test_ple_with_one_level_is_cgc():
    params = dict(
        num_specific_experts=2,
        num_shared_experts=3,
        expert_units=(6,),
        gate_units=(4,),
        tower_units=(3,),
    )
    cgc = build("cgc", seed=5, **params)
    ple = build("ple", seed=5, num_levels=1, **params)
    assert {k: v.shape for k, v in cgc.state_dict().items()} == {
        k: v.shape for k, v in ple.state_dict().items()
    }
    x = inputs(7)
    for k in ("a", "b"):
        torch.testing.assert_close(cgc(x).logits[k], ple(x).logits[k])


def test_mmoe_with_one_expert_is_a_shared_bottom():
    mmoe = build("mmoe", num_experts=1, expert_units=(6, 5), gate_units=(), tower_units=(3,))
    sb = build("shared_bottom", bottom_units=(6, 5), tower_units=(3,))
    sb.embedding.load_state_dict(mmoe.embedding.state_dict())
    sb.bottom.load_state_dict(mmoe.experts.state_dict())
    for target, source in zip(sb.towers.modules(), mmoe.towers.modules(), strict=True):
        if isinstance(target, BankLinear):  # same weights, whatever the storage layout
            with torch.no_grad():
                for e in range(target.members):
                    target.member_weight(e).copy_(source.member_weight(e))
                target.bias.copy_(source.bias)
    x = inputs(7)
    for k in ("a", "b"):
        torch.testing.assert_close(mmoe(x).logits[k], sb(x).logits[k])


def test_omoe_has_one_gate_and_mmoe_one_per_task():
    assert set(build("omoe")(inputs()).gates) == {"shared"}
    assert set(build("mmoe")(inputs()).gates) == {"a", "b"}


@pytest.mark.parametrize(
    ("tasks", "params", "names"),
    [(FUNNEL, {}, ("a", "b", "a_b")), (TASKS, {"positional_roles": True}, ("a", "cvr", "b"))],
)
def test_esmm_ctcvr_is_ctr_times_cvr_and_towers_have_own_biases(tasks, params, names):
    net = build("esmm", tasks, **params)
    with torch.no_grad():
        net.towers.outs[0].bias.copy_(torch.tensor([[[0.3]], [[-1.2]]]))
    out = net(inputs(8)).named()
    assert set(out) == set(names)
    ctr, cvr, ctcvr = (torch.sigmoid(out[k]) for k in names)
    torch.testing.assert_close(ctcvr, ctr * cvr)
    biases = net.towers.outs[0].bias.detach().flatten()
    assert biases.shape == (2,) and biases[0] != biases[1]


def test_product_logit_is_stable_at_the_extremes():
    a = torch.tensor([-40.0, -5.0, 0.0, 3.0, 20.0, 40.0], dtype=torch.float64)
    b = torch.tensor([-40.0, 2.0, 0.0, 3.0, 20.0, 40.0], dtype=torch.float64)
    p = torch.sigmoid(a) * torch.sigmoid(b)
    got = product_logit(a, b)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(torch.sigmoid(got)[:-1], p[:-1])
    assert got[-1] > 30  # p rounds to 1 in float64; the logit stays large and finite


def test_product_logit_is_log_p_minus_log_one_minus_p_with_exact_gradients():
    grid = torch.linspace(-8.0, 8.0, 17, dtype=torch.float64)
    a, b = (t.contiguous() for t in torch.meshgrid(grid, grid, indexing="ij"))
    p = torch.sigmoid(a) * torch.sigmoid(b)
    torch.testing.assert_close(product_logit(a, b), torch.log(p) - torch.log1p(-p))
    inputs = (a.requires_grad_(), b.requires_grad_())
    assert torch.autograd.gradcheck(product_logit, inputs)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("mmoe", {"tower_units": [[4], [4], [4]]}, "3 lists but there are 2 tasks"),
        ("mmoe", {"num_expert": 3}, "unknown hyperparameter"),
        ("mmoe", {"num_experts": 0}, "num_experts"),
        ("ple", {"num_levels": 0}, "num_levels"),
        ("cgc", {"num_levels": 2}, "use PLE"),
        ("shared_bottom", {"activation": "swish!"}, "activation"),
        ("shared_bottom", {"dropout": 1.5}, "dropout"),
    ],
)
def test_bad_hyperparameters_are_named(name, params, message):
    with pytest.raises(ConfigError, match=message):
        make_config(name, params, 2)


def test_unknown_architecture_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="mmoe"):
        network_class("mmoee")


def test_esmm_needs_two_tasks():
    with pytest.raises(ConfigError, match="exactly two tasks"):
        make_config("esmm", {}, 3)


def test_batch_norm_and_dropout_paths_run_and_differ_in_train_mode():
    net = build("ple", batch_norm=True, dropout=0.5)
    x = inputs(32)
    net.train()
    a, b = net(x).logits["a"], net(x).logits["a"]
    assert not torch.equal(a, b)
    net.eval()
    torch.testing.assert_close(net(x).logits["a"], net(x).logits["a"])
