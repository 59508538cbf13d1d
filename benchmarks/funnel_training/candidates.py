"""Candidate fixes for the entire-space form's training, by monkeypatching (issue 17).

    python benchmarks/funnel_training/candidates.py CANDIDATE [seeds]

CANDIDATE is one of
  base      : as is
  weight10  : the entire-space step's joint loss weighted 10 = 1 / click rate (the same
              as normalising it by the clicked rows instead of all rows)
  vconst10  : only the CVR logit's gradient through the product x 10 (product rule)
  vconst0.1 : only the CVR logit's gradient through the product x 0.1 (control)
  vbatch    : only the CVR logit's gradient x 1 / mean_batch(P(click)) (product rule)
  vrow      : only the CVR logit's gradient x 1 / max(P(click), 0.05) per row
  lr3       : lr 6e-3 (all models)
  ep6       : 6 epochs (all models)
The gradient candidates (weight10, v*) train ESMM and MMoE entire space only, the others
also naive CVR and MMoE conditional; seeds defaults to 3.
"""

import os
import sys

import torch

import mtlrec.experiments.funnel as ef
import mtlrec.objective.funnel as fun
from mtlrec.layers import product as prod
from mtlrec.layers.tape import tape_of

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run

cand = sys.argv[1]
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
models = ["naive_cvr", "esmm", "mmoe_conditional", "mmoe_entire_space"]
orig = prod.product_logit


def scaled_product(scale):
    """product_logit(a, b) whose gradient to b is multiplied by scale(sigmoid(a)) (detached)."""

    def f(a, b):
        tape = tape_of(a, b)
        if tape is None:
            k = scale(torch.sigmoid(a.detach()))
            return orig(a, b + (b - b.detach()) * (k - 1))
        u = prod._terms(a.value, b.value)
        out = u.logsumexp(0).neg_()
        w = u.add_(out).exp_()
        k = scale(torch.sigmoid(a.value))
        result = tape.value(out)

        def backward(grads):
            (g,) = grads
            return [g * (w[0] + w[2]), g * (w[1] + w[2]) * k]

        tape.record(backward, [a, b], [result])
        return result

    return f


kw = {}
if cand == "weight10":
    for name in ("esmm", "mmoe_entire_space"):
        spec = ef.FUNNEL_MODELS[name]
        ef.FUNNEL_MODELS[name] = spec._replace(funnel={**spec.funnel, "weight": 10.0})
elif cand == "vconst10":
    fun.product_logit = scaled_product(lambda s: torch.full_like(s, 10.0))
elif cand == "vconst0.1":
    fun.product_logit = scaled_product(lambda s: torch.full_like(s, 0.1))
elif cand == "vbatch":
    fun.product_logit = scaled_product(lambda s: (1.0 / s.mean()).expand_as(s))
elif cand == "vrow":
    fun.product_logit = scaled_product(lambda s: 1.0 / s.clamp_min(0.05))
elif cand == "lr3":
    kw["lr"] = 6e-3
elif cand == "ep6":
    kw["epochs"] = 6
elif cand != "base":
    raise SystemExit(f"unknown candidate {cand}")
if cand in ("weight10", "vconst10", "vconst0.1", "vbatch", "vrow"):
    models = ["esmm", "mmoe_entire_space"]
run(f"{cand} seeds={seeds}", models=models, seeds=seeds, **kw)
