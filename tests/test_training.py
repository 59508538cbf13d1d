"""fit / evaluate / predict on a learnable synthetic table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mtlrec
from conftest import FEATURES, FUNNEL_TASKS, TASKS, funnel_table, make_table
from mtlrec import ConfigError, EarlyStopping, MMoE, NotFittedError, Task
from mtlrec.data import ColumnBatch
from mtlrec.objective import Objective, l2_terms
from mtlrec.training import Accumulator


def small(arch: str = "mmoe", **kw):
    params = {
        "mmoe": dict(num_experts=3, expert_units=[16], gate_units=[], tower_units=[8]),
        "esmm": dict(tower_units=[16]),
    }.get(arch, {})
    tasks = FUNNEL_TASKS if arch == "esmm" else TASKS
    return mtlrec.create_model(arch, FEATURES, tasks, **{**params, **kw})


def test_training_lowers_the_loss_and_lifts_auc_well_above_chance(table):
    test = make_table(1000, seed=1)
    model = small()
    model.fit(table, epochs=8, batch_size=64, lr=3e-3, verbose=0)
    losses = [h["loss"] for h in model.history_]
    assert losses[-1] < 0.9 * losses[0]
    metrics = model.evaluate(test)
    assert metrics["a"]["auc"] > 0.75 and metrics["b"]["auc"] > 0.75
    assert set(metrics["a"]) == {"auc", "logloss"}


@pytest.mark.parametrize("arch", mtlrec.list_models())
def test_every_architecture_learns_every_task(arch, table):
    model = mtlrec.create_model(arch, FEATURES, FUNNEL_TASKS if arch == "esmm" else TASKS)
    train, test = table, make_table(1000, seed=2)
    if arch == "esmm":  # its second task is a conversion after the first
        train, test = funnel_table(train), funnel_table(test)
    model.fit(train, epochs=3, batch_size=128, lr=3e-3, verbose=0)
    metrics = model.evaluate(test)
    # both tasks well above chance (a and b alone reach about 0.8 on this table)
    assert metrics["a"]["auc"] > 0.72 and metrics["b"]["auc"] > 0.68, metrics


def test_same_seed_same_numbers_other_seed_other_numbers(table):
    runs = [small(seed=s).fit(table, epochs=2, batch_size=100, verbose=0) for s in (7, 7, 8)]
    p = [r.predict(table)["a"] for r in runs]
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.allclose(p[0], p[2])


def test_fit_leaves_the_global_random_state_alone(table):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    small().fit(table, epochs=1, verbose=0)
    torch.testing.assert_close(torch.rand(3), expected)


def test_loss_is_the_weighted_sum_of_task_log_losses(table):
    tasks = [Task("a", weight=2.0), Task("b", weight=0.5)]
    model = mtlrec.create_model("shared_bottom", FEATURES, tasks)
    model.fit(table.head(300), epochs=1, verbose=0)
    batch = model.preprocessor.transform(table.head(50))
    objective = Objective(model.tasks, model.preprocessor.heads)
    counts = objective.counts(batch)
    out = model.network.eval()(batch)
    sums = objective.sums(out.logits, batch, out.stacked).detach()
    loss, per_task = objective.combine(sums, objective.coefficients(counts)), sums / counts
    assert counts.tolist() == [50.0, 50.0]
    p = model.predict(table.head(50))
    y = table.head(50)[["a", "b"]].to_numpy(float)
    by_hand = [
        -np.mean(y[:, i] * np.log(p[k]) + (1 - y[:, i]) * np.log(1 - p[k]))
        for i, k in enumerate("ab")
    ]
    np.testing.assert_allclose(per_task.numpy(), by_hand, rtol=1e-4)
    assert loss.item() == pytest.approx(2.0 * by_hand[0] + 0.5 * by_hand[1], rel=1e-4)


def test_regression_task_reports_mae_and_rmse(table):
    data = table.assign(y=table["x"] * 2.0 + 1.0)
    tasks = [Task("a"), Task("y", type="regression")]
    model = mtlrec.create_model("shared_bottom", [f for f in FEATURES if f.name != "x"], tasks)
    model.fit(data, epochs=3, verbose=0)
    metrics = model.evaluate(data)
    assert set(metrics["y"]) == {"mae", "rmse"}
    pred = model.predict(data)["y"]
    mae = np.mean(np.abs(pred - data["y"].to_numpy()))
    assert metrics["y"]["mae"] == pytest.approx(mae, rel=1e-5)


def test_early_stopping_stops_and_keeps_the_best_epoch(table):
    val = make_table(500, seed=3)
    stopper = EarlyStopping("a", "auc", patience=1)
    model = small()
    model.fit(table, val, epochs=30, lr=0.05, early_stopping=stopper, verbose=0)
    aucs = [h["validation"]["a"]["auc"] for h in model.history_]
    assert len(aucs) < 30
    assert stopper.best == max(aucs)
    assert model.evaluate(val)["a"]["auc"] == pytest.approx(max(aucs))


def test_early_stopping_arguments_are_checked(table):
    with pytest.raises(ConfigError, match="validation"):
        small().fit(table, early_stopping="a/auc", verbose=0)
    with pytest.raises(ConfigError, match="unknown task 'z'"):
        small().fit(table, table, early_stopping="z/auc", verbose=0)
    with pytest.raises(ConfigError, match="reports"):
        small().fit(table, table, early_stopping="a/mae", verbose=0)


def test_progress_output_has_one_line_per_epoch(table, capsys):
    small().fit(table, make_table(300, seed=4), epochs=2, verbose=1)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch ")]
    epoch_lines = [ln for ln in lines if " - loss " in ln and "a auc" in ln]
    assert len(epoch_lines) == 2


def test_predict_before_fit_is_a_clear_error(table):
    with pytest.raises(NotFittedError, match="call fit"):
        small().predict(table)


def test_esmm_predicts_ctr_cvr_and_ctcvr_product(table):
    model = small("esmm").fit(funnel_table(table), epochs=1, verbose=0)
    assert model.tasks[1].funnel == "entire_space"  # ESMM's form, whatever was declared
    out = model.predict(table.head(20))
    assert set(out) == {"a", "b", "a_b"}
    np.testing.assert_allclose(out["a_b"], out["a"] * out["b"], rtol=1e-5)
    assert set(model.evaluate(funnel_table(table))) == {"a", "b", "a_b"}


def test_esmm_positional_roles_keep_the_0_1_outputs(table):
    model = mtlrec.ESMM(FEATURES, TASKS, tower_units=[16], positional_roles=True)
    model.fit(funnel_table(table), epochs=1, verbose=0)
    out = model.predict(table.head(20))
    assert set(out) == {"a", "b", "cvr"}
    np.testing.assert_allclose(out["b"], out["a"] * out["cvr"], rtol=1e-5)
    assert "cvr" in model.evaluate(funnel_table(table))


def test_gate_weights_from_raw_rows(table):
    model = small().fit(table, epochs=1, verbose=0)
    gates = model.gate_weights(table.head(10))
    assert set(gates) == {"a", "b"}
    np.testing.assert_allclose(gates["a"].sum(1), np.ones(10), rtol=1e-6)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"optimizer": "adamm"}, "optimizer"),
        ({"lr": 0}, "lr"),
    ],
)
def test_bad_fit_arguments(table, kw, message):
    with pytest.raises(ConfigError, match=message):
        small().fit(table, verbose=0, **kw)


def test_column_batch_slices_keep_rows_together():
    batch = ColumnBatch(
        torch.arange(10).view(5, 2), torch.arange(5.0).view(5, 1), torch.arange(5.0).view(5, 1)
    )
    part = batch.take(torch.tensor([4, 0]))
    assert part.sparse.tolist() == [[8, 9], [0, 1]] and part.labels.flatten().tolist() == [4, 0]


def test_named_classes_pick_their_architecture():
    assert MMoE(FEATURES, TASKS).architecture == "mmoe"
    assert mtlrec.PLE(FEATURES, TASKS, num_levels=3).config.num_levels == 3


def test_predict_is_the_same_for_any_chunking_and_for_a_transformed_batch(table):
    model = small().fit(table, epochs=1, verbose=0)
    expected = model.predict(table)
    batch = model.preprocessor.transform(table, with_labels=False)
    for got in (model.predict(table, batch_size=7), model.predict(batch)):
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-7)
    with pytest.raises(mtlrec.DataError, match="labels"):
        model.evaluate(batch)


def test_inference_chunk_keeps_the_widest_activation_near_cache_size():
    from mtlrec.estimator import inference_rows

    model = mtlrec.PLE(FEATURES, TASKS, expert_units=[64, 64])  # 20 experts x 64 units
    model.preprocessor.fit(make_table(50))
    network = model.build()
    assert inference_rows(network) == 512  # 3 MiB / (4 B x 1280) = 614 -> 512
    assert inference_rows(network, cache_bytes=6 << 20) == 1024  # 1228 -> 1024
    assert inference_rows(network, cache_bytes=1) == 256  # never below 256 rows


def test_sparse_embeddings_learn_and_update_only_rows_a_batch_used(table):
    from mtlrec.training import build_optimizers

    model = small()
    model.fit(table, epochs=4, batch_size=64, lr=3e-3, sparse_embeddings=True, verbose=0)
    assert model.network.embedding.sparse_grad
    assert model.evaluate(make_table(1000, seed=1))["a"]["auc"] > 0.75
    network = model.build()  # fresh weights; one step on rows that use only cat == 0
    opts = build_optimizers(network, "adam", 1e-2, sparse_embeddings=True)
    assert opts.sparse is not None and opts.flat is not None
    batch = model.preprocessor.transform(table[table["cat"] == 0])
    before = network.embedding.tables[0].weight.detach().clone()
    step = Accumulator(network, Objective(model.tasks, model.preprocessor.heads))
    assert step.path == "autograd" and "sparse embedding gradients" in step.reason
    opts.zero_grad()
    step(batch)
    opts.step()
    changed = (network.embedding.tables[0].weight != before).any(1).nonzero().flatten()
    used = (batch.sparse + network.embedding.offsets_0).unique()
    assert set(changed.tolist()) == set(used.tolist())


def test_large_tables_switch_to_sparse_updates_by_default(table, monkeypatch):
    import mtlrec.training as training

    model = small()
    model.preprocessor.fit(table)
    rows = sum(t.num_embeddings for t in model.build().embedding.tables)
    assert training.build_optimizers(model.build(), "adam", 1e-3).sparse is None
    monkeypatch.setattr(training, "SPARSE_ROWS", rows)  # tables now count as large
    assert training.build_optimizers(model.build(), "adam", 1e-3).sparse is not None


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_micro_batches_give_the_whole_batch_gradient(table, l2, fast):
    from mtlrec.training import build_optimizers

    model = small(l2_embedding=l2, l2_dense=l2)
    model.preprocessor.fit(table)
    batch = model.preprocessor.transform(table.head(300))
    objective = Objective(
        model.tasks, model.preprocessor.heads, l2_terms(model.config.l2_embedding, l2)
    )
    grads, results = [], []
    for micro in (None, 64):
        network = model.build()
        build_optimizers(network, "adam", 1e-3).zero_grad()  # gradients in the flat buffer
        step = Accumulator(network, objective, micro, fast=fast)
        assert step.path == ("fast" if fast else "autograd")
        results.append(step(batch)[:2])
        grads.append([p.grad.clone() for p in network.parameters()])
    for whole, chunked in zip(*grads, strict=True):
        torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-6)
    for whole, chunked in zip(*results, strict=True):
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fast", [False, True])
def test_losses_over_a_subset_of_rows_are_exact_across_micro_batches(table, fast):
    """A label mask and sample weights (room the Batch keeps for partial labels): each
    task's loss is the weighted mean over its labelled rows, whatever the micro-batches."""
    from mtlrec.training import build_optimizers

    model = small()
    model.preprocessor.fit(table)
    batch = model.preprocessor.transform(table.head(300))
    g = torch.Generator().manual_seed(0)
    batch.mask = torch.rand(300, 2, generator=g) < torch.tensor([0.9, 0.2])  # b: 20 % rows
    batch.mask[:150, 1] = False  # no b label in the first half at all
    batch.weights = torch.rand(300, generator=g) + 0.5
    objective = Objective(model.tasks, model.preprocessor.heads)
    counts = objective.counts(batch)
    w, m = batch.weights, batch.mask.float()
    torch.testing.assert_close(counts, (m * w.unsqueeze(1)).sum(0))
    grads, results = [], []
    for micro in (None, 64):  # the first parts hold no b label: b contributes 0, not NaN
        network = model.build()
        build_optimizers(network, "adam", 1e-3).zero_grad()
        step = Accumulator(network, objective, micro, fast=fast)
        results.append(step(batch)[:2])
        assert step.path == ("fast" if fast else "autograd")
        grads.append([p.grad.clone() for p in network.parameters()])
    for whole, parts in zip(*grads, strict=True):
        torch.testing.assert_close(parts, whole, rtol=1e-4, atol=1e-6)
    network = model.build().eval()
    logits = network(batch).logits
    y = batch.labels
    by_hand = []
    for t, name in enumerate(["a", "b"]):
        rows = batch.mask[:, t]
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[name][rows], y[rows, t], reduction="none"
        )
        by_hand.append((bce * w[rows]).sum() / w[rows].sum())
    loss, per_task = results[0]
    torch.testing.assert_close(per_task, torch.stack(by_hand).detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss, sum(by_hand).detach(), rtol=1e-5, atol=1e-6)


def test_a_task_with_no_labelled_row_contributes_nothing(table):
    model = small()
    model.preprocessor.fit(table)
    batch = model.preprocessor.transform(table.head(64))
    batch.mask = torch.ones(64, 2, dtype=torch.bool)
    batch.mask[:, 1] = False
    batch.labels[:, 1] = float("nan")  # whatever a missing label holds
    objective = Objective(model.tasks, model.preprocessor.heads)
    network = model.build()
    out = network(batch)
    sums = objective.sums(out.logits, batch, out.stacked)
    counts = objective.counts(batch)
    assert counts.tolist() == [64.0, 0.0] and sums[1].item() == 0.0
    loss = objective.combine(sums, objective.coefficients(counts))
    assert torch.isfinite(loss)
