"""Benchmark worker: one mtlrec model (fit from raw rows, predict from raw rows)."""

from __future__ import annotations

import json
from typing import Any

import torch
from _common import (
    emit,
    fastest_predict,
    load_dataset,
    median_time,
    parse_args,
    peak_rss_mb,
    timed,
)

import mtlrec
from mtlrec import DenseFeature, MultiTaskModel, SparseFeature, Task


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if hasattr(mtlrec, "retain_freed_memory"):  # opt-in since 0.2; 0.1.0 set it in fit
        mtlrec.retain_freed_memory()
    data = load_dataset(args.data)
    spec, config = data.spec, json.loads(args.config)
    # spec["groups"]: group -> columns (read by POSO and PEPNet, no other model)
    group = {c: g for g, columns in spec.get("groups", {}).items() for c in columns}
    features = [
        SparseFeature(c, embedding_dim=spec["embedding_dim"], group=group.get(c))
        for c in spec["sparse"]
    ]
    features += [DenseFeature(c, group=group.get(c)) for c in spec["dense"]]
    tasks = [Task(t) for t in spec["tasks"]]
    bs = args.batch_size

    def make() -> MultiTaskModel:
        return MultiTaskModel(features, tasks, architecture=args.model, seed=args.seed, **config)

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
    _, predicted = fastest_predict(
        lambda size: model.predict(data.test, batch_size=size),
        sizes,
        args.predict_repeats,
        len(data.test),
    )
    record.update(predicted)
    pretransformed = None
    try:  # Batch input to predict (skips preprocessing), where this mtlrec accepts it
        batch = model.preprocessor.transform(data.test, with_labels=False)
        size = predicted["predict_batch_size"]
        _, seconds = median_time(
            lambda: model.predict(batch, batch_size=size), args.predict_repeats
        )
        pretransformed = len(data.test) / seconds
    except Exception as error:
        record["note"] = f"predict(ColumnBatch) failed: {type(error).__name__}"
    metrics = model.evaluate(data.test, batch_size=8192)
    # peak RSS of the default path; compiling loads the compiler stack (reported apart)
    record["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if hasattr(model, "compile_inference"):  # opt-in torch.compile'd inference
        model.compile_inference()
        record["compile_seconds"] = {  # the first call at each size compiles (untimed below)
            str(size): timed(lambda size=size: model.predict(data.test, batch_size=size))[1]
            for size in sizes
        }
        _, compiled = fastest_predict(
            lambda size: model.predict(data.test, batch_size=size),
            sizes,
            args.predict_repeats,
            len(data.test),
        )
        record["predict_rows_per_second_compiled"] = compiled["predict_rows_per_second"]
        record["predict_batch_size_compiled"] = compiled["predict_batch_size"]
        record["peak_rss_mb_compiled"] = round(peak_rss_mb(), 1)

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
            "auc": {t: metrics[t]["auc"] for t in spec["tasks"]},
            "parameters": model.num_parameters(),
            "threads": torch.get_num_threads(),
        }
    )
    emit(record)


if __name__ == "__main__":
    main()
