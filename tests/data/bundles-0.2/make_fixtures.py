"""Writes the mtlrec 0.2 bundles (preprocessor format 2) that tests/test_compatibility.py
loads.

Run once with mtlrec 0.2.0.dev0 as it stood before sequence features (commit d11033d,
``PYTHONPATH=<worktree of d11033d>/src``); the bundles, their input rows and the
predictions that version made are committed, so later versions can be checked to load
them and predict the same numbers. Rerunning it with a later mtlrec would defeat its
purpose. Beside 0.1's cases it covers what 0.2 added: a funnel step, Poisson and
multiclass heads, and a fractional float category.

    PYTHONPATH=/tmp/mtlrec-start/src python tests/data/bundles-0.2/make_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import mtlrec
from mtlrec import DenseFeature, SparseFeature, Task

HERE = Path(__file__).resolve().parent

#: name -> (architecture, tasks, hyperparameters)
CASES = {
    "shared_bottom": ("shared_bottom", [Task("click"), Task("buy")], {"bottom_units": [8]}),
    "mmoe_funnel": (
        "mmoe",
        [Task("click"), Task("buy", after="click")],
        {"num_experts": 3, "expert_units": [8], "gate_units": [4], "tower_units": [4]},
    ),
    "ple_heads": (
        "ple",
        [Task("click"), Task("visits", type="poisson"), Task("segment", type="multiclass")],
        {"num_specific_experts": 1, "num_shared_experts": 2, "expert_units": [8]},
    ),
    "esmm": ("esmm", [Task("click"), Task("buy", after="click")], {"tower_units": [8, 4]}),
    "single_task": ("single_task", [Task("click"), Task("spend", type="regression")], {}),
}


def table(n: int, seed: int) -> pd.DataFrame:
    """Impressions: string, integer and fractional-float categories, two numbers; click,
    buy (after click), spend, visits (counts) and segment (three classes)."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "lyon", "nice", "lille"], n)
    item = rng.integers(0, 12, n)
    rate = rng.choice([0.1, 0.25, 1 / 3], n)  # float categories, keyed at float32
    price = rng.gamma(2.0, 10.0, n)
    age = rng.normal(40, 12, n)
    age[rng.random(n) < 0.05] = np.nan
    logit = 0.8 * (city == "paris") - 0.03 * (price - 20) + 0.2 * (item % 3)
    click = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    buy = click * (rng.random(n) < 0.3 + 0.02 * (age > 40)).astype(int)
    return pd.DataFrame(
        {
            "city": city,
            "item": item,
            "rate": rate,
            "price": price,
            "age": age,
            "click": click,
            "buy": buy,
            "spend": np.round(price * (1 + buy) + rng.normal(0, 2, n), 2),
            "visits": rng.poisson(1 + 3 * click),
            "segment": rng.choice(["a", "b", "c"], n),
        }
    )


def main() -> None:
    features = [
        SparseFeature("city", 3),
        SparseFeature("item", 4),
        SparseFeature("rate", 2),
        DenseFeature("price"),
        DenseFeature("age"),
    ]
    train, rows = table(400, 0), table(40, 1)
    rows.loc[0, "city"] = "brest"  # unseen category: the unknown id
    rows.loc[1, "item"] = 99
    inputs = rows[["city", "item", "rate", "price", "age"]]
    inputs.to_csv(HERE / "inputs.csv", index=False)
    predictions = {}
    for name, (architecture, tasks, params) in CASES.items():
        model = mtlrec.create_model(architecture, features, tasks, seed=3, **params)
        model.fit(train, epochs=2, batch_size=64, verbose=0)
        model.save(HERE / name, overwrite=True)
        predictions[name] = {
            k: np.asarray(v, dtype=float).tolist() for k, v in model.predict(inputs).items()
        }
    (HERE / "predictions.json").write_text(
        json.dumps({"mtlrec_version": mtlrec.__version__, "predictions": predictions}, indent=1)
    )


if __name__ == "__main__":
    main()
