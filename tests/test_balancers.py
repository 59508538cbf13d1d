"""Loss balancers: each method's arithmetic on hand-computed two-task cases, the
balanced autograd step against plain autograd, and every registered balancer training
a model (the fast step kept where the multipliers do not depend on the batch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mtlrec
from conftest import FEATURES, FUNNEL_TASKS, TASKS, make_table
from mtlrec.balancers import BALANCERS, Balancer, GradientBalancer, SmallAdam, list_balancers
from mtlrec.balancers.cagrad import CAGrad, cagrad_weights
from mtlrec.balancers.dwa import DWA
from mtlrec.balancers.equal import Equal
from mtlrec.balancers.famo import FAMO
from mtlrec.balancers.gradnorm import GradNorm
from mtlrec.balancers.mgda import MGDA, min_norm_of_two, min_norm_weights
from mtlrec.balancers.pcgrad import PCGrad
from mtlrec.balancers.uncertainty import Uncertainty
from mtlrec.exceptions import ConfigError
from mtlrec.layers import GateBank, Towers
from mtlrec.models import list_models
from mtlrec.objective import Objective, l2_terms
from mtlrec.training import Accumulator, build_optimizers

LOSS_LEVEL = {"equal", "uncertainty", "dwa"}  # multipliers fixed within a step: fast step
TABLE = make_table(400)
SMALL = {
    "shared_bottom": {"bottom_units": [16], "tower_units": [8]},
    "mmoe": {"num_experts": 3, "expert_units": [8], "gate_units": [], "tower_units": [8]},
}


def started(balancer: Balancer, weights=(1.0, 1.0), lr: float = 0.1, seed: int = 0):
    balancer.start(torch.tensor(weights), lr=lr, seed=seed)
    return balancer


def close(actual, expected, tol: float = 1e-6) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=float), expected, rtol=0, atol=tol)


# ---------------------------------------------------------------------------- registry


def test_registry_lists_every_method_with_equal_first():
    assert list_balancers() == BALANCERS.names()
    assert list_balancers() == [
        "equal",
        "uncertainty",
        "dwa",
        "gradnorm",
        "pcgrad",
        "mgda",
        "cagrad",
        "famo",
    ]
    for name, cls in BALANCERS.items():
        assert cls.__module__ == f"mtlrec.balancers.{name}"  # one file per method
        assert issubclass(cls, Balancer) and cls().name == name


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ConfigError, match=r"unknown balancer 'softmax'.*'pcgrad'"):
        mtlrec.SharedBottom(FEATURES, TASKS).fit(TABLE, balancer="softmax", verbose=0)


@pytest.mark.parametrize("wrong", [3, PCGrad, {"name": "dwa"}])
def test_a_balancer_of_the_wrong_type_is_a_config_error(wrong):
    with pytest.raises(ConfigError, match=r"registered name .* or a mtlrec\.balancers\.Balancer"):
        mtlrec.SharedBottom(FEATURES, TASKS).fit(TABLE, balancer=wrong, verbose=0)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="temperature"):
        DWA(temperature=0)
    with pytest.raises(ConfigError, match="normalization"):
        MGDA(normalization="max")
    with pytest.raises(ConfigError, match="cagrad: c"):
        CAGrad(c=-1)
    model = mtlrec.SharedBottom(FEATURES, TASKS, **SMALL["shared_bottom"])
    with pytest.raises(ConfigError, match=r"layer 'towers\.outs\.0\.weight' is not a shared"):
        model.fit(TABLE, balancer=GradNorm(layer="towers.outs.0.weight"), verbose=0)


# ---------------------------------------------------------------------------- equal


def test_equal_weighs_by_task_weight_alone():
    equal = started(Equal(), weights=(2.0, 0.5))
    assert equal.multipliers() is None and equal.autograd_reason() is None
    assert equal.task_weights() == [2.0, 0.5]


# ---------------------------------------------------------------------------- uncertainty


def test_small_adam_matches_torch_adam():
    mine, theirs = torch.tensor([0.5, -1.0]), torch.tensor([0.5, -1.0], requires_grad=True)
    adam, reference = SmallAdam(mine, lr=0.05), torch.optim.Adam([theirs], lr=0.05)
    for grad in ([1.0, -2.0], [0.3, 0.1], [-4.0, 2.0]):
        adam.step(torch.tensor(grad))
        theirs.grad = torch.tensor(grad)
        reference.step()
    torch.testing.assert_close(mine, theirs.detach(), rtol=0, atol=1e-7)


def test_uncertainty_weights_and_the_gradient_of_s():
    u = started(Uncertainty(), weights=(1.0, 2.0), lr=0.1)
    close(u.multipliers(), [1.0, 1.0])  # s = 0
    losses = torch.tensor([0.5, 2.0])
    # d/ds (exp(-s) w L + s) = 1 - exp(-s) w L: 1 - 0.5 and 1 - 2 x 2
    close(u.gradient(losses), [0.5, -3.0])
    u.observe(losses)  # Adam's first step moves each s by lr against its gradient's sign
    close(u.log_variance, [-0.1, 0.1])
    close(u.multipliers(), [math.exp(0.1), math.exp(-0.1)])
    close(u.task_weights(), [math.exp(0.1), 2 * math.exp(-0.1)])


def test_uncertainty_weights_grow_above_one_for_small_losses():
    u = started(Uncertainty(), weights=(1.0,), lr=0.1)
    for _ in range(200):  # the optimum is exp(-s) = 1 / L = 10: nothing stops at 1
        u.observe(torch.tensor([0.1]))
    assert float(u.multipliers()[0]) > 5.0


class Fixed(Balancer):
    """Constant multipliers (2, 0.5): what uncertainty and DWA hand the step."""

    def multipliers(self):
        return self._multipliers

    def start(self, weights, lr=1e-3, seed=0):
        super().start(weights, lr, seed)
        self._multipliers = torch.tensor([2.0, 0.5])


def test_loss_multipliers_run_the_fast_step_and_scale_the_loss():
    model = mtlrec.SharedBottom(FEATURES, TASKS, **SMALL["shared_bottom"])
    model.preprocessor.fit(TABLE)
    batch = model.preprocessor.transform(TABLE.head(128))
    objective = Objective(TASKS, model.preprocessor.heads)
    network = model.build()
    results = {}
    for fast, balancer in ((True, started(Fixed())), (False, started(Fixed())), (True, None)):
        build_optimizers(network, "adam", 1e-3).zero_grad()
        step = Accumulator(network, objective, None, fast, balancer)
        loss, losses, _ = step(batch)
        grads = [p.grad.clone() for p in network.parameters()]
        results[fast, balancer is None] = (step.path, loss, losses, grads)
    assert results[True, False][0] == "fast" and results[False, False][0] == "autograd"
    fast, slow, plain = results[True, False], results[False, False], results[True, True]
    torch.testing.assert_close(fast[1], slow[1])
    torch.testing.assert_close(fast[1], torch.dot(plain[2], torch.tensor([2.0, 0.5])))
    for fast_grad, slow_grad in zip(fast[3], slow[3], strict=True):
        torch.testing.assert_close(fast_grad, slow_grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast[2], plain[2])  # the reported task losses: unweighted


# ---------------------------------------------------------------------------- dwa


def test_dwa_weights_from_the_last_two_epochs():
    dwa = started(DWA())  # temperature 2
    assert dwa.multipliers() is None  # epoch 1
    dwa.end_epoch(torch.tensor([1.0, 1.0]))
    assert dwa.multipliers() is None  # epoch 2
    assert dwa.task_weights() == [1.0, 1.0]
    dwa.end_epoch(torch.tensor([0.5, 0.8]))  # r = (0.5, 0.8): w = 2 softmax(r / 2)
    e1, e2 = math.exp(0.25), math.exp(0.4)
    close(dwa.multipliers(), [2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)])
    dwa.end_epoch(torch.tensor([0.4, 0.4]))  # r = (0.4 / 0.5, 0.4 / 0.8) = (0.8, 0.5)
    close(dwa.multipliers(), [2 * e2 / (e1 + e2), 2 * e1 / (e1 + e2)])


# ---------------------------------------------------------------------------- gradnorm


def test_gradnorm_targets_and_weight_update():
    g = started(GradNorm(), lr=0.1)  # alpha 1.5
    # first step: L(0) = L, every rate 1, so both targets are the mean norm (5 + 1) / 2
    grads = torch.tensor([[3.0, 4.0], [1.0, 0.0]])  # norms 5 and 1
    close(g.targets(grads.norm(dim=1), torch.tensor([2.0, 1.0])), [3.0, 3.0])
    # dL_grad/dw = sign(G - target) G / w = (+5, -1): Adam's first step moves each weight
    # by lr = 0.1 against its sign, (0.9, 1.1), which already sums to T = 2
    assert g.combine(grads, torch.tensor([2.0, 1.0])) is None  # keeps the plain gradient
    close(g.multipliers(), [0.9, 1.1])
    # later: L / L(0) = (0.5, 1), rates (2/3, 4/3), targets mean(G) x rate^1.5
    norms = torch.tensor([1.0, 3.0])
    rates = np.array([2 / 3, 4 / 3])
    close(g.targets(norms, torch.tensor([1.0, 1.0])), 2.0 * rates**1.5)


def test_gradnorm_renormalises_to_the_number_of_tasks():
    g = started(GradNorm(), lr=0.5)
    g.combine(torch.tensor([[10.0, 0.0], [0.1, 0.0]]), torch.tensor([1.0, 1.0]))
    w = g.multipliers()
    close(w, [0.5 * 2 / 2, 1.5 * 2 / 2])  # (1 - 0.5, 1 + 0.5), sum 2
    assert float(w.sum()) == pytest.approx(2.0)


# ---------------------------------------------------------------------------- pcgrad


def test_pcgrad_projects_conflicting_gradients_by_hand():
    pc = started(PCGrad())
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    projected = torch.as_tensor(pc.projection((grads @ grads.t()).numpy())) @ grads
    # g1 - (g1.g2 / |g2|^2) g2 = (1, 0) + 1/2 (-1, 1); g2 - (g2.g1 / |g1|^2) g1 = (0, 1)
    close(projected, [[0.5, 0.5], [0.0, 1.0]])
    close(pc.combine(grads.float(), torch.ones(2)), [0.5, 1.5])
    close(pc.task_weights(), [2.0, 1.5])  # (g1 + g2 / 2) + (g2 + g1) = 2 g1 + 1.5 g2


def test_pcgrad_leaves_agreeing_gradients_alone():
    pc = started(PCGrad())
    close(pc.combine(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.ones(2)), [2.0, 1.0])


def test_pcgrad_order_comes_from_the_seed():
    rng = np.random.default_rng(3)
    grads = torch.tensor(rng.normal(size=(4, 6)), dtype=torch.float32)
    runs = [
        [started(PCGrad(), (1.0,) * 4, seed=s).combine(grads, torch.ones(4)) for _ in range(5)]
        for s in (7, 7)
    ]
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# ---------------------------------------------------------------------------- mgda


def test_mgda_min_norm_of_two_vectors_by_hand():
    # g1 = (1, 0), g2 = (0, 2): gamma = (4 - 0) / (1 + 4 - 0) = 0.8 -> (0.8, 0.4)
    assert min_norm_of_two(1.0, 0.0, 4.0) == pytest.approx(0.8)
    mgda = started(MGDA())
    grads = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    close(mgda.combine(grads, torch.ones(2)), [0.8, 0.4])
    close(mgda.task_weights(), [0.8, 0.2])


def test_mgda_a_dominating_gradient_takes_all_the_weight():
    # g1 = (1, 0), g2 = (3, 1): g1 . g2 = 3 >= |g1|^2, so g1 itself is the min-norm point
    close(min_norm_weights(np.array([[1.0, 3.0], [3.0, 10.0]])), [1.0, 0.0])
    close(min_norm_weights(np.array([[10.0, 3.0], [3.0, 1.0]])), [0.0, 1.0])


def test_mgda_loss_normalisation_divides_by_the_losses():
    mgda = started(MGDA(normalization="loss"))
    # g / L = (1, 0) and (0, 2): the case above, so w = (0.8, 0.2) on the scaled gradients
    grads = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    close(mgda.combine(grads, torch.tensor([2.0, 0.5])), [0.8, 0.4])


def test_mgda_frank_wolfe_finds_the_min_norm_point_of_three():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(3, 4))
    w = min_norm_weights(g @ g.T, max_iter=5000)
    grid = np.linspace(0, 1, 401)
    best = min(
        np.sum((a * g[0] + b * g[1] + (1 - a - b) * g[2]) ** 2)
        for a in grid
        for b in grid[grid <= 1 - a + 1e-12]
    )
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
    assert np.sum((w @ g) ** 2) <= best + 1e-6


# ---------------------------------------------------------------------------- cagrad


def cagrad_objective(w, g, c):
    g0 = g.mean(0)
    gw = w @ g
    return gw @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(gw)


def test_cagrad_symmetric_case_by_hand():
    # g1, g2 orthogonal of norm 1: by symmetry w = (1/2, 1/2), g_w = g0 = (1/2, 1/2),
    # d = g0 + c |g0| / |g_w| g_w = 1.5 g0, rescaled by 1 / (1 + c^2): (0.6, 0.6)
    ca = started(CAGrad())
    close(ca.combine(torch.eye(2), torch.ones(2)), [0.6, 0.6])
    close(cagrad_weights(np.eye(2), 0.5), [0.5, 0.5])


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_cagrad_weights_match_a_grid_over_the_simplex(c):
    g = np.array([[1.0, 0.0], [-0.5, 2.0]])
    w = cagrad_weights(g @ g.T, c)
    grid = np.linspace(0, 1, 100_001)
    values = [cagrad_objective(np.array([a, 1 - a]), g, c) for a in grid]
    best = grid[int(np.argmin(values))]
    close(w, [best, 1 - best], tol=2e-5)
    assert cagrad_objective(w, g, c) <= min(values) + 1e-12
    # the direction: g0 + c |g0| / |g_w| g_w, over 1 + c^2
    g0, gw = g.mean(0), w @ g
    expected = (g0 + c * np.linalg.norm(g0) / np.linalg.norm(gw) * gw) / (1 + c * c)
    direction = started(CAGrad(c=c)).combine(torch.tensor(g, dtype=torch.float64), torch.ones(2))
    close(direction, expected, tol=1e-7)


def test_cagrad_weights_of_three_tasks_match_a_grid():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(3, 5))
    w = cagrad_weights(g @ g.T, 0.5)
    grid = np.linspace(0, 1, 301)
    best = min(
        cagrad_objective(np.array([a, b, 1 - a - b]), g, 0.5)
        for a in grid
        for b in grid[grid <= 1 - a + 1e-12]
    )
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
    assert cagrad_objective(w, g, 0.5) <= best + 1e-9


# ---------------------------------------------------------------------------- famo


def test_famo_multipliers_and_logit_update_by_hand():
    famo = started(FAMO())  # beta 0.025, gamma 0.001
    # z = (1/2, 1/2), L = (1, 4): z / L = (0.5, 0.125), c = (0.8, 0.2)
    close(famo.batch_multipliers(torch.tensor([1.0, 4.0])), [0.8, 0.2])
    # after the step L = (0.5, 3): delta = (log 2, log 4/3); J^T delta = z (delta - z.delta)
    famo.observe(torch.tensor([1.0, 4.0]), torch.tensor([0.5, 3.0]))
    d1, d2 = math.log(2), math.log(4 / 3)
    half = 0.5 * (d1 - d2) / 2
    close(famo.logits, [-0.025 * half, 0.025 * half])
    # the next step decays xi too: xi - beta (J^T delta + gamma xi), here with delta = 0
    xi = famo.logits.clone()
    famo.observe(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]))
    close(famo.logits, xi - 0.025 * 0.001 * xi, tol=1e-9)
    close(famo.task_weights(), [0.8, 0.2])  # the epoch's mean c x Task.weight


# ---------------------------------------------------------------------------- the step


class SumOfGradients(GradientBalancer):
    """Combines the task gradients by their plain sum: the ordinary gradient."""

    def coefficients(self, gram, losses):
        return np.ones(len(gram))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("arch", ["shared_bottom", "mmoe"])
def test_balanced_step_with_the_plain_sum_equals_autograd(arch, sparse):
    model = mtlrec.create_model(arch, FEATURES, TASKS, **SMALL[arch])
    model.preprocessor.fit(TABLE)
    batch = model.preprocessor.transform(TABLE.head(200))
    objective = Objective(TASKS, model.preprocessor.heads, l2_terms(1e-3, 1e-3))
    network = model.build()
    results = []
    for balancer in (None, started(SumOfGradients())):
        build_optimizers(network, "adam", 1e-3, sparse_embeddings=sparse).zero_grad()
        step = Accumulator(network, objective, None, False, balancer)
        loss, losses, _ = step(batch)
        grads = [p.grad.to_dense().clone() for p in network.parameters()]
        results.append((loss, losses, grads, step.reason))
    assert "SumOfGradients" in results[1][3]
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    for plain, balanced in zip(results[0][2], results[1][2], strict=True):
        torch.testing.assert_close(plain, balanced, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("arch", list_models())
def test_shared_parameters_exclude_the_towers_and_gates(arch):
    model = mtlrec.create_model(arch, FEATURES, FUNNEL_TASKS if arch == "esmm" else TASKS)
    model.preprocessor.fit(TABLE)
    network = model.build()
    shared = {id(p) for p in network.shared_parameters()}
    own = {
        id(p) for m in network.modules() if isinstance(m, Towers | GateBank) for p in m.parameters()
    }
    assert shared and own and not shared & own
    assert shared | own == {id(p) for p in network.parameters()}
    assert {id(p) for p in network.embedding.parameters()} <= shared
    weight = BALANCERS.get("gradnorm")().gradient_parameters(network)
    names = [n for n, p in network.named_parameters() if p is weight[0]]
    assert names[0].endswith("weight")  # GradNorm's W: the last shared weight, not a bias


# ---------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", list_balancers())
@pytest.mark.parametrize("arch", sorted(SMALL))
def test_every_balancer_trains_a_two_task_model(arch, name):
    model = mtlrec.create_model(arch, FEATURES, TASKS, **SMALL[arch])
    model.fit(TABLE, epochs=2, batch_size=64, balancer=name, verbose=0)
    assert len(model.history_) == 2
    for record in model.history_:
        assert math.isfinite(record["loss"])
        assert all(math.isfinite(v) for v in record["task_loss"].values())
        weights = record["task_weights"]
        assert set(weights) == {"a", "b"} and all(math.isfinite(w) for w in weights.values())
        if name in LOSS_LEVEL:
            assert record["step"] == "fast", record.get("step_reason")
        else:
            assert record["step"] == "autograd" and f"'{name}'" in record["step_reason"]
    predictions = model.predict(TABLE.head(50))
    assert all(np.isfinite(p).all() for p in predictions.values())


def test_equal_trains_exactly_as_without_a_balancer():
    fits = [
        mtlrec.MMoE(FEATURES, TASKS, **SMALL["mmoe"]).fit(
            TABLE, epochs=2, batch_size=64, verbose=0, **kwargs
        )
        for kwargs in ({}, {"balancer": "equal"}, {"balancer": Equal()})
    ]
    first = fits[0].predict(TABLE)
    for model in fits:
        assert [h["loss"] for h in model.history_] == [h["loss"] for h in fits[0].history_]
        assert model.history_[0]["task_weights"] == {"a": 1.0, "b": 1.0}
        for name, values in model.predict(TABLE).items():
            np.testing.assert_array_equal(values, first[name])


def test_task_weights_start_from_task_weight():
    tasks = [mtlrec.Task("a", weight=2.0), mtlrec.Task("b", weight=0.5)]
    model = mtlrec.SharedBottom(FEATURES, tasks, **SMALL["shared_bottom"])
    model.fit(TABLE, epochs=1, batch_size=64, balancer="dwa", verbose=0)
    assert model.history_[0]["task_weights"] == {"a": 2.0, "b": 0.5}  # DWA's first epoch


@pytest.mark.parametrize("name", ["pcgrad", "famo"])
def test_a_balanced_fit_is_reproducible_from_its_seed(name):
    runs = [
        mtlrec.SharedBottom(FEATURES, TASKS, **SMALL["shared_bottom"]).fit(
            TABLE, epochs=1, batch_size=64, balancer=name, seed=5, verbose=0
        )
        for _ in range(2)
    ]
    for task, values in runs[0].predict(TABLE).items():
        np.testing.assert_array_equal(values, runs[1].predict(TABLE)[task])


# ---------------------------------------------------------------------------- benchmarks


def test_the_benchmarks_pass_the_balancer_and_record_it():
    from mtlrec.experiments.benchmark import BenchmarkData, run_benchmark
    from mtlrec.experiments.synthetic import run_synthetic_benchmark

    data = BenchmarkData(TABLE.iloc[:300], TABLE.iloc[300:], FEATURES, TASKS)
    options = {"epochs": 1, "batch_size": 100, "verbose": 0, "warmup": False}
    records = run_benchmark(data, models=["shared_bottom"], balancer="dwa", **options)
    assert {r["balancer"] for r in records} == {"dwa"}
    with pytest.raises(ConfigError, match="unknown balancer 'nope'"):
        run_benchmark(data, models=["shared_bottom"], balancer="nope", **options)
    (record,) = run_synthetic_benchmark(
        [0.5], seeds=1, n_train=200, n_test=100, models=["mmoe"], balancer="pcgrad", **options
    )
    assert record["balancer"] == "pcgrad"


# ---------------------------------------------------------------------------- absent tasks

ONLY_A = torch.tensor([True, False])  # a batch that carries labels of task a only


def test_small_adam_leaves_entries_out_and_counts_each_ones_steps():
    mine = torch.tensor([0.5, -1.0])
    adam = SmallAdam(mine, lr=0.05)
    adam.step(torch.tensor([1.0, 7.0]), ONLY_A)
    assert float(mine[1]) == -1.0 and float(adam.exp_avg[1]) == 0.0  # untouched
    close(mine[0], 0.45)  # Adam's first step: lr against the gradient's sign
    adam.step(torch.tensor([0.3, -2.0]))  # the second entry's first step: lr again
    close(mine[1], -0.95)
    # the first entry's second step, as torch's Adam takes it
    theirs = torch.tensor([0.5], requires_grad=True)
    reference = torch.optim.Adam([theirs], lr=0.05)
    for grad in (1.0, 0.3):
        theirs.grad = torch.tensor([grad])
        reference.step()
    close(mine[0], float(theirs))


def test_uncertainty_leaves_an_absent_task_alone():
    u = started(Uncertainty(), lr=0.1)
    u.observe(torch.tensor([0.5, 0.0]), None, ONLY_A)  # b's loss 0 is no evidence
    close(u.log_variance, [-0.1, 0.0])
    close(u.multipliers(), [math.exp(0.1), 1.0])


def test_dwa_weighs_a_task_by_the_epochs_that_labelled_it():
    dwa = started(DWA())  # temperature 2
    dwa.end_epoch(torch.tensor([1.0, 1.0]))
    dwa.end_epoch(torch.tensor([0.5, math.nan]))  # no batch carried b
    # a has a ratio (0.5), b none yet: a's weight from its own softmax, b keeps 1
    close(dwa.multipliers(), [1.0, 1.0])
    dwa.end_epoch(torch.tensor([0.4, 0.8]))  # a: 0.4 / 0.5; b: 0.8 / 1.0 (its epochs 1, 3)
    e1, e2 = math.exp(0.8 / 2), math.exp(0.8 / 2)
    close(dwa.multipliers(), [2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)])
    dwa.end_epoch(torch.tensor([0.2, math.nan]))  # b absent again: b keeps its weight
    before = dwa.multipliers()[1].item()
    close(dwa.multipliers()[1], before)
    close(dwa.multipliers()[0], 1.0)  # a: the one task with a ratio gets weight 1 x softmax


def test_gradnorm_updates_the_present_tasks_only():
    g = started(GradNorm(), weights=(1.0, 1.0, 1.0), lr=0.1)
    grads = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])  # c absent: zero gradient
    present = torch.tensor([True, True, False])
    g.combine(grads, torch.tensor([2.0, 1.0, 0.0]), present)
    # a and b as in the two-task case (targets the mean of their norms, 3): 0.9 and 1.1,
    # still summing to what they summed to (2); c untouched
    close(g.multipliers(), [0.9, 1.1, 1.0])
    assert math.isnan(float(g.initial_losses[2]))  # c's L(0): the first batch with c
    g.combine(torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]]), torch.tensor([2.0, 1.0, 4.0]))
    assert float(g.initial_losses[2]) == 4.0
    assert float(g.multipliers().sum()) == pytest.approx(3.0)


@pytest.mark.parametrize("balancer", [PCGrad(), MGDA(), CAGrad()], ids=repr)
def test_gradient_balancers_combine_the_present_tasks_only(balancer):
    started(balancer)
    grads = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # b absent: its gradient is zero
    direction = balancer.combine(grads, torch.tensor([0.5, 0.0]), ONLY_A)
    alone = started(type(balancer)()).combine(grads[:1], torch.tensor([0.5]))
    torch.testing.assert_close(direction, alone)  # as if b were not a task
    assert float(direction.norm()) > 0  # MGDA's min-norm point of {g_a, 0} would be 0
    weights = balancer.task_weights()
    assert weights[1] == 1.0 and math.isfinite(weights[0])  # b: its current weight, 1
    assert balancer.combine(torch.zeros(2, 2), torch.zeros(2), torch.tensor([False, False])) is None


def test_cagrad_alone_is_the_gradient_scaled_by_one_plus_c_over_one_plus_c_squared():
    cagrad = started(CAGrad())  # c 0.5
    direction = cagrad.combine(torch.tensor([[3.0, 4.0], [0.0, 0.0]]), torch.zeros(2), ONLY_A)
    close(direction, np.array([3.0, 4.0]) * 1.5 / 1.25, tol=1e-5)


def test_famo_weighs_and_moves_the_present_tasks_only():
    famo = started(FAMO())
    c = famo.batch_multipliers(torch.tensor([0.5, 0.0]), ONLY_A)
    close(c, [1.0, 0.0])  # was (about 0, 1): b's loss 0 looked like an infinite rate
    famo.observe(torch.tensor([0.5, 0.0]), torch.tensor([0.4, 0.0]), ONLY_A)
    # with a alone, z = 1 and J^T delta = 0: a's logit moves by the decay only (0 here)
    close(famo.logits, [0.0, 0.0])


def sparse_labels(table, share: float = 0.03, seed: int = 0):
    """``table`` with task b's label kept on ``share`` of the rows only."""
    rng = np.random.default_rng(seed)
    return table.assign(b=table["b"].where(rng.random(len(table)) < share))


