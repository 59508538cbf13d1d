"""Heads at the label prior, and the unit of Poisson counts (issue 17), on UCI Adult.

    python benchmarks/prior_probe.py [--seeds 3] [--epochs 3]

Three set-ups beside a binary income task, MMoE (mtlrec defaults), trained on the first
rows of Adult's training split and judged on its whole test split:

* ``hours``: weekly hours as a Poisson count (mean about 40), 3,000 rows;
* ``three``: income, relationship as multiclass, hours as Poisson, 8,000 rows;
* ``hours_1e5``: weekly hours x 2,500 as a Poisson count (mean about 1e5), 3,000 rows.

Each runs in four variants: the output biases left at 0 (no prior, as before issue 17)
with counts as they are, then the priors with the counts in units of 1, of their mean
and of their dispersion (variance / mean, at least 1). Prints, per set-up and variant,
the mean ± std over seeds of the income test AUC, the count task's test deviance and its
MAE relative to predicting the training mean; and income alone for reference.
"""

from __future__ import annotations

import argparse
import logging
import statistics

import numpy as np

import mtlrec
from mtlrec.datasets import adult_features, load_adult
from mtlrec.heads import poisson
from mtlrec.models import MultiTaskNetwork

SCALES = {
    "units of 1": lambda y: 1.0,
    "units of the mean": lambda y: float(y.mean()),
    "units of the dispersion": lambda y: max(float(y.var() / y.mean()), 1.0),
}
SETUPS = {
    "hours": (3000, ["income", "hours_per_week"]),
    "three": (8000, ["income", "relationship", "hours_per_week"]),
    "hours_1e5": (3000, ["income", "hours_1e5"]),
}
TYPES = {"relationship": "multiclass", "hours_per_week": "poisson", "hours_1e5": "poisson"}


def fit(train, test, labels, seed, epochs):
    tasks = [mtlrec.Task(n, type=TYPES.get(n, "binary")) for n in labels]
    dropped = {"relationship", "hours_per_week"}
    features = [f for f in adult_features() if f.name not in dropped]
    model = mtlrec.MMoE(features, tasks, seed=seed).fit(train, epochs=epochs, verbose=0)
    return model.evaluate(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("mtlrec").setLevel(logging.ERROR)
    train, test = load_adult()
    for table in (train, test):
        table["hours_1e5"] = table["hours_per_week"] * 2500
    alone = [
        fit(train.iloc[:3000], test, ["income"], s, args.epochs)["income"]["auc"]
        for s in range(args.seeds)
    ]
    print(f"income alone, 3,000 rows: AUC {_mean(alone)}")
    start_at_priors = MultiTaskNetwork.start_at_priors
    for setup, (rows, labels) in SETUPS.items():
        count = labels[-1]
        baseline = np.abs(test[count] - train[count].iloc[:rows].mean()).mean()
        print(f"\n{setup} ({rows:,} rows; MAE of the training mean {baseline:,.1f})")
        print("| variant | income AUC | count deviance | count MAE / mean's |")
        print("|---|---:|---:|---:|")
        variants = [("no prior, units of 1", False, SCALES["units of 1"])]
        variants += [(f"prior, {name}", True, rule) for name, rule in SCALES.items()]
        for name, prior, rule in variants:
            poisson.count_scale = rule
            MultiTaskNetwork.start_at_priors = (
                start_at_priors if prior else (lambda self, priors: None)
            )
            runs = [fit(train.iloc[:rows], test, labels, s, args.epochs) for s in range(args.seeds)]
            auc = [r["income"]["auc"] for r in runs]
            deviance = [r[count]["deviance"] for r in runs]
            relative = [r[count]["mae"] / baseline for r in runs]
            print(f"| {name} | {_mean(auc)} | {_mean(deviance, 1)} | {_mean(relative)} |")
    MultiTaskNetwork.start_at_priors = start_at_priors


def _mean(values, digits: int = 4) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


if __name__ == "__main__":
    main()
