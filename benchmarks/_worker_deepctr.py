"""Benchmark worker: one DeepCTR-Torch 0.3.0 multi-task model on label-encoded inputs."""

from __future__ import annotations

import json
import threading
from typing import Any

import deepctr_torch
import numpy as np
import torch
from _common import (
    auc_per_task,
    count_parameters,
    emit,
    encode_for_peers,
    fastest_predict,
    labels,
    load_dataset,
    parse_args,
    timed,
)
from deepctr_torch.inputs import DenseFeat, SparseFeat
from deepctr_torch.models.multitask import ESMM, MMOE, PLE, SharedBottom

# DeepCTR-Torch starts an online version check in a thread on import: let it finish
for _thread in threading.enumerate():
    if _thread is not threading.main_thread():
        _thread.join(timeout=15)

COMMON_NOTE = ("hidden layers init N(0, 1e-4); loss summed over the batch; "
               "l2_reg_embedding 1e-5 (defaults)")


def build(name: str, cfg: dict[str, Any], columns: list, tasks: list[str],
          seed: int) -> tuple[torch.nn.Module, str]:
    """The DeepCTR-Torch model closest to mtlrec's ``name`` with config ``cfg``, and a note."""
    common = {"task_types": ["binary"] * len(tasks), "task_names": tasks, "seed": seed,
              "device": "cpu"}
    if name == "shared_bottom":
        return SharedBottom(columns, bottom_dnn_hidden_units=cfg["bottom_units"],
                            tower_dnn_hidden_units=cfg["tower_units"], **common), ""
    if name == "esmm":
        return (ESMM(columns, tower_dnn_hidden_units=cfg["tower_units"], **common),
                "CTR and CVR towers share one output bias")
    if name == "mmoe":
        return MMOE(columns, num_experts=cfg["num_experts"],
                    expert_dnn_hidden_units=cfg["expert_units"],
                    gate_dnn_hidden_units=cfg["gate_units"],
                    tower_dnn_hidden_units=cfg["tower_units"], **common), ""
    if name in ("cgc", "ple"):
        specific, shared = cfg["num_specific_experts"], cfg["num_shared_experts"]
        note = (f"builds {specific} shared experts per level instead of {shared} (uses {shared}, "
                "extra ones inflate parameters); computes the last level's shared gate unused")
        if shared > specific:  # would crash with an index error
            shared = specific
            note += f"; shared experts cut to {specific} (crashes when shared > specific)"
        return PLE(columns, shared_expert_num=shared, specific_expert_num=specific,
                   num_levels=cfg.get("num_levels", 1),
                   expert_dnn_hidden_units=cfg["expert_units"],
                   gate_dnn_hidden_units=cfg["gate_units"],
                   tower_dnn_hidden_units=cfg["tower_units"], **common), note
    raise SystemExit(f"DeepCTR-Torch worker: no counterpart for model {name!r}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    spec, cfg, tasks, bs = data.spec, json.loads(args.config), data.spec["tasks"], args.batch_size
    x_train, x_test, vocab = encode_for_peers(data)
    y_train, y_test = labels(data.train, tasks), labels(data.test, tasks)
    columns = [SparseFeat(c, vocabulary_size=vocab[c], embedding_dim=spec["embedding_dim"])
               for c in spec["sparse"]] + [DenseFeat(c, 1) for c in spec["dense"]]

    def make() -> tuple[Any, str]:
        model, note = build(args.model, cfg, columns, tasks, args.seed)
        model.compile(torch.optim.Adam(model.parameters(), lr=args.lr),
                      loss=["binary_crossentropy"] * len(tasks))
        return model, note

    if not args.no_warmup:
        head = {k: v[: 8 * bs] for k, v in x_train.items()}
        make()[0].fit(head, y_train[: 8 * bs], batch_size=bs, epochs=1, verbose=0)

    model, note = make()
    _, fit_seconds = timed(lambda: model.fit(x_train, y_train, batch_size=bs,
                                             epochs=args.epochs, verbose=0))
    scores, predicted = fastest_predict(lambda size: model.predict(x_test, batch_size=size),
                                        args.predict_batch_sizes, args.predict_repeats,
                                        len(y_test))
    record: dict[str, Any] = {
        "library": "deepctr", "version": deepctr_torch.__version__, "torch": torch.__version__,
        "model": args.model, "batch_size": bs, "epochs": args.epochs,
        "train_rows": len(y_train), "test_rows": len(y_test),
        "fit_seconds": fit_seconds,
        "train_samples_per_second": len(y_train) * args.epochs / fit_seconds,
        **predicted,
        "auc": auc_per_task(y_test, np.asarray(scores), tasks),
        "parameters": count_parameters(model),
        "threads": torch.get_num_threads(),
        "note": "; ".join(n for n in (note, COMMON_NOTE) if n),
    }
    emit(record)


if __name__ == "__main__":
    main()
