"""How many threads, when another process keeps a core busy? MMoE's Adult fit, timed.

    python benchmarks/threads_probe.py [--epochs 5] [--repeats 3]

Times ``MMoE.fit`` on Adult (reference config, 5 epochs, batch 256, from raw rows) on
the quiet machine with the default threads (``mtlrec.available_cpus()``), then with one
other busy process (a Python loop spinning on one core) at 2 threads and at 1 thread.
Prints the median seconds of each. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS


def fit_seconds(train, epochs: int, threads: int | None) -> float:
    model = mtlrec.MMoE(adult_features(), adult_tasks(), **REFERENCE_CONFIGS["mmoe"])
    start = time.perf_counter()
    model.fit(train, epochs=epochs, batch_size=256, verbose=0, threads=threads)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mtlrec.retain_freed_memory()
    train, _ = load_adult()
    fit_seconds(train.head(4096), 1, None)  # warm-up
    quiet = [fit_seconds(train, args.epochs, None) for _ in range(args.repeats)]
    print(
        f"quiet, default threads ({mtlrec.available_cpus()}): "
        f"{statistics.median(quiet):.2f} s ({', '.join(f'{t:.2f}' for t in quiet)})",
        flush=True,
    )
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        for threads in (2, 1):
            runs = [fit_seconds(train, args.epochs, threads) for _ in range(args.repeats)]
            print(
                f"one other busy process, threads={threads}: {statistics.median(runs):.2f} s "
                f"({', '.join(f'{t:.2f}' for t in runs)})",
                flush=True,
            )
    finally:
        busy.kill()


if __name__ == "__main__":
    main()
