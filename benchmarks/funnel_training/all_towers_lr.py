"""Every tower parameter's Adam update multiplied by K (issue 17).

    python benchmarks/funnel_training/all_towers_lr.py K [seeds] [epochs] [models]

The same as a param group of the towers with lr x K, in every model, the naive baseline's
networks included; K=1 is the base. models is a comma-separated list (default: the seven
in DEFAULT_MODELS); seeds defaults to 6, epochs to 3.
"""

import os
import sys

import torch

import mtlrec.estimator as est

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run

DEFAULT_MODELS = [
    "naive_cvr",
    "esmm",
    "mmoe_conditional",
    "mmoe_entire_space",
    "mmoe_direct_penalty",
    "ple_conditional",
    "ple_entire_space",
]

k = float(sys.argv[1])
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
models = sys.argv[4].split(",") if len(sys.argv) > 4 else DEFAULT_MODELS
real = est.build_optimizers


def build(network, *a, **kw):
    opt = real(network, *a, **kw)
    params = [p for n, p in network.named_parameters() if n.startswith("towers.")]
    step = opt.step

    def scaled_step():
        before = [p.detach().clone() for p in params]
        step()
        with torch.no_grad():
            for p, b in zip(params, before, strict=True):
                p.copy_(b + k * (p - b))

    if k != 1.0:
        opt.step = scaled_step
    return opt


est.build_optimizers = build
run(f"all towers lr x{k:g} ep{epochs}", models=models, seeds=seeds, epochs=epochs)
