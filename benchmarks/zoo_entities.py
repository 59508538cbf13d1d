"""The architecture zoo on users and items (issue 20): every registered architecture
but ESMM, on :func:`mtlrec.datasets.synthetic_entities` or on MovieLens-100K (user and
item feature groups, so POSO and PEPNet personalise by the user's features; the user's
history), with the benchmark runner's reference hyperparameters and optimisation.

    python benchmarks/zoo_entities.py --seeds 5 --rows 40000 --epochs 3
    python benchmarks/zoo_entities.py --movielens ML100K_DIR --seeds 5

MovieLens: the benchmark runner's ``movielens`` data (the first 80 % of ratings by time
to train, the rest to test; no validation split, so no early stopping) and 10 epochs.
Writes results.md / results.json to --output (default docs/results/issue20/entities or
docs/results/issue20/movielens).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mtlrec
from mtlrec.datasets import synthetic_entities
from mtlrec.datasets.entities import entity_features, entity_tasks
from mtlrec.experiments.benchmark import (
    BenchmarkData,
    format_table,
    load_dataset,
    run_benchmark,
    write_outputs,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=None, help="default 3; MovieLens 10")
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--movielens", type=Path, help="the ml-100k folder, instead of generated")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.movielens is not None:
        data = load_dataset("movielens", path=args.movielens)
        epochs = args.epochs or 10
        settings = {"dataset": f"movielens from {args.movielens}", "split": data.split}
        output = args.output or Path("docs/results/issue20/movielens")
    else:
        frame = synthetic_entities(rows=args.rows, users=2_000, items=500, history_len=20, seed=0)
        cut = int(len(frame) * 0.8)
        data = BenchmarkData(
            frame.iloc[:cut],
            frame.iloc[cut:],
            entity_features(history=True, groups=True, history_len=20),
            entity_tasks(),
        )
        epochs = args.epochs or 3
        settings = {"rows": args.rows, "split": "first 80 % train, last 20 % test"}
        output = args.output or Path("docs/results/issue20/entities")
    models = args.models or [m for m in mtlrec.list_models() if m != "esmm"]
    records = run_benchmark(data, models=models, seeds=args.seeds, epochs=epochs)
    print(format_table(records))
    command = "python benchmarks/zoo_entities.py " + " ".join(sys.argv[1:])
    write_outputs(records, output, command=command, settings=settings)


if __name__ == "__main__":
    main()
