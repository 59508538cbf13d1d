"""Synthetic user x item generator: reproducible, skewed users, informative histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mtlrec.features
from mtlrec import ConfigError, Task
from mtlrec.datasets import (
    ENTITY_TASKS,
    ENTITY_TRUTH,
    ENTITY_TRUTH_COLUMNS,
    entity_features,
    entity_tasks,
    synthetic_entities,
)

SMALL = {"rows": 20_000, "users": 4_000, "items": 500, "history_len": 20}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_entities(**SMALL, seed=3)


def test_same_seed_same_frame_other_seed_differs(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(synthetic_entities(**SMALL, seed=3), frame)
    other = synthetic_entities(**SMALL, seed=4)
    assert not other["user_id"].equals(frame["user_id"])
    assert not np.allclose(other["click_logit_true"], frame["click_logit_true"])


def test_columns_and_types(frame: pd.DataFrame) -> None:
    assert len(frame) == SMALL["rows"]
    for name in ("user_id", "item_id", "user_segment", "item_category", "click"):
        assert frame[name].dtype == np.int64, name
    for name in ("user_activity", "item_price"):
        assert frame[name].dtype == np.float32, name
    for name in ("watch", *ENTITY_TRUTH_COLUMNS):
        assert frame[name].dtype == np.float64, name
        assert np.isfinite(frame[name]).all(), name
    assert frame["user_id"].between(0, SMALL["users"] - 1).all()
    assert frame["item_id"].between(0, SMALL["items"] - 1).all()
    assert frame["user_segment"].nunique() == ENTITY_TRUTH.segments
    assert frame["item_category"].nunique() == ENTITY_TRUTH.categories
    assert set(frame["click"].unique()) == {0, 1}


def test_user_and_item_columns_are_attributes_of_their_entity(frame: pd.DataFrame) -> None:
    for entity, columns in (
        ("user_id", ["user_segment", "user_activity", "user_effect_true"]),
        ("item_id", ["item_category", "item_price", "item_effect_true"]),
    ):
        assert (frame.groupby(entity)[columns].nunique() == 1).all().all()
    firsts = frame.groupby("user_id")["history"].agg(lambda h: {tuple(x) for x in h})
    assert (firsts.map(len) == 1).all()  # one history per user


def test_truth_decomposes(frame: pd.DataFrame) -> None:
    t = ENTITY_TRUTH
    a, b, m = (frame[c] for c in ("user_effect_true", "item_effect_true", "interaction_true"))
    np.testing.assert_allclose(
        frame["click_logit_true"], t.click_bias + a + b + t.click_interaction * m
    )
    np.testing.assert_allclose(
        frame["watch_true"], t.watch_user * a + t.watch_item * b + t.watch_interaction * m
    )
    residual = frame["watch"] - frame["watch_true"]
    assert abs(residual.std() - t.watch_noise) < 0.05
    assert 0.7 < m.var() < 1.3  # u . v has variance 1


def test_click_rate_and_truth_predicts_click(frame: pd.DataFrame) -> None:
    assert 0.05 < frame["click"].mean() < 0.95
    decile = pd.qcut(frame["click_logit_true"], 10, labels=False)
    rates = frame["click"].groupby(decile).mean()
    assert rates[9] > rates[0] + 0.5
    assert rates.is_monotonic_increasing or np.corrcoef(rates.index, rates)[0, 1] > 0.95
    sigmoid = 1 / (1 + np.exp(-frame["click_logit_true"]))
    assert abs(sigmoid.mean() - frame["click"].mean()) < 0.02


def test_histories_are_distinct_items_in_range(frame: pd.DataFrame) -> None:
    length = SMALL["history_len"]
    for history in frame["history"].iloc[:2000]:
        assert isinstance(history, list) and len(history) == length
        assert len(set(history)) == length
        assert all(isinstance(i, int) and 0 <= i < SMALL["items"] for i in history)


def test_histories_reveal_the_users_taste(frame: pd.DataFrame) -> None:
    """A user's history items score higher with the user's own items than with random
    ones: the mean interaction of rows whose item is in the user's history is higher."""
    inside = np.array(
        [i in set(h) for i, h in zip(frame["item_id"], frame["history"], strict=True)]
    )
    m = frame["interaction_true"].to_numpy()
    assert inside.sum() > 50
    assert m[inside].mean() > m[~inside].mean() + 0.5


def test_user_rows_are_skewed(frame: pd.DataFrame) -> None:
    counts = frame["user_id"].value_counts()  # most active first
    top = max(1, SMALL["users"] // 100)
    assert counts.iloc[:top].sum() / len(frame) > 0.1  # 1% of users, > 10x their share
    assert (counts <= 3).mean() > 0.5  # most users seen have few rows


def test_items_are_mildly_skewed(frame: pd.DataFrame) -> None:
    counts = frame["item_id"].value_counts()
    assert counts.iloc[: SMALL["items"] // 100].sum() / len(frame) < 0.1


def test_default_size() -> None:
    frame = synthetic_entities(rows=100_000, seed=1)
    assert len(frame) == 100_000
    assert frame["history"].map(len).eq(50).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": 0}, "rows"),
        ({"users": 0}, "users"),
        ({"items": 1}, "items"),
        ({"factors": 0}, "factors"),
        ({"history_len": 0}, "history_len"),
        ({"items": 10, "history_len": 11}, "history_len"),
        ({"seed": -1}, "seed"),
        ({"rows": 2.5}, "rows"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        synthetic_entities(**kwargs)


def test_tasks() -> None:
    assert ENTITY_TASKS == ("click", "watch")
    assert entity_tasks() == [Task("click"), Task("watch", type="regression")]


def test_features() -> None:
    features = entity_features(history_len=20)
    names = [f.name for f in features]
    assert names == [
        "user_id", "user_segment", "user_activity", "item_id", "item_category", "item_price",
        "history",
    ]  # fmt: skip
    assert [f.group for f in features] == ["user"] * 3 + ["item"] * 3 + ["user"]
    history = features[-1]
    assert isinstance(history, mtlrec.features.SequenceFeature)
    assert (history.max_len, history.pooling, history.shares) == (20, "mean", "item_id")
    plain = entity_features(history=False, groups=False)
    assert [f.name for f in plain] == names[:-1]
    assert all(f.group is None for f in plain)
