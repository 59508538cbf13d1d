"""Gradient sizes on the CTR tower, the CVR tower and the shared parameters (issue 17).

    python benchmarks/funnel_training/grad_probe.py [epochs]

For MMoE conditional, MMoE entire space and ESMM: the gradient norms of the click and of
the conversion loss on each part (shared = embeddings, experts, gates), full-batch over the
40,000 training rows of seed 0, at the start (output biases at their priors) and after
training (epochs defaults to 3); and how far each part moved.
"""

import sys

import torch

import mtlrec.estimator as est
from mtlrec.datasets.funnel import funnel_features, synthetic_funnel
from mtlrec.estimator import MultiTaskModel
from mtlrec.experiments.funnel import FUNNEL_MODELS
from mtlrec.tasks import Task

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
real_train = est.train
captured = {}


def parts(net):
    """{part: [(name, param, dim, member)]}: in a bank of the two towers (along dim), member
    0 is the click tower and member 1 the conversion tower; shared parameters have dim None.
    """
    out = {"ctr_tower": [], "cvr_tower": [], "shared": []}
    for n, p in net.named_parameters():
        if n.startswith("towers."):
            first = (
                n.endswith("layers.0.weight")
                and p.dim() == 3
                and p.shape[1] == 2
                and p.shape[0] != 2
            )
            dim = 1 if first else 0
            out["ctr_tower"].append((n, p, dim, 0))
            out["cvr_tower"].append((n, p, dim, 1))
        else:
            out["shared"].append((n, p, None, None))
    return out


def norms(net, objective, data):
    """{(task, part): L2 norm of the task's mean loss gradient on the part}, full batch."""
    data = objective.training_labels(data)
    res = {}
    for t, task in enumerate(objective.tasks):
        net.zero_grad(set_to_none=False)
        out = net(data).named()
        sums = objective.sums(out, data)
        counts = objective.counts(data)
        (sums[t] / counts[t]).backward()
        for part, items in parts(net).items():
            sq = 0.0
            for _n, p, dim, idx in items:
                g = p.grad if dim is None else p.grad.select(dim, idx)
                sq += float((g**2).sum())
            res[(task.name, part)] = sq**0.5
    net.zero_grad(set_to_none=False)
    return res


def flat(net):
    """{part: a copy of its parameters, flattened into one vector}."""
    return {
        part: torch.cat(
            [
                (p if d is None else p.select(d, i)).detach().flatten().clone()
                for _n, p, d, i in items
            ]
        )
        for part, items in parts(net).items()
    }


def probing_train(network, data, objective, **kw):
    with torch.enable_grad():
        captured["start"] = norms(network, objective, data)
    before = flat(network)
    hist = real_train(network, data, objective, **kw)
    with torch.enable_grad():
        captured["end"] = norms(network, objective, data)
    after = flat(network)
    captured["moved"] = {k: float((after[k] - before[k]).norm()) for k in before}
    captured["moved_rel"] = {
        k: float((after[k] - before[k]).norm() / before[k].norm()) for k in before
    }
    return hist


est.train = probing_train
frame = synthetic_funnel(140_000, seed=0)
train = frame.iloc[:40_000]
for name in ["mmoe_conditional", "mmoe_entire_space", "esmm"]:
    s = FUNNEL_MODELS[name]
    tasks = [Task("click"), Task("conversion", after="click", **s.funnel)]
    model = MultiTaskModel(
        funnel_features(8), tasks, architecture=s.architecture, seed=0, **s.params
    )
    model.fit(train, epochs=EPOCHS, batch_size=256, lr=2e-3, verbose=0, threads=1)
    print(f"== {name} (epochs {EPOCHS})")
    for when in ("start", "end"):
        g = captured[when]
        click_ctr, click_shared = g[("click", "ctr_tower")], g[("click", "shared")]
        conv_cvr, conv_ctr, conv_shared = (
            g[("conversion", part)] for part in ("cvr_tower", "ctr_tower", "shared")
        )
        print(
            f"  {when:5s} |grad| of  click loss: ctr_tower {click_ctr:.2e}"
            f" shared {click_shared:.2e}"
            f"  | conversion loss: cvr_tower {conv_cvr:.2e} ctr_tower {conv_ctr:.2e}"
            f" shared {conv_shared:.2e}"
            f"  | ratio conv/click on shared {conv_shared / click_shared:.3f}"
        )
    print(
        "  moved (L2 of change):",
        {k: round(v, 3) for k, v in captured["moved"].items()},
        " relative:",
        {k: round(v, 3) for k, v in captured["moved_rel"].items()},
    )
