"""Sequence benchmark worker: one torch-rechub 0.9.0 multi-task model with the user
history as a ``SequenceFeature`` (``pooling="mean"``, ``shared_with`` the item id) on
label-encoded inputs, histories post-padded with 0 to 50."""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from typing import Any

import numpy as np
import torch
from _common import emit, fastest_predict, parse_args, peer_record, timed
from _sequence_data import peer_sequence_data
from _worker_rechub import COMMON_NOTE, VALIDATION_ROWS
from torch.utils.data import DataLoader
from torch_rechub.basic.features import DenseFeature, SequenceFeature, SparseFeature
from torch_rechub.models.multi_task import MMOE, PLE, SharedBottom
from torch_rechub.trainers import MTLTrainer
from torch_rechub.utils.data import DataGenerator, PredictDataset

SEQUENCE_NOTE = (
    "history: SequenceFeature(pooling='mean', shared_with=<shared column>, padding_idx=0): "
    "without padding_idx torch-rechub masks only -1 and would average the 0 padding in; "
    "an item unseen in training (id 0) is dropped too"
)


def build(
    name: str, cfg: dict[str, Any], spec: dict[str, Any], vocab: dict[str, int]
) -> tuple[torch.nn.Module, str]:
    """The torch-rechub model closest to mtlrec's ``name`` (as ``_worker_rechub.build``,
    ESMM left out) with the sequence features added, and a note.

    Feature objects are created here: torch-rechub caches embedding tables on them.
    """
    dim, tasks = spec["embedding_dim"], spec["tasks"]
    features: list[Any] = [
        SparseFeature(c, vocab_size=vocab[c], embed_dim=dim) for c in spec["sparse"]
    ]
    features += [
        SequenceFeature(
            s["name"],
            vocab_size=vocab[s["shares"]],
            embed_dim=dim,
            pooling=s["pooling"],
            shared_with=s["shares"],
            padding_idx=0,
        )
        for s in spec["sequence"]
    ]
    features += [DenseFeature(c) for c in spec["dense"]]
    types = ["classification"] * len(tasks)
    towers = [{"dims": list(cfg["tower_units"])} for _ in tasks]
    gates = "gates are linear (no hidden layers: mtlrec gates have {})".format(
        cfg.get("gate_units")
    )
    if name == "shared_bottom":
        return SharedBottom(features, types, {"dims": list(cfg["bottom_units"])}, towers), ""
    if name == "mmoe":
        return MMOE(
            features, types, cfg["num_experts"], {"dims": list(cfg["expert_units"])}, towers
        ), gates
    if name in ("cgc", "ple"):
        return PLE(
            features,
            types,
            cfg.get("num_levels", 1),
            cfg["num_specific_experts"],
            cfg["num_shared_experts"],
            {"dims": list(cfg["expert_units"])},
            towers,
        ), gates
    raise SystemExit(f"torch-rechub sequence worker: no counterpart for model {name!r}")


def main() -> None:
    args = parse_args()
    data, bs = peer_sequence_data(args), args.batch_size
    x_train, y_train = data.x_train, data.y_train
    tmp = tempfile.TemporaryDirectory()

    def run_fit(n_rows: int | None, epochs: int) -> tuple[torch.nn.Module, MTLTrainer, str, float]:
        torch.manual_seed(args.seed)
        model, note = build(args.model, data.config, data.spec, data.vocab)
        trainer = MTLTrainer(
            model,
            ["classification"] * y_train.shape[1],
            optimizer_params={"lr": args.lr, "weight_decay": 1e-5},
            n_epoch=epochs,
            device="cpu",
            model_path=tmp.name,
        )
        x = x_train if n_rows is None else {k: v[:n_rows] for k, v in x_train.items()}
        y = y_train if n_rows is None else y_train[:n_rows]
        x_val = {k: v[:VALIDATION_ROWS] for k, v in x_train.items()}
        train_loader, val_loader, _ = DataGenerator(x, y).generate_dataloader(
            x_val=x_val,
            y_val=y_train[:VALIDATION_ROWS],
            x_test=x_val,
            y_test=y_train[:VALIDATION_ROWS],
            batch_size=bs,
        )
        _, seconds = timed(lambda: trainer.fit(train_loader, val_loader))
        return model, trainer, note, seconds

    if not args.no_warmup:
        run_fit(8 * bs, 1)
    model, trainer, note, fit_seconds = run_fit(None, args.epochs)

    def predict(size: int | None) -> Any:
        loader = DataLoader(PredictDataset(data.x_test), batch_size=size, shuffle=False)
        return trainer.predict(model, loader)

    scores, predicted = fastest_predict(
        predict, args.predict_batch_sizes, args.predict_repeats, len(data.y_test)
    )
    tmp.cleanup()
    emit(
        peer_record(
            args,
            "rechub",
            version("torch-rechub"),
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
