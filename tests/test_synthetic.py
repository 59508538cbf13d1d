"""The MMoE paper's synthetic generator: weights, label correlation, seeding, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mtlrec import ConfigError, DenseFeature, Task
from mtlrec.datasets import (
    SYNTHETIC_TASKS,
    synthetic_correlated,
    synthetic_features,
    synthetic_label_correlation,
    synthetic_tasks,
    synthetic_weights,
)

CORRELATIONS = [0.0, 0.25, 0.5, 0.75, 0.9, 1.0]


def pearson(frame) -> float:
    return float(np.corrcoef(frame["y1"], frame["y2"])[0, 1])


@pytest.mark.parametrize("p", [-1.0, -0.3, *CORRELATIONS])
def test_weight_cosine_is_the_correlation(p: float) -> None:
    w1, w2 = synthetic_weights(p, seed=3, dim=50, scale=2.0)
    assert w1.shape == w2.shape == (50,)
    assert np.linalg.norm(w1) == pytest.approx(2.0)
    assert np.linalg.norm(w2) == pytest.approx(2.0)
    assert w1 @ w2 / (np.linalg.norm(w1) * np.linalg.norm(w2)) == pytest.approx(p, abs=1e-12)


def test_weights_depend_on_seed_and_dim_only() -> None:
    w1_a, _ = synthetic_weights(0.2, seed=5)
    w1_b, _ = synthetic_weights(0.9, seed=5)
    np.testing.assert_array_equal(w1_a, w1_b)  # u1 is shared by every correlation
    np.testing.assert_allclose(synthetic_weights(1.0, seed=5)[1], w1_b)
    assert not np.allclose(synthetic_weights(0.9, seed=6)[0], w1_b)


def test_labels_follow_the_paper_formula() -> None:
    frame = synthetic_correlated(500, 0.7, seed=2, dim=20)
    x = frame[[f"x{i}" for i in range(20)]].to_numpy(np.float64)
    i = np.arange(1, 11)
    for w, label in zip(synthetic_weights(0.7, seed=2, dim=20), SYNTHETIC_TASKS, strict=True):
        z = x @ w
        expected = z + np.sin(np.outer(z, i) + (i - 1) ** 2).sum(axis=1)
        residual = frame[label].to_numpy(np.float64) - expected
        assert np.abs(residual).max() < 0.06  # noise std 0.01 plus float32 rounding
        assert 0.005 < residual.std() < 0.015


def test_label_correlation_grows_with_p_and_matches_theory() -> None:
    # Measured over seeds 0-9 at 20,000 rows: sample r minus the exact population value
    # has std 0.003-0.007 (about 1/sqrt(n)); 0.03 is over 4 standard deviations. The
    # labels correlate much less than the weights: r = 0.00, 0.11, 0.22, 0.34, 0.46, 1.00
    # for p = 0, 0.25, 0.5, 0.75, 0.9, 1 (|r - p| up to 0.44 at p = 0.9), because the
    # high-frequency sines (alpha_i up to 10) decorrelate unless w1 = w2.
    rs = [pearson(synthetic_correlated(20_000, p, seed=0)) for p in CORRELATIONS]
    assert all(a < b for a, b in itertools.pairwise(rs))
    for p, r in zip(CORRELATIONS, rs, strict=True):
        assert r == pytest.approx(synthetic_label_correlation(p), abs=0.03)
        assert r <= p + 0.03
    assert abs(rs[0]) < 0.03
    assert rs[-1] > 0.999  # identical tasks up to the noise


def test_label_correlation_without_sines_is_p() -> None:
    assert synthetic_label_correlation(0.6, num_sines=0, noise_std=0.0) == pytest.approx(0.6)
    low_frequency = {"alphas": np.full(10, 0.1), "betas": np.zeros(10)}
    r = synthetic_label_correlation(0.5, **low_frequency)
    assert r == pytest.approx(0.5, abs=0.01)  # near-linear sines keep the correlation
    frame = synthetic_correlated(20_000, 0.5, seed=1, **low_frequency)
    assert pearson(frame) == pytest.approx(r, abs=0.03)


def test_shapes_dtypes_and_columns() -> None:
    frame = synthetic_correlated(7, 0.5, seed=0, dim=4)
    assert list(frame.columns) == ["x0", "x1", "x2", "x3", "y1", "y2"]
    assert frame.shape == (7, 6)
    assert all(dtype == np.float32 for dtype in frame.dtypes)
    assert synthetic_features(4) == [DenseFeature(f"x{i}") for i in range(4)]
    # raw labels, as in the paper (unit scale already; losses stay the paper's MSE)
    assert synthetic_tasks() == [
        Task("y1", "regression", standardize=False),
        Task("y2", "regression", standardize=False),
    ]


def test_seeding_is_reproducible_and_prefix_stable() -> None:
    a = synthetic_correlated(200, 0.9, seed=4, dim=10)
    b = synthetic_correlated(200, 0.9, seed=4, dim=10)
    assert a.equals(b)
    longer = synthetic_correlated(300, 0.9, seed=4, dim=10)
    assert longer.iloc[:200].reset_index(drop=True).equals(a)  # splits are row slices
    other = synthetic_correlated(200, 0.9, seed=5, dim=10)
    assert not np.allclose(other.to_numpy(), a.to_numpy())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"correlation": 1.5}, "correlation"),
        ({"correlation": -1.01}, "correlation"),
        ({"correlation": float("nan")}, "correlation"),
        ({"correlation": "high"}, "correlation"),
        ({"n": 0}, "n"),
        ({"n": 2.5}, "n"),
        ({"seed": -1}, "seed"),
        ({"dim": 1}, "dim"),
        ({"scale": 0.0}, "scale"),
        ({"scale": float("inf")}, "scale"),
        ({"num_sines": -1}, "num_sines"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"alphas": [1.0, 2.0]}, "alphas"),
        ({"betas": ["a"] * 10}, "betas"),
        ({"alphas": [float("nan")] * 10}, "alphas"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, name: str) -> None:
    args = {"n": 5, "correlation": 0.5, **kwargs}
    with pytest.raises(ConfigError, match=f"^{name} "):
        synthetic_correlated(**args)


def test_bad_arguments_of_the_helpers() -> None:
    with pytest.raises(ConfigError, match="correlation"):
        synthetic_weights(2.0)
    with pytest.raises(ConfigError, match="dim"):
        synthetic_features(dim=0)
    with pytest.raises(ConfigError, match="alphas"):
        synthetic_label_correlation(0.5, num_sines=3, alphas=[1.0])
