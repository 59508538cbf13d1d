"""Helpers shared by the benchmark workers.

Workers run under two interpreters (mtlrec's Python and the peer venv), so this module
imports neither mtlrec nor a peer library. A worker reads a data folder written by
``speed.py`` (``train.parquet``, ``test.parquet``, ``spec.json``), trains one model,
and prints one JSON line as its last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd


class Dataset(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame
    # sparse, dense, tasks (column names), embedding_dim, optional groups (group -> columns)
    spec: dict[str, Any]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one benchmark measurement (prints JSON)")
    parser.add_argument("--data", required=True, help="folder with train/test parquet + spec.json")
    parser.add_argument("--model", required=True, help="mtlrec architecture name")
    parser.add_argument("--config", required=True, help="JSON of mtlrec reference hyperparameters")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--predict-repeats",
        type=int,
        default=3,
        help="predict calls on the test set; the median time is reported",
    )
    parser.add_argument(
        "--predict-batch-sizes",
        nargs="+",
        type=int,
        default=[256, 2048, 16384],
        help="prediction is timed at each size (plus the library's own default "
        "where it has one) and the fastest is reported",
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the untimed 1-epoch fit on 8 batches before the timed one",
    )
    parser.add_argument(
        "--time-preprocessing",
        action="store_true",
        help="mtlrec only: also time a standalone preprocessor fit_transform",
    )
    return parser.parse_args(argv)


def load_dataset(folder: str | Path) -> Dataset:
    folder = Path(folder)
    spec = json.loads((folder / "spec.json").read_text())
    return Dataset(
        pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "test.parquet"), spec
    )


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), wall seconds)."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """(last result, median wall seconds over ``repeats`` calls)."""
    result, times = None, []
    for _ in range(max(1, repeats)):
        result, seconds = timed(fn)
        times.append(seconds)
    return result, statistics.median(times)


def fastest_predict(
    predict: Callable[[int | None], Any], sizes: list[int | None], repeats: int, rows: int
) -> tuple[Any, dict[str, Any]]:
    """Time ``predict(batch_size)`` at each size; (result at the fastest, record fields).

    Fields: ``predict_seconds`` and ``predict_rows_per_second`` at the fastest size,
    ``predict_batch_size`` (None = the library's default) and ``predict_by_batch_size``.
    """
    by_size, results = {}, {}
    for size in sizes:
        results[size], seconds = median_time(lambda size=size: predict(size), repeats)
        by_size[size] = seconds
    best = min(by_size, key=by_size.__getitem__)
    return results[best], {
        "predict_seconds": by_size[best],
        "predict_rows_per_second": rows / by_size[best],
        "predict_batch_size": best,
        "predict_by_batch_size": {str(k): rows / v for k, v in by_size.items()},
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def labels(frame: pd.DataFrame, tasks: list[str]) -> np.ndarray:
    return frame[tasks].to_numpy(np.float32)


def encode_for_peers(
    data: Dataset,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    """Label-encode sparse and min-max scale dense columns, the way the peers' docs do
    (fillna('-1') / fillna(0), LabelEncoder, MinMaxScaler), but fitted on train only.

    Returns (train columns, test columns, vocabulary size per sparse column). Ids are
    1 + the train label's code; 0 is reserved for values not seen in training.
    """
    from sklearn.preprocessing import LabelEncoder, MinMaxScaler

    x_train: dict[str, np.ndarray] = {}
    x_test: dict[str, np.ndarray] = {}
    vocab: dict[str, int] = {}
    for name in data.spec["sparse"]:
        tr = data.train[name].astype(str).where(data.train[name].notna(), "-1")
        te = data.test[name].astype(str).where(data.test[name].notna(), "-1")
        encoder = LabelEncoder().fit(tr.to_numpy())
        x_train[name] = encoder.transform(tr.to_numpy()).astype(np.int64) + 1
        codes = pd.Categorical(te.to_numpy(), categories=encoder.classes_).codes
        x_test[name] = codes.astype(np.int64) + 1  # unseen: code -1 -> id 0
        vocab[name] = len(encoder.classes_) + 1
    dense = data.spec["dense"]
    if dense:
        scaler = MinMaxScaler().fit(data.train[dense].fillna(0).to_numpy(np.float64))
        for frame, out in ((data.train, x_train), (data.test, x_test)):
            scaled = scaler.transform(frame[dense].fillna(0).to_numpy(np.float64))
            for i, name in enumerate(dense):
                out[name] = scaled[:, i].astype(np.float32)
    return x_train, x_test, vocab


def auc_per_task(y_true: np.ndarray, scores: np.ndarray, tasks: list[str]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {t: float(roc_auc_score(y_true[:, i], scores[:, i])) for i, t in enumerate(tasks)}


def count_parameters(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


class PeerData(NamedTuple):
    """What a peer worker trains and tests on: encoded columns and label arrays."""

    spec: dict[str, Any]
    config: dict[str, Any]
    tasks: list[str]
    x_train: dict[str, np.ndarray]
    x_test: dict[str, np.ndarray]
    vocab: dict[str, int]
    y_train: np.ndarray
    y_test: np.ndarray


def peer_data(
    args: argparse.Namespace, encode_more: Callable[[Any, dict, dict], None] | None = None
) -> PeerData:
    """Sets the thread count, then loads and encodes the worker's data (untimed);
    ``encode_more(data, x_train, x_test)`` adds further encoded inputs (the sequence
    workers' padded histories)."""
    import torch

    torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    tasks = data.spec["tasks"]
    x_train, x_test, vocab = encode_for_peers(data)
    if encode_more is not None:
        encode_more(data, x_train, x_test)
    return PeerData(
        data.spec,
        json.loads(args.config),
        tasks,
        x_train,
        x_test,
        vocab,
        labels(data.train, tasks),
        labels(data.test, tasks),
    )


def peer_record(
    args: argparse.Namespace,
    library: str,
    version: str,
    data: PeerData,
    fit_seconds: float,
    predicted: dict[str, Any],
    scores: np.ndarray,
    model: Any,
    note: str,
) -> dict[str, Any]:
    """The JSON record of one peer measurement (``predicted`` from :func:`fastest_predict`)."""
    import torch

    rows = len(data.y_train)
    return {
        "library": library,
        "version": version,
        "torch": torch.__version__,
        "model": args.model,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "train_rows": rows,
        "test_rows": len(data.y_test),
        "fit_seconds": fit_seconds,
        "train_samples_per_second": rows * args.epochs / fit_seconds,
        **predicted,
        "auc": auc_per_task(data.y_test, scores, data.tasks),
        "parameters": count_parameters(model),
        "threads": torch.get_num_threads(),
        "note": note,
    }


def emit(record: dict[str, Any]) -> None:
    """Print the result as the last stdout line (peak RSS now, unless already recorded)."""
    record.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    print(json.dumps(record), flush=True)
