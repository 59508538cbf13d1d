"""What the traced fast step costs beyond its rules: Shared-Bottom on Adult, batch 256.

    python benchmarks/tape_overhead_probe.py [--rounds 8]

Times, per step and alternated in one process, (a) the training step as ``fit`` runs it
(``training.Accumulator`` with the fast step: the network's forward traced on a tape,
then the tape's backward) and (b) the same rules called directly on the same tensors,
without the tape: the input layer's lookup, ``stack_forward`` of the bottom and the
towers, the objective's logit gradients, ``stack_backward`` and the embedding rows'
gradients (the gradients are equal; only the glue differs). Then the forward alone,
traced against direct. Prints medians in microseconds (docs/benchmarks.md, issue 17).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings

import torch

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
from mtlrec.layers.banks import stack_backward, stack_forward
from mtlrec.layers.tape import Tape, TracedBatch
from mtlrec.objective import Objective
from mtlrec.training import Accumulator, build_optimizers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    warnings.simplefilter("ignore", mtlrec.MtlrecWarning)
    torch.set_num_threads(2)
    mtlrec.retain_freed_memory()
    train, _ = load_adult()
    config = REFERENCE_CONFIGS["shared_bottom"]
    model = mtlrec.SharedBottom(adult_features(), adult_tasks(), seed=0, **config)
    model.fit(train.head(3000), epochs=1, verbose=0)
    net = model.network.train()
    data = model.preprocessor.transform(train)
    objective = Objective(model.tasks, model.preprocessor.heads)
    optimizer = build_optimizers(net, "adam", 1e-3)
    accumulate = Accumulator(net, objective, None, True, None)
    assert accumulate.path == "fast" and net.fold_readers(256, training=True) is None
    batches = [data.take(slice(i, i + 256)) for i in range(0, 256 * 120, 256)]
    embedding, bottom, towers = net.embedding, net.bottom, net.towers
    bottom_stack = bottom.stack()
    tower_stack = towers.mlps[0].stack(towers.outs[0])
    keep = embedding.embedding_width

    @torch.no_grad()
    def direct_forward(batch):
        x = embedding.lookup(batch.sparse, batch.dense)
        hidden = stack_forward(bottom_stack, x)
        top = stack_forward(tower_stack, hidden[-1].squeeze(0))
        return hidden, top

    @torch.no_grad()
    def direct_step(batch):
        hidden, top = direct_forward(batch)
        normalisers = objective.normalisers(batch)
        _, whole, sums, _ = objective.logit_gradients(
            {}, batch, normalisers.coefficients, top[-1].squeeze(-1), len(batch)
        )
        d_top = stack_backward(tower_stack, top, whole.unsqueeze(-1))
        d_x = stack_backward(bottom_stack, hidden, d_top.unsqueeze(0), keep)
        embedding.add_row_gradients(batch.sparse, d_x)
        return objective.combine(sums, normalisers.coefficients)

    @torch.no_grad()
    def traced_forward(batch):
        tape = Tape()
        net.forward(TracedBatch(batch.sparse, batch.dense, batch.labels, None, None, tape))
        tape._entries.clear()  # drop the rules unrun

    steps = {"step, traced (fit's)": accumulate, "step, rules called directly": direct_step}
    forwards = {"forward, traced": traced_forward, "forward, direct": direct_forward}
    times: dict[str, list[float]] = {name: [] for name in [*steps, *forwards]}
    for _ in range(args.rounds):
        order = list(times)
        random.shuffle(order)
        for name in order:
            for batch in batches:
                optimizer.zero_grad()
                start = time.perf_counter()
                (steps.get(name) or forwards[name])(batch)
                times[name].append(time.perf_counter() - start)
                if name in steps:
                    optimizer.step()
    for name, values in times.items():
        print(f"{name:30s} {1e6 * statistics.median(values):8.1f} us")


if __name__ == "__main__":
    main()
