"""Benchmark worker: one DeepCTR-Torch 0.3.0 multi-task model on label-encoded inputs."""

from __future__ import annotations

import threading
from typing import Any

import deepctr_torch
import numpy as np
import torch
from _common import emit, fastest_predict, parse_args, peer_data, peer_record, timed
from deepctr_torch.inputs import DenseFeat, SparseFeat
from deepctr_torch.models.multitask import ESMM, MMOE, PLE, SharedBottom

# DeepCTR-Torch starts an online version check in a thread on import: let it finish
for _thread in threading.enumerate():
    if _thread is not threading.main_thread():
        _thread.join(timeout=15)

COMMON_NOTE = (
    "hidden layers init N(0, 1e-4); loss summed over the batch; l2_reg_embedding 1e-5 (defaults)"
)


def build(
    name: str, cfg: dict[str, Any], columns: list, tasks: list[str], seed: int
) -> tuple[torch.nn.Module, str]:
    """The DeepCTR-Torch model closest to mtlrec's ``name`` with config ``cfg``, and a note."""
    common = {
        "task_types": ["binary"] * len(tasks),
        "task_names": tasks,
        "seed": seed,
        "device": "cpu",
    }
    if name == "shared_bottom":
        return SharedBottom(
            columns,
            bottom_dnn_hidden_units=cfg["bottom_units"],
            tower_dnn_hidden_units=cfg["tower_units"],
            **common,
        ), ""
    if name == "esmm":
        return (
            ESMM(columns, tower_dnn_hidden_units=cfg["tower_units"], **common),
            "CTR and CVR towers share one output bias",
        )
    if name == "mmoe":
        return MMOE(
            columns,
            num_experts=cfg["num_experts"],
            expert_dnn_hidden_units=cfg["expert_units"],
            gate_dnn_hidden_units=cfg["gate_units"],
            tower_dnn_hidden_units=cfg["tower_units"],
            **common,
        ), ""
    if name in ("cgc", "ple"):
        specific, shared = cfg["num_specific_experts"], cfg["num_shared_experts"]
        note = (
            f"builds {specific} shared experts per level instead of {shared} (uses {shared}, "
            "extra ones inflate parameters); computes the last level's shared gate unused"
        )
        if shared > specific:  # would crash with an index error
            shared = specific
            note += f"; shared experts cut to {specific} (crashes when shared > specific)"
        return PLE(
            columns,
            shared_expert_num=shared,
            specific_expert_num=specific,
            num_levels=cfg.get("num_levels", 1),
            expert_dnn_hidden_units=cfg["expert_units"],
            gate_dnn_hidden_units=cfg["gate_units"],
            tower_dnn_hidden_units=cfg["tower_units"],
            **common,
        ), note
    raise SystemExit(f"DeepCTR-Torch worker: no counterpart for model {name!r}")


def main() -> None:
    args = parse_args()
    data = peer_data(args)
    spec = data.spec
    columns = [
        SparseFeat(c, vocabulary_size=data.vocab[c], embedding_dim=spec["embedding_dim"])
        for c in spec["sparse"]
    ] + [DenseFeat(c, 1) for c in spec["dense"]]
    measure(args, data, columns)


def measure(args: Any, data: Any, columns: list, extra_note: str = "") -> None:
    """Warm up, time ``fit`` and the fastest ``predict`` of the model for ``columns``,
    and print the record (the sequence worker passes its history column too)."""
    bs, tasks, x_train, y_train = args.batch_size, data.tasks, data.x_train, data.y_train

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
            "; ".join(n for n in (note, extra_note, COMMON_NOTE) if n),
        )
    )


if __name__ == "__main__":
    main()
