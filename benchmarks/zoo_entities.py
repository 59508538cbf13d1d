"""The architecture zoo on generated users and items (issue 20): every registered
architecture that the data can feed, on :func:`mtlrec.datasets.synthetic_entities`
(user and item feature groups, so POSO personalises by the user's features), with the
benchmark runner's reference hyperparameters and optimisation.

    python benchmarks/zoo_entities.py --seeds 5 --rows 40000 --epochs 3

Writes results.md / results.json to --output (default docs/results/issue20/entities).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mtlrec
from mtlrec.datasets import synthetic_entities
from mtlrec.datasets.entities import entity_features, entity_tasks
from mtlrec.experiments.benchmark import BenchmarkData, format_table, run_benchmark, write_outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--output", type=Path, default=Path("docs/results/issue20/entities"))
    args = parser.parse_args()
    frame = synthetic_entities(rows=args.rows, users=2_000, items=500, history_len=20, seed=0)
    cut = int(len(frame) * 0.8)
    data = BenchmarkData(
        frame.iloc[:cut],
        frame.iloc[cut:],
        entity_features(history=True, groups=True, history_len=20),
        entity_tasks(),
    )
    models = args.models or [m for m in mtlrec.list_models() if m != "esmm"]
    records = run_benchmark(data, models=models, seeds=args.seeds, epochs=args.epochs)
    print(format_table(records))
    command = "python benchmarks/zoo_entities.py " + " ".join(sys.argv[1:])
    settings = {"rows": args.rows, "split": "first 80 % train, last 20 % test"}
    write_outputs(records, args.output, command=command, settings=settings)


if __name__ == "__main__":
    main()
