"""Sequence benchmark worker: one mtlrec model with the user history as a
``SequenceFeature`` (mean pooling, sharing the item-id table), fit and predict from raw
rows (the ``history`` column as pandas reads the Parquet list column: numpy arrays)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from _common import (
    auc_per_task,
    emit,
    fastest_predict,
    labels,
    load_dataset,
    median_time,
    parse_args,
    peak_rss_mb,
    timed,
)

import mtlrec
from mtlrec import DenseFeature, SequenceFeature, SparseFeature, Task

#: benchmark model name -> mtlrec class name
CLASSES = {"shared_bottom": "SharedBottom", "mmoe": "MMoE", "cgc": "CGC", "ple": "PLE"}


def features(spec: dict[str, Any]) -> list[Any]:
    """mtlrec features of the data set's spec, with their groups (user / item)."""
    dim, groups = spec["embedding_dim"], spec.get("groups", {})
    out: list[Any] = [
        SparseFeature(c, embedding_dim=dim, group=groups.get(c)) for c in spec["sparse"]
    ]
    out += [DenseFeature(c, group=groups.get(c)) for c in spec["dense"]]
    out += [
        SequenceFeature(
            s["name"],
            max_len=s["max_len"],
            pooling=s["pooling"],
            shares=s["shares"],
            group=groups.get(s["name"]),
        )
        for s in spec["sequence"]
    ]
    return out


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if hasattr(mtlrec, "retain_freed_memory"):
        mtlrec.retain_freed_memory()
    data = load_dataset(args.data)
    spec, config = data.spec, json.loads(args.config)
    model_class = getattr(mtlrec, CLASSES[args.model])
    tasks = [Task(t) for t in spec["tasks"]]
    bs = args.batch_size

    def make() -> Any:
        return model_class(features(spec), tasks, seed=args.seed, **config)

    if not args.no_warmup:  # one-off start-up costs (thread pools, lazy init) stay untimed
        make().fit(data.train.head(8 * bs), epochs=1, batch_size=bs, lr=args.lr, verbose=0)

    record: dict[str, Any] = {"library": "mtlrec", "version": mtlrec.__version__}
    if args.time_preprocessing:
        _, record["preprocess_seconds"] = timed(
            lambda: make().preprocessor.fit_transform(data.train)
        )

    model = make()
    _, fit_seconds = timed(
        lambda: model.fit(data.train, epochs=args.epochs, batch_size=bs, lr=args.lr, verbose=0)
    )
    sizes = [None, *args.predict_batch_sizes]  # None: mtlrec's cache-sized chunks
    predictions, predicted = fastest_predict(
        lambda size: model.predict(data.test, batch_size=size),
        sizes,
        args.predict_repeats,
        len(data.test),
    )
    record.update(predicted)
    scores = np.stack([np.asarray(predictions[t]) for t in spec["tasks"]], axis=1)
    pretransformed = None
    try:  # a transformed batch skips preprocessing, where this mtlrec accepts it
        batch = model.preprocessor.transform(data.test, with_labels=False)
        size = predicted["predict_batch_size"]
        _, seconds = median_time(
            lambda: model.predict(batch, batch_size=size), args.predict_repeats
        )
        pretransformed = len(data.test) / seconds
    except Exception as error:
        record["note"] = f"predict(pre-transformed batch) failed: {type(error).__name__}: {error}"

    record.update(
        {
            "torch": torch.__version__,
            "model": args.model,
            "batch_size": bs,
            "epochs": args.epochs,
            "train_rows": len(data.train),
            "test_rows": len(data.test),
            "fit_seconds": fit_seconds,
            "train_samples_per_second": len(data.train) * args.epochs / fit_seconds,
            "predict_rows_per_second_pretransformed": pretransformed,
            # the same AUC function as the peers' (sklearn), on predict's output
            "auc": auc_per_task(labels(data.test, spec["tasks"]), scores, spec["tasks"]),
            "parameters": model.num_parameters(),
            "threads": torch.get_num_threads(),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    )
    emit(record)


if __name__ == "__main__":
    main()
