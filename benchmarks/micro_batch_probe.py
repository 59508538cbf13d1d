"""Training samples/s at a large batch with and without cache-sized micro-batches.

python benchmarks/micro_batch_probe.py mmoe,ple,cgc 2048
"""

import statistics
import sys
import time

import torch

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.estimator import inference_rows
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
from mtlrec.objective import Objective, l2_terms
from mtlrec.training import build_optimizers, train

mtlrec.retain_freed_memory()  # opt-in since 0.2 (0.1.0 set it on the first fit/predict)
tr, te = load_adult()
bs = int(sys.argv[2])
for name in sys.argv[1].split(","):
    m = mtlrec.create_model(name, adult_features(), adult_tasks(), **REFERENCE_CONFIGS[name])
    data = m.preprocessor.fit_transform(tr)
    objective = Objective(
        m.tasks, m.preprocessor.heads, l2_terms(m.config.l2_embedding, m.config.l2_dense)
    )
    res = {}
    for _ in range(3):
        for mb in (None, inference_rows(m.build()), 512, 256):
            net = m.build()
            opt = build_optimizers(net, "adam", 1e-3)
            g = torch.Generator().manual_seed(0)
            t = time.perf_counter()
            train(
                net,
                data,
                objective,
                epochs=1,
                batch_size=bs,
                optimizer=opt,
                generator=g,
                verbose=0,
                micro_batch=mb,
            )
            res.setdefault(mb, []).append(len(data) / (time.perf_counter() - t))
    print(name, {k: f"{statistics.median(v):,.0f}" for k, v in res.items()})
