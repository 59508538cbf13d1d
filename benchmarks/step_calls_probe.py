"""Python calls and tensor operations per training step, counted (not timed).

    python benchmarks/step_calls_probe.py [shared_bottom|mmoe]
    PYTHONPATH=<worktree>/src python benchmarks/step_calls_probe.py   # another version

Fits one epoch of Adult (batch 256) under cProfile after a warm-up fit and prints the
calls per step: every Python call, and those of torch's tensor methods and functions.
Counts do not depend on the machine's load, so versions can be compared run by run
(docs/benchmarks.md, issue 17). Runs on mtlrec 0.1.0 too (no mtlrec.experiments there).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import warnings

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult

CONFIGS = {
    "shared_bottom": (mtlrec.SharedBottom, {"bottom_units": [128, 128], "tower_units": [64, 32]}),
    "mmoe": (
        mtlrec.MMoE,
        {
            "num_experts": 8,
            "expert_units": [64, 64],
            "gate_units": [32, 32],
            "tower_units": [32, 32],
        },
    ),
}


def main() -> None:
    warnings.simplefilter("ignore")
    name = sys.argv[1] if len(sys.argv) > 1 else "shared_bottom"
    cls, config = CONFIGS[name]
    train, _ = load_adult()
    model = cls(adult_features(), adult_tasks(), seed=0, **config)
    model.fit(train.head(2560), epochs=1, verbose=0)  # warm-up
    profile = cProfile.Profile()
    profile.enable()
    model.fit(train, epochs=1, verbose=0)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    steps = (len(train) + 255) // 256
    tensor = sum(
        calls
        for (file, _, function), (_, calls, *_) in stats.items()
        if file == "~" and ("torch" in function or "Tensor" in function)
    )
    total = sum(calls for _, calls, *_ in stats.values())
    print(
        f"mtlrec {mtlrec.__version__} {name}: per step {total / steps:.1f} Python calls, "
        f"{tensor / steps:.1f} tensor operations"
    )


if __name__ == "__main__":
    main()
