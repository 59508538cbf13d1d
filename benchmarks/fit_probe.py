"""In-process probe of the user-facing path: ``fit`` and ``predict`` from raw Adult rows.

    python benchmarks/fit_probe.py [models,comma,separated] [batch] [epochs] [rounds]

Prints, per model, the median over ``rounds`` fresh models of train samples/s (the whole
``fit`` call, preprocessing included) and of predict rows/s (3 predictions of the test
rows per round, default chunks). For A/B comparisons run it at both commits, alternating.
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

models = sys.argv[1].split(",") if len(sys.argv) > 1 else list(REFERENCE_CONFIGS)
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 256
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 2
torch.set_num_threads(2)
if hasattr(mtlrec, "retain_freed_memory"):  # opt-in since 0.2 (0.1.0 set it in fit)
    mtlrec.retain_freed_memory()
train, test = load_adult()


def make(name: str) -> mtlrec.MultiTaskModel:
    return mtlrec.create_model(name, adult_features(), adult_tasks(), **REFERENCE_CONFIGS[name])


make("mmoe").fit(train.head(2048), epochs=1, verbose=0)  # one-off start-up costs
for name in models:
    fits, predictions = [], []
    for _ in range(rounds):
        model = make(name)
        start = time.perf_counter()
        model.fit(train, epochs=epochs, batch_size=batch, verbose=0)
        fits.append(epochs * len(train) / (time.perf_counter() - start))
        for _ in range(3):
            start = time.perf_counter()
            model.predict(test)
            predictions.append(len(test) / (time.perf_counter() - start))
    print(
        f"{name:14s} batch {batch}  train {statistics.median(fits):9,.0f}/s"
        f"  predict {statistics.median(predictions):10,.0f}/s"
    )
