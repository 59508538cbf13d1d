"""The newer architectures against their papers' equations (issue 20)."""

from __future__ import annotations

import pytest
import torch

import mtlrec
from conftest import make_table
from mtlrec import DenseFeature, SparseFeature, Task
from mtlrec.models.adatt import AdaTTNet
from mtlrec.models.cross_stitch import CrossStitchUnit
from mtlrec.models.dselect_k import DSelectKGates, smooth_step

FEATURES = [SparseFeature("cat"), SparseFeature("color"), DenseFeature("x")]
TASKS = [Task("a"), Task("b")]


def test_smooth_step_is_zero_one_and_cubic_between():
    gamma = 2.0
    t = torch.tensor([-5.0, -1.0, -0.5, 0.0, 0.5, 1.0, 5.0], requires_grad=True)
    s = smooth_step(t, gamma)
    cubic = lambda v: -2 * v**3 / gamma**3 + 1.5 * v / gamma + 0.5  # noqa: E731
    expected = torch.tensor([0.0, 0.0, cubic(-0.5), 0.5, cubic(0.5), 1.0, 1.0])
    torch.testing.assert_close(s.detach(), expected)
    s.sum().backward()
    assert t.grad[0] == 0 and t.grad[-1] == 0  # flat outside the transition
    assert t.grad[3] == pytest.approx(1.5 / gamma)


@pytest.mark.parametrize("experts", [4, 5])
def test_a_selector_past_the_transition_picks_exactly_one_expert(experts):
    gates = DSelectKGates(tasks=2, experts=experts, in_features=3, selectors=1, gamma=1.0)
    bits = gates.bits
    with torch.no_grad():
        gates.logits.weight.zero_()
        # task 0 codes expert 2 (bits 0, 1, 0...), task 1 expert 1 (bits 1, 0, ...)
        for task, expert in ((0, 2), (1, 1)):
            code = [(expert >> b) & 1 for b in range(bits)]
            gates.logits.bias[task, 0, :bits] = torch.tensor([5.0 if c else -5.0 for c in code])
    weights = gates(torch.randn(7, 3))
    assert weights.shape == (2, 7, experts)
    torch.testing.assert_close(weights[0], torch.eye(experts)[2].expand(7, experts))
    torch.testing.assert_close(weights[1], torch.eye(experts)[1].expand(7, experts))


def test_dselect_k_gates_sum_to_one_and_are_inspected():
    model = mtlrec.DSelectK(FEATURES, TASKS, num_experts=5, num_selectors=2, expert_units=[8])
    table = make_table(400)
    model.fit(table, epochs=1, verbose=0)
    assert model.history_[-1]["step"] == "autograd"
    assert "smooth-step gates have no fast-path rule" in model.history_[-1]["step_reason"]
    weights = model.gate_weights(table.head(50))
    for task in ("a", "b"):
        assert weights[task].shape == (50, 5)
        torch.testing.assert_close(torch.from_numpy(weights[task]).sum(1), torch.ones(50))


def test_cross_stitch_units_start_as_the_paper_says_and_mix_columns():
    unit = CrossStitchUnit(tasks=3, self_weight=0.8)
    torch.testing.assert_close(
        unit.alpha.detach(), torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    )
    x = torch.randn(3, 4, 5)
    expected = torch.einsum("ts,sbh->tbh", unit.alpha.detach(), x)
    torch.testing.assert_close(unit(x).detach(), expected)


