"""Prediction rows/s by chunk size, each measurement in a fresh process (as users run it).

    python benchmarks/chunk_probe.py [models,comma,separated] [sizes,comma,separated] [rounds]
        [epochs]

For each round, model and size: a new Python process fits the model on Adult for
``epochs`` epochs (default 1) and predicts the 16,281 test rows from raw rows 5 times at
that chunk size; the median is one sample. Prints every sample per model and size (a
fresh process matters: the allocator's state after earlier calls changes the timing of
large chunks).
"""

import statistics
import subprocess
import sys
import time

WORKER = """
import statistics, sys, time, torch
torch.set_num_threads(2)
import mtlrec
from mtlrec import MultiTaskModel
try:
    from mtlrec.experiments.benchmark import REFERENCE_CONFIGS, load_dataset
except ImportError:  # mtlrec 0.1.0
    from mtlrec.benchmark import REFERENCE_CONFIGS, load_dataset
if hasattr(mtlrec, "retain_freed_memory"):  # opt-in since 0.2 (0.1.0 set it in fit)
    mtlrec.retain_freed_memory()
d = load_dataset("adult")
name, size, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = MultiTaskModel(d.features, d.tasks, architecture=name, **REFERENCE_CONFIGS[name])
m.fit(d.train, epochs=epochs, verbose=0)
times = []
for _ in range(5):
    start = time.perf_counter()
    m.predict(d.test, batch_size=size)
    times.append(time.perf_counter() - start)
print(len(d.test) / statistics.median(times))
"""


def main() -> None:
    models = sys.argv[1].split(",") if len(sys.argv) > 1 else ["cgc", "ple"]
    sizes = [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 else [256, 512, 1024]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    epochs = sys.argv[4] if len(sys.argv) > 4 else "1"
    samples: dict[tuple[str, int], list[float]] = {}
    started = time.perf_counter()
    for _ in range(rounds):
        for model in models:
            for size in sizes:
                out = subprocess.run(
                    [sys.executable, "-c", WORKER, model, str(size), epochs],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                samples.setdefault((model, size), []).append(float(out.stdout.split()[-1]))
    print("| model | chunk rows | rows/s per round | median |")
    print("|---|---:|---|---:|")
    for (model, size), values in samples.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {model} | {size} | {runs} | {statistics.median(values):,.0f} |")
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
