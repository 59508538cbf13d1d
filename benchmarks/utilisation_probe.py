"""How healthy mixture-of-experts fits use their experts: where a warning should start.

    python benchmarks/utilisation_probe.py [--seeds 2] [--epochs 5]

Fits the reference OMoE, MMoE (the README's quick start), CGC and PLE on UCI Adult and
prints, per fit, its income AUC, the least used experts' shares relative to their
uniform share (the lowest six) and the largest mean weight any gate puts on one expert
(``model.expert_utilisation_``, :mod:`mtlrec.inspection`). The warning thresholds
(``inspection.RARE_SHARE``, ``COLLAPSED_WEIGHT``) sit below what these fits show
(docs/benchmarks.md, issue 17).
"""

from __future__ import annotations

import argparse
import warnings

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the thresholds are the question
    train, test = load_adult()
    for name in ["omoe", "mmoe", "cgc", "ple"]:
        for seed in range(args.seeds):
            model = mtlrec.create_model(
                name, adult_features(), adult_tasks(), seed=seed, **REFERENCE_CONFIGS[name]
            ).fit(train, epochs=args.epochs, verbose=0)
            use = model.expert_utilisation_
            shares = sorted(e["share"] / e["uniform"] for e in use["experts"].values())
            top = max(g["max_weight"] for g in use["gates"].values())
            auc = model.evaluate(test)["income"]["auc"]
            print(
                f"{name:5s} seed {seed}: income AUC {auc:.4f}; least used experts' share / "
                f"uniform {[round(x, 3) for x in shares[:6]]} of {len(shares)}; "
                f"largest gate weight {top:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
