"""What a 50-item history costs mtlrec's training step, and the scatter its gradient needs.

    python benchmarks/_sequence_data.py /tmp/seqdata --rows 200000      # the data, once
    python benchmarks/sequence_step_probe.py mmoe 256 [nohist] [prof]
    python benchmarks/sequence_step_probe.py scatter

The first form fits the reference model (``REFERENCE_CONFIGS``) on the first 50,000
training rows of ``/tmp/seqdata`` (``--data`` elsewhere: set SEQ_DATA) with the history
(mean-pooled, sharing the item table) or without it (``nohist``), and prints the time of
two epochs per step, the table's transform left out; ``prof`` adds a cProfile of two
more. ``scatter`` times the ways of adding 256 x 50 item rows (16 floats each) of a
pooled gradient into a 12,000-row table: ``index_add_``, ``scatter_add_``,
``index_put_(accumulate=True)``.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import sys
import time

import pandas as pd
import torch

from mtlrec import DenseFeature, SequenceFeature, SparseFeature, Task
from mtlrec.estimator import model_class
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS


def timed(fn, n: int = 300) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e3


def scatter() -> None:
    b, length, dim, rows = 256, 50, 16, 12_000
    table = torch.zeros(rows, dim)
    ids = torch.randint(2, rows, (b, length)).reshape(-1)
    lengths = torch.randint(0, length + 1, (b,))
    weights = (torch.arange(length) < lengths[:, None]).float() / lengths[:, None].clamp_min(1)
    grad = torch.randn(b, dim)
    items = (grad.unsqueeze(1) * weights.unsqueeze(2)).reshape(-1, dim)
    index = ids.unsqueeze(1).expand(-1, dim)
    print(f"index_add_   {timed(lambda: table.index_add_(0, ids, items)):.3f} ms")
    print(f"scatter_add_ {timed(lambda: table.scatter_add_(0, index, items)):.3f} ms")
    put = timed(lambda: table.index_put_((ids,), items, accumulate=True))
    print(f"index_put_   {put:.3f} ms")


def step(arch: str, batch_size: int, history: bool, profile: bool) -> None:
    folder = os.environ.get("SEQ_DATA", "/tmp/seqdata")
    with open(f"{folder}/spec.json") as fh:
        spec = json.load(fh)
    train = pd.read_parquet(f"{folder}/train.parquet").head(50_000)
    groups = spec["groups"]
    features = [SparseFeature(c, group=groups[c]) for c in spec["sparse"]]
    features += [DenseFeature(c, group=groups[c]) for c in spec["dense"]]
    if history:
        features.append(SequenceFeature("history", max_len=50, shares="item_id", group="user"))
    cls = model_class(arch)
    model = cls(features, [Task("click"), Task("like")], seed=0, **REFERENCE_CONFIGS[arch])
    model.fit(train.head(8 * batch_size), epochs=1, batch_size=batch_size, verbose=0)
    start = time.perf_counter()
    model.preprocessor.transform(train)
    transform = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(train, epochs=2, batch_size=batch_size, verbose=0, warm_start=True)
    seconds = time.perf_counter() - start - transform
    steps = 2 * len(train) / batch_size
    print(
        f"{arch} {batch_size} {'history' if history else 'no history'}: transform "
        f"{transform:.3f} s, {1000 * seconds / steps:.3f} ms/step"
    )
    if profile:
        pr = cProfile.Profile()
        pr.enable()
        model.fit(train, epochs=2, batch_size=batch_size, verbose=0, warm_start=True)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    torch.set_num_threads(2)
    if sys.argv[1] == "scatter":
        scatter()
    else:
        step(sys.argv[1], int(sys.argv[2]), "nohist" not in sys.argv, "prof" in sys.argv)
