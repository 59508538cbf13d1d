"""Benchmark worker: one NextRec 0.6.14 multi-task model on label-encoded inputs."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import numpy as np
import torch
from _common import PeerData, emit, fastest_predict, parse_args, peer_data, peer_record, timed
from nextrec.basic.features import DenseFeature, SparseFeature
from nextrec.engine.model import Model
from nextrec.models.multitask.aitm import AITM
from nextrec.models.multitask.cross_stitch import CrossStitch
from nextrec.models.multitask.mmoe import MMOE
from nextrec.models.multitask.pepnet import PEPNet
from nextrec.models.multitask.ple import PLE
from nextrec.models.multitask.poso import POSO
from nextrec.models.multitask.share_bottom import ShareBottom
from nextrec.models.multitask.snr_trans import SNRTrans

COMMON_NOTE = (
    "gradient norm clipped to 1.0 every step (Model.max_gradient_norm, fixed, not an "
    "argument); a learned output bias per task after the towers; embeddings init "
    "N(0, 1e-4), padding_idx=0 (id 0 = values unseen in training: that row keeps its init); "
    "fit builds batches row by row (TensorDictDataset + collate_fn), computes the training "
    "AUC over each epoch's predictions, logs to stdout and a file, and saves the latest and "
    "the best (by training loss) weights each epoch (temp dir; none of these can be turned "
    "off); no validation set, early stopping, TensorBoard, summary and ignore_label off"
)


def mlp(units: Sequence[int]) -> dict[str, Any]:
    """NextRec MLP parameters of mtlrec's reference MLPs: ReLU, no dropout, no norm."""
    return {"hidden_dims": list(units), "activation": "relu", "dropout": 0.0, "norm_type": "none"}


def tower_params(cfg: dict[str, Any], tasks: int) -> list[dict[str, Any]]:
    """One MLP parameter dict per task from ``tower_units`` (one list, or one per task)."""
    units = cfg.get("tower_units", [])
    if units and isinstance(units[0], list | tuple):
        return [mlp(u) for u in units]
    return [mlp(units) for _ in range(tasks)]


def group(spec: dict[str, Any], name: str | None, model: str, option: str) -> list[str]:
    """The columns of the spec's feature group ``name`` (``option`` of ``model``'s config)."""
    groups = spec.get("groups") or {}
    if name is None or not groups.get(name):
        raise SystemExit(
            f"NextRec worker: {model} needs the feature group {option}={name!r} in spec.json's "
            f"'groups' (it has {sorted(groups)})"
        )
    return list(groups[name])


