"""Loss balancers side by side: per task, the change against the single-task baseline
(the seesaw), over seeds, and each balancer's time per epoch relative to ``equal``.

    python benchmarks/balancers.py --dataset adult --models mmoe shared_bottom --seeds 3 \
        --output docs/results/balancers
    python benchmarks/balancers.py --dataset synthetic --correlation 0.5 --rows 50000 \
        --epochs 5 --models mmoe shared_bottom --seeds 2 --output docs/results/balancers-synthetic

Runs ``experiments.benchmark.run_benchmark`` once per balancer (the single-task baseline
once, with ``equal``), one after the other; ``synthetic`` runs the MMoE paper's two
regression tasks (``run_synthetic_benchmark``, test MSE; no single-task model there, so
the change is against ``equal`` of the same model). The times drift between sequential
runs on a shared machine: ``balancer_cost_probe.py`` pairs them. Writes
``balancers.json`` (every record) and ``balancers.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from mtlrec.balancers import list_balancers
from mtlrec.experiments.benchmark import primary_metric, run_benchmark
from mtlrec.experiments.records import json_default, mean_std, provenance_lines
from mtlrec.experiments.synthetic import run_synthetic_benchmark


def table(records: list[dict], epochs: int) -> str:
    """Markdown: one row per balancer and model, per task mean +- std, delta vs single task."""
    tasks = list(dict.fromkeys(r["task"] for r in records))
    metric = {
        r["task"]: "mse" if "mse" in r else primary_metric("binary" if "auc" in r else "regression")
        for r in records
    }

    def values(balancer, model, task):
        return [
            r[metric[task]]
            for r in records
            if r["balancer"] == balancer and r["model"] == model and r["task"] == task
        ]

    def epoch_seconds(balancer, model):
        runs = {
            r["seed"]: r["fit_seconds"] / r.get("epochs_run", epochs)
            for r in records
            if r["balancer"] == balancer and r["model"] == model
        }
        return statistics.median(runs.values())

    single = any(r["model"] == "single_task" for r in records)

    def base(model, task):
        return mean_std(values("equal", "single_task" if single else model, task))[0]

    header = ["balancer", "model"]
    for t in tasks:
        header += [f"{t} {metric[t]}", f"{t} Δ vs {'single' if single else 'equal'}"]
    header += ["s/epoch", "× equal"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    pairs = list(dict.fromkeys((r["balancer"], r["model"]) for r in records))
    for balancer, model in pairs:
        cells = [balancer, model]
        for t in tasks:
            mean, std = mean_std(values(balancer, model, t))
            cells += [f"{mean:.4f} ± {std:.4f}", f"{mean - base(model, t):+.4f}"]
        seconds = epoch_seconds(balancer, model)
        reference = epoch_seconds("equal", model)
        cells += [f"{seconds:.2f}", f"{seconds / reference:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def synthetic_records(args: argparse.Namespace, balancer: str) -> list[dict]:
    """One record per model, seed and task of the synthetic benchmark (test MSE)."""
    runs = run_synthetic_benchmark(
        [args.correlation],
        args.seeds,
        n_train=args.rows,
        epochs=args.epochs,
        models=args.models,
        balancer=balancer,
    )
    return [
        {
            "model": run["model"],
            "seed": run["seed"],
            "balancer": balancer,
            "task": task,
            "mse": mse,
            "fit_seconds": run["fit_seconds"],
            "epochs_run": len(run["train_loss"]),
        }
        for run in runs
        for task, mse in run["test_task_loss"].items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--models", nargs="+", default=["mmoe", "shared_bottom"])
    parser.add_argument("--balancers", nargs="+", default=list_balancers())
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--correlation", type=float, default=0.5, help="synthetic only")
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic: training rows")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.dataset == "synthetic":
        records = []
        for balancer in args.balancers:
            print(f"balancer {balancer}", file=sys.stderr)
            records += synthetic_records(args, balancer)
    else:
        records = run_benchmark(args.dataset, ["single_task"], args.seeds, epochs=args.epochs)
        for balancer in args.balancers:
            print(f"balancer {balancer}", file=sys.stderr)
            records += run_benchmark(
                args.dataset, args.models, args.seeds, epochs=args.epochs, balancer=balancer
            )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "balancers.json").write_text(json.dumps(records, indent=1, default=json_default))
    command = "python benchmarks/balancers.py " + " ".join(argv or sys.argv[1:])
    text = "\n".join(
        [
            f"# Loss balancers on {args.dataset}",
            "",
            table(records, args.epochs),
            "",
            f"Mean ± sample std over {args.seeds} seeds on the test split; Δ against the "
            + (
                "equal balancer's mean of the same model (no single-task model here)"
                if args.dataset == "synthetic"
                else "single-task baseline's mean"
            )
            + "; s/epoch: median over seeds of fit seconds / epochs; "
            "× equal: against the same model with the equal balancer, in the same process.",
            "",
            *provenance_lines(command, {"epochs": args.epochs, "seeds": args.seeds}),
        ]
    )
    (args.output / "balancers.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
