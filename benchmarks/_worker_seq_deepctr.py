"""Sequence benchmark worker: one DeepCTR-Torch 0.3.0 multi-task model with the user
history as a ``VarLenSparseFeat`` (mean pooling, sharing the item-id embedding through
``embedding_name``) on label-encoded inputs, histories post-padded with 0 to 50."""

from __future__ import annotations

from _common import parse_args
from _sequence_data import peer_sequence_data
from _worker_deepctr import measure  # importing it lets the version check finish
from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

SEQUENCE_NOTE = (
    "history: VarLenSparseFeat(combiner='mean', embedding_name=<shared column>), "
    "post-padded with 0 and masked on id 0 (an item unseen in training is dropped too)"
)


def main() -> None:
    args = parse_args()
    data = peer_sequence_data(args)
    spec = data.spec
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
    measure(args, data, columns, SEQUENCE_NOTE)


if __name__ == "__main__":
    main()
