"""Wall time of one training step and where it goes, op by op.

    python benchmarks/step_probe.py MODEL [ROWS] [TOP] [fast|autograd]

Builds MODEL with its reference config on Adult, then times a full step (gradients by
``mtlrec.training.Accumulator``: the fast step where it applies, else autograd, or
autograd throughout with ``autograd``; plus the optimizer) over consecutive ROWS-row
batches of the training rows: median of 7 x 20 steps. Then it times every aten
op of 10 more steps (a dispatch mode around each call) and prints the TOP ops by total
time with their input shapes. Use consecutive batches: a step repeated on one batch
drives its gradients into subnormal floats, which slows the products several-fold.
"""

import collections
import statistics
import sys
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
from mtlrec.objective import Objective, l2_terms
from mtlrec.training import Accumulator, build_optimizers

name = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
mode = sys.argv[4] if len(sys.argv) > 4 else "fast"
if mode not in ("fast", "autograd"):
    sys.exit(f"step_probe: the 4th argument is 'fast' or 'autograd', not {mode!r}")
torch.set_num_threads(2)
mtlrec.retain_freed_memory()  # opt-in since 0.2 (0.1.0 set it on the first fit/predict)

train, _ = load_adult()
model = mtlrec.create_model(name, adult_features(), adult_tasks(), **REFERENCE_CONFIGS[name])
model.fit(train.head(4096), epochs=1, verbose=0)  # preprocessor, warm-up
data = model.preprocessor.transform(train)
network = model.network
optimizer = build_optimizers(network, "adam", 1e-3)
objective = Objective(
    model.tasks,
    model.preprocessor.heads,
    l2_terms(model.config.l2_embedding, model.config.l2_dense),
)
accumulate = Accumulator(network, objective, fast=mode == "fast")
batches = [data.take(slice(i, i + rows)) for i in range(0, len(data) - rows + 1, rows)]
count = [0]


def step() -> None:
    batch = batches[count[0] % len(batches)]
    count[0] += 1
    optimizer.zero_grad()
    accumulate(batch)
    optimizer.step()


for _ in range(20):
    step()
times = []
for _ in range(7):
    start = time.perf_counter()
    for _ in range(20):
        step()
    times.append((time.perf_counter() - start) / 20)
median = statistics.median(times)
why = f" ({accumulate.reason})" if accumulate.reason else ""
print(
    f"{name}, {rows} rows, {accumulate.path} step{why}: "
    f"{median * 1e3:.3f} ms ({rows / median:,.0f} rows/s)"
)


class OpTimer(TorchDispatchMode):
    """Wall time and calls per (op, input shapes)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[tuple, float] = collections.defaultdict(float)
        self.calls: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        key = (
            func.overloadpacket.__name__,
            tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))[:3],
        )
        self.seconds[key] += time.perf_counter() - start
        self.calls[key] += 1
        return out


timer, steps = OpTimer(), 10
with timer:
    for _ in range(steps):
        step()
print(f"sum over ops: {sum(timer.seconds.values()) / steps * 1e3:.3f} ms per step")
for key, seconds in sorted(timer.seconds.items(), key=lambda kv: -kv[1])[:top]:
    op, shapes = key
    print(f"{seconds / steps * 1e6:9.1f} us  x{timer.calls[key] // steps:<3d} {op} {shapes}")
