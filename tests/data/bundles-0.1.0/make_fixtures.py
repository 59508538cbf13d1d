"""Writes the mtlrec 0.1.0 bundles that tests/test_compatibility.py loads.

Run once with mtlrec 0.1.0 (commit 6c19575, the code before the core rebuild); the
bundles, their input rows and the predictions 0.1.0 made for them are committed, so
later versions can be checked to load them and predict the same numbers. Rerunning it
with a later mtlrec would defeat its purpose.

    python tests/data/bundles-0.1.0/make_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import mtlrec
from mtlrec import DenseFeature, SparseFeature, Task

HERE = Path(__file__).resolve().parent

#: name -> (architecture, tasks, hyperparameters): small, but every block kind appears
CASES = {
    "single_task": ("single_task", ["click", "buy"], {"bottom_units": [8], "tower_units": [4]}),
    "shared_bottom": (
        "shared_bottom",
        ["click", "buy"],
        {"bottom_units": [8, 8], "tower_units": [4], "dropout": 0.1},
    ),
    "omoe": ("omoe", ["click", "buy"], {"num_experts": 3, "expert_units": [8], "gate_units": []}),
    "mmoe_batch_norm": (
        "mmoe",
        ["click", "buy"],
        {
            "num_experts": 3,
            "expert_units": [8],
            "gate_units": [4],
            "tower_units": [4],
            "batch_norm": True,
            "activation": "tanh",
        },
    ),
    "cgc": (
        "cgc",
        ["click", "buy"],
        {
            "num_specific_experts": 2,
            "num_shared_experts": 1,
            "expert_units": [8],
            "gate_units": [],
            "tower_units": [[4], [6, 4]],
        },
    ),
    "ple_regression": (
        "ple",
        ["click", "spend"],
        {
            "num_specific_experts": 1,
            "num_shared_experts": 2,
            "num_levels": 2,
            "expert_units": [8],
            "gate_units": [4],
            "tower_units": [4],
        },
    ),
    "esmm": ("esmm", ["click", "buy"], {"tower_units": [8, 4]}),
}


def table(n: int, seed: int) -> pd.DataFrame:
    """Impressions: a string and an integer category, two numbers; click, buy, spend."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "lyon", "nice", "lille"], n)
    item = rng.integers(0, 12, n)
    price = rng.gamma(2.0, 10.0, n)
    age = rng.normal(40, 12, n)
    age[rng.random(n) < 0.05] = np.nan  # missing values are imputed
    logit = 0.8 * (city == "paris") - 0.03 * (price - 20) + 0.2 * (item % 3)
    click = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    buy = click * (rng.random(n) < 0.3 + 0.02 * (age > 40)).astype(int)
    spend = np.round(price * (1 + buy) + rng.normal(0, 2, n), 2)
    return pd.DataFrame(
        {
            "city": city,
            "item": item,
            "price": price,
            "age": age,
            "click": click,
            "buy": buy,
            "spend": spend,
        }
    )


def main() -> None:
    features = [
        SparseFeature("city", 3),
        SparseFeature("item", 4),
        DenseFeature("price"),
        DenseFeature("age"),
    ]
    train, rows = table(400, 0), table(40, 1)
    rows.loc[0, "city"] = "brest"  # unseen category: the unknown id
    rows.loc[1, "item"] = 99
    inputs = rows.drop(columns=["click", "buy", "spend"])
    inputs.to_csv(HERE / "inputs.csv", index=False)
    predictions = {}
    for name, (architecture, task_names, params) in CASES.items():
        tasks = [Task(t, type="regression" if t == "spend" else "binary") for t in task_names]
        model = mtlrec.create_model(architecture, features, tasks, seed=3, **params)
        model.fit(train, epochs=2, batch_size=64, verbose=0)
        model.save(HERE / name, overwrite=True)
        predictions[name] = {k: v.astype(float).tolist() for k, v in model.predict(inputs).items()}
    (HERE / "predictions.json").write_text(
        json.dumps({"mtlrec_version": mtlrec.__version__, "predictions": predictions}, indent=1)
    )


if __name__ == "__main__":
    main()
