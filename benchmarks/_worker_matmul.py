"""Benchmark worker: fp32 matmul rate of this machine (the ceiling for the model FLOP rates).

Prints one JSON line {"gflops": {shape: median GFLOP/s}}. Shapes: squares, and the
shapes of the reference models' widest layers on Adult (input width 8*16+5 = 133; MMoE's
8 experts x 64 = 512 units, PLE's 20 experts x 64 = 1280; per-expert 64x64 bmm).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

#: name -> (batch of matrices or 0 for mm, m, k, n)
SHAPES: dict[str, tuple[int, int, int, int]] = {
    "512x512 @ 512x512": (0, 512, 512, 512),
    "1024x1024 @ 1024x1024": (0, 1024, 1024, 1024),
    "2048x2048 @ 2048x2048": (0, 2048, 2048, 2048),
    "2048x133 @ 133x512": (0, 2048, 133, 512),
    "2048x133 @ 133x1280": (0, 2048, 133, 1280),
    "256x133 @ 133x512": (0, 256, 133, 512),
    "20 x (2048x64 @ 64x64) bmm": (20, 2048, 64, 64),
}


def rate(batch: int, m: int, k: int, n: int, seconds: float = 0.25, samples: int = 5) -> float:
    """Median GFLOP/s (2*m*k*n per product) over ``samples`` timed loops of ~``seconds``."""
    lead = (batch,) if batch else ()
    a, b = torch.randn(*lead, m, k), torch.randn(*lead, k, n)
    op = torch.bmm if batch else torch.mm
    flops = 2.0 * m * k * n * max(batch, 1)
    op(a, b)  # warm-up
    start = time.perf_counter()
    op(a, b)
    loops = max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))
    rates = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(loops):
            op(a, b)
        rates.append(flops * loops / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        json.dumps(
            {
                "library": "matmul",
                "threads": torch.get_num_threads(),
                "gflops": {name: rate(*shape) for name, shape in SHAPES.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
