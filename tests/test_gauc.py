"""Group AUC and the sample-weighted AUC and log loss: by hand and against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn import metrics as skm

from mtlrec.exceptions import DataError
from mtlrec.metrics import GroupAUC, gauc, log_loss, roc_auc

# u1: pos 0.9 beats neg 0.3 and ties neg 0.9 -> 1.5 / 2 = 0.75 (3 rows)
# u2: pos 0.2 loses to 0.5 and 0.6, pos 0.8 beats both -> 2 / 4 = 0.5 (4 rows)
# u3: positives only -> no AUC, skipped
Y = [1, 0, 0, 1, 1, 0, 0, 1, 1]
SCORE = [0.9, 0.3, 0.9, 0.2, 0.8, 0.5, 0.6, 0.4, 0.7]
GROUP = ["u1", "u1", "u1", "u2", "u2", "u2", "u2", "u3", "u3"]


def brute_auc(y, s, w) -> float:
    """Weighted share of (positive, negative) pairs ranked correctly, ties one half."""
    num = den = 0.0
    for i, j in itertools.product(range(len(y)), repeat=2):
        if y[i] == 1 and y[j] == 0:
            pair = w[i] * w[j]
            num += pair * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
            den += pair
    return num / den


def test_gauc_by_hand_skips_and_counts_single_class_groups() -> None:
    result = gauc(Y, SCORE, GROUP)
    assert result == GroupAUC(
        value=pytest.approx((3 * 0.75 + 4 * 0.5) / 7),
        groups_used=2,
        groups_skipped=1,
        rows_used=7,
    )
    assert float(result) == result.value
    # the order of the rows does not matter
    order = np.random.default_rng(0).permutation(len(Y))
    shuffled = gauc(np.take(Y, order), np.take(SCORE, order), np.take(GROUP, order))
    assert shuffled.value == pytest.approx(result.value)


def test_gauc_with_weights_by_hand() -> None:
    # u1 weighted: pos (w 1) beats neg 0.3 (w 3), ties neg 0.9 (w 1) -> 3.5 / 4 = 0.875,
    # impression weight 5; u2 unchanged (0.5), weight 4; u3 skipped whatever its weight
    weights = [1, 3, 1, 1, 1, 1, 1, 5, 5]
    result = gauc(Y, SCORE, GROUP, sample_weight=weights)
    assert result.value == pytest.approx((5 * 0.875 + 4 * 0.5) / 9)
    assert (result.groups_used, result.groups_skipped, result.rows_used) == (2, 1, 7)


def test_gauc_integer_groups_match_a_loop_over_groups() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    groups = rng.integers(0, 300, n)
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n) + 0.2 * y, 1)  # heavy ties within groups
    weights = rng.uniform(0.1, 2.0, n)
    for w in (None, weights):
        num = den = 0.0
        used = 0
        for g in np.unique(groups):
            m = groups == g
            if len(np.unique(y[m])) == 2:
                ww = np.ones(m.sum()) if w is None else w[m]
                num += ww.sum() * skm.roc_auc_score(y[m], score[m], sample_weight=ww)
                den += ww.sum()
                used += 1
        result = gauc(y, score, groups, sample_weight=w)
        assert result.value == pytest.approx(num / den, abs=1e-12)
        assert result.groups_used == used
        assert result.groups_used + result.groups_skipped == len(np.unique(groups))


def test_one_group_is_the_plain_auc() -> None:
    rng = np.random.default_rng(2)
    y, score = rng.integers(0, 2, 500), rng.random(500)
    assert gauc(y, score, np.zeros(500)).value == pytest.approx(roc_auc(y, score), abs=1e-12)


def test_weighted_auc_matches_brute_force_pairs_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    score = rng.integers(0, 6, 60).astype(float)  # six distinct scores: many ties
    w = rng.uniform(0.0, 3.0, 60)
    assert roc_auc(y, score, sample_weight=w) == pytest.approx(brute_auc(y, score, w), abs=1e-12)
    # by hand: pos 0.8 (w 2) beats neg 0.1 (w 1), ties neg 0.8 (w 3) -> 2 (1 + 1.5) / 8
    assert roc_auc([1, 0, 0], [0.8, 0.1, 0.8], sample_weight=[2, 1, 3]) == pytest.approx(0.625)


def test_unit_weights_change_nothing() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 2000)
    score = np.round(rng.random(2000), 2)
    p = rng.uniform(0.01, 0.99, 2000)
    ones = np.ones(2000)
    assert roc_auc(y, score, sample_weight=ones) == pytest.approx(roc_auc(y, score), abs=1e-12)
    assert log_loss(y, p, sample_weight=ones) == pytest.approx(log_loss(y, p), rel=1e-12)
    # integer weights are repeated rows
    k = rng.integers(1, 4, 2000)
    rep = np.repeat(np.arange(2000), k)
    assert roc_auc(y, score, sample_weight=k) == pytest.approx(
        roc_auc(y[rep], score[rep]), abs=1e-12
    )


def test_weighted_log_loss() -> None:
    rng = np.random.default_rng(5)
    y, p, w = rng.integers(0, 2, 1000), rng.uniform(0.01, 0.99, 1000), rng.random(1000)
    assert log_loss(y, p, sample_weight=w) == pytest.approx(
        skm.log_loss(y, p, sample_weight=w), rel=1e-12
    )
    # by hand: -(3 log 0.8 + 1 log 0.75) / 4
    expected = -(3 * np.log(0.8) + np.log(0.75)) / 4
    assert log_loss([1, 0], [0.8, 0.25], sample_weight=[3, 1]) == pytest.approx(expected)


def test_errors() -> None:
    with pytest.raises(DataError, match="none of the 2 groups holds both"):
        gauc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], ["a", "a", "b", "b"])
    with pytest.raises(DataError, match="groups has 3 values for 4 rows"):
        gauc([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], [1, 1, 2])
    with pytest.raises(DataError, match="NaN"):
        gauc([1, 0], [0.1, 0.2], [1.0, np.nan])
    with pytest.raises(DataError, match="only 0 and 1"):
        gauc([2, 0], [0.1, 0.2], [1, 1])
    with pytest.raises(DataError, match=">= 0"):
        roc_auc([1, 0], [0.1, 0.2], sample_weight=[1, -1])
    with pytest.raises(DataError, match="2 values for 3 rows"):
        log_loss([1, 0, 1], [0.5, 0.5, 0.5], sample_weight=[1, 1])
    with pytest.raises(DataError, match="0 for every row"):
        gauc([1, 0], [0.1, 0.2], [1, 1], sample_weight=[0, 0])
    with pytest.raises(DataError, match="only one class with weight"):
        roc_auc([1, 0], [0.1, 0.2], sample_weight=[1, 0])
