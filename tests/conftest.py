"""Shared fixtures: a small learnable two-task table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlrec import DenseFeature, SparseFeature, Task


def make_table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Two binary tasks driven by one categorical and one numeric column, plus noise columns."""
    rng = np.random.default_rng(seed)
    cat = rng.integers(0, 20, n)
    color = rng.choice(["red", "green", "blue"], n)
    x = rng.normal(size=n)
    noise = rng.normal(size=n)
    logit_a = 1.5 * x + np.where(cat % 2 == 0, 1.0, -1.0)
    logit_b = -1.0 * x + np.where(color == "red", 1.5, -0.5)
    return pd.DataFrame(
        {
            "cat": cat,
            "color": color,
            "x": x,
            "noise": noise,
            "a": (rng.random(n) < 1 / (1 + np.exp(-logit_a))).astype(int),
            "b": (rng.random(n) < 1 / (1 + np.exp(-logit_b))).astype(int),
        }
    )


FEATURES = [
    SparseFeature("cat", embedding_dim=4),
    SparseFeature("color", embedding_dim=4),
    DenseFeature("x"),
    DenseFeature("noise"),
]
TASKS = [Task("a"), Task("b")]


@pytest.fixture(scope="session")
def table() -> pd.DataFrame:
    return make_table()
