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


def make_heads_table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """make_table plus a target of every other head: ``price`` (regression, around 1e6),
    ``size`` (multiclass, string classes) and ``visits`` (Poisson counts)."""
    table = make_table(n, seed)
    rng = np.random.default_rng(seed + 100)
    x, cat = table["x"].to_numpy(), table["cat"].to_numpy()
    table["price"] = 1e6 + 2e5 * x + 1e5 * (cat % 3) + rng.normal(0, 2e4, n)
    score = x + np.where(table["color"] == "blue", 1.0, 0.0) + rng.normal(0, 0.5, n)
    table["size"] = np.where(score < -0.5, "small", np.where(score < 0.8, "medium", "large"))
    table["visits"] = rng.poisson(np.exp(0.5 + 0.6 * x))
    return table


#: one task of every head, on make_heads_table
HEAD_TASKS = [
    Task("a"),
    Task("price", type="regression"),
    Task("size", type="multiclass"),
    Task("visits", type="poisson"),
]


#: a funnel on make_table's labels: b observed after a (its label is a AND b's)
FUNNEL_TASKS = (Task("a"), Task("b", after="a"))


def funnel_table(frame: pd.DataFrame) -> pd.DataFrame:
    """make_table with b replaced by a AND b: a valid funnel label (b = 1 only where a = 1)."""
    return frame.assign(b=frame["a"] * frame["b"])


FEATURES = [
    SparseFeature("cat", embedding_dim=4, group="user"),  # POSO's personalisation feature
    SparseFeature("color", embedding_dim=4),
    DenseFeature("x"),
    DenseFeature("noise"),
]
TASKS = [Task("a"), Task("b")]


@pytest.fixture(scope="session")
def table() -> pd.DataFrame:
    return make_table()


def declared_without_rule(network) -> str | None:
    """Why ``network`` trains by autograd by its own declaration (a block that says it
    has no fast-path rule at all: ``has_fast_rule = False``), or None."""
    for module in network.modules():
        if getattr(module, "has_fast_rule", True) is False:
            return module.fast_path_declines()
    return None


def check_fast_or_declared(network, fast, slow) -> bool:
    """True when the fast step ran (the caller compares it); else asserts that the
    network declared it has no rule, the step said why, and returns False."""
    reason = declared_without_rule(network)
    if reason is None:
        assert fast[0].path == "fast", fast[0].reason
        return True
    assert fast[0].path == "autograd" and reason in fast[0].reason
    return False
