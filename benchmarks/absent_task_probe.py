"""Loss balancers with a task absent from most batches (issue 17), on UCI Adult.

    python benchmarks/absent_task_probe.py [--missing 0.97] [--batch-size 32] [--epochs 2]

Marital's label is removed from 97 % of the training rows (seeded), so at batch 32 about
two batches in five carry none. MMoE (reference configuration) is trained with each
registered balancer; prints, per balancer, the last epoch's reported task weights and
per-task losses (each over its labelled rows) and the test AUCs (all test labels kept).
"""

from __future__ import annotations

import argparse
import logging
import warnings

import numpy as np

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missing", type=float, default=0.97)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--balancers", nargs="+", default=mtlrec.list_balancers())
    args = parser.parse_args()
    logging.getLogger("mtlrec").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")  # utilisation warnings: not the point here
    mtlrec.retain_freed_memory()
    train, test = load_adult()
    rng = np.random.default_rng(0)
    train = train.assign(marital=train["marital"].where(rng.random(len(train)) >= args.missing))
    labelled = int(train["marital"].notna().sum())
    print(
        f"marital labelled on {labelled:,} of {len(train):,} training rows; "
        f"batch {args.batch_size}, {args.epochs} epochs, MMoE\n"
    )
    print(
        "| balancer | weight income | weight marital | loss income | loss marital "
        "| income AUC | marital AUC |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.balancers:
        model = mtlrec.MMoE(adult_features(), adult_tasks(), seed=0, **REFERENCE_CONFIGS["mmoe"])
        model.fit(train, epochs=args.epochs, batch_size=args.batch_size, balancer=name, verbose=0)
        last = model.history_[-1]
        weights, losses = last["task_weights"], last["task_loss"]
        result = model.evaluate(test)
        print(
            f"| {name} | {weights['income']:.3g} | {weights['marital']:.3g} | "
            f"{losses['income']:.4f} | {losses['marital']:.4f} | "
            f"{result['income']['auc']:.4f} | {result['marital']['auc']:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
