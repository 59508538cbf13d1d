"""The synthetic click -> conversion funnel: seeding, columns, funnel logic, rates, bias."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlrec import ConfigError, DataError, DenseFeature, SparseFeature
from mtlrec.datasets import (
    FUNNEL_DENSE,
    FUNNEL_SPARSE,
    FUNNEL_TASKS,
    FUNNEL_TRUTH,
    funnel_cvr_gap,
    funnel_features,
    synthetic_funnel,
)

COLUMNS = [*FUNNEL_SPARSE, *FUNNEL_DENSE, *FUNNEL_TASKS, *FUNNEL_TRUTH]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_funnel(60_000, seed=4)


def test_same_seed_same_rows_and_other_seed_other_rows() -> None:
    a, b = synthetic_funnel(3000, seed=2), synthetic_funnel(3000, seed=2)
    pd.testing.assert_frame_equal(a, b)
    c = synthetic_funnel(3000, seed=3)
    assert not np.array_equal(a["true_ctr"], c["true_ctr"])


def test_a_prefix_of_a_longer_draw_is_the_shorter_draw() -> None:
    short, long = synthetic_funnel(500, seed=7), synthetic_funnel(2000, seed=7)
    pd.testing.assert_frame_equal(short, long.head(500))


def test_columns_dtypes_and_shape() -> None:
    frame = synthetic_funnel(1000, seed=0, num_segments=7, num_categories=5, num_positions=3)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 1000
    for name in [*FUNNEL_SPARSE, "click", "potential_conversion"]:
        assert frame[name].dtype == np.int64, name
    for name in FUNNEL_DENSE:
        assert frame[name].dtype == np.float32, name
    assert frame["user_segment"].between(0, 6).all()
    assert frame["item_category"].between(0, 4).all()
    assert set(frame["position"]) == {1, 2, 3}
    assert frame["true_ctr"].between(0, 1).all() and frame["true_cvr"].between(0, 1).all()


def test_conversions_only_after_clicks(frame: pd.DataFrame) -> None:
    clicked = frame["click"] == 1
    assert set(frame["click"]) == {0, 1}
    assert frame.loc[~clicked, "conversion"].isna().all()
    assert frame.loc[clicked, "conversion"].notna().all()
    assert set(frame.loc[clicked, "conversion"]) == {0.0, 1.0}


def test_potential_conversion_is_the_conversion_on_clicked_rows(frame: pd.DataFrame) -> None:
    clicked = frame["click"] == 1
    np.testing.assert_array_equal(
        frame.loc[clicked, "potential_conversion"], frame.loc[clicked, "conversion"]
    )
    # ... and is drawn on unclicked rows too, at their true CVR
    unclicked = frame[~clicked]
    assert unclicked["potential_conversion"].sum() > 0
    assert unclicked["potential_conversion"].mean() == pytest.approx(
        unclicked["true_cvr"].mean(), abs=0.01
    )


def test_empirical_rates_match_the_documented_ones(frame: pd.DataFrame) -> None:
    clicked = frame["click"] == 1
    # 60,000 rows: CTR std error ~0.0012; ~6,000 clicks: CVR std error ~0.003
    assert frame["click"].mean() == pytest.approx(0.1, abs=0.006)
    assert frame.loc[clicked, "conversion"].mean() == pytest.approx(0.05, abs=0.012)
    # the labels follow the ground truth they were drawn from
    assert frame["click"].mean() == pytest.approx(frame["true_ctr"].mean(), abs=0.006)

    other = synthetic_funnel(60_000, seed=4, click_rate=0.3, conversion_rate=0.2)
    hit = other["click"] == 1
    assert other["click"].mean() == pytest.approx(0.3, abs=0.01)
    assert other.loc[hit, "conversion"].mean() == pytest.approx(0.2, abs=0.015)
    assert other["true_ctr"].mean() == pytest.approx(0.3, abs=0.01)


def test_the_bias_knob_moves_the_clicked_vs_all_cvr_gap() -> None:
    gaps = [funnel_cvr_gap(synthetic_funnel(40_000, seed=1, selection_bias=b)) for b in (0, 1, 2)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[0] > 0.005  # no bait: shared interest, clicked rows convert more
    assert gaps[2] < -0.05  # strong bait: clicked rows convert much less than all would


def test_the_gap_is_the_difference_of_means() -> None:
    frame = pd.DataFrame({"click": [1, 0, 1, 0], "true_cvr": [0.2, 0.6, 0.4, 0.8]})
    assert funnel_cvr_gap(frame) == pytest.approx(0.3 - 0.5)
    with pytest.raises(DataError, match="no clicked row"):
        funnel_cvr_gap(frame.assign(click=0))


def test_without_bias_clickbait_drives_nothing() -> None:
    frame = synthetic_funnel(20_000, seed=0, selection_bias=0.0)
    for truth in ("true_ctr", "true_cvr"):
        assert abs(np.corrcoef(frame["clickbait"], frame[truth])[0, 1]) < 0.03
    biased = synthetic_funnel(20_000, seed=0, selection_bias=2.0)
    assert np.corrcoef(biased["clickbait"], biased["true_ctr"])[0, 1] > 0.5
    assert np.corrcoef(biased["clickbait"], biased["true_cvr"])[0, 1] < -0.5


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("n", 0, "n must be an integer >= 1"),
        ("n", 2.5, "n must be an integer"),
        ("seed", -1, "seed must be an integer >= 0"),
        ("click_rate", 0.0, "click_rate must lie strictly between 0 and 1"),
        ("click_rate", 1.5, "click_rate must be a finite number in"),
        ("conversion_rate", 1.0, "conversion_rate must lie strictly"),
        ("conversion_rate", "0.1", "conversion_rate must be a number"),
        ("selection_bias", -0.5, "selection_bias must be a finite number in"),
        ("selection_bias", float("nan"), "selection_bias must be a finite number"),
        ("num_segments", 1, "num_segments must be an integer >= 2"),
        ("num_categories", True, "num_categories must be an integer"),
        ("num_positions", 0, "num_positions must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_named(option: str, value: object, message: str) -> None:
    options = {"n": 10, option: value}
    with pytest.raises(ConfigError, match=message):
        synthetic_funnel(**options)


def test_features_cover_the_inputs_only() -> None:
    features = funnel_features(embedding_dim=4)
    assert [f.name for f in features] == [*FUNNEL_SPARSE, *FUNNEL_DENSE]
    assert all(isinstance(f, SparseFeature) and f.embedding_dim == 4 for f in features[:3])
    assert all(isinstance(f, DenseFeature) for f in features[3:])
