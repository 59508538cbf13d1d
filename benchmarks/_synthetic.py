"""A synthetic click-log-like table for the scaling measurement (numpy, vectorised).

20 sparse id columns ``c00..c19`` with vocabularies log-spaced from 10 to 10^6 and
Zipf-like ids (P(id = k) ~ 1/(k+1): the id is floor((V+1)^u) - 1 for uniform u), 10
dense columns ``d0..d9``, and two binary labels: ``click`` from per-id effects of five
sparse columns plus three dense columns, and ``convert``, correlated with click's logit
plus effects of other columns. The effects come from their own generator seeded with
``seed``, so tables of any size (and their train/test splits) follow the same model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPARSE = [f"c{i:02d}" for i in range(20)]
DENSE = [f"d{i}" for i in range(10)]
TASKS = ["click", "convert"]
VOCABULARIES = np.logspace(1, 6, len(SPARSE)).round().astype(np.int64)  # 10 .. 1,000,000


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_click_log(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows of the table (int32 ids, float32 dense, int8 labels)."""
    effects = np.random.default_rng(seed)  # the label model: same for every table size
    rng = np.random.default_rng([seed, rows])  # the rows
    columns: dict[str, np.ndarray] = {}
    click = np.full(rows, -1.5)
    convert = np.full(rows, -1.0)
    for i, (name, vocab) in enumerate(zip(SPARSE, VOCABULARIES, strict=True)):
        ids = np.floor(np.exp(rng.random(rows) * np.log(vocab + 1.0))) - 1.0
        ids = np.clip(ids, 0, vocab - 1).astype(np.int32)
        columns[name] = ids
        if i % 4 == 0:  # c00, c04, c08, c12, c16 drive clicks
            click += effects.normal(0.0, 0.8, vocab)[ids]
        elif i % 4 == 1:  # c01, c05, c09, c13, c17 drive conversions
            convert += effects.normal(0.0, 0.6, vocab)[ids]
    for i, name in enumerate(DENSE):
        values = rng.standard_normal(rows).astype(np.float32)
        columns[name] = np.exp(values) if i % 2 else values  # half log-normal
        if i < 3:
            click += (0.5, -0.4, 0.3)[i] * values
    convert += 0.7 * click
    columns["click"] = (rng.random(rows) < _sigmoid(click)).astype(np.int8)
    columns["convert"] = (rng.random(rows) < _sigmoid(convert)).astype(np.int8)
    return pd.DataFrame(columns)
