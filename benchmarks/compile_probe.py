"""In-process A/B of eager against ``compile_inference()`` prediction on Adult.

    python benchmarks/compile_probe.py [models,comma,separated] [repeats]

Two models of each architecture with the same seed (so the same weights) are fitted for
one epoch; one predicts eagerly, the other through ``compile_inference()``. Predictions
of the 16,281 test rows from raw rows at the default chunk size alternate between the
two, ``repeats`` times; prints median rows/s of each, their ratio, the first compiled
call's seconds and the largest difference between the two models' probabilities.
"""

import statistics
import sys
import time

import torch

import mtlrec

try:
    from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
except ImportError:  # mtlrec 0.1.0
    from mtlrec.benchmark import REFERENCE_CONFIGS
from mtlrec.datasets import adult_features, adult_tasks, load_adult

torch.set_num_threads(2)
if hasattr(mtlrec, "retain_freed_memory"):  # opt-in since 0.2 (0.1.0 set it in fit)
    mtlrec.retain_freed_memory()
train, test = load_adult()
models = sys.argv[1].split(",") if len(sys.argv) > 1 else list(REFERENCE_CONFIGS)[1:]
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7


def fitted(name: str) -> mtlrec.MultiTaskModel:
    model = mtlrec.create_model(name, adult_features(), adult_tasks(), **REFERENCE_CONFIGS[name])
    return model.fit(train.head(4096), epochs=1, verbose=0)


print("| model | eager rows/s | compiled rows/s | ratio | first compiled call s | max abs diff |")
print("|---|---:|---:|---:|---:|---:|")
for name in models:
    eager, compiled = fitted(name), fitted(name).compile_inference()
    expected = eager.predict(test)
    start = time.perf_counter()
    got = compiled.predict(test)
    first = time.perf_counter() - start
    diff = max(float(abs(expected[k] - got[k]).max()) for k in expected)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(repeats):
        for label, model in (("eager", eager), ("compiled", compiled)):
            start = time.perf_counter()
            model.predict(test)
            times[label].append(time.perf_counter() - start)
    rate = {k: len(test) / statistics.median(v) for k, v in times.items()}
    print(
        f"| {name} | {rate['eager']:,.0f} | {rate['compiled']:,.0f} | "
        f"{rate['compiled'] / rate['eager']:.2f}x | {first:.1f} | {diff:.1e} |"
    )
