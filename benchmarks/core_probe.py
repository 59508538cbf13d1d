"""Quick in-process probe of mtlrec's core speed on Adult (no peers, no subprocesses).

    python benchmarks/core_probe.py [models,comma,separated] [batch] [repeats]

Prints median train samples/s (one epoch after a warm-up, training loop only), predict
rows/s from raw rows, and forward rows/s from tensors in chunks of 8192.
"""

import statistics
import sys
import time

import torch

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
from mtlrec.objective import Objective, l2_terms
from mtlrec.training import build_optimizers, train

mtlrec.retain_freed_memory()  # opt-in since 0.2 (0.1.0 set it on the first fit/predict)
tr, te = load_adult()
models = (
    sys.argv[1].split(",") if len(sys.argv) > 1 else ["shared_bottom", "esmm", "mmoe", "cgc", "ple"]
)
bs = int(sys.argv[2]) if len(sys.argv) > 2 else 256
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
res = {m: ([], [], []) for m in models}
for r in range(reps):
    for name in models:
        m = mtlrec.create_model(name, adult_features(), adult_tasks(), **REFERENCE_CONFIGS[name])
        data = m.preprocessor.fit_transform(tr)
        net = m.build()
        objective = Objective(
            m.tasks, m.preprocessor.heads, l2_terms(m.config.l2_embedding, m.config.l2_dense)
        )
        opt = build_optimizers(net, "adam", 1e-3)
        g = torch.Generator().manual_seed(0)
        if r == 0:
            train(
                net,
                data.take(slice(0, bs * 20)),
                objective,
                epochs=1,
                batch_size=bs,
                optimizer=opt,
                generator=g,
                verbose=0,
            )
        t = time.perf_counter()
        train(net, data, objective, epochs=1, batch_size=bs, optimizer=opt, generator=g, verbose=0)
        res[name][0].append(len(data) / (time.perf_counter() - t))
        t = time.perf_counter()
        m.predict(te)
        res[name][1].append(len(te) / (time.perf_counter() - t))
        tb = m.preprocessor.transform(te, with_labels=False)
        t = time.perf_counter()
        m._outputs(tb, 8192)
        res[name][2].append(len(te) / (time.perf_counter() - t))
for name, (a, b, c) in res.items():
    a, b, c = (statistics.median(v) for v in (a, b, c))
    print(f"{name:14s} train {a:9,.0f}/s  predict(raw) {b:9,.0f}/s  tensors {c:10,.0f}/s")
