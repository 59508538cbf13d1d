"""The Keras/sklearn-like face of mtlrec: build, ``fit``, ``evaluate``, ``predict``, ``save``.

``MMoE(features, tasks, num_experts=8)`` stores its arguments only; ``fit`` learns the
preprocessor from the training table, builds the network and trains it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import ColumnBatch, iterate_batches
from .exceptions import ConfigError, DataError, NotFittedError
from .features import Feature, check_features
from .heap import release_freed_memory, retain_freed_memory
from .layers import BankLinear
from .metrics import task_metrics
from .models import InputSpec, MultiTaskNetwork, make_config, network_class
from .preprocessing import Preprocessor
from .tasks import Task, check_tasks
from .training import EarlyStopping, build_optimizers, train

#: widest activation of a training micro-batch: twice an inference chunk's, since the
#: backward pass's matmuls gain more from larger blocks than they lose to cache misses
#: (MMoE at batch 2048: 2048-row micro-batches 13 % faster than 1024, docs/benchmarks.md)
TRAINING_CACHE_BYTES = 6 << 20


def inference_rows(network: MultiTaskNetwork, cache_bytes: int = 3 << 20) -> int:
    """Rows per inference chunk: a power of two whose widest activation stays in cache.

    Measured on a 2-core Xeon (2 MiB L2 per core), predicting Adult's test rows in fresh
    processes: CGC and PLE (20 experts x 64 units) run 30 % and 55 % faster in chunks of
    512 rows (3 MiB) than of 1024 (6 MiB); narrow models prefer large chunks.
    """
    widest = max(
        (m.width for m in network.modules() if isinstance(m, BankLinear)),
        default=1,
    )
    rows = cache_bytes // (4 * widest)
    return int(min(8192, max(256, 1 << max(rows, 1).bit_length() - 1)))


class MultiTaskModel:
    """A multi-task model of any registered architecture.

    Args:
        features: the input columns (:class:`SparseFeature`, :class:`DenseFeature`).
        tasks: the targets (:class:`Task`), in output order.
        architecture: registered architecture name (see :func:`list_models`); the
            named subclasses (``MMoE``, ``PLE``, ...) fill it in.
        scaling: dense scaling, ``"minmax"`` or ``"standard"``.
        seed: seeds weight initialisation, dropout and batch order.
        device: torch device to train and predict on (``"cpu"``, ``"cuda"``).
        **params: hyperparameters of the architecture (its config dataclass in
            :mod:`mtlrec.models`), e.g. ``num_experts=8, expert_units=[64, 64]``.
    """

    architecture: str | None = None

    def __init__(
        self,
        features: Sequence[Feature],
        tasks: Sequence[Task | str],
        *,
        architecture: str | None = None,
        scaling: str = "minmax",
        seed: int = 0,
        device: str | torch.device = "cpu",
        **params: Any,
    ) -> None:
        architecture = architecture or self.architecture
        if architecture is None:
            raise ConfigError("architecture: give a registered name, e.g. 'mmoe'")
        network_class(architecture)  # unknown names fail here, listing the valid ones
        self.features = check_features(features)
        self.tasks = check_tasks(tasks, {f.name for f in self.features})
        self.architecture = architecture
        self.config = make_config(architecture, params, len(self.tasks))
        self.preprocessor = Preprocessor(self.features, self.tasks, scaling=scaling)
        self.seed = seed
        self.device = torch.device(device)
        self.network_: MultiTaskNetwork | None = None
        self.history_: list[dict] = []
        self._compiled: Callable | None = None

    # ------------------------------------------------------------------ building
    def build(self) -> MultiTaskNetwork:
        """Create the network for the fitted preprocessor (fresh weights from ``seed``)."""
        pre = self.preprocessor
        spec = InputSpec(
            vocabulary_sizes=pre.vocabulary_sizes,
            embedding_dims=[f.embedding_dim for f in pre.sparse_features],
            num_dense=len(pre.dense_features),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            network = network_class(self.architecture)(spec, self.tasks, self.config)
        self.network_ = network.to(self.device)
        self._compiled = None  # a new network drops a compiled forward
        return self.network_

    @property
    def network(self) -> MultiTaskNetwork:
        if self.network_ is None:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(train) or load a bundle"
            )
        return self.network_

    def num_parameters(self) -> int:
        """Trainable parameters of the fitted network."""
        return sum(p.numel() for p in self.network.parameters() if p.requires_grad)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        train_data: Any,
        validation: Any = None,
        *,
        epochs: int = 5,
        batch_size: int = 256,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        early_stopping: str | EarlyStopping | None = None,
        patience: int = 2,
        seed: int | None = None,
        sparse_embeddings: bool | None = None,
        verbose: int = 1,
    ) -> MultiTaskModel:
        """Fit the preprocessor on ``train_data``, build the network and train it.

        Args:
            train_data: a pandas DataFrame, pyarrow Table or dict of arrays with every
                feature and label column.
            validation: a table like ``train_data``, evaluated after every epoch.
            epochs, batch_size, optimizer, lr, weight_decay: the optimisation.
            early_stopping: ``"task"`` / ``"task/metric"`` or an :class:`EarlyStopping`;
                needs ``validation``. Training stops after ``patience`` epochs without
                improvement and keeps the best epoch's weights.
            seed: overrides the constructor's seed for this fit.
            sparse_embeddings: update only the embedding rows a batch uses (SparseAdam for
                Adam). Default: on when the tables hold >= 100,000 rows, so an epoch costs
                time linear in rows however large the vocabularies.
            verbose: 0 silent, 1 progress bar and one line per epoch (on stderr).

        Returns:
            self, with ``history_`` holding one record per epoch.
        """
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        stopper = None
        if early_stopping is not None:
            if validation is None:
                raise ConfigError("early_stopping needs validation data: pass validation=...")
            stopper = EarlyStopping.parse(early_stopping, patience)
            stopper.check(self.tasks)
        if seed is not None:
            self.seed = seed
        retain_freed_memory()
        data = self.preprocessor.fit_transform(train_data).to(self.device)
        val = None if validation is None else self.preprocessor.transform(validation)
        network = self.build()
        opt = build_optimizers(network, optimizer, lr, weight_decay, sparse_embeddings)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.history_ = train(
                network,
                data,
                epochs=epochs,
                batch_size=batch_size,
                optimizer=opt,
                generator=generator,
                early_stopping=stopper,
                verbose=verbose,
                validate=None if val is None else (lambda: self._metrics(val)),
                # activations kept for backward: micro-batches sized like a chunk
                micro_batch=None
                if self.config.batch_norm
                else inference_rows(network, TRAINING_CACHE_BYTES),
            )
        release_freed_memory()
        return self

    # ------------------------------------------------------------------ inference
    def compile_inference(self) -> MultiTaskModel:
        """Run ``predict`` and ``evaluate`` through a ``torch.compile``-d forward pass.

        Opt-in: the first prediction pays a one-off compilation (seconds; on CPU it needs
        a C++ compiler) and later ones run fused kernels. A prediction that folds the
        embeddings into the first layers (``mtlrec.layers.folding``) runs eagerly
        instead: on Adult that is 1.1-1.5x faster than the compiled forward. The last
        chunk is padded to the chunk size, so one compiled shape serves any number of
        rows. If compilation fails, mtlrec warns and predicts without it. ``fit`` drops
        the compiled forward.
        """
        self._compiled = torch.compile(self.network.compute, dynamic=False)
        return self

    def _forward(self, batch: ColumnBatch, rows: int) -> torch.Tensor:
        """Logits (O, B) of one chunk, through the compiled forward when there is one and
        the input is not folded."""
        network = self.network
        if self._compiled is None or network.embedding.folded is not None:
            return network.compute(batch.sparse, batch.dense)[0]
        n, pad = len(batch), rows - len(batch)
        sparse, dense = batch.sparse, batch.dense
        if pad > 0:  # id 0 (missing) and 0.0 are valid inputs; padded rows are dropped
            sparse = torch.cat([sparse, sparse.new_zeros(pad, sparse.shape[1])])
            dense = torch.cat([dense, dense.new_zeros(pad, dense.shape[1])])
        try:
            return self._compiled(sparse, dense)[0][:, :n]
        except Exception as error:  # no C++ compiler, unsupported op, ...
            warnings.warn(
                f"compile_inference: torch.compile failed ({type(error).__name__}: {error}); "
                "predicting without it",
                RuntimeWarning,
                stacklevel=4,
            )
            self._compiled = None
            return network.compute(batch.sparse, batch.dense)[0]

    @torch.inference_mode()
    def _outputs(self, data: ColumnBatch, batch_size: int | None) -> dict[str, torch.Tensor]:
        """Probabilities (binary) or values (regression) per output, on the CPU."""
        network = self.network
        network.eval()
        retain_freed_memory()
        batch_size = batch_size or inference_rows(network)
        chunks = []
        with network.folded_input(len(data)):
            for batch in iterate_batches(data, batch_size):
                chunks.append(self._forward(batch.to(self.device), batch_size))  # (O, B)
        logits = torch.cat(chunks, dim=1).float().cpu()  # (O, N)
        types = {t.name: t.type for t in self.tasks}
        return {
            name: row if types.get(name) == "regression" else torch.sigmoid(row)
            for name, row in zip(network.output_names, logits, strict=True)
        }

    def predict(self, data: Any, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Predictions for raw rows (or a transformed ColumnBatch): {output: array (N,)}.

        Binary outputs are probabilities, regression outputs values. ``batch_size``
        defaults to a chunk size that keeps activations in cache.
        """
        network = self.network
        batch = self._as_batch(data, with_labels=False)
        outputs = self._outputs(batch, batch_size)
        return {name: outputs[name].numpy() for name in network.output_names}

    def evaluate(self, data: Any, batch_size: int | None = None) -> dict[str, dict[str, float]]:
        """Per-task metrics on labelled rows: AUC and log loss (binary), MAE and RMSE."""
        self.network  # noqa: B018 - raises NotFittedError before any work
        return self._metrics(self._as_batch(data, with_labels=True), batch_size)

    def _as_batch(self, data: Any, with_labels: bool) -> ColumnBatch:
        """Raw rows through the fitted preprocessor; a ColumnBatch is taken as it is."""
        if isinstance(data, ColumnBatch):
            if with_labels and data.labels is None:
                raise DataError("evaluate needs labels: this ColumnBatch has none")
            return data
        return self.preprocessor.transform(data, with_labels=with_labels)

    def _metrics(
        self, data: ColumnBatch, batch_size: int | None = None
    ) -> dict[str, dict[str, float]]:
        outputs = self._outputs(data, batch_size)
        labels = data.labels.cpu().numpy()
        result = {
            t.name: task_metrics(t.type, labels[:, i], outputs[t.name].numpy())
            for i, t in enumerate(self.tasks)
        }
        if self.architecture == "esmm":  # CVR is judged on clicked rows only (ESMM paper)
            clicked = labels[:, 0] == 1
            conversions = labels[clicked, 1]
            if 0 < conversions.sum() < len(conversions):
                cvr = outputs[self.config.cvr_name].numpy()[clicked]
                result[self.config.cvr_name] = task_metrics("binary", conversions, cvr)
        return result

    @torch.inference_mode()
    def gate_weights(self, data: Any, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Gate weights for raw rows (or a ColumnBatch): {gate: array (N, experts)}; empty
        without gates."""
        network = self.network
        network.eval()
        batch = self._as_batch(data, with_labels=False)
        parts: dict[str, list[torch.Tensor]] = {}
        for chunk in iterate_batches(batch, batch_size or inference_rows(network)):
            chunk = chunk.to(self.device)
            for name, w in network.gate_weights(chunk.sparse, chunk.dense).items():
                parts.setdefault(name, []).append(w.float().cpu())
        return {name: torch.cat(ws).numpy() for name, ws in parts.items()}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the bundle folder (config + preprocessor JSON, safetensors weights)."""
        from .bundle import save_bundle

        return save_bundle(self, Path(path), overwrite=overwrite)

    def __repr__(self) -> str:
        state = "fitted" if self.network_ is not None else "not fitted"
        return (
            f"{type(self).__name__}(architecture={self.architecture!r}, "
            f"tasks={[t.name for t in self.tasks]}, {state})"
        )


class SingleTask(MultiTaskModel):
    """Single-task baseline: one independent network per task (no sharing)."""

    architecture = "single_task"


class SharedBottom(MultiTaskModel):
    """Shared-Bottom: a shared MLP under one tower per task (Caruana, 1997)."""

    architecture = "shared_bottom"


class OMoE(MultiTaskModel):
    """One-gate mixture of experts: all tasks share one gate over the experts."""

    architecture = "omoe"


class MMoE(MultiTaskModel):
    """Multi-gate mixture of experts (Ma et al., KDD 2018)."""

    architecture = "mmoe"


class CGC(MultiTaskModel):
    """Customized gate control: task-specific and shared experts (Tang et al., 2020)."""

    architecture = "cgc"


class PLE(MultiTaskModel):
    """Progressive layered extraction: stacked CGC levels (Tang et al., RecSys 2020)."""

    architecture = "ple"


class ESMM(MultiTaskModel):
    """Entire-space multi-task model: CTCVR = CTR x CVR (Ma et al., SIGIR 2018)."""

    architecture = "esmm"


def create_model(architecture: str, features, tasks, **kwargs: Any) -> MultiTaskModel:
    """A :class:`MultiTaskModel` of the architecture registered as ``architecture``."""
    return MultiTaskModel(features, tasks, architecture=architecture, **kwargs)
