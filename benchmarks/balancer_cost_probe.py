"""Each loss balancer's training time against ``equal``, paired in one process.

    python benchmarks/balancer_cost_probe.py [--models mmoe shared_bottom] [--rounds 5]

Builds each model on Adult once per balancer (same seed) and, in every round, fits one
epoch with each balancer in a shuffled order; prints the median seconds per epoch and
the median over rounds of the per-round ratio balancer / equal (1.00: costs nothing).
Sequential runs on this shared machine drift by tens of per cent, so only these paired
ratios say what a balancer costs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import mtlrec
from mtlrec.balancers import list_balancers
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mmoe", "shared_bottom"])
    parser.add_argument("--balancers", nargs="+", default=list_balancers())
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    train, _ = load_adult()
    rng = random.Random(0)
    with mtlrec.retain_freed_memory():
        for name in args.models:

            def fit(balancer: str, name: str = name) -> float:
                model = mtlrec.create_model(
                    name, adult_features(), adult_tasks(), seed=0, **REFERENCE_CONFIGS[name]
                )
                start = time.perf_counter()
                model.fit(train, epochs=1, verbose=0, balancer=balancer)
                return time.perf_counter() - start

            for balancer in args.balancers:  # warm-up
                fit(balancer)
            times: dict[str, list[float]] = {b: [] for b in args.balancers}
            for _ in range(args.rounds):
                order = list(args.balancers)
                rng.shuffle(order)
                for balancer in order:
                    times[balancer].append(fit(balancer))
            for balancer in args.balancers:
                ratios = [t / e for t, e in zip(times[balancer], times["equal"], strict=True)]
                print(
                    f"{name:14s} {balancer:12s} {statistics.median(times[balancer]):6.2f} s/epoch"
                    f"  x equal {statistics.median(ratios):.2f}"
                    f" (range {min(ratios):.2f}-{max(ratios):.2f})"
                )


if __name__ == "__main__":
    main()