def test_cross_stitch_with_identity_units_is_one_network_per_task():
    model = mtlrec.CrossStitch(FEATURES, TASKS, self_weight=1.0, column_units=[8, 4])
    table = make_table(300)
    model.preprocessor.fit(table)
    network = model.build()
    batch = model.preprocessor.transform(table.head(20))
    before = network(batch).named()["a"].detach()
    with torch.no_grad():  # task b's column changes; task a's logits must not
        for column in network.columns:
            for layer in column.layers:
                weight = layer.weight
                (weight[:, 1] if layer.shared_input else weight[1]).mul_(-3.0)
    torch.testing.assert_close(network(batch).named()["a"].detach(), before)
    assert model.build() is not None
    assert (
        mtlrec.CrossStitch(FEATURES, TASKS).fit(table, epochs=1, verbose=0).history_[-1]["step"]
        == "fast"
    )


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("cross_stitch", {"self_weight": 1.5}, "self_weight must be in"),
        ("cross_stitch", {"column_units": []}, "column_units"),
        ("dselect_k", {"num_experts": 1}, "num_experts"),
        ("dselect_k", {"gamma": 0}, "gamma must be > 0"),
        ("aitm", {"tower_units": [[8], [4]]}, "one list of hidden units for every task"),
        ("dbmtl", {"tower_units": [8]}, "give relation_units"),
        ("dbmtl", {"relation_units": []}, "relation_units"),
        ("poso", {"gate_scale": 0}, "gate_scale must be > 0"),
        ("pepnet", {"tower_units": [[8], [4]]}, "one list of hidden units"),
        ("dselect_k", {"entropy_weight": -1.0}, "entropy_weight must be >= 0"),
        ("snr_trans", {"l0_weight": -1.0}, "l0_weight must be >= 0"),
    ],
)
def test_bad_hyperparameters_are_named(name, params, message):
    with pytest.raises(mtlrec.ConfigError, match=message):
        mtlrec.create_model(name, FEATURES, TASKS, **params)


def test_aitm_passes_each_step_to_the_next_and_not_back():
    model = mtlrec.AITM(FEATURES, TASKS, tower_units=[8, 4])
    table = make_table(300)
    table["b"] = table["b"] * table["a"]
    model.preprocessor.fit(table)
    network = model.build()
    batch = model.preprocessor.transform(table.head(20))
    before = network(batch).named()
    with torch.no_grad():  # the second task's tower and transfer: the first must not move
        network.task_towers.layers[-1].weight[1].mul_(-2.0)
        network.transfer.h1[0].weight.mul_(3.0)
    after = network(batch).named()
    torch.testing.assert_close(after["a"], before["a"])
    assert not torch.allclose(after["b"], before["b"])
    with torch.no_grad():  # the first task's tower reaches the second through the transfer
        network.task_towers.layers[-1].weight[0].mul_(-2.0)
    assert not torch.allclose(network(batch).named()["b"], after["b"])
    funnel = [Task("a"), Task("b", after="a", funnel="direct", penalty=0.6)]  # + calibrator
    model = mtlrec.AITM(FEATURES, funnel, tower_units=[8, 4]).fit(table, epochs=1, verbose=0)
    assert "information-transfer attention" in model.history_[-1]["step_reason"]


def test_dbmtl_conditions_each_task_on_the_ones_before_it_only():
    tasks = [Task("a"), Task("b"), Task("c", type="regression")]
    model = mtlrec.DBMTL(FEATURES, tasks, bottom_units=[8], task_units=[6], relation_units=[4])
    table = make_table(200)
    table["c"] = table["x"] * 2.0
    model.preprocessor.fit(table)
    network = model.build()
    assert [m[0].in_features for m in network.relations.mlps] == [6, 10, 14]
    batch = model.preprocessor.transform(table.head(20))
    before = network(batch).named()
    with torch.no_grad():  # task b's relation layer: a must not move, b and c must
        network.relations.mlps[1][0].weight.mul_(-2.0)
    after = network(batch).named()
    torch.testing.assert_close(after["a"], before["a"])
    assert not torch.allclose(after["b"], before["b"])
    assert not torch.allclose(after["c"], before["c"])
    # the bottom, the task layers (one bank), 3 relation layers, the outputs (one bank)
    assert len(network.dense_weights()) == 1 + 1 + 3 + 1
    fitted = mtlrec.DBMTL(FEATURES, tasks, l2_dense=1e-3).fit(table, epochs=1, verbose=0)
    assert "relation layers have no fast-path rule" in fitted.history_[-1]["step_reason"]


