"""Prediction rows/s: onnxruntime on the exported graph against mtlrec's own predict.

    python benchmarks/onnx_probe.py [--repeats 7]

For each reference model (``REFERENCE_CONFIGS``) trained one epoch on Adult: the median
time of ``predict`` on the 16,281 encoded test rows (a transformed ``Batch``: no
preprocessing on either side) and of one ``InferenceSession.run`` on the same tensors
(onnxruntime with 2 intra-op threads, like torch's 2), interleaved, and the largest
absolute difference of their predictions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    train, test = load_adult()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    print("| model | mtlrec predict rows/s | onnxruntime rows/s | ratio | max abs diff |")
    print("|---|---:|---:|---:|---:|")
    for name, config in REFERENCE_CONFIGS.items():
        model = mtlrec.create_model(name, adult_features(), adult_tasks(), seed=0, **config)
        model.fit(train, epochs=1, verbose=0)
        batch = model.preprocessor.transform(test, with_labels=False)
        with tempfile.TemporaryDirectory() as folder:
            path = model.export_onnx(Path(folder) / "m.onnx")
            session = ort.InferenceSession(str(path), options)
        feeds = {"sparse": batch.sparse.numpy(), "dense": batch.dense.numpy()}
        ours, theirs = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predicted = model.predict(batch)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            got = session.run(None, feeds)
            theirs.append(time.perf_counter() - start)
        diff = max(
            float(np.abs(g - np.asarray(v)).max())
            for g, v in zip(got, predicted.values(), strict=True)
        )
        a, b = len(test) / statistics.median(ours), len(test) / statistics.median(theirs)
        print(f"| {name} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
