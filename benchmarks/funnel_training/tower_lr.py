"""A larger learning rate for the towers of ESMM and MMoE (issue 17).

    python benchmarks/funnel_training/tower_lr.py K_CVR K_CTR [seeds] [epochs] [name-substring]

After Adam's step, the CVR tower's update is multiplied by K_CVR and the CTR tower's by
K_CTR (the same as a param group with that lr multiple). Only the tower parameters whose
name contains name-substring (e.g. 'outs'; default: all) are scaled; seeds defaults to 3,
epochs to 3.
"""

import os
import sys

import torch

import mtlrec.estimator as est

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run

k_cvr, k_ctr = float(sys.argv[1]), float(sys.argv[2])
seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
only = sys.argv[5] if len(sys.argv) > 5 else ""
real = est.build_optimizers


def tower_slices(net):
    """[(param, dim)]: the banks of the two towers, member 0 click, member 1 conversion."""
    out = []
    for n, p in net.named_parameters():
        if n.startswith("towers.") and p.dim() == 3 and only in n:
            first = n.endswith("layers.0.weight") and p.shape[1] == 2 and p.shape[0] != 2
            dim = 1 if first else 0
            if p.shape[dim] == 2:
                out.append((p, dim))
    return out


def build(network, *a, **kw):
    opt = real(network, *a, **kw)
    slices = tower_slices(network)
    step = opt.step

    def scaled_step():
        before = [p.detach().clone() for p, _ in slices]
        step()
        with torch.no_grad():
            for (p, dim), b in zip(slices, before, strict=True):
                for member, k in ((1, k_cvr), (0, k_ctr)):
                    if k != 1.0:
                        new, old = p.select(dim, member), b.select(dim, member)
                        new.copy_(old + k * (new - old))

    opt.step = scaled_step
    return opt


est.build_optimizers = build
run(
    f"tower{only} lr x{k_cvr:g} cvr x{k_ctr:g} ctr ep{epochs}",
    models=["esmm", "mmoe_conditional", "mmoe_entire_space"],
    seeds=seeds,
    epochs=epochs,
)