@pytest.mark.parametrize("name", list_balancers())
def test_every_balancer_with_a_task_absent_from_most_batches(name):
    """b labelled on 3 % of the rows, batch 32: two thirds of the batches carry no b
    (GradNorm drove a's weight towards 0, CAGrad reported weights around 1e6)."""
    table = sparse_labels(make_table(1600))
    model = mtlrec.MMoE(FEATURES, TASKS, **SMALL["mmoe"])
    model.fit(table, epochs=2, batch_size=32, balancer=name, verbose=0)
    for record in model.history_:
        weights = record["task_weights"]
        # a, labelled in every batch, keeps a real weight; none runs off (MGDA's sit
        # on the simplex, so b's may be small)
        assert weights["a"] > 0.3 and all(0 < w < 10 for w in weights.values()), weights
        assert all(math.isfinite(v) for v in record["task_loss"].values())
    predictions = model.predict(table.head(50))
    assert all(np.isfinite(p).all() for p in predictions.values())


def test_the_epoch_loss_of_a_task_is_its_mean_over_its_labelled_rows():
    """b labelled on 10 % of the rows, batch 8: 43 % of the batches carry no b; b's
    epoch loss was the mean of the batch means with those batches as 0."""
    table = sparse_labels(make_table(800), share=0.1)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, len(table))
    model = mtlrec.SharedBottom(FEATURES, TASKS, **SMALL["shared_bottom"])
    # lr 1e-12: the network stays at its start, so the epoch's losses are its losses
    model.fit(table, epochs=1, batch_size=8, lr=1e-12, sample_weight=weights, verbose=0)
    p = model.predict(table)
    for task in ("a", "b"):
        rows = table[task].notna().to_numpy()
        y, q, w = table[task].to_numpy()[rows], p[task][rows], weights[rows]
        bce = -(y * np.log(q) + (1 - y) * np.log(1 - q))
        expected = (bce * w).sum() / w.sum()
        assert model.history_[0]["task_loss"][task] == pytest.approx(expected, rel=1e-4)
