"""Code written for Keras-style multi-task libraries (DeepCTR's workflow: compile, fit
with one label array per task and validation data, predict) runs on mtlrec with only
its imports and constructor changed; evaluate takes labels apart; a second fit starts
over unless warm_start."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, roc_auc_score

import mtlrec
from conftest import FEATURES, make_heads_table, make_table
from mtlrec import ConfigError, Task

TRAIN, TEST = make_heads_table(1500), make_heads_table(600, seed=3)


def test_the_reference_workflow_runs_as_written():
    train, test = TRAIN, TEST
    feature_names = ["cat", "color", "x", "noise"]
    # the two lines that differ from the Keras original: the import and the constructor
    from mtlrec import MMoE

    model = MMoE(FEATURES, [Task("a"), Task("price", type="regression")], seed=0)
    # --- as written for Keras from here on
    train_model_input = {name: train[name] for name in feature_names}
    test_model_input = {name: test[name] for name in feature_names}
    model.compile(
        "adam", loss=["binary_crossentropy", "mean_squared_error"], metrics=["AUC", "mae"]
    )
    history = model.fit(
        train_model_input,
        [train["a"].values, train["price"].values],
        batch_size=256,
        epochs=5,
        verbose=2,
        validation_data=(test_model_input, [test["a"].values, test["price"].values]),
    )
    pred_ans = model.predict(test_model_input, batch_size=256)
    print("test a AUC", round(roc_auc_score(test["a"], pred_ans[0]), 4))
    print("test price MAE", round(mean_absolute_error(test["price"], pred_ans[1]), 4))
    # --- what it did
    assert history is model and len(model.history_) == 5
    assert roc_auc_score(test["a"], pred_ans[0]) > 0.65  # learned something in 30 steps
    np.testing.assert_array_equal(pred_ans[1], pred_ans["price"])
    # the metrics chosen are the ones reported: AUC for the binary task, MAE for the other
    assert model.history_[-1]["validation"] == model.evaluate(test)
    assert {k: set(v) for k, v in model.evaluate(test).items()} == {"a": {"auc"}, "price": {"mae"}}


def test_the_validation_split_holds_out_the_last_rows():
    model = mtlrec.SharedBottom(FEATURES, [Task("a")], seed=0)
    model.fit(TRAIN, epochs=1, validation_split=0.2, verbose=0)
    held_out = model.evaluate(TRAIN.iloc[1200:])
    assert model.history_[0]["validation"] == held_out
    with pytest.raises(ConfigError, match="validation_split must be a share"):
        model.fit(TRAIN, epochs=1, validation_split=1.5, verbose=0)


def test_compile_checks_each_loss_against_its_task():
    model = mtlrec.MMoE(FEATURES, [Task("a"), Task("price", type="regression")])
    with pytest.raises(ConfigError) as error:
        model.compile("adam", loss=["mean_squared_error", "mean_squared_error"])
    message = str(error.value)
    assert "loss 'mean_squared_error' for task 'a', which is a 'binary' task" in message
    assert "declare Task('a', type='regression')" in message
    with pytest.raises(ConfigError, match="mtlrec knows the losses"):
        model.compile("adam", loss="hinge")
    with pytest.raises(ConfigError, match="3 loss entries for 2 tasks"):
        model.compile("adam", loss=["binary_crossentropy"] * 3)
    with pytest.raises(ConfigError, match="unknown metric 'f1'"):
        model.compile("adam", metrics=["f1"])
    with pytest.raises(ConfigError, match="metric 'mse' applies to none of the tasks"):
        mtlrec.MMoE(FEATURES, [Task("a")]).compile("adam", metrics=["mse"])
    with pytest.raises(ConfigError, match="optimizer 'rmsprop' is not one of"):
        model.compile("rmsprop")
    with pytest.raises(ConfigError, match=r"Task\(name, weight=...\)"):
        model.compile("adam", loss_weights=[1.0, 0.5])
    model.compile("sgd", loss={"a": "binary_crossentropy"}, metrics={"price": ["mse"]})
    model.fit(TRAIN, epochs=1, verbose=0)
    assert type(model._optimizers.dense).__name__ == "SGD"  # the compiled optimizer
    result = model.evaluate(TEST)
    assert set(result["price"]) == {"mse"} and set(result["a"]) == {"auc", "logloss"}


def test_early_stopping_reads_its_metric_whatever_compile_chose():
    model = mtlrec.SharedBottom(FEATURES, [Task("a"), Task("b")], seed=0)
    model.compile("adam", metrics=["accuracy"])
    table = make_table(800)
    model.fit(table, validation=table.tail(200), epochs=2, early_stopping="a/auc", verbose=0)
    assert set(model.history_[0]["validation"]["a"]) == {"accuracy", "auc"}
    assert set(model.evaluate(table)["a"]) == {"accuracy"}
    accuracy = ((model.predict(table)["a"] > 0.5) == (table["a"] == 1)).mean()
    assert model.evaluate(table)["a"]["accuracy"] == pytest.approx(accuracy)


def test_evaluate_takes_the_labels_apart_as_fit_does():
    tasks = [Task("a"), Task("price", type="regression")]
    model = mtlrec.SharedBottom(FEATURES, tasks, seed=0).fit(TRAIN, epochs=1, verbose=0)
    features = TEST.drop(columns=["a", "b", "price", "size", "visits"])
    apart = model.evaluate(features, [TEST["a"].values, TEST["price"].values])
    assert apart == model.evaluate(TEST)
    assert model.evaluate(TEST, 64) == model.evaluate(TEST, batch_size=64)  # 0.1's form


def test_a_second_fit_starts_over_and_warm_start_continues(capsys):
    table = make_table(800)
    model = mtlrec.SharedBottom(FEATURES, [Task("a"), Task("b")], seed=0)
    first = model.fit(table, epochs=2, verbose=0).predict(table)
    again = model.fit(table, epochs=2, verbose=1).predict(table)  # the same from scratch
    for name, values in first.items():
        np.testing.assert_array_equal(values, again[name])
    assert "fitting again starts over" in capsys.readouterr().err
    assert [r["epoch"] for r in model.history_] == [1, 2]
    model.fit(table, epochs=2, warm_start=True, verbose=0)
    assert [r["epoch"] for r in model.history_] == [1, 2, 3, 4]
    assert model.history_[2]["loss"] < model.history_[1]["loss"]  # went on from there
    continued = model.predict(table)
    assert not np.array_equal(continued["a"], first["a"])
    # a warm start keeps the fitted preprocessor: a new category is unknown, not refitted
    vocabulary = model.preprocessor.vocabulary("color").values.tolist()
    model.fit(table.assign(color="purple"), epochs=1, warm_start=True, verbose=0)
    assert model.preprocessor.vocabulary("color").values.tolist() == vocabulary


def test_warm_start_on_an_unfitted_model_fits_it():
    table = make_table(400)
    warm = mtlrec.SharedBottom(FEATURES, [Task("a")], seed=0)
    warm.fit(table, epochs=1, warm_start=True, verbose=0)
    cold = mtlrec.SharedBottom(FEATURES, [Task("a")], seed=0).fit(table, epochs=1, verbose=0)
    np.testing.assert_array_equal(warm.predict(table)["a"], cold.predict(table)["a"])
