"""Throughput of a fit on 2 processes x 1 thread (gloo) against 1 process x 2 threads.

Both train the same model on the same in-memory rows with the same global batch; the
ratio is rows/s of the two-process fit over rows/s of the one-process fit, the median
of ``--repeats`` alternating pairs (each fit in fresh processes). The processes are
started as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR/PORT).

    python benchmarks/distributed_probe.py --rows 200000 --epochs 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = """
import json, os, sys, time
import numpy as np, pandas as pd, torch
import mtlrec
from mtlrec import DenseFeature, SparseFeature, Task
frame = pd.read_parquet(sys.argv[1])
features = [SparseFeature(f"c{i}") for i in range(6)] + [DenseFeature(f"d{i}") for i in range(4)]
model = mtlrec.MMoE(features, [Task("click"), Task("buy")], seed=0, num_experts=4,
                    expert_units=[64], tower_units=[32])
threads = int(sys.argv[3])
model.fit(frame, epochs=int(sys.argv[2]), batch_size=int(sys.argv[4]), verbose=0,
          threads=threads)
seconds = [h["seconds"] for h in model.history_]
if int(os.environ.get("RANK", "0")) == 0:
    print(json.dumps({"seconds": seconds, "step": model.history_[-1]["step"],
                      "rows": len(frame)}))
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
"""


def make_rows(path: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": rng.integers(0, 10 ** (i % 4 + 1), rows) for i in range(6)})
    for i in range(4):
        frame[f"d{i}"] = rng.normal(size=rows)
    logit = frame["d0"] + (frame["c0"] % 3 - 1) - 1.5
    frame["click"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame["buy"] = ((frame["click"] == 1) & (rng.random(rows) < 0.3)).astype(int)
    frame.to_parquet(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(data: Path, epochs: int, batch: int, processes: int, threads: int) -> dict:
    port, procs = free_port(), []
    for rank in range(processes):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        if processes > 1:
            env.update(
                RANK=str(rank),
                LOCAL_RANK=str(rank),
                WORLD_SIZE=str(processes),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
            )
        args = [sys.executable, "-c", WORKER, str(data), str(epochs), str(threads), str(batch)]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    result = json.loads(outputs[0].strip().splitlines()[-1])
    result["rows_per_s"] = result["rows"] / statistics.median(result["seconds"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("docs/results/issue19/distributed"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.parquet"
        make_rows(data, args.rows)
        pairs = []
        for _ in range(args.repeats):
            one = run(data, args.epochs, args.batch_size, 1, 2)
            two = run(data, args.epochs, args.batch_size, 2, 1)
            pairs.append({"1x2": one, "2x1": two, "ratio": two["rows_per_s"] / one["rows_per_s"]})
            print(
                f"1 process x 2 threads {one['rows_per_s']:,.0f} rows/s ({one['step']}), "
                f"2 processes x 1 thread {two['rows_per_s']:,.0f} rows/s ({two['step']}): "
                f"{pairs[-1]['ratio']:.2f}x"
            )
    ratios = [p["ratio"] for p in pairs]
    command = "python benchmarks/distributed_probe.py " + " ".join(sys.argv[1:])
    lines = [
        f"`{command}`",
        "",
        "| pair | 1 process x 2 threads rows/s | 2 processes x 1 thread rows/s | ratio |",
        "|---|---|---|---|",
    ]
    for i, p in enumerate(pairs, 1):
        lines.append(
            f"| {i} | {p['1x2']['rows_per_s']:,.0f} | {p['2x1']['rows_per_s']:,.0f} "
            f"| {p['ratio']:.2f}x |"
        )
    lines.append(
        f"\nmedian ratio {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, "
        f"max {max(ratios):.2f})"
    )
    text = "\n".join(lines)
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "distributed_probe.md").write_text(text + "\n")
    (args.output / "distributed_probe.json").write_text(json.dumps(pairs, indent=1))


if __name__ == "__main__":
    main()
