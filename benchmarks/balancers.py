"""Loss balancers side by side: per task, the change against the single-task baseline
(the seesaw), over seeds, and each balancer's time per epoch relative to ``equal``.

    python benchmarks/balancers.py --dataset adult --models mmoe shared_bottom --seeds 3 \
        --output docs/results/balancers

Runs ``experiments.benchmark.run_benchmark`` once per balancer (the single-task baseline
once, with ``equal``), in one process and one after the other, so the times compare.
Writes ``balancers.json`` (every record) and ``balancers.md`` (the table).
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


def table(records: list[dict], epochs: int) -> str:
    """Markdown: one row per balancer and model, per task mean +- std, delta vs single task."""
    tasks = list(dict.fromkeys(r["task"] for r in records))
    metric = {r["task"]: primary_metric("binary" if "auc" in r else "regression") for r in records}

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

    base = {t: mean_std(values("equal", "single_task", t))[0] for t in tasks}
    header = ["balancer", "model"]
    for t in tasks:
        header += [f"{t} {metric[t]}", f"{t} Δ vs single"]
    header += ["s/epoch", "× equal"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    pairs = list(dict.fromkeys((r["balancer"], r["model"]) for r in records))
    for balancer, model in pairs:
        cells = [balancer, model]
        for t in tasks:
            mean, std = mean_std(values(balancer, model, t))
            cells += [f"{mean:.4f} ± {std:.4f}", f"{mean - base[t]:+.4f}"]
        seconds = epoch_seconds(balancer, model)
        reference = epoch_seconds("equal", model)
        cells += [f"{seconds:.2f}", f"{seconds / reference:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--models", nargs="+", default=["mmoe", "shared_bottom"])
    parser.add_argument("--balancers", nargs="+", default=list_balancers())
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    records = run_benchmark(args.dataset, ["single_task"], args.seeds, epochs=args.epochs)
    for balancer in args.balancers:
        print(f"balancer {balancer}", file=sys.stderr)
        records += run_benchmark(
            args.dataset, args.models, args.seeds, epochs=args.epochs, balancer=balancer
        )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "balancers.json").write_text(
        json.dumps(records, indent=1, default=json_default)
    )
    command = "python benchmarks/balancers.py " + " ".join(argv or sys.argv[1:])
    text = "\n".join(
        [
            f"# Loss balancers on {args.dataset}",
            "",
            table(records, args.epochs),
            "",
            f"Mean ± sample std over {args.seeds} seeds on the test split; Δ against the "
            "single-task baseline's mean; s/epoch: median over seeds of fit seconds / epochs; "
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
