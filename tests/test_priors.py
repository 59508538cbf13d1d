"""Every task starts at its labels' prior: the output biases a fit starts from, per head,
per funnel mode and per architecture; Poisson counts in units of their dispersion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mtlrec
from conftest import FEATURES, FUNNEL_TASKS, funnel_table, make_heads_table, make_table
from mtlrec import DataError, Task
from mtlrec.data import Batch
from mtlrec.datasets import adult_features, load_adult
from mtlrec.heads import HEADS
from mtlrec.models import ARCHITECTURES
from mtlrec.objective import Objective


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def prior(task: Task, targets, weights=None) -> torch.Tensor:
    head = HEADS.get(task.type)(task)
    y = torch.tensor(targets, dtype=torch.float32)
    w = torch.ones_like(y) if weights is None else torch.tensor(weights, dtype=torch.float32)
    if task.type == "multiclass":
        head.fit(np.array(["x", "y", "z"]))
    return head.prior(y, w)


def test_each_head_starts_at_the_loss_minimising_constant():
    assert float(prior(Task("a"), [1, 0, 0, 0, 0])) == pytest.approx(logit(0.2))
    # weights: rate (2 + 0) / (2 + 1 + 1) = 0.5
    assert float(prior(Task("a"), [1, 0, 0], [2, 1, 1])) == pytest.approx(0.0, abs=1e-6)
    # pos_weight 4 at rate 0.2: 4 x 0.2 / (4 x 0.2 + 0.8) = 0.5, where the gradient sums to 0
    assert float(prior(Task("a", pos_weight=4.0), [1, 0, 0, 0, 0])) == pytest.approx(0, abs=1e-6)
    # no positive at all: a finite logit, not minus infinity
    assert float(prior(Task("a"), [0, 0])) == pytest.approx(logit(1e-6), rel=1e-4)
    assert float(prior(Task("n", type="poisson"), [1, 2, 6])) == pytest.approx(math.log(3))
    assert float(prior(Task("n", type="poisson"), [0, 0])) == pytest.approx(math.log(1e-6))
    assert float(prior(Task("r", type="regression"), [1.0, 2.0, 6.0], [1, 1, 2])) == 3.75
    shares = prior(Task("c", type="multiclass"), [0, 0, 1, 2], [1, 1, 1, 2])  # 2/5, 1/5, 2/5
    logs = np.log([0.4, 0.2, 0.4])
    np.testing.assert_allclose(shares.numpy(), logs - logs.mean(), rtol=1e-6)
    assert torch.softmax(shares, 0).numpy() == pytest.approx([0.4, 0.2, 0.4])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("conditional", logit(2 / 3)),  # b among the labelled rows where a = 1
        ("entire_space", logit(2 / 3)),  # the tower is P(b | a) as well
        ("direct", logit(2 / 5)),  # the tower is the joint, over the rows where it is known
    ],
)
def test_a_funnel_step_starts_at_what_its_tower_predicts(mode, expected):
    tasks = [Task("a"), Task("b", after="a", funnel=mode)]
    objective = Objective(tasks, {t.name: HEADS.get(t.type)(t) for t in tasks})
    # a: 1 1 1 1 0 0 0 ; b: 1 1 0 NaN - - - (the last a=0 row has no a label either)
    labels = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 0], [0, 0], [0, 0], [0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0], [1, 1], [1, 0], [0, 0]]).bool()
    b = Batch(torch.zeros(7, 1, dtype=torch.long), torch.zeros(7, 1), labels, mask)
    a_prior, b_prior = objective.output_priors(b)
    assert float(a_prior) == pytest.approx(logit(4 / 6))
    assert float(b_prior) == pytest.approx(expected)


def output_biases(model) -> list[np.ndarray]:
    (towers,) = (m for m in model.network.modules() if isinstance(m, mtlrec.layers.Towers))
    return [towers.output_bias(t).detach().numpy().copy() for t in range(len(model.tasks))]


@pytest.mark.parametrize("architecture", ARCHITECTURES.names())
def test_every_architecture_starts_at_the_priors(architecture):
    frame = funnel_table(make_table(600))
    tasks = FUNNEL_TASKS if architecture == "esmm" else (Task("a"), Task("b"))
    model = mtlrec.create_model(architecture, FEATURES, tasks, seed=0)
    model.fit(frame, epochs=1, lr=1e-12, verbose=0)  # the biases move by about 1e-12
    a, b = frame["a"].mean(), frame["b"].mean()
    expected_b = logit(b / a) if architecture == "esmm" else logit(b)  # ESMM: P(b | a)
    biases = output_biases(model)
    assert biases[0] == pytest.approx([logit(a)], rel=1e-5)
    assert biases[1] == pytest.approx([expected_b], rel=1e-5)


def test_positional_esmm_starts_its_cvr_tower_at_ctcvr_over_ctr():
    frame = funnel_table(make_table(600))
    model = mtlrec.ESMM(FEATURES, [Task("a"), Task("b")], positional_roles=True, seed=0)
    model.fit(frame, epochs=1, lr=1e-12, verbose=0)
    a, b = frame["a"].mean(), frame["b"].mean()
    biases = output_biases(model)
    assert biases[0] == pytest.approx([logit(a)], rel=1e-5)
    assert biases[1] == pytest.approx([logit(b / a)], rel=1e-5)


def test_every_head_starts_at_its_prior_in_one_model():
    frame = make_heads_table(800)
    tasks = [
        Task("a"),
        Task("price", type="regression", standardize=False),
        Task("size", type="multiclass"),
        Task("visits", type="poisson"),
    ]
    model = mtlrec.MMoE(FEATURES, tasks, seed=0).fit(frame, epochs=1, lr=1e-12, verbose=0)
    a, price, size, visits = output_biases(model)
    assert a == pytest.approx([logit(frame["a"].mean())], rel=1e-5)
    assert price == pytest.approx([frame["price"].mean()], rel=1e-5)
    shares = frame["size"].value_counts(normalize=True)[model.classes("size")].to_numpy()
    assert torch.softmax(torch.tensor(size), 0).numpy() == pytest.approx(shares, rel=1e-5)
    scale = model.preprocessor.heads["visits"].scale
    assert visits == pytest.approx([math.log(frame["visits"].mean() / scale)], rel=1e-5)


def test_a_count_task_beside_a_binary_one_leaves_the_binary_task_learning():
    """Issue 17: weekly hours as counts (around 40) beside income, 3,000 Adult rows, MMoE,
    3 epochs: income's test AUC was 0.27-0.32 over seeds 0-2 (0.82-0.84 alone)."""
    train, test = load_adult()
    features = [f for f in adult_features() if f.name != "hours_per_week"]
    tasks = [Task("income"), Task("hours_per_week", type="poisson")]
    model = mtlrec.MMoE(features, tasks, seed=0).fit(train.iloc[:3000], epochs=3, verbose=0)
    assert model.evaluate(test)["income"]["auc"] > 0.8


