"""Does the fast step pay? One training step (gradients + Adam) by the blocks' rules
against autograd, in one process, paired.

    python benchmarks/fast_step_probe.py [models,comma,separated] [batch ...] [--rounds N]

For each reference model on Adult and each batch size, alternates blocks of steps of
``Accumulator(fast=True)`` and ``Accumulator(fast=False)`` (their order shuffled each
round) over consecutive batches of the training rows, and prints the median step time
of each and the median of the per-round ratios autograd / fast (> 1: the fast step is
faster). Both run on the same network with micro-batches as ``fit`` sizes them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.estimator import TRAINING_CACHE_BYTES, inference_rows
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
from mtlrec.objective import Objective, l2_terms
from mtlrec.training import Accumulator, build_optimizers


def run(step: Accumulator, optimizer, batches: list, n: int) -> float:
    """Seconds per step of ``n`` steps over batches picked at random."""
    chosen = random.sample(range(len(batches)), min(n, len(batches)))
    start = time.perf_counter()
    for i in range(n):
        optimizer.zero_grad()
        step(batches[chosen[i % len(chosen)]])
        optimizer.step()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="?", default="shared_bottom,esmm,mmoe,cgc,ple")
    parser.add_argument("batches", nargs="*", type=int, default=[256, 2048])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    mtlrec.retain_freed_memory()
    train, _ = load_adult()
    for name in args.models.split(","):
        model = mtlrec.create_model(
            name, adult_features(), adult_tasks(), **REFERENCE_CONFIGS[name]
        )
        data = model.preprocessor.fit_transform(train)
        network = model.build()
        optimizer = build_optimizers(network, "adam", 1e-3)
        c = model.config
        objective = Objective(
            model.tasks, model.preprocessor.heads, l2_terms(c.l2_embedding, c.l2_dense)
        )
        micro = inference_rows(network, TRAINING_CACHE_BYTES)
        for rows in args.batches:
            steps = {
                "fast": Accumulator(network, objective, micro, fast=True),
                "autograd": Accumulator(network, objective, micro, fast=False),
            }
            batches = [data.take(slice(i, i + rows)) for i in range(0, len(data) - rows, rows)]
            n = max(3, 8192 // rows)
            for step in steps.values():
                run(step, optimizer, batches, n)  # warm-up
            times: dict[str, list[float]] = {key: [] for key in steps}
            for _ in range(args.rounds):
                order = list(steps.items())
                random.shuffle(order)
                for key, step in order:
                    times[key].append(run(step, optimizer, batches, n))
            ratio = statistics.median(
                a / f for a, f in zip(times["autograd"], times["fast"], strict=True)
            )
            print(
                f"{name:14s} batch {rows:5d}: fast {statistics.median(times['fast']) * 1e3:7.3f} "
                f"ms, autograd {statistics.median(times['autograd']) * 1e3:7.3f} ms, "
                f"autograd / fast {ratio:.3f} ({steps['fast'].path})",
                flush=True,
            )


if __name__ == "__main__":
    main()