def build(
    name: str, cfg: dict[str, Any], spec: dict[str, Any], vocab: dict[str, int], folder: str
) -> tuple[Model, str]:
    """The NextRec model closest to mtlrec's ``name`` with config ``cfg``, and a note.

    ``folder`` is the model's session folder: NextRec writes its log file, metrics and
    per-epoch checkpoint there (by default ./nextrec_logs/<session>).
    """
    dim, tasks = spec["embedding_dim"], list(spec["tasks"])
    sparse_names, dense_names = list(spec["sparse"]), list(spec["dense"])
    common: dict[str, Any] = {
        "dense_features": [DenseFeature(c) for c in dense_names],
        "sparse_features": [
            SparseFeature(c, vocab_size=vocab[c], embedding_dim=dim) for c in sparse_names
        ],
        "sequence_features": [],
        "target": tasks,
        "task": ["binary"] * len(tasks),
        "device": "cpu",
        "session_id": folder,  # an absolute path: the session folder itself
    }
    towers = tower_params(cfg, len(tasks))
    linear_gates = f"gates are linear (no hidden layers: mtlrec gates have {cfg.get('gate_units')})"
    if name == "shared_bottom":
        return ShareBottom(
            bottom_mlp_params=mlp(cfg["bottom_units"]), tower_mlp_params_list=towers, **common
        ), ""
    if name == "mmoe":
        return MMOE(
            expert_mlp_params=mlp(cfg["expert_units"]),
            num_experts=cfg["num_experts"],
            tower_mlp_params_list=towers,
            **common,
        ), linear_gates
    if name in ("cgc", "ple"):
        levels = 1 if name == "cgc" else cfg.get("num_levels", 2)
        return PLE(
            shared_expert_mlp_params=mlp(cfg["expert_units"]),
            specific_expert_mlp_params=[mlp(cfg["expert_units"]) for _ in tasks],
            num_shared_experts=cfg["num_shared_experts"],
            num_specific_experts=cfg["num_specific_experts"],
            num_levels=levels,
            tower_mlp_params_list=towers,
            **common,
        ), f"{linear_gates}; computes the last level's shared gate and mix, unused"
    if name == "cross_stitch":
        note = (
            "cross-stitch units mix each unit separately (a T x T x H tensor per layer, "
            "starting at the identity) where mtlrec has one T x T matrix per layer starting "
            f"at {cfg.get('self_weight', 0.9)} on the diagonal"
        )
        return CrossStitch(
            shared_mlp_params={"hidden_dims": []},
            task_mlp_params=mlp(cfg["column_units"]),
            tower_mlp_params_list=towers,
            **common,
        ), note
    if name == "aitm":
        note = (
            f"mtlrec's per-task towers {list(cfg['tower_units'])} are NextRec's per-task "
            "bottoms, then a linear logit per task; the transfer's map of the previous task "
            "has no ReLU (mtlrec: relu(g(z))); calibrator loss off (calibrator_alpha=0)"
        )
        return AITM(
            bottom_mlp_params=mlp(cfg["tower_units"]),
            tower_mlp_params_list=[mlp([]) for _ in tasks],
            calibrator_alpha=0.0,
            **common,
        ), note
    if name == "poso":
        personal = group(spec, cfg.get("personal_group", "user"), name, "personal_group")
        note = (
            f"POSO(architecture='mmoe') with 1 expert as the shared bottom "
            f"{list(cfg['bottom_units'])}: only its last layer is gated (mtlrec gates every "
            "bottom layer); its 1-expert softmax task gates are constant 1 (their weights "
            "never train); personalisation features: " + ", ".join(personal)
        )
        return POSO(
            main_dense_features=dense_names,
            main_sparse_features=sparse_names,
            main_sequence_features=[],
            pc_dense_features=[c for c in personal if c in dense_names],
            pc_sparse_features=[c for c in personal if c in sparse_names],
            pc_sequence_features=[],
            tower_mlp_params_list=towers,
            architecture="mmoe",
            num_experts=1,
            expert_hidden_dims=list(cfg["bottom_units"]),
            expert_activation="relu",
            expert_dropout=0.0,
            expert_gate_hidden_dim=cfg.get("gate_units", 32),
            expert_gate_scale_factor=cfg.get("gate_scale", 2.0),
            **common,
        ), note
    if name == "pepnet":
        personal = group(spec, cfg.get("personal_group", "user"), name, "personal_group")
        domain = group(spec, cfg.get("domain_group"), name, "domain_group")
        gate = {"hidden_dim": cfg.get("gate_units", 32), "activation": "relu", "dropout": 0.0}
        note = (
            "PPNet gates each tower layer's input (the row and each hidden layer, the last "
            "gate at scale 1) where mtlrec gates each hidden layer's output; PPNet gates also "
            "read the domain features, all from the embeddings before EPNet, and every gate "
            "input is detached (mtlrec keeps the gradient into the domain / personal columns); "
            f"gate scale fixed at 2 (config {cfg.get('gate_scale', 2.0)}); "
            f"personal: {', '.join(personal)}; domain: {', '.join(domain)}"
        )
        return PEPNet(
            mlp_params=mlp(cfg["tower_units"]),
            feature_gate_mlp_params={**gate, "use_bn": False},
            gate_mlp_params={**gate, "use_bn": False},
            domain_features=domain,
            user_features=personal,
            **common,
        ), note
    if name == "snr_trans":
        units, experts = list(cfg["expert_units"]), cfg["num_experts"]
        extra = sum(experts * experts * u * u for u in units[:-1])
        routings = (
            f"routes after every expert layer ({len(units)} routings, all but the last "
            f"{experts} x {experts}: {extra} more transform weights) where mtlrec routes its "
            f"{len(units)}-layer experts once"
            if len(units) > 1
            else "one routing after one-layer experts, as mtlrec's"
        )
        note = (
            f"{routings}; transforms are H x H (routed units = {units[-1]}, config "
            f"{cfg.get('routed_units')}); coding variables "
            "z = clamp(1.2 sigmoid(logit(u) + log(alpha) / 0.9) - 0.1) with u learned per "
            "connection and one learned alpha per routing, no noise (mtlrec: hard concrete "
            "sampled in training, log alpha per connection)"
        )
        return SNRTrans(
            expert_mlp_params=mlp(units),
            num_experts=experts,
            tower_mlp_params_list=towers,
            **common,
        ), note
    raise SystemExit(f"NextRec worker: no counterpart for model {name!r}")


def main() -> None:
    args = parse_args()
    data = peer_data(args)
    with tempfile.TemporaryDirectory(prefix="nextrec-") as tmp:
        measure(args, data, lambda: build(args.model, data.config, data.spec, data.vocab, tmp))


def measure(
    args: argparse.Namespace, data: PeerData, make_model: Callable[[], tuple[Model, str]]
) -> None:
    """Warm up, time ``fit`` and the fastest ``predict`` of the model ``make_model``
    builds (a fresh one per call), and print the record."""
    bs, tasks = args.batch_size, data.tasks
    train = {**data.x_train, **{t: data.y_train[:, i] for i, t in enumerate(tasks)}}

    def run_fit(n_rows: int | None, epochs: int) -> tuple[Model, str, float]:
        torch.manual_seed(args.seed)
        model, note = make_model()
        model.compile(
            optimizer="adam",
            optimizer_params={"lr": args.lr},
            loss=["bce"] * len(tasks),
            ignore_label=None,
        )
        rows = train if n_rows is None else {k: v[:n_rows] for k, v in train.items()}
        _, seconds = timed(
            lambda: model.fit(
                rows,
                epochs=epochs,
                batch_size=bs,
                shuffle=True,
                metrics=["auc"],  # the default list includes GAUC, which needs a group id
                early_stop_patience=0,
                use_tensorboard=False,
                summary_sections=[],
            )
        )
        return model, note, seconds

    if not args.no_warmup:
        run_fit(8 * bs, 1)
    model, note, fit_seconds = run_fit(None, args.epochs)
    scores, predicted = fastest_predict(
        lambda size: model.predict(data.x_test, batch_size=size, return_dataframe=False),
        args.predict_batch_sizes,
        args.predict_repeats,
        len(data.y_test),
    )
    emit(
        peer_record(
            args,
            "nextrec",
            version("nextrec"),
            data,
            fit_seconds,
            predicted,
            np.asarray(scores),
            model,
            "; ".join(n for n in (note, COMMON_NOTE) if n),
        )
    )


if __name__ == "__main__":
    main()
