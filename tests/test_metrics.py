"""Metrics against scikit-learn as the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mtlrec.exceptions import DataError, UndefinedMetricError
from mtlrec.metrics import (
    accuracy,
    log_loss,
    macro_auc,
    mae,
    multiclass_log_loss,
    poisson_deviance,
    rmse,
    roc_auc,
)


def test_auc_by_hand_with_ties() -> None:
    # pairs (pos, neg): (0.8 > 0.1) 1, (0.8 > 0.4) 1, (0.4 = 0.4) 0.5, (0.4 > 0.1) 1 -> 3.5 / 4
    assert roc_auc([1, 0, 1, 0], [0.8, 0.4, 0.4, 0.1]) == 0.875
    assert roc_auc([0, 1], [0.3, 0.3]) == 0.5
    assert roc_auc([True, False, False], [2.0, 1.0, 3.0]) == 0.5


def test_auc_matches_sklearn_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20_000)
    score = np.round(rng.random(20_000) + 0.3 * y, 2)  # ~130 distinct values: heavy ties
    assert roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    float32_score = score.astype(np.float32)
    assert roc_auc(y, float32_score) == pytest.approx(
        skm.roc_auc_score(y, float32_score), abs=1e-12
    )


def test_auc_needs_both_classes() -> None:
    with pytest.raises(DataError, match="only one class"):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="only 0 and 1"):
        roc_auc([0, 2], [0.1, 0.2])


def test_log_loss_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    p = rng.uniform(0.01, 0.99, 1000)
    assert log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    # by hand: -(log 0.8 + log 0.75) / 2
    assert log_loss([1, 0], [0.8, 0.25]) == pytest.approx(-(math.log(0.8) + math.log(0.75)) / 2)


def test_log_loss_clips_extremes() -> None:
    value = log_loss([1, 0], [0.0, 1.0])
    assert value == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert math.isfinite(log_loss([1], [0.0], eps=1e-15))


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    y, p = rng.normal(size=500), rng.normal(size=500)
    assert mae(y, p) == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert rmse(y, p) == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
    assert mae([1, 2, 3], [2, 2, 5]) == 1.0
    assert rmse([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))


def test_multiclass_metrics_by_hand() -> None:
    y = [0, 2, 1, 2]
    p = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]]
    assert accuracy(y, p) == 0.75  # row 2's most probable class is 0, not 1
    expected = -np.mean(np.log([0.7, 0.6, 0.4, 0.6]))
    assert multiclass_log_loss(y, p) == pytest.approx(expected)
    # one-vs-rest AUCs: class 0 (positive 0.7 vs 0.1, 0.5, 0.2) 1; class 1 (positive 0.4
    # vs 0.2, 0.3, 0.2) 1; class 2 (positives 0.6, 0.6 vs 0.1, 0.1) 1
    assert macro_auc(y, p) == 1.0
    # class 0 (positive 0.7 vs 0.1, 0.5, 0.2: 1) and class 1 (0.2 vs 0.3 0.2 0.4: 0.5 / 3)
    assert macro_auc(y, [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.2, 0.3], [0.2, 0.4, 0.4]]) == (
        pytest.approx((1.0 + 0.5 / 3 + 1.0) / 3)
    )
    # a class that fills the set or never occurs has no AUC: nothing left to average
    with pytest.raises(UndefinedMetricError, match="every one of the 2 labels is class 1"):
        macro_auc([1, 1], [[0.2, 0.8], [0.6, 0.4]])


def test_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(500, 4))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 4, 500)
    assert accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert multiclass_log_loss(y, p) == pytest.approx(skm.log_loss(y, p, labels=range(4)))
    assert macro_auc(y, p) == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
    )


def test_poisson_deviance_by_hand_and_sklearn() -> None:
    # y = 0: 2 (0 - (0 - 2)) = 4; y = 2, mu = 2: 0; y = 1, mu = e: 2 (log(1/e) - (1 - e))
    expected = (4.0 + 0.0 + 2 * (-1 - 1 + math.e)) / 3
    assert poisson_deviance([0, 2, 1], [2, 2, math.e]) == pytest.approx(expected)
    rng = np.random.default_rng(0)
    y, mu = rng.poisson(3.0, 200), rng.uniform(0.5, 6, 200)
    assert poisson_deviance(y, mu) == pytest.approx(skm.mean_poisson_deviance(y, mu))
    with pytest.raises(DataError, match=">= 0"):
        poisson_deviance([-1], [1.0])
    with pytest.raises(DataError, match="class indices"):
        accuracy([3], [[0.5, 0.5]])


def test_shape_errors() -> None:
    with pytest.raises(DataError, match="3 values but the prediction has 2"):
        mae([1, 2, 3], [1, 2])
    with pytest.raises(DataError, match="no values"):
        rmse([], [])
    with pytest.raises(DataError, match="NaN"):
        roc_auc([0, 1], [0.5, float("nan")])


@settings(max_examples=80, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 6)),  # few distinct scores: many ties
        min_size=2,
        max_size=60,
    ).filter(lambda rows: len({label for label, _ in rows}) == 2)
)
def test_auc_property_matches_sklearn_and_is_symmetric(pairs: list[tuple[int, int]]) -> None:
    y = np.array([label for label, _ in pairs])
    s = np.array([score for _, score in pairs], dtype=float) / 7
    auc = roc_auc(y, s)
    assert auc == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert 0.0 <= auc <= 1.0
    assert roc_auc(1 - y, s) == pytest.approx(1.0 - auc, abs=1e-12)
    assert roc_auc(y, 3 * s + 1) == pytest.approx(auc, abs=1e-12)  # rank-invariant