def test_poisson_counts_train_in_units_of_their_dispersion():
    counts = np.array([0.0, 10.0, 20.0, 50.0])  # mean 20, variance 350: dispersion 17.5
    head = HEADS.get("poisson")(Task("n", type="poisson"))
    head.fit(counts)
    assert head.scale == pytest.approx(17.5)
    np.testing.assert_allclose(head.encode(counts), counts / 17.5)
    np.testing.assert_allclose(head.decode(head.encode(counts)), counts)
    assert float(head.activate(torch.tensor([0.0]))) == pytest.approx(17.5)
    restored = HEADS.get("poisson")(Task("n", type="poisson"))
    restored.load_state_dict(head.state_dict())
    assert restored.scale == head.scale
    restored.load_state_dict({})  # a bundle written before the scale: counts as they are
    assert restored.scale == 1.0
    raw = HEADS.get("poisson")(Task("n", type="poisson", standardize=False))
    raw.fit(counts)
    assert raw.scale == 1.0
    poisson_like = HEADS.get("poisson")(Task("n", type="poisson"))
    poisson_like.fit(np.array([1.0, 2.0, 3.0]))  # variance below the mean: units of 1
    assert poisson_like.scale == 1.0


def test_counts_of_any_magnitude_train_alike():
    """Counts x 2,500 (around 1e5) give the other task the same predictions and
    themselves 2,500 times the counts' (they barely trained before issue 17)."""
    frame = make_heads_table(1000)
    tasks = [Task("a"), Task("visits", type="poisson")]
    large = frame.assign(visits=frame["visits"] * 2500.0)
    runs = [
        mtlrec.SharedBottom(FEATURES, tasks, seed=0).fit(t, epochs=2, verbose=0).predict(t)
        for t in (frame, large)
    ]
    np.testing.assert_allclose(runs[0]["a"], runs[1]["a"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(runs[0]["visits"] * 2500, runs[1]["visits"], rtol=1e-4)


def test_a_funnel_step_no_row_can_teach_is_an_error():
    frame = funnel_table(make_table(300))
    no_clicks = frame.assign(a=0, b=0)
    model = mtlrec.MMoE(FEATURES, FUNNEL_TASKS, seed=0)
    with pytest.raises(DataError, match=r"task 'b' follows 'a'.*none of the 300 rows has 'a' = 1"):
        model.fit(no_clicks, epochs=1, verbose=0)
    unlabelled = frame.assign(b=np.where(frame["a"] == 1, np.nan, 0.0))
    clicked = int(frame["a"].sum())
    with pytest.raises(DataError, match=rf"the {clicked} rows where 'a' is 1 carry no label"):
        model.fit(unlabelled, epochs=1, verbose=0)
    # a chain names the steps before: c follows b follows a, no row reaches c
    chain = frame.assign(c=0.0)
    tasks = [Task("a"), Task("b", after="a"), Task("c", after="b")]
    chain = chain.assign(c=np.where(chain["b"] == 1, np.nan, 0.0))
    with pytest.raises(DataError, match=r"'b' and every step before it are 1 carry no label"):
        mtlrec.MMoE(FEATURES, tasks, seed=0).fit(chain, epochs=1, verbose=0)


def test_evaluation_of_a_funnel_without_positives_is_not_a_training_error():
    frame = funnel_table(make_table(300))
    model = mtlrec.MMoE(FEATURES, FUNNEL_TASKS, seed=0).fit(frame, epochs=1, verbose=0)
    # the evaluation rows hold no click: the step has no row to be judged on
    with pytest.warns(mtlrec.UndefinedMetricWarning) as caught:
        result = model.evaluate(frame.assign(a=0, b=0))
    assert "b" not in result and math.isnan(result["a"]["auc"])
    assert result["a"]["logloss"] > 0 and math.isnan(result["a_b"]["auc"])
    messages = [str(w.message) for w in caught]
    assert any("no row of the data carries a label of 'b'" in m for m in messages)
    assert any("auc of 'a_b' is undefined" in m for m in messages)


def test_a_head_without_a_prior_leaves_its_bias_at_zero():
    """A task type registered elsewhere need not give a prior: the bias stays at 0."""

    class Plain(HEADS.get("binary")):
        def prior(self, targets, weights):
            return super(HEADS.get("binary"), self).prior(targets, weights)  # Head's: None

    tasks = [Task("a"), Task("b")]
    heads = {"a": HEADS.get("binary")(tasks[0]), "b": Plain(tasks[1])}
    labels = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    b = Batch(torch.zeros(3, 1, dtype=torch.long), torch.zeros(3, 1), labels)
    a_prior, b_prior = Objective(tasks, heads).output_priors(b)
    assert float(a_prior) == pytest.approx(logit(1 / 3)) and b_prior is None
