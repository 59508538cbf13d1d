"""ONNX export: a fitted model's network and heads as one graph over the encoded tensors.

The graph's inputs are what :meth:`Preprocessor.transform` produces, with a dynamic
batch axis: ``sparse`` (N, S) int64 ids, ``dense`` (N, D) float32 scaled values, and,
with sequence features, ``sequences`` (N, L) int64 padded item ids and ``lengths``
(N, Q) int64. Its outputs are named per output of the model: each task's prediction in
its labels' units (probabilities, values, means; (N, K) class probabilities for a
multiclass task) and a funnel's joint probabilities under their names -- exactly what
``model.predict`` returns. Beside the ``.onnx`` file, a ``.preprocessing.json`` file
holds what a server in any language needs to encode raw rows: the column order of
each input, the vocabularies or hash settings, the id conventions, the scalers.

The graph is traced with torch's TorchScript-based exporter (``dynamo=False``): it needs
only ``onnx`` (``pip install "mtlrec[onnx]"``), and it records the eager forward the
tests compare against. onnxruntime checks it (``tests/test_export.py``: every
architecture x head and a funnel, max absolute difference <= 1e-5).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .data import Batch
from .exceptions import ConfigError

if TYPE_CHECKING:
    from .estimator import MultiTaskModel

#: the ONNX opset the graphs use
OPSET = 17
_FORMAT = "mtlrec-onnx-preprocessing"


class _Predictions(nn.Module):
    """The network and its heads' activations over encoded tensors, outputs in order."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.network = model.network
        self.heads = model._heads()
        self.names = list(model.network.output_names)

    def forward(self, sparse, dense, sequences=None, lengths=None):
        batch = Batch(sparse, dense, sequences=sequences, lengths=lengths)
        logits = self.network(batch).named()
        return tuple(self.heads[n].activate(logits[n].float()) for n in self.names)


def preprocessing_spec(model: MultiTaskModel) -> dict:
    """What encodes raw rows into the graph's inputs (see the module docstring)."""
    pre = model.preprocessor
    return {
        "format": _FORMAT,
        "version": 1,
        "inputs": {
            "sparse": [f.name for f in pre.sparse_features],
            "dense": [f.name for f in pre.dense_features],
            "sequences": [
                {"name": f.name, "max_len": f.max_len, "separator": f.separator}
                for f in pre.sequence_features
            ],
        },
        "ids": "0 missing, 1 unknown, 2.. the vocabulary's values in order (or the buckets "
        "of hash_buckets); a sequence holds its last max_len items first-aligned, padded "
        "with 0, and lengths counts the real ones",
        "dense": f"missing -> the training mean, then (x - offset) / scale ({pre.scaling})",
        "outputs": list(model.network.output_names),
        "preprocessor": pre.to_dict(),
    }


def export_onnx(model: MultiTaskModel, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``model`` as ONNX to ``path`` (``.onnx``) and its preprocessing spec beside
    it (``<stem>.preprocessing.json``); returns the ONNX file's path. An existing file
    needs ``overwrite``."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise ConfigError(
            'ONNX export needs the onnx package: pip install "mtlrec[onnx]"'
        ) from None
    path = Path(path)
    if path.suffix != ".onnx":
        raise ConfigError(f"{path}: give a file name ending in .onnx")
    spec_path = path.with_suffix(".preprocessing.json")
    existing = [str(p) for p in (path, spec_path) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass overwrite=True")
    network = model.network
    was_training = network.training
    network.eval()
    module = _Predictions(model).eval()
    args, names = _example_inputs(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # with gradients on: the blocks take their autograd-friendly paths (a no-grad
        # forward writes some products into preallocated buffers, out=, which the tracer
        # records as constants)
        with warnings.catch_warnings(), torch.enable_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow
            torch.onnx.export(
                module,
                tuple(args),
                str(path),
                input_names=names,
                output_names=module.names,
                dynamic_axes={n: {0: "rows"} for n in [*names, *module.names]},
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        network.train(was_training)
    spec_path.write_text(json.dumps(preprocessing_spec(model)))
    return path


def _example_inputs(model: MultiTaskModel) -> tuple[list[torch.Tensor], list[str]]:
    """Two rows of encoded inputs to trace with (missing ids, zeros, one unknown item per
    sequence so the graph has items to pool), and the inputs' names."""
    pre, device = model.preprocessor, model.device
    rows = 2
    args = [
        torch.zeros(rows, len(pre.sparse_features), dtype=torch.long, device=device),
        torch.zeros(rows, len(pre.dense_features), dtype=torch.float32, device=device),
    ]
    names = ["sparse", "dense"]
    sequences = pre.sequence_features
    if sequences:
        width = sum(f.max_len for f in sequences)
        args.append(torch.ones(rows, width, dtype=torch.long, device=device))
        args.append(torch.ones(rows, len(sequences), dtype=torch.long, device=device))
        names += ["sequences", "lengths"]
    return args, names
