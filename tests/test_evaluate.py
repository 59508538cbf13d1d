"""evaluate never fails whole: a metric the rows do not define is NaN with a warning
that names the output, the metric and why; everything else is still returned."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import mtlrec
from conftest import FEATURES, TASKS, make_heads_table, make_table
from mtlrec import Task, UndefinedMetricWarning

TABLE = make_table(600)


@pytest.fixture(scope="module")
def model():
    return mtlrec.SharedBottom(FEATURES, TASKS, seed=0).fit(TABLE, epochs=1, verbose=0)


def messages(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, UndefinedMetricWarning)]


def test_a_one_class_task_gets_a_nan_auc_and_the_others_their_metrics(model):
    clicked = TABLE.assign(a=1)  # every evaluated row clicked
    with pytest.warns(UndefinedMetricWarning) as caught:
        result = model.evaluate(clicked)
    assert math.isnan(result["a"]["auc"]) and result["a"]["logloss"] > 0
    assert result["b"] == model.evaluate(TABLE)["b"]  # b is judged as before
    (message,) = messages(caught)
    assert "auc of 'a'" in message and "all 600 labels are 1" in message
    assert "reported as NaN" in message


def test_gauc_without_a_group_holding_both_classes_is_nan_with_its_column_named(model):
    table = TABLE.assign(user=np.arange(len(TABLE)))  # one row per group: one class each
    with pytest.warns(UndefinedMetricWarning) as caught:
        result = model.evaluate(table, group="user")
    for task in ("a", "b"):
        assert math.isnan(result[task]["gauc"]) and 0.5 < result[task]["auc"] <= 1.0
        assert result[task]["gauc_groups"] == 0 and result[task]["gauc_skipped"] == 600
    text = " ".join(messages(caught))
    assert "gauc (groups: column 'user') of 'a'" in text and "of 'b'" in text
    assert "none of the 600 groups holds both" in text


def test_a_multiclass_task_of_one_class_keeps_its_accuracy():
    table = make_heads_table(500)
    tasks = [Task("a"), Task("size", type="multiclass")]
    fitted = mtlrec.SharedBottom(FEATURES, tasks, seed=0).fit(table, epochs=1, verbose=0)
    with pytest.warns(UndefinedMetricWarning, match="auc of 'size'"):
        result = fitted.evaluate(table.assign(size="small"))
    assert math.isnan(result["size"]["auc"]) and 0 <= result["size"]["accuracy"] <= 1
    assert result["size"]["logloss"] > 0 and not math.isnan(result["a"]["auc"])


def test_a_defined_evaluation_warns_nothing(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        model.evaluate(TABLE, group="color")


def test_early_stopping_on_a_nan_metric_says_so():
    valid = TABLE.iloc[:100].assign(a=0)  # a's validation AUC is undefined every epoch
    fitted = mtlrec.SharedBottom(FEATURES, TASKS, seed=0)
    with pytest.warns(UndefinedMetricWarning) as caught:
        fitted.fit(TABLE, validation=valid, epochs=5, early_stopping="a/auc", patience=2)
    assert len(fitted.history_) == 2  # two epochs without a defined value: stopped
    text = " ".join(str(w.message) for w in caught)
    assert "early stopping: a/auc is NaN after epoch 1" in text
    assert "a/auc was NaN in every epoch; the last epoch's weights are kept" in text
    assert math.isnan(fitted.history_[-1]["validation"]["a"]["auc"])
