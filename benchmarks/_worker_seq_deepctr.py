"""Sequence benchmark worker: one DeepCTR-Torch 0.3.0 multi-task model with the user
history as a ``VarLenSparseFeat`` (mean pooling, sharing the item-id embedding through
``embedding_name``) on label-encoded inputs, histories post-padded with 0 to 50."""

from __future__ import annotations

from typing import Any

import deepctr_torch
import numpy as np
import torch
from _common import emit, fastest_predict, parse_args, peer_record, timed
from _sequence_data import peer_sequence_data
from _worker_deepctr import COMMON_NOTE, build  # importing it lets the version check finish
from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

SEQUENCE_NOTE = (
    "history: VarLenSparseFeat(combiner='mean', embedding_name=<shared column>), "
    "post-padded with 0 and masked on id 0 (an item unseen in training is dropped too)"
)


def main() -> None:
    args = parse_args()
    data, bs = peer_sequence_data(args), args.batch_size
    spec, tasks, x_train, y_train = data.spec, data.tasks, data.x_train, data.y_train
    dim = spec["embedding_dim"]
    columns = [
        SparseFeat(c, vocabulary_size=data.vocab[c], embedding_dim=dim) for c in spec["sparse"]
    ]
    columns += [
        VarLenSparseFeat(
            SparseFeat(
                s["name"],
                vocabulary_size=data.vocab[s["shares"]],
                embedding_dim=dim,
                embedding_name=s["shares"],
            ),
            maxlen=s["max_len"],
            combiner=s["pooling"],
        )
        for s in spec["sequence"]
    ]
    columns += [DenseFeat(c, 1) for c in spec["dense"]]

    def make() -> tuple[Any, str]:
        model, note = build(args.model, data.config, columns, tasks, args.seed)
        model.compile(
            torch.optim.Adam(model.parameters(), lr=args.lr),
            loss=["binary_crossentropy"] * len(tasks),
        )
        return model, note

    if not args.no_warmup:
        head = {k: v[: 8 * bs] for k, v in x_train.items()}
        make()[0].fit(head, y_train[: 8 * bs], batch_size=bs, epochs=1, verbose=0)

    model, note = make()
    _, fit_seconds = timed(
        lambda: model.fit(x_train, y_train, batch_size=bs, epochs=args.epochs, verbose=0)
    )
    scores, predicted = fastest_predict(
        lambda size: model.predict(data.x_test, batch_size=size),
        args.predict_batch_sizes,
        args.predict_repeats,
        len(data.y_test),
    )
    emit(
        peer_record(
            args,
            "deepctr",
            deepctr_torch.__version__,
            data,
            fit_seconds,
            predicted,
            np.asarray(scores),
            model,
            "; ".join(n for n in (note, SEQUENCE_NOTE, COMMON_NOTE) if n),
        )
    )


if __name__ == "__main__":
    main()
