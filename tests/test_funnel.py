"""Partial labels, sample weights, pos_weight and funnel steps: hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mtlrec
from conftest import FEATURES, TASKS, funnel_table, make_table
from mtlrec import ConfigError, DataError, Task
from mtlrec.data import Batch
from mtlrec.heads import HEADS
from mtlrec.metrics import gauc, roc_auc
from mtlrec.objective import Objective
from mtlrec.objective.funnel import evaluation_targets, steps_of, training_labels


def batch(labels, mask=None, weights=None) -> Batch:
    labels = torch.tensor(labels, dtype=torch.float32)
    n = len(labels)
    return Batch(
        torch.zeros(n, 1, dtype=torch.long),
        torch.zeros(n, 1),
        labels,
        None if mask is None else torch.tensor(mask),
        None if weights is None else torch.tensor(weights, dtype=torch.float32),
    )


def objective(tasks) -> Objective:
    return Objective(tasks, {t.name: HEADS.get(t.type)(t) for t in tasks})


def loss_of(obj: Objective, logits: dict, b: Batch) -> torch.Tensor:
    return obj.combine(obj.sums(logits, b), obj.normalisers(b).coefficients)


def close(tensor: torch.Tensor, expected: float) -> None:
    assert float(tensor) == pytest.approx(expected, rel=1e-5)


def bce(z: float, y: float, pos_weight: float = 1.0) -> float:
    p = 1 / (1 + math.exp(-z))
    return -(pos_weight * y * math.log(p) + (1 - y) * math.log(1 - p))


Z_A = [0.5, -1.0, 2.0, 0.0]
Z_B = [1.0, 0.3, -0.7, 1.5]


def test_a_task_loss_uses_its_labelled_rows_only():
    tasks = [Task("a"), Task("b")]
    b = batch([[1, 0], [0, 1], [1, 0], [0, 1]], mask=[[1, 1], [1, 0], [0, 1], [1, 0]])
    b.mask = b.mask.bool()
    logits = {"a": torch.tensor(Z_A), "b": torch.tensor(Z_B)}
    a = np.mean([bce(Z_A[i], y) for i, y in [(0, 1), (1, 0), (3, 0)]])
    bb = np.mean([bce(Z_B[i], y) for i, y in [(0, 0), (2, 0)]])
    close(loss_of(objective(tasks), logits, b), a + bb)


def test_a_task_without_labelled_rows_contributes_nothing_not_nan():
    tasks = [Task("a"), Task("b")]
    b = batch([[1, 0], [0, 0]], mask=[[True, False], [True, False]])
    logits = {"a": torch.tensor(Z_A[:2]), "b": torch.tensor(Z_B[:2])}
    expected = np.mean([bce(Z_A[0], 1), bce(Z_A[1], 0)])
    close(loss_of(objective(tasks), logits, b), expected)


def test_sample_weights_are_a_weighted_mean_and_equal_repeated_rows():
    tasks = [Task("a")]
    weighted = batch([[1], [0], [1]], weights=[2.0, 1.0, 0.5])
    z = torch.tensor(Z_A[:3])
    expected = (2 * bce(Z_A[0], 1) + bce(Z_A[1], 0) + 0.5 * bce(Z_A[2], 1)) / 3.5
    close(loss_of(objective(tasks), {"a": z}, weighted), expected)
    # weight 2 on a row trains like the row twice (weights 1)
    twice = batch([[1], [1], [0]])
    zw = z[:2].clone().requires_grad_()
    loss_of(objective(tasks), {"a": zw}, batch([[1], [0]], weights=[2.0, 1.0])).backward()
    zt = torch.stack([zw[0], zw[0], zw[1]]).detach().requires_grad_()
    loss_of(objective(tasks), {"a": zt}, twice).backward()
    torch.testing.assert_close(zw.grad, torch.stack([zt.grad[0] + zt.grad[1], zt.grad[2]]))


def test_pos_weight_weighs_the_positive_rows_loss():
    head = HEADS.get("binary")(Task("a", pos_weight=4.0))
    z, y = torch.tensor(Z_A), torch.tensor([1.0, 0.0, 1.0, 0.0])
    expected = [bce(v, t, 4.0) for v, t in zip(Z_A, y.tolist(), strict=True)]
    torch.testing.assert_close(head.loss(z, y), torch.tensor(expected))
    zg = z.clone().requires_grad_()
    head.loss(zg, y).sum().backward()
    torch.testing.assert_close(head.gradient(z, y), zg.grad)
    with pytest.raises(ConfigError, match="pos_weight must be a positive number"):
        Task("a", pos_weight=0)
    with pytest.raises(ConfigError, match=r"pos_weight=2\.0 does not apply to a 'regression'"):
        Task("a", type="regression", pos_weight=2.0)


# ---------------------------------------------------------------------------- funnels
CLICK = [1, 1, 0, 0, 1]
CONV = [1, 0, 0, 0, 0]  # row 4: clicked, conversion label missing
CONV_MASK = [True, True, False, True, False]


def funnel_batch(conversion=CONV, conversion_mask=CONV_MASK) -> Batch:
    labels = [[c, v] for c, v in zip(CLICK, conversion, strict=True)]
    mask = [[True, m] for m in conversion_mask]
    return batch(labels, mask=mask)


@pytest.mark.parametrize(
    ("mode", "labels", "mask"),
    [
        ("conditional", CONV, [True, True, False, False, False]),  # clicked rows only
        ("entire_space", [1, 0, 0, 0, 0], [True, True, True, True, False]),
        ("direct", [1, 0, 0, 0, 0], [True, True, True, True, False]),
    ],
)
def test_training_labels_of_each_funnel_mode(mode, labels, mask):
    tasks = [Task("click"), Task("conv", after="click", funnel=mode)]
    out = training_labels(funnel_batch(), steps_of(tasks))
    assert out.labels[:, 1].tolist() == labels
    assert out.mask[:, 1].tolist() == mask
    assert out.labels[:, 0].tolist() == CLICK and out.mask[:, 0].all()


def test_a_conversion_without_a_click_is_an_error_naming_the_rows():
    tasks = [Task("click"), Task("conv", after="click")]
    bad = funnel_batch(conversion=[1, 0, 1, 0, 0], conversion_mask=[True] * 5)
    with pytest.raises(
        DataError, match=r"1 rows have 'conv' = 1 but 'click' = 0 \(first rows \[2\]"
    ):
        training_labels(bad, steps_of(tasks))


def test_evaluation_rows_of_a_funnel_step():
    steps = steps_of([Task("click"), Task("conv", after="click", funnel="entire_space")])
    b = funnel_batch()
    judged = evaluation_targets(b.labels, b.mask, steps, "the data")
    rows, _ = judged["conv"]
    assert rows.tolist() == [True, True, False, False, False]  # clicked, labelled
    rows, joint = judged["click_conv"]
    assert rows.tolist() == [True, True, True, True, False]
    assert joint[rows].tolist() == [1, 0, 0, 0]


def test_entire_space_loss_is_the_products_log_loss():
    tasks = [Task("click"), Task("conv", after="click", funnel="entire_space")]
    obj = objective(tasks)
    b = obj.training_labels(funnel_batch())
    c, v = torch.tensor([*Z_A, 0.2]), torch.tensor([*Z_B, 0.1])
    joint = torch.logit(torch.sigmoid(c) * torch.sigmoid(v))
    logits = {"click": c, "conv": v, "click_conv": joint}
    click = np.mean([bce(float(z), y) for z, y in zip(c, CLICK, strict=True)])
    ctcvr = np.mean([bce(float(joint[i]), y) for i, y in [(0, 1), (1, 0), (2, 0), (3, 0)]])
    close(loss_of(obj, logits, b), click + ctcvr)


def test_direct_penalty_value_and_gradient_by_hand():
    tasks = [Task("click"), Task("conv", after="click", funnel="direct", penalty=2.0)]
    obj = objective(tasks)
    (term,) = obj.output_terms
    j, c = torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.0])  # joint above click in row 1
    b = batch([[1, 1], [0, 0]])
    excess = 1 / (1 + math.exp(-1.0)) - 0.5
    torch.testing.assert_close(
        term.value({"click_conv": j, "click": c}, b), torch.tensor(2 * excess)
    )
    grads, value = term.gradients({"click_conv": j, "click": c}, b, 0.5)
    s1 = 1 / (1 + math.exp(-1.0))
    torch.testing.assert_close(grads["click_conv"], torch.tensor([0.0, 0.5 * 2 * s1 * (1 - s1)]))
    torch.testing.assert_close(grads["click"], torch.tensor([0.0, -0.5 * 2 * 0.25]))
    torch.testing.assert_close(value, torch.tensor(2 * excess))


def test_inverse_propensity_term_by_hand():
    tasks = [Task("click"), Task("conv", after="click", ipw=0.5)]
    obj = objective(tasks)
    (term,) = obj.output_terms
    b = obj.training_labels(funnel_batch())
    c = torch.tensor([0.0, -4.0, 1.0, 1.0, 2.0])  # row 1: propensity 0.018, clipped at 0.05
    v = torch.tensor([0.3, -0.2, 0.0, 0.0, 0.0])
    expected = 0.5 * (bce(0.3, 1) / 0.5 + bce(-0.2, 0) / 0.05)  # clicked labelled rows 0, 1
    value = term.value({"click": c, "conv": v}, b)
    torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float32))
    grads, _ = term.gradients({"click": c, "conv": v}, b, 1.0)
    p = torch.sigmoid(v)
    hand = torch.tensor([0.5 * (p[0] - 1) / 0.5, 0.5 * p[1] / 0.05, 0, 0, 0])
    torch.testing.assert_close(grads["conv"], hand)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"after": "nope"}, "after='nope' is not a task"),
        ({"after": "b", "funnel": "direct", "ipw": 1.0}, "ipw weights the post-click loss"),
        ({"after": "b", "penalty": 1.0}, "penalty applies to funnel='direct'"),
        ({"after": "b", "funnel": "sideways"}, "funnel must be one of"),
        ({"penalty": 1.0}, "apply to a funnel step; add after="),
        ({"after": "b", "joint": "b"}, "joint output 'b' clashes"),
    ],
)
def test_funnel_declaration_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        mtlrec.MMoE(FEATURES, [Task("b"), Task("a", **kwargs)])


def test_funnel_cycles_and_non_binary_parents_are_refused():
    with pytest.raises(ConfigError, match="form a cycle"):
        mtlrec.MMoE(FEATURES, [Task("a", after="c"), Task("b", after="a"), Task("c", after="b")])
    with pytest.raises(ConfigError, match="must be binary"):
        mtlrec.MMoE(FEATURES, [Task("r", type="regression"), Task("b", after="r")])


def test_esmm_roles_are_named_not_positional():
    with pytest.raises(ConfigError, match="ESMM needs its roles named"):
        mtlrec.ESMM(FEATURES, TASKS)
    with pytest.raises(ConfigError, match="not funnel='direct'"):
        mtlrec.ESMM(FEATURES, [Task("a"), Task("b", after="a", funnel="direct")])
    # swapped order of declaration: the roles still come from after=
    model = mtlrec.ESMM(FEATURES, [Task("b", after="a"), Task("a")], tower_units=[8])
    table = funnel_table(make_table(400))
    model.fit(table, epochs=1, verbose=0)
    out = model.predict(table.head(10))
    np.testing.assert_allclose(out["a_b"], out["a"] * out["b"], rtol=1e-5)
    with pytest.raises(DataError, match="'a' = 1 but 'b' = 0"):  # click and conversion swapped
        mtlrec.ESMM(FEATURES, [Task("a", after="b"), Task("b")]).fit(table, verbose=0)


@pytest.mark.parametrize("mode", ["conditional", "entire_space", "direct"])
def test_funnel_predictions_and_metrics_on_the_right_rows(mode):
    table = make_table(1500, seed=3)
    table["b"] = table["b"].where(table["a"] == 1)  # no conversion label without a click
    tasks = [Task("a"), Task("b", after="a", funnel=mode, penalty=1.0 if mode == "direct" else 0)]
    model = mtlrec.MMoE(FEATURES, tasks, num_experts=2).fit(table, epochs=2, verbose=0)
    out = model.predict(table)
    assert set(out) == {"a", "b", "a_b"}
    if mode != "direct":
        np.testing.assert_allclose(out["a_b"], out["a"] * out["b"], rtol=1e-4)
    else:  # the conditional is the joint's ratio to the click, capped below 1
        np.testing.assert_allclose(out["b"], np.minimum(out["a_b"] / out["a"], 1 - 1e-6), rtol=1e-3)
    metrics = model.evaluate(table)
    clicked = table["a"].to_numpy() == 1
    assert metrics["b"]["auc"] == pytest.approx(roc_auc(table["b"][clicked], out["b"][clicked]))
    joint = (table["a"] * table["b"].fillna(0)).to_numpy()
    assert metrics["a_b"]["auc"] == pytest.approx(roc_auc(joint, out["a_b"]))


def test_partial_labels_train_and_are_judged_on_labelled_rows():
    table = make_table(1200, seed=4).astype({"b": float})
    table.loc[table.index % 3 == 0, "b"] = np.nan
    model = mtlrec.SharedBottom(FEATURES, TASKS).fit(table, epochs=2, verbose=0)
    assert all(math.isfinite(h["loss"]) for h in model.history_)
    out, metrics = model.predict(table), model.evaluate(table)
    labelled = table["b"].notna().to_numpy()
    assert metrics["b"]["auc"] == pytest.approx(roc_auc(table["b"][labelled], out["b"][labelled]))
    assert metrics["a"]["auc"] == pytest.approx(roc_auc(table["a"], out["a"]))


def test_fit_and_evaluate_with_sample_weights_and_groups():
    table = make_table(800, seed=5)
    table["w"] = np.where(table["x"] > 0, 3.0, 1.0)
    table["user"] = table["cat"] % 7
    model = mtlrec.SharedBottom(FEATURES, TASKS).fit(table, sample_weight="w", epochs=1, verbose=0)
    out = model.predict(table)
    metrics = model.evaluate(table, sample_weight="w", group="user")
    assert metrics["a"]["auc"] == pytest.approx(roc_auc(table["a"], out["a"], table["w"]))
    expected = gauc(table["a"], out["a"], table["user"].to_numpy(), sample_weight=table["w"])
    assert metrics["a"]["gauc"] == pytest.approx(expected.value)
    assert metrics["a"]["gauc_groups"] == expected.groups_used == 7
    # the same weight on every row trains as no weights (a weighted mean)
    runs = []
    for weights in (None, np.full(len(table), 2.5)):
        model = mtlrec.SharedBottom(FEATURES, TASKS, seed=1)
        model.fit(table, sample_weight=weights, epochs=2, batch_size=100, verbose=0)
        runs.append(model.predict(table)["b"])
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("nope", "has no column 'nope'"),
        (np.ones(3), "has 3 values for 800 rows"),
        (-np.ones(800), "800 missing, infinite or negative"),
        (np.zeros(800), "every weight"),
    ],
)
def test_sample_weight_errors(weights, message):
    with pytest.raises(DataError, match=message):
        mtlrec.SharedBottom(FEATURES, TASKS).fit(make_table(800), sample_weight=weights, verbose=0)


def test_group_column_must_exist():
    table = make_table(300)
    model = mtlrec.SharedBottom(FEATURES, TASKS).fit(table, epochs=1, verbose=0)
    with pytest.raises(DataError, match="group column 'user' is not in the data"):
        model.evaluate(table, group="user")


def test_fast_step_loss_matches_autograd_for_weighted_masked_rows():
    table = make_table(600, seed=6).astype({"b": float})
    table.loc[::4, "b"] = np.nan
    table["w"] = np.linspace(0.1, 2.0, len(table))
    losses = {}
    for fast in (True, False):
        model = mtlrec.MMoE(FEATURES, [Task("a", pos_weight=2.0), Task("b")], num_experts=2, seed=3)
        model.fit(table, sample_weight="w", epochs=2, batch_size=128, fast=fast, verbose=0)
        assert model.history_[0]["step"] == ("fast" if fast else "autograd")
        losses[fast] = [h["loss"] for h in model.history_]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)


def test_joint_bce_helper_matches_torch():
    # the hand-computed helper used above is the log loss torch computes
    assert bce(0.3, 1) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(torch.tensor(0.3), torch.tensor(1.0)))
    )


def test_a_bad_funnel_label_in_the_validation_table_is_named():
    table = funnel_table(make_table(400))
    valid = make_table(200, seed=8)  # b = 1 where a = 0 in some rows
    model = mtlrec.MMoE(FEATURES, [Task("a"), Task("b", after="a")], num_experts=2)
    with pytest.raises(DataError, match=r"the validation table: .* rows have 'b' = 1 but 'a' = 0"):
        model.fit(table, validation=valid, epochs=1, verbose=0)


def test_early_stopping_on_a_task_without_validation_labels_is_a_clear_error():
    table = make_table(400).astype({"b": float})
    valid = make_table(200, seed=9).assign(b=np.nan)
    model = mtlrec.SharedBottom(FEATURES, TASKS)
    with pytest.raises(
        DataError, match="no row of the validation table carries a label of task 'b'"
    ):
        model.fit(table, validation=valid, early_stopping="b", epochs=2, verbose=0)


# ------------------------------------------------------------------------ chains
CHAIN = [Task("click"), Task("cart", after="click"), Task("buy", after="cart")]
#        click cart buy: row 0 all; 1 click+cart; 2 click only; 3 nothing; 4 cart unknown
CHAIN_LABELS = [[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0]]
CHAIN_MASK = [
    [True] * 3,
    [True] * 3,
    [True, True, False],
    [True, False, False],
    [True, False, True],
]


@pytest.mark.parametrize(
    ("mode", "labels", "mask"),
    [
        ("conditional", [1, 0, 0, 0, 0], [True, True, False, False, False]),  # carted rows
        ("entire_space", [1, 0, 0, 0, 0], [True, True, True, True, False]),  # row 4 unknown
    ],
)
def test_a_three_step_chain_reads_the_joint_of_the_steps_before(mode, labels, mask):
    tasks = [Task("click"), Task("cart", after="click"), Task("buy", after="cart", funnel=mode)]
    steps = steps_of(tasks)
    assert [s.name for s in steps] == ["cart", "buy"]
    assert steps[1].parent_output == "click_cart"  # buy is reached through click and cart
    out = training_labels(batch(CHAIN_LABELS, mask=CHAIN_MASK), steps)
    assert out.labels[:, 2].tolist() == labels
    assert out.mask[:, 2].tolist() == mask
    judged = evaluation_targets(
        torch.tensor(CHAIN_LABELS, dtype=torch.float32), torch.tensor(CHAIN_MASK), steps, "t"
    )
    rows, joint = judged["cart_buy"]
    assert rows.tolist() == [True, True, True, True, False]
    assert joint.tolist()[:4] == [1, 0, 0, 0]
    assert judged["buy"][0].tolist() == [True, True, False, False, False]


def test_a_chain_label_without_the_steps_before_is_an_error():
    labels = [[0, 0, 1], [1, 1, 1]]  # row 0 bought without a click (cart unknown)
    mask = [[True, False, True], [True, True, True]]
    with pytest.raises(
        DataError, match=r"'buy' = 1 but 'cart' or a step before it is 0 \(first rows \[0\]"
    ):
        training_labels(batch(labels, mask=mask), steps_of(CHAIN))


def test_a_chain_trains_on_every_architecture_and_predicts_products():
    table = make_table(900, seed=11)
    table["cart"] = (table["a"] * (table["x"] > -0.5)).where(table["a"] == 1)
    table["buy"] = (table["cart"] * table["b"]).where(table["cart"] == 1)
    tasks = [Task("a"), Task("cart", after="a", funnel="entire_space"), Task("buy", after="cart")]
    model = mtlrec.PLE(FEATURES, tasks, num_specific_experts=1, num_shared_experts=1)
    model.fit(table, epochs=1, verbose=0)
    out = model.predict(table.head(30))
    assert set(out) == {"a", "cart", "buy", "a_cart", "cart_buy"}
    np.testing.assert_allclose(out["a_cart"], out["a"] * out["cart"], rtol=1e-4)
    np.testing.assert_allclose(out["cart_buy"], out["a_cart"] * out["buy"], rtol=1e-4)
    assert set(model.evaluate(table)) == set(out)
