"""Sequence benchmark worker: one torch-rechub 0.9.0 multi-task model with the user
history as a ``SequenceFeature`` (``pooling="mean"``, ``shared_with`` the item id) on
label-encoded inputs, histories post-padded with 0 to 50."""

from __future__ import annotations

from typing import Any

import torch
from _common import parse_args
from _sequence_data import peer_sequence_data
from _worker_rechub import build, measure
from torch_rechub.basic.features import SequenceFeature

SEQUENCE_NOTE = (
    "history: SequenceFeature(pooling='mean', shared_with=<shared column>, padding_idx=0): "
    "without padding_idx torch-rechub masks only -1 and would average the 0 padding in; "
    "an item unseen in training (id 0) is dropped too"
)


def sequence_features(spec: dict[str, Any], vocab: dict[str, int]) -> list[Any]:
    """Fresh torch-rechub ``SequenceFeature`` objects of the histories (each shares its
    item column's table; torch-rechub caches embedding tables on feature objects)."""
    return [
        SequenceFeature(
            s["name"],
            vocab_size=vocab[s["shares"]],
            embed_dim=spec["embedding_dim"],
            pooling=s["pooling"],
            shared_with=s["shares"],
            padding_idx=0,
        )
        for s in spec["sequence"]
    ]


def main() -> None:
    args = parse_args()
    data = peer_sequence_data(args)

    def make_model() -> tuple[torch.nn.Module, str]:
        extra = sequence_features(data.spec, data.vocab)
        return build(args.model, data.config, data.spec, data.vocab, extra)

    measure(args, data, make_model, SEQUENCE_NOTE)


if __name__ == "__main__":
    main()