def test_poso_gates_read_the_personalisation_columns_only():
    features = [SparseFeature("cat", group="user"), SparseFeature("color"), DenseFeature("x")]
    model = mtlrec.POSO(features, TASKS, bottom_units=[8, 4], gate_units=3)
    table = make_table(200)
    model.preprocessor.fit(table)
    network = model.build()
    bottom, personal = network.bottom, network.personal
    assert personal.tolist() == network.embedding.group_columns("user").tolist()
    x = torch.randn(6, network.embedding.out_features)
    pc = x.index_select(1, personal)
    gates = [2.0 * torch.sigmoid(g.mlp(pc)) for g in bottom.gates]
    expected = x
    for layer, gate in zip(bottom.layers, gates, strict=True):
        expected = torch.relu(layer(expected)) * gate
    torch.testing.assert_close(bottom(x, pc), expected)
    other = x.clone()
    other[:, personal] += 1.0  # only the personalisation columns move the gates
    assert not torch.allclose(bottom(other, other.index_select(1, personal)), bottom(x, pc))
    with pytest.raises(mtlrec.ConfigError, match="no feature has group='user'"):
        mtlrec.POSO([SparseFeature("cat"), DenseFeature("x")], TASKS).fit(table, verbose=0)


def test_pepnet_gates_embeddings_by_the_domain_and_each_tower_by_the_person():
    features = [
        SparseFeature("cat", group="user"),
        SparseFeature("color", group="domain"),
        DenseFeature("x"),
    ]
    model = mtlrec.PEPNet(features, TASKS, tower_units=[6, 4], gate_units=3, domain_group="domain")
    table = make_table(200)
    model.preprocessor.fit(table)
    network = model.build()
    p = network.personalised
    e = torch.randn(5, network.embedding.out_features, requires_grad=True)
    sig = lambda gate, v: 2.0 * torch.sigmoid(gate.mlp(v))  # noqa: E731
    e2 = sig(p.ep, torch.cat([e[:, p.domain], e.detach()], 1)) * e
    gate_in = torch.cat([e2[:, p.personal], e2.detach()], 1)
    expected = []
    for tower in p.towers:
        h = e2
        for layer, gate in zip(tower.layers, tower.gates, strict=True):
            h = torch.relu(layer(h)) * sig(gate, gate_in)
        expected.append(h)
    torch.testing.assert_close(p(e), torch.stack(expected))
    # stop gradient: the gates reach the row through its domain / personal columns only
    (p.ep.mlp(torch.cat([e[:, p.domain], e.detach()], 1)).sum()).backward()
    other = [i for i in range(e.shape[1]) if i not in p.domain.tolist()]
    assert e.grad[:, other].abs().sum() == 0 and e.grad[:, p.domain].abs().sum() > 0
    plain = mtlrec.PEPNet(features, TASKS, tower_units=[4])
    plain.preprocessor.fit(table)
    assert plain.build().personalised.ep is None  # one domain: no EPNet
    with pytest.raises(mtlrec.ConfigError, match="domain_group='site' names a group"):
        mtlrec.PEPNet(features, TASKS, domain_group="site")


