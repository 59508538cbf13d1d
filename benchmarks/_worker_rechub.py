"""Benchmark worker: one torch-rechub 0.9.0 multi-task model on label-encoded inputs."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import numpy as np
import torch
from _common import emit, fastest_predict, parse_args, peer_data, peer_record, timed
from torch.utils.data import DataLoader
from torch_rechub.basic.features import DenseFeature, SparseFeature
from torch_rechub.models.multi_task import ESMM, MMOE, PLE, SharedBottom
from torch_rechub.trainers import MTLTrainer
from torch_rechub.utils.data import DataGenerator, PredictDataset

VALIDATION_ROWS = 1024  # MTLTrainer.fit needs a validation loader; keep its cost small
COMMON_NOTE = (
    "batch norm in every MLP layer; Adam weight_decay 1e-5 (documented default); "
    f"fit includes per-epoch validation on {VALIDATION_ROWS} train rows"
)


def build(
    name: str,
    cfg: dict[str, Any],
    spec: dict[str, Any],
    vocab: dict[str, int],
    extra_features: Sequence[Any] = (),
) -> tuple[torch.nn.Module, str]:
    """The torch-rechub model closest to mtlrec's ``name`` with config ``cfg``, and a note;
    ``extra_features`` (the sequence worker's histories) go between the sparse and the
    dense features.

    Feature objects are created per call: torch-rechub caches embedding tables on them.
    """
    dim, tasks = spec["embedding_dim"], spec["tasks"]
    sparse = [SparseFeature(c, vocab_size=vocab[c], embed_dim=dim) for c in spec["sparse"]]
    features = sparse + list(extra_features) + [DenseFeature(c) for c in spec["dense"]]
    types = ["classification"] * len(tasks)
    towers = [{"dims": list(cfg["tower_units"])} for _ in tasks]
    gates = "gates are linear (no hidden layers: mtlrec gates have {})".format(
        cfg.get("gate_units")
    )
    if name == "shared_bottom":
        return SharedBottom(features, types, {"dims": list(cfg["bottom_units"])}, towers), ""
    if name == "esmm":
        half = len(sparse) // 2
        note = (
            f"sparse features only ({len(spec['dense'])} dense dropped), split into user "
            f"{[f.name for f in sparse[:half]]} / item {[f.name for f in sparse[half:]]}; "
            "third (CVR) label column is a copy of the second, no loss on it"
        )
        tower = {"dims": list(cfg["tower_units"])}
        return ESMM(sparse[:half], sparse[half:], dict(tower), dict(tower)), note
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
    raise SystemExit(f"torch-rechub worker: no counterpart for model {name!r}")


def main() -> None:
    args = parse_args()
    data = peer_data(args)
    measure(args, data, lambda: build(args.model, data.config, data.spec, data.vocab))


def measure(
    args: Any,
    data: Any,
    make_model: Callable[[], tuple[torch.nn.Module, str]],
    extra_note: str = "",
) -> None:
    """Warm up, time ``fit`` and the fastest ``predict`` of the model ``make_model``
    builds (a fresh one per call), and print the record."""
    bs, x_train, y_train = args.batch_size, data.x_train, data.y_train
    esmm = args.model == "esmm"
    # ESMM returns [cvr, ctr, ctcvr] and wants three label columns (loss on the last two)
    y_fit = np.concatenate([y_train[:, 1:], y_train], axis=1) if esmm else y_train
    tmp = tempfile.TemporaryDirectory()

    def run_fit(n_rows: int | None, epochs: int) -> tuple[torch.nn.Module, MTLTrainer, str, float]:
        torch.manual_seed(args.seed)
        model, note = make_model()
        trainer = MTLTrainer(
            model,
            ["classification"] * y_fit.shape[1],
            optimizer_params={"lr": args.lr, "weight_decay": 1e-5},
            n_epoch=epochs,
            device="cpu",
            model_path=tmp.name,
        )
        x = x_train if n_rows is None else {k: v[:n_rows] for k, v in x_train.items()}
        y = y_fit if n_rows is None else y_fit[:n_rows]
        x_val = {k: v[:VALIDATION_ROWS] for k, v in x_train.items()}
        train_loader, val_loader, _ = DataGenerator(x, y).generate_dataloader(
            x_val=x_val,
            y_val=y_fit[:VALIDATION_ROWS],
            x_test=x_val,
            y_test=y_fit[:VALIDATION_ROWS],
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
    scores = np.asarray(scores)
    if esmm:  # columns [cvr, ctr, ctcvr] -> [ctr (task 0), ctcvr (task 1)]
        scores = scores[:, 1:]
    tmp.cleanup()
    emit(
        peer_record(
            args,
            "rechub",
            version("torch-rechub"),
            data,
            fit_seconds,
            predicted,
            scores,
            model,
            "; ".join(n for n in (note, extra_note, COMMON_NOTE) if n),
        )
    )


if __name__ == "__main__":
    main()
