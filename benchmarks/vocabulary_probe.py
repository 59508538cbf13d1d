"""Ten million distinct ids: fit time, peak memory and bundle size, with and without hashing.

    python benchmarks/vocabulary_probe.py [--ids 10000000] [--train-rows 1000000]
        [--buckets 1048576] [--output FILE.json]

Each variant runs in its own process (so its peak RSS is its own): a table of ``--ids``
rows whose ``item_id`` column holds ``--ids`` distinct int64 ids (a permutation) and a
``user_id`` column of 10^5 values, a dense column and one binary label. It times

* ``Preprocessor.fit`` on the whole table (the vocabulary, or nothing to store with
  ``hash_buckets``);
* ``transform`` of the whole table;
* a one-epoch MMoE ``fit`` on the first ``--train-rows`` rows (the preprocessor already
  fitted on every row, so the table keeps every id: SparseAdam on the large table);
* ``save`` of the bundle (its size on disk).

and reports the peak RSS of the process. Prints one JSON line per variant.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(ids: int, train_rows: int, buckets: int | None) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    import mtlrec
    from mtlrec import DenseFeature, SparseFeature, Task

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "item_id": rng.permutation(ids).astype(np.int64) * 7 + 11,
            "user_id": rng.integers(0, 100_000, ids),
            "price": rng.random(ids, dtype=np.float32),
        }
    )
    table["click"] = (rng.random(ids) < 0.3).astype(np.int8)
    baseline = peak_rss_mb()
    item = SparseFeature("item_id", hash_buckets=buckets)
    features = [item, SparseFeature("user_id"), DenseFeature("price")]
    model = mtlrec.MMoE(features, [Task("click")], seed=0, num_experts=4)
    record: dict = {"ids": ids, "hash_buckets": buckets, "rss_with_table_mb": round(baseline, 1)}
    start = time.perf_counter()
    model.preprocessor.fit(table)
    record["preprocessor_fit_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    model.preprocessor.transform(table)
    record["transform_s"] = round(time.perf_counter() - start, 2)
    record["table_rows"] = model.preprocessor.vocabulary_sizes[0]
    start = time.perf_counter()
    model.build()  # the network for the preprocessor fitted on every row; fit continues it
    model.fit(table.head(train_rows), epochs=1, batch_size=1024, verbose=0, warm_start=True)
    record["fit_1_epoch_s"] = round(time.perf_counter() - start, 2)
    record["train_rows"] = train_rows
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        model.save(Path(folder) / "bundle")
        record["save_s"] = round(time.perf_counter() - start, 2)
        files = list((Path(folder) / "bundle").iterdir())
        record["bundle_mb"] = round(sum(f.stat().st_size for f in files) / 2**20, 1)
        record["preprocessor_json_mb"] = round(
            (Path(folder) / "bundle" / "preprocessor.json").stat().st_size / 2**20, 1
        )
    record["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=10_000_000)
    parser.add_argument("--train-rows", type=int, default=1_000_000)
    parser.add_argument("--buckets", type=int, default=1 << 20)
    parser.add_argument("--output", help="also write the records as JSON here")
    parser.add_argument("--worker", choices=["vocabulary", "hash"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        buckets = args.buckets if args.worker == "hash" else None
        print(json.dumps(run(args.ids, args.train_rows, buckets)))
        return
    records = []
    for variant in ("vocabulary", "hash"):
        command = [sys.executable, __file__, "--worker", variant]
        command += ["--ids", str(args.ids), "--train-rows", str(args.train_rows)]
        command += ["--buckets", str(args.buckets)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        records.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(records[-1]), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