def test_snr_gates_follow_the_hard_concrete_and_can_close_a_connection():
    from mtlrec.models.snr import GAMMA, ZETA, Routing

    routing = Routing(tasks=2, experts=3, units=4, routed=None).eval()
    with torch.no_grad():
        routing.log_alpha.copy_(torch.tensor([[5.0, 0.0, -9.0], [-9.0, 0.3, 9.0]]))
    expected = (torch.sigmoid(routing.log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0, 1)
    z = routing.gates()
    torch.testing.assert_close(z, expected.detach())
    assert z[0, 2] == 0 and z[1, 0] == 0 and z[0, 0] == 1  # stretched past 0 and 1: exact
    experts = torch.randn(3, 5, 4)
    torch.testing.assert_close(routing(experts), torch.einsum("te,ebh->tbh", z, experts))
    routing.train()
    torch.manual_seed(0)
    first = routing.gates()
    torch.manual_seed(0)
    assert torch.equal(first, routing.gates())  # sampled from torch's generator
    assert not torch.equal(first, routing.gates())
    trans = mtlrec.SNRTrans(FEATURES, TASKS, num_experts=3, expert_units=[8], routed_units=5)
    table = make_table(200)
    trans.fit(table, epochs=1, verbose=0)
    assert trans.network.routing.transform.shape == (2, 3, 8, 5)
    assert "sampled routing gates" in trans.history_[-1]["step_reason"]
    first_predictions = trans.predict(table.head(30))["a"]
    np_equal = (first_predictions == trans.predict(table.head(30))["a"]).all()
    assert np_equal  # prediction uses the deterministic gates


def test_the_papers_regularisers_are_loss_terms_of_their_configs():
    from mtlrec.models.dselect_k import SelectorEntropy
    from mtlrec.models.snr import BETA, GAMMA, ZETA, ExpectedConnections

    table = make_table(300)
    model = mtlrec.DSelectK(FEATURES, TASKS, num_experts=4, expert_units=[8], entropy_weight=0.1)
    terms = model.config.loss_terms()
    assert [type(t) for t in terms] == [SelectorEntropy]
    model.preprocessor.fit(table)
    network = model.build()
    network(model.preprocessor.transform(table.head(16)))
    picks = network.gates.last_picks
    expected = -0.1 * (picks * picks.clamp_min(1e-12).log()).sum()
    torch.testing.assert_close(terms[0].value(network, None), expected)
    model.fit(table, epochs=1, verbose=0)  # trains with it
    snr = mtlrec.SNRAver(FEATURES, TASKS, num_experts=3, expert_units=[8], l0_weight=0.01)
    (term,) = snr.config.loss_terms()
    assert isinstance(term, ExpectedConnections) and not term.per_row
    snr.preprocessor.fit(table)
    network = snr.build()
    alpha = network.routing.log_alpha
    open_share = torch.sigmoid(alpha - BETA * torch.log(torch.tensor(-GAMMA / ZETA)))
    torch.testing.assert_close(term.value(network, None), 0.01 * open_share.sum())
    assert mtlrec.SNRAver(FEATURES, TASKS, l2_dense=1e-3).config.loss_terms()[0].name == "l2_dense"


def test_adatt_fuses_every_tasks_experts_by_gates_plus_its_own_by_weights():
    """f_t = sum_j g_tj E_j(x_task(j)) + sum_k v_tk E_(t,k)(x_t), level by level."""
    model = mtlrec.AdaTT(FEATURES, TASKS, num_task_experts=3, num_levels=2, expert_units=[6])
    table = make_table(300)
    model.fit(table, epochs=1, verbose=0)
    assert model.history_[-1]["step"] == "autograd"
    assert "native-expert combination has no fast-path rule" in model.history_[-1]["step_reason"]
    network = model.network.eval()
    assert isinstance(network, AdaTTNet)
    first, second = network.levels
    fresh = mtlrec.AdaTT(FEATURES, TASKS, num_task_experts=3, num_levels=2, expert_units=[6])
    fresh.preprocessor.fit(table)
    for level in fresh.build().levels:  # v starts at 1/m
        torch.testing.assert_close(level.native.detach(), torch.full((2, 3), 1 / 3))
    with torch.no_grad():
        second.native.copy_(torch.tensor([[0.5, -1.0, 2.0], [0.0, 3.0, 1.0]]))
        batch = model.preprocessor.transform(table.head(9), with_labels=False)
        x = network.embedding(batch)  # (B, I)
        inputs = x
        for level in (first, second):
            experts = (
                level.experts(inputs) if level.first else level.experts(inputs, level.expert_runs)
            )  # (6, B, H): tasks' experts in task order
            gates = level.gates(inputs)  # (2, B, 6), each over every expert
            torch.testing.assert_close(gates.sum(-1), torch.ones(2, 9))
            fused = []
            for t in range(2):
                across = sum(gates[t, :, j, None] * experts[j] for j in range(6))
                native = sum(level.native[t, k] * experts[3 * t + k] for k in range(3))
                fused.append(across + native)
            inputs = torch.stack(fused)  # (2, B, H)
        out, _ = second(first(x)[0])
        torch.testing.assert_close(out, inputs)
        # the second level's experts read their own task's fused input only
        changed = first(x)[0].clone()
        changed[1] += 1.0
        moved = second.experts(changed, second.expert_runs) - second.experts(
            first(x)[0], second.expert_runs
        )
        assert moved[:3].abs().max() == 0 and moved[3:].abs().max() > 0
    weights = model.gate_weights(table.head(20))
    assert weights["level0/a"].shape == (20, 6) and weights["level1/b"].shape == (20, 6)
