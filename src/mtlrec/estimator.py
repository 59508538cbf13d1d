"""The Keras/sklearn-like face of mtlrec: build, ``fit``, ``evaluate``, ``predict``, ``save``.

``MMoE(features, tasks, num_experts=8)`` stores its arguments only; ``fit`` learns the
preprocessor from the training table, builds the network and trains it. The named
classes (``MMoE``, ``PLE``, ...) are made from the architecture registry: one per
registered architecture, named by its ``facade_name``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import torch

from . import inspection, runtime
from ._validation import as_array, as_columns, as_numpy, column_names
from .balancers import Balancer, make_balancer
from .bundle import read_bundle, write_bundle, written_by
from .checkpoint import Checkpoints, latest_checkpoint
from .data import Batch, iterate_batches
from .distributed import Group, current_group
from .exceptions import (
    BundleError,
    ConfigError,
    DataError,
    NotFittedError,
    UndefinedMetricError,
    UndefinedMetricWarning,
    warn,
)
from .features import Feature, check_features, feature_to_dict, groups_of
from .heads import HEADS
from .layers import BankLinear, GateBank
from .metrics import METRIC_ALIASES, gauc, undefined
from .models import ARCHITECTURES, InputSpec, MultiTaskNetwork, make_config, network_class
from .objective import Objective, funnel
from .preprocessing import Preprocessor
from .sources import (
    SHUFFLE_BUFFER,
    InMemorySource,
    StreamSource,
    concat_batches,
    describe_data,
    is_stream,
    open_dataset,
    part_of,
)
from .tasks import Task, check_tasks, task_to_dict
from .training import (
    OPTIMIZER_NAMES,
    EarlyStopping,
    Optimizers,
    build_optimizers,
    say,
    train,
)

logger = logging.getLogger(__name__)

#: widest activation of a training micro-batch: twice an inference chunk's, since the
#: backward pass's matmuls gain more from larger blocks than they lose to cache misses
#: (MMoE at batch 2048: 2048-row micro-batches 13 % faster than 1024, docs/benchmarks.md)
TRAINING_CACHE_BYTES = 6 << 20
#: rows of a stream read to start the output layers at the label priors
PRIOR_ROWS = 100_000
#: the preprocessor a checkpoint folder keeps (a resumed run encodes as it did)
PREPROCESSOR_FILE = "preprocessor.json"


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


class Predictions(dict):
    """{output name: predictions}, in the model's output order, that also takes an
    output's position: ``p[0]`` is the first output's array, as in Keras' list."""

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int) and not isinstance(key, bool):
            names = list(self)
            if not -len(names) <= key < len(names):
                raise IndexError(f"output {key} of {len(names)} outputs {names}")
            key = names[key]
        return super().__getitem__(key)


class MultiTaskModel:
    """A multi-task model of any registered architecture.

    Args:
        features: the input columns (:class:`SparseFeature`, :class:`SequenceFeature`,
            :class:`DenseFeature`).
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
        network = network_class(architecture)  # unknown names fail here, listing the valid ones
        self.features = check_features(features)
        tasks = check_tasks(tasks, {f.name for f in self.features})
        self.architecture = architecture
        self.config = make_config(architecture, params, len(tasks))
        self.config.check_groups(groups_of(self.features))
        self.tasks = network.prepare_tasks(tasks, self.config)
        self.preprocessor = Preprocessor(self.features, self.tasks, scaling=scaling)
        self.seed = seed
        self.device = torch.device(device)
        self.network_: MultiTaskNetwork | None = None
        self.history_: list[dict] = []
        self.expert_utilisation_: dict[str, Any] | None = None
        self._compiled: Callable | None = None
        # Keras-style compile: the optimizer fit uses by default, the metrics reported
        self._optimizer_name = "adam"
        self._metric_choice: dict[str | None, list[str]] | None = None
        # the last fit's optimizers and their settings, which a warm start continues
        self._optimizers: Optimizers | None = None
        self._optimizer_settings: tuple | None = None

    # ------------------------------------------------------------------ building
    def build(self) -> MultiTaskNetwork:
        """Create the network for the fitted preprocessor (fresh weights from ``seed``)."""
        pre = self.preprocessor
        spec = InputSpec(
            vocabulary_sizes=pre.vocabulary_sizes,
            embedding_dims=[f.dim for f in pre.sparse_features],
            num_dense=len(pre.dense_features),
            outputs=pre.outputs_per_task,
            layout=pre.input_layout(),
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
        y: Any = None,
        *,
        validation: Any = None,
        validation_data: Any = None,
        validation_split: float = 0.0,
        epochs: int = 5,
        batch_size: int = 256,
        optimizer: str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        early_stopping: str | EarlyStopping | None = None,
        patience: int = 2,
        sample_weight: str | Any = None,
        seed: int | None = None,
        sparse_embeddings: bool | None = None,
        threads: int | None = None,
        fast: bool = True,
        balancer: str | Balancer | None = None,
        warm_start: bool = False,
        verbose: int = 1,
        shuffle_buffer: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ) -> MultiTaskModel:
        """Fit the preprocessor on ``train_data``, build the network and train it; with
        ``warm_start``, train the fitted network further.

        A second ``fit`` starts over: it fits the preprocessor again, builds new weights
        from the seed and trains them (scikit-learn's convention; it says so on stderr).
        ``warm_start=True`` continues instead (Keras' convention): the same preprocessor
        (categories unseen in the first fit map to "unknown"), the current weights and,
        when the optimizer settings are unchanged, its state (Adam's moments); the
        records are appended to ``history_`` with their epochs counted on.

        Args:
            train_data: a pandas DataFrame, pyarrow Table or dict of arrays with every
                feature column and, unless labels are passed apart, every label column;
                or rows on disk, read as a stream (:mod:`mtlrec.sources`): a Parquet
                file, a folder of Parquet files, a CSV file or a ``pyarrow.dataset``.
                The preprocessor is then fitted on one pass over it, and every epoch
                reads it again, record batch by record batch (memory does not grow
                with the rows).
            y: the training labels passed apart, Keras-style: ``fit(X, [y_task1,
                y_task2])`` (a list in task order, a dict or DataFrame by task name, an
                (N, T) array). A table with feature columns in this place is taken as
                the validation table (mtlrec 0.1's ``fit(train, valid)``).
            validation: a table like ``train_data``, evaluated after every epoch, or
                ``(table, labels)``; ``validation_data`` is Keras' name for it.
            validation_split: Keras' share of the training rows (the last ones, before
                any shuffling) held out as the validation table instead.
            epochs, batch_size, optimizer, lr, weight_decay: the optimisation; the
                optimizer defaults to the one :meth:`compile` chose, else ``"adam"``.
            early_stopping: ``"task"`` / ``"task/metric"`` or an :class:`EarlyStopping`;
                needs validation data. Training stops after ``patience`` epochs without
                improvement and keeps the best epoch's weights.
            sample_weight: per-row weights of the training loss: a column of
                ``train_data`` (not a feature) or an array of one non-negative number
                per row. A task's loss is then sum_i w_i loss_i / sum_i w_i over its
                labelled rows. A column name also weighs the validation metrics when
                the validation table has that column.
            seed: overrides the constructor's seed for this fit.
            sparse_embeddings: update only the embedding rows a batch uses (SparseAdam for
                Adam). Default: on when the tables hold >= 100,000 rows, so an epoch costs
                time linear in rows however large the vocabularies.
            threads: torch threads for this call (default: the CPUs this process may
                use; restored afterwards). With other processes busy on the same cores,
                fewer threads are faster (docs/benchmarks.md).
            fast: train with the blocks' hand-derived rules where they apply (the same
                gradients as autograd; ``history_[i]["step"]`` says which ran).
            balancer: how the task losses are weighed against each other
                (:mod:`mtlrec.balancers`): a registered name (``list_balancers()``:
                ``"equal"``, the default, each task's ``Task.weight``; ``"uncertainty"``,
                ``"dwa"``, ``"gradnorm"``, ``"pcgrad"``, ``"mgda"``, ``"cagrad"``,
                ``"famo"``) or a :class:`~mtlrec.balancers.Balancer` with its own
                options. Equal, uncertainty and DWA keep the fast step; the others need
                each task's gradient or the batch's losses and train with autograd.
                ``history_[i]["task_weights"]`` holds what multiplied each task's loss.
            warm_start: continue training the fitted model (see above); a model not
                fitted yet is fitted as without it.
            verbose: 0 silent, 1 progress bar and one line per epoch (on stderr), 2 the
                lines without the bar (Keras' ``verbose=2``).
            shuffle_buffer: rows a stream shuffles together (default 262,144; 0: read in
                file order); the units' order (row groups, files) is shuffled too.
            checkpoint_dir: save the whole training state there (model, optimizer,
                balancer, random states, data position) after every epoch and every
                ``checkpoint_every`` steps, atomically (:mod:`mtlrec.checkpoint`). A
                folder holding another run's checkpoints is refused unless resuming.
            resume: continue the run saved in ``checkpoint_dir`` (killed, say) from its
                newest checkpoint: the same result as an unbroken run, bit for bit on one
                process. A checkpoint made with other settings or data is refused,
                naming the differences.

        Under ``torchrun`` (several processes), each process trains on its part of
        every global batch of ``batch_size`` rows and the gradients are summed
        (:mod:`mtlrec.distributed`); validation metrics are computed over every
        process's rows, and only rank 0 writes checkpoints.

        Returns:
            self, with ``history_`` holding one record per epoch and, for models with
            gates, ``expert_utilisation_`` (:func:`mtlrec.inspection.expert_utilisation`
            on the first 1024 training rows; a collapsed gate or an unused expert is an
            :class:`~mtlrec.ExpertUtilisationWarning`).

        Raises:
            TrainingDivergedError: the loss exploded; the best weights so far are kept.
        """
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(lr, int | float) or isinstance(lr, bool) or not lr > 0:
            raise ConfigError(f"lr must be a positive number, got {lr!r}")
        optimizer = optimizer or self._optimizer_name
        balancer = make_balancer(balancer)  # unknown names fail here, listing the valid ones
        if validation_data is not None:
            if validation is not None:
                raise ConfigError("fit: give validation= or validation_data=, not both")
            validation = validation_data
        train_data, validation = self._split_labels(train_data, y, validation)
        if validation_split:
            train_data, validation = _hold_out(train_data, validation_split, validation)
        stopper = None
        if early_stopping is not None:
            if validation is None:
                raise ConfigError("early_stopping needs validation data: pass validation=...")
            stopper = EarlyStopping.parse(early_stopping, patience)
            stopper.check(self.tasks)
        if seed is not None:
            self.seed = seed
        warm = warm_start and self.network_ is not None
        if self.network_ is not None and not warm:
            say(
                f"fit: this {type(self).__name__} was fitted already; fitting again starts "
                "over (a new preprocessor, weights from the seed); warm_start=True continues",
                verbose,
            )
        streaming = is_stream(train_data)
        if streaming and (y is not None or validation_split):
            raise ConfigError(
                "fit: a file or dataset carries its labels as columns; y= and "
                "validation_split= need a table in memory (give validation= a file instead)"
            )
        if streaming and sample_weight is not None and not isinstance(sample_weight, str):
            raise ConfigError("sample_weight: with a file or dataset, name a column of it")
        if resume and checkpoint_dir is None:
            raise ConfigError("resume=True needs checkpoint_dir=, the folder to resume from")
        if resume and warm_start:
            raise ConfigError("fit: give resume=True or warm_start=True, not both")
        group = current_group(self.device)
        if streaming:  # opened once: its files' footers are read here, not again
            train_data = self._open(train_data)
        with runtime.threads(threads):
            checkpoints, state = None, None
            if checkpoint_dir is not None:
                checkpoints, state = self._checkpoints(
                    checkpoint_dir,
                    checkpoint_every,
                    resume,
                    group,
                    train_data,
                    dict(
                        optimizer=optimizer,
                        lr=lr,
                        weight_decay=weight_decay,
                        batch_size=batch_size,
                        balancer=balancer.name,
                        sparse_embeddings=sparse_embeddings,
                        shuffle_buffer=shuffle_buffer,
                        sample_weight=sample_weight if isinstance(sample_weight, str) else None,
                        processes=1 if group is None else group.world,
                    ),
                )
                warm = False
            if group is not None and sparse_embeddings is None:
                sparse_embeddings = False  # processes sum dense gradients
            fitted = warm or state is not None  # the preprocessor is fitted already
            if streaming:
                source = self._stream_source(
                    train_data, sample_weight, fitted, shuffle_buffer, "the training data"
                )
                data = source.first_rows(PRIOR_ROWS)
            else:
                if fitted:
                    data = self.preprocessor.transform(train_data, table="the training data")
                else:
                    data = self.preprocessor.fit_transform(train_data, table="the training data")
                data.weights = sample_weights(
                    train_data, sample_weight, len(data), "the training data"
                )
                data = data.to(self.device)
            if checkpoints is not None and checkpoints.writes and state is None:
                checkpoints.directory.mkdir(parents=True, exist_ok=True)
                self.preprocessor.save(checkpoints.directory / PREPROCESSOR_FILE)
            val, val_source = None, None
            if validation is not None and is_stream(validation):
                val_source = self._stream_source(
                    self._open(validation), sample_weight, True, 0, "the validation table"
                )
            elif validation is not None:
                val = self.preprocessor.transform(
                    validation,
                    table="the validation table",
                    label_fix="the validation table needs every task's label column",
                )
                if isinstance(sample_weight, str) and sample_weight in (
                    column_names(validation) or ()
                ):
                    val.weights = sample_weights(
                        validation, sample_weight, len(val), "the validation table"
                    )
            objective = Objective(self.tasks, self.preprocessor.heads, self.config.loss_terms())
            settings = (optimizer, weight_decay, sparse_embeddings)
            if warm:
                network = self.network
                opt = self._optimizers if self._optimizer_settings == settings else None
            else:
                network, opt, self.history_ = self.build(), None, []
                network.start_at_priors(
                    objective.output_priors(data, table="the training data's first rows")
                    if streaming
                    else objective.output_priors(data)
                )
            if opt is None:
                opt = build_optimizers(network, optimizer, lr, weight_decay, sparse_embeddings)
            opt.set_lr(lr)
            self._optimizers, self._optimizer_settings = opt, settings
            done = len(self.history_)  # epochs trained before this fit
            generator = torch.Generator().manual_seed(self.seed + done)
            if streaming:
                source.encode = _training_encoder(source.encode, objective)
                source.seed = self.seed + done
            else:
                source = InMemorySource(objective.training_labels(data), generator)
            monitor = None if stopper is None else {stopper.task: stopper.metric}
            validate = None
            if val is not None:
                validate = lambda: self._metrics(  # noqa: E731
                    val, table="the validation table", monitor=monitor, group=group
                )
            elif val_source is not None:
                validate = lambda: self._stream_metrics(  # noqa: E731
                    val_source, None, table="the validation table", monitor=monitor, group=group
                )
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed + done)
                    records = train(
                        network,
                        source,
                        objective,
                        epochs=epochs,
                        batch_size=batch_size,
                        optimizer=opt,
                        generator=generator,
                        seed=self.seed + done,
                        early_stopping=stopper,
                        verbose=verbose if group is None or group.is_main else 0,
                        validate=validate,
                        # activations kept for backward: micro-batches sized like a chunk
                        micro_batch=None
                        if self.config.batch_norm
                        else inference_rows(network, TRAINING_CACHE_BYTES),
                        fast=fast,
                        balancer=balancer,
                        first_epoch=done + 1,
                        group=group,
                        checkpoints=checkpoints,
                        resume=state,
                    )
            except Exception as error:
                self.history_ = self.history_ + getattr(error, "history", [])
                raise
            finally:
                runtime.release_freed_memory()
            self.history_ = self.history_ + records
            self.expert_utilisation_ = None  # the gates on the first training rows
            if self._has_gates():
                rows = data.take(slice(0, inspection.UTILISATION_ROWS)).to(self.device)
                weights = self._gate_weights(rows, None)
                self.expert_utilisation_ = inspection.check_utilisation(weights)
        return self

    def _checkpoints(
        self,
        directory: str | os.PathLike,
        every: int | None,
        resume: bool,
        group: Group | None,
        train_data: Any,
        settings: dict[str, Any],
    ) -> tuple[Checkpoints, dict | None]:
        """The fit's checkpoints and, with ``resume``, the state to resume from (its
        preprocessor put in place); ConfigError when the folder holds another run's
        checkpoints and ``resume`` is off (nothing saved is overwritten)."""
        directory = Path(directory)
        run = {
            "architecture": self.architecture,
            "config": dataclasses.asdict(self.config),
            "features": [feature_to_dict(f) for f in self.features],
            "tasks": [task_to_dict(t) for t in self.tasks],
            "seed": self.seed,
            "data": describe_data(train_data),
            **settings,
        }
        writes = group is None or group.is_main
        checkpoints = Checkpoints(directory, every, run, writes=writes)
        held = directory.exists() and latest_checkpoint(directory) is not None
        if not resume:
            if held:
                raise ConfigError(
                    f"checkpoint_dir {directory} holds checkpoints of an earlier run; pass "
                    "resume=True (mtlrec train --resume) to continue it, or give an empty "
                    "folder: nothing there is overwritten"
                )
            return checkpoints, None
        state = checkpoints.resume_state()
        if state is None:
            say(f"resume: no checkpoint in {directory} yet; training from the start", 1)
            return checkpoints, None
        self.preprocessor = Preprocessor.load(directory / PREPROCESSOR_FILE)
        return checkpoints, state

    def _open(self, data: Any, labels: bool = True) -> ds.Dataset:
        """``data`` (a file, folder or dataset) opened, every file checked for the feature
        columns and, with ``labels``, the label columns (:func:`sources.open_dataset`)."""
        columns = [f.name for f in self.features]
        return open_dataset(data, columns + ([t.name for t in self.tasks] if labels else []))

    def _stream_source(
        self,
        dataset: ds.Dataset,
        sample_weight: Any,
        fitted: bool,
        shuffle_buffer: int | None,
        table: str,
        labels: bool = True,
    ) -> StreamSource:
        """A stream of encoded batches of ``dataset`` (opened by :meth:`_open`), the
        preprocessor fitted on one pass over it first unless ``fitted``."""
        columns = [f.name for f in self.features]
        columns += [t.name for t in self.tasks] if labels else []
        weight = sample_weight if isinstance(sample_weight, str) else None
        if weight is not None and weight in dataset.schema.names:
            columns.append(weight)
        elif weight is not None and table == "the training data":
            raise DataError(f"sample_weight: {table} has no column {weight!r}; name a column of it")

        def encode(rb: pa.RecordBatch) -> Batch:
            batch = self.preprocessor.transform(rb, with_labels=labels, table=table)
            if weight in rb.schema.names:  # that column only: transform read the rest
                column = {weight: rb.column(weight)}
                batch.weights = sample_weights(column, weight, len(batch), table)
            return batch.to(self.device)

        source = StreamSource(
            dataset,
            encode,
            columns,
            seed=self.seed,
            shuffle_buffer=SHUFFLE_BUFFER if shuffle_buffer is None else shuffle_buffer,
        )
        if not fitted:
            say(f"fitting the preprocessor on a pass over {table} ...", 1)
            self.preprocessor.fit_chunks(source.read(), table=table)
        return source

    def compile(
        self,
        optimizer: str = "adam",
        loss: str | Sequence[str] | Mapping[str, str] | None = None,
        metrics: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        loss_weights: Any = None,
    ) -> MultiTaskModel:
        """Keras' ``compile``, so code written for Keras-style libraries (DeepCTR's
        ``model.compile("adam", loss=[...], metrics=["AUC", "mae"])``) runs as it is:

        * ``optimizer``: the optimizer ``fit`` uses unless given one (``"adam"``,
          ``"adamw"``, ``"sgd"``, ``"adagrad"``);
        * ``loss``: one Keras loss name for every task, one per task (a list in task
          order or a dict by name); each is checked against its task's head (the loss
          is the head's: ``binary_crossentropy`` for a binary task, ``mse`` for a
          regression, ...), a ConfigError on a mismatch; None checks nothing;
        * ``metrics``: Keras metric names (``"AUC"``, ``"binary_crossentropy"``,
          ``"accuracy"``, ``"mae"``, ``"mse"``, ...), for every output or a dict by
          task name: ``evaluate`` and the validation lines report those each output's
          head can compute (an output none applies to keeps its head's defaults).

        Task weights are set on the tasks (``Task(name, weight=...)``), not here.
        Returns self.
        """
        if loss_weights is not None:
            raise ConfigError(
                "compile: loss_weights are the tasks' own in mtlrec: give "
                "Task(name, weight=...) when building the model"
            )
        if optimizer not in OPTIMIZER_NAMES:
            raise ConfigError(
                f"compile: optimizer {optimizer!r} is not one of {list(OPTIMIZER_NAMES)} "
                "(a name; set the learning rate with fit(lr=...))"
            )
        for task, name in zip(self.tasks, self._per_task(loss, "loss"), strict=True):
            if name is not None:
                _check_loss(task, name)
        self._optimizer_name = optimizer
        self._metric_choice = None if metrics is None else self._chosen_metrics(metrics)
        return self

    def _per_task(self, value: Any, what: str) -> list[Any]:
        """One entry per task from a single value, a list in task order or a dict by
        task name (missing names: None)."""
        names = [t.name for t in self.tasks]
        if value is None or isinstance(value, str):
            return [value] * len(names)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ConfigError(f"compile: {what} for unknown tasks {unknown}; tasks: {names}")
            return [value.get(n) for n in names]
        value = list(value)
        if len(value) != len(names):
            raise ConfigError(
                f"compile: {len(value)} {what} entries for {len(names)} tasks {names}; give "
                "one per task in task order (or a dict by task name)"
            )
        return value

    def _chosen_metrics(self, metrics: Any) -> dict[str | None, list[str]]:
        """{task name, or None for every output: mtlrec metric names} from compile's
        ``metrics`` (Keras names); ConfigError for unknown names and for names no task's
        head computes."""
        by_output = {None: list(metrics)} if not isinstance(metrics, Mapping) else dict(metrics)
        names = {t.name for t in self.tasks}
        chosen: dict[str | None, list[str]] = {}
        for output, given in by_output.items():
            if output is not None and output not in names:
                raise ConfigError(f"compile: metrics for unknown task {output!r}; tasks: {names}")
            given = [given] if isinstance(given, str) else list(given)
            canonical = []
            for name in given:
                key = METRIC_ALIASES.get(str(name).lower())
                if key is None:
                    raise ConfigError(
                        f"compile: unknown metric {name!r}; mtlrec computes "
                        f"{sorted(set(METRIC_ALIASES.values()))} (Keras names such as "
                        "'AUC', 'binary_crossentropy', 'mae' map onto them)"
                    )
                tasks = (
                    self.tasks if output is None else [t for t in self.tasks if t.name == output]
                )
                if not any(key in t.head_class.available_metrics() for t in tasks):
                    raise ConfigError(
                        f"compile: metric {name!r} applies to none of the tasks "
                        f"{[t.name for t in tasks]} (their types: "
                        f"{sorted({t.type for t in tasks})})"
                    )
                canonical.append(key)
            chosen[output] = canonical
        return chosen

    def _reported(self, output: str, head: Any) -> list[str] | None:
        """The metrics ``evaluate`` reports for ``output`` after :meth:`compile` (None:
        the head's defaults): those chosen for it that its head computes."""
        if self._metric_choice is None:
            return None
        chosen = self._metric_choice.get(output, self._metric_choice.get(None, []))
        names = [m for m in dict.fromkeys(chosen) if m in head.available_metrics()]
        return names or None

    def _split_labels(self, train_data: Any, y: Any, validation: Any) -> tuple[Any, Any]:
        """(training table with its labels, validation table with its labels) from fit's
        arguments, accepting labels given apart (see :meth:`fit`)."""
        if y is not None and not self._looks_like_labels(y):  # fit(train, valid)
            if validation is not None:
                raise ConfigError("fit: pass the validation table once (validation=...)")
            y, validation = None, y
        if isinstance(validation, tuple) and len(validation) == 2:
            if column_names(validation[0]) is None:
                raise ConfigError("validation: give a table, or a (table, labels) pair")
            validation = self._with_labels(*validation, table="the validation table")
        if y is not None:
            train_data = self._with_labels(train_data, y, table="the training data")
        return train_data, validation

    def _looks_like_labels(self, value: Any) -> bool:
        """True for labels given apart: a list/tuple, an array or Series, or a table whose
        columns are task names only."""
        if isinstance(value, list | tuple | np.ndarray | pd.Series | torch.Tensor):
            return True
        names = set(column_names(value) or ())
        features = {f.name for f in self.features}
        return bool(names) and names <= {t.name for t in self.tasks} and not names & features

    def _with_labels(self, data: Any, labels: Any, table: str = "the data") -> dict[str, Any]:
        """The columns of ``data`` plus the labels given apart: a list or tuple in task
        order, a dict (or DataFrame) by task name, an (N, T) array, or for one task an
        (N,) array."""
        columns = dict(as_columns(data, table=table))
        names = [t.name for t in self.tasks]
        if isinstance(labels, pd.DataFrame):
            labels = {str(c): labels[c].to_numpy() for c in labels.columns}
        elif isinstance(labels, pa.Table):
            labels = {c: labels.column(c) for c in labels.column_names}
        if isinstance(labels, Mapping):
            unknown = sorted(set(map(str, labels)) - set(names))
            missing = [n for n in names if n not in labels]
            if unknown or missing:
                raise DataError(
                    f"labels for {table}: expected one entry per task {names}, "
                    + (f"got unknown {unknown}" if unknown else f"missing {missing}")
                )
            given = [labels[n] for n in names]
        else:
            if isinstance(labels, np.ndarray | torch.Tensor) and np.ndim(labels) == 2:
                labels = [np.asarray(labels)[:, t] for t in range(np.shape(labels)[1])]
            elif isinstance(labels, np.ndarray | pd.Series | torch.Tensor):
                labels = [labels]
            given = list(labels)
            if len(given) != len(names):
                raise DataError(
                    f"labels for {table}: got {len(given)} label arrays for {len(names)} "
                    f"tasks {names}; give one per task, in task order (or a dict by task name)"
                )
        rows = len(next(iter(columns.values())))
        for name, values in zip(names, given, strict=True):
            if name in columns:
                raise DataError(
                    f"{table} already has a column {name!r} and labels for it were passed "
                    "apart as well; give each task's labels once"
                )
            values = as_array(values.cpu() if isinstance(values, torch.Tensor) else values)
            if values.ndim != 1 or len(values) != rows:
                raise DataError(
                    f"labels of task {name!r} for {table}: expected {rows} values (one per "
                    f"row), got shape {values.shape}"
                )
            columns[name] = values
        return columns

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
        network = self.network

        def forward(*inputs: torch.Tensor | None) -> dict[str, torch.Tensor]:
            sparse, dense, sequences, lengths = inputs
            return network(Batch(sparse, dense, sequences=sequences, lengths=lengths)).named()

        self._compiled = torch.compile(forward, dynamic=False)
        return self

    def _forward(self, batch: Batch, rows: int) -> dict[str, torch.Tensor]:
        """Logits by output name of one chunk, through the compiled forward when there is
        one and the input is not folded."""
        network = self.network
        if self._compiled is None or network.embedding.folded is not None:
            return network(batch).named()
        n, pad = len(batch), rows - len(batch)
        inputs = [batch.sparse, batch.dense, batch.sequences, batch.lengths]
        if pad > 0:  # id 0 (missing), 0.0 and no items are valid inputs; padded rows are dropped
            inputs = [
                None if t is None else torch.cat([t, t.new_zeros(pad, t.shape[1])]) for t in inputs
            ]
        try:
            return {k: v[:n] for k, v in self._compiled(*inputs).items()}
        except Exception as error:  # no C++ compiler, unsupported op, ...
            warnings.warn(
                f"compile_inference: torch.compile failed ({type(error).__name__}: {error}); "
                "predicting without it",
                RuntimeWarning,
                stacklevel=4,
            )
            self._compiled = None
            return network(batch).named()

    def _heads(self) -> dict[str, Any]:
        """The head that reads each output: the tasks' fitted heads, then the extras'."""
        heads: dict[str, Any] = dict(self.preprocessor.heads)
        for name, head_type in self.network.extra_outputs.items():
            heads[name] = HEADS.get(head_type)(Task(name, type=head_type))
        return heads

    @torch.inference_mode()
    def _outputs(
        self, data: Batch, batch_size: int | None, group: Group | None = None
    ) -> dict[str, torch.Tensor]:
        """Predictions per output (probabilities, values, means), on the CPU; with a
        process ``group``, each process predicts its consecutive part of the rows and
        every process gets all of them."""
        if group is not None:
            part = part_of(data, group.rank, group.world)
            mine = self._outputs(part, batch_size) if len(part) else None
            if mine is None:  # shapes from one row: the other processes' parts carry the rows
                mine = {k: v[:0] for k, v in self._outputs(data.take(slice(0, 1)), 1).items()}
            return {name: group.gather_rows(values) for name, values in mine.items()}
        network = self.network
        network.eval()
        batch_size = batch_size or inference_rows(network)
        chunks: dict[str, list[torch.Tensor]] = {}
        with network.folded_input(len(data)):
            for batch in iterate_batches(data, batch_size):
                for name, logits in self._forward(batch.to(self.device), batch_size).items():
                    chunks.setdefault(name, []).append(logits)
        heads = self._heads()
        return {
            name: heads[name].activate(torch.cat(parts).float()).cpu()
            for name, parts in chunks.items()
        }

    def _stream_outputs(
        self, source: StreamSource, batch_size: int | None, keep_labels: bool = False
    ) -> tuple[dict[str, torch.Tensor], Batch | None]:
        """Predictions of every row of a stream, in file order, and with ``keep_labels``
        a Batch of their labels, mask and weights (no features)."""
        outputs: dict[str, list[torch.Tensor]] = {}
        labels: list[Batch] = []
        for rb in source.read():
            batch = source.encode(rb)
            for name, values in self._outputs(batch, batch_size).items():
                outputs.setdefault(name, []).append(values)
            if keep_labels:
                labels.append(_labels_only(batch))
        if not outputs:
            raise DataError("the data holds no rows")
        joined = {name: torch.cat(parts) for name, parts in outputs.items()}
        return joined, concat_batches(labels) if keep_labels else None

    def _stream_metrics(
        self,
        source: StreamSource,
        batch_size: int | None,
        table: str = "the data",
        monitor: dict[str, str] | None = None,
        group: Group | None = None,
    ) -> dict[str, dict[str, float]]:
        """:meth:`_metrics` of a stream's rows (each process reads every row: the
        metrics are exact and the same everywhere)."""
        outputs, labels = self._stream_outputs(source, batch_size, keep_labels=True)
        return self._metrics(labels, batch_size, table=table, monitor=monitor, outputs=outputs)

    def predict(
        self, data: Any, batch_size: int | None = None, threads: int | None = None
    ) -> Predictions:
        """Predictions for raw rows (or a transformed Batch): {output: float32 array},
        the tasks first in task order, then extra outputs (a funnel's joint); ``[i]``
        also takes the i-th output, as Keras' list of outputs (``predict(X)[0]``).

        Binary outputs are probabilities (N,), regression outputs values (N,), Poisson
        outputs expected counts (N,), multiclass outputs class probabilities (N, K) in the
        order of :meth:`classes`. ``batch_size`` defaults to a chunk size that keeps
        activations in cache; ``threads`` as in :meth:`fit`.
        """
        network = self.network
        with runtime.threads(threads):
            if is_stream(data):
                dataset = self._open(data, labels=False)
                source = self._stream_source(dataset, None, True, 0, "the data", labels=False)
                outputs, _ = self._stream_outputs(source, batch_size)
            else:
                batch = self._as_batch(data, with_labels=False)
                outputs = self._outputs(batch, batch_size)
        return Predictions((name, outputs[name].numpy()) for name in network.output_names)

    def _class_tasks(self) -> list[str]:
        """Tasks whose head predicts one of several classes (multiclass)."""
        self.network  # noqa: B018 - raises NotFittedError first
        return [n for n, head in self.preprocessor.heads.items() if head.classes is not None]

    def classes(self, task: str) -> np.ndarray:
        """The classes of task ``task`` (multiclass), in the order of its probabilities."""
        if task not in self._class_tasks():
            raise ConfigError(
                f"{task!r} is not a multiclass task; tasks with classes: {self._class_tasks()}"
            )
        return self.preprocessor.heads[task].classes.copy()

    def predict_classes(
        self, data: Any, batch_size: int | None = None, threads: int | None = None
    ) -> dict[str, np.ndarray]:
        """The most probable class of each row, as labels, for every multiclass task."""
        names = self._class_tasks()
        if not names:
            raise ConfigError("predict_classes: this model has no multiclass task")
        probabilities = self.predict(data, batch_size, threads)
        return {n: self.preprocessor.heads[n].labels(probabilities[n]) for n in names}

    def evaluate(
        self,
        data: Any,
        y: Any = None,
        *,
        batch_size: int | None = None,
        threads: int | None = None,
        sample_weight: str | Any = None,
        group: str | None = None,
    ) -> dict[str, dict[str, float]]:
        """Per-output metrics on the rows that carry its label (each head's metrics: AUC
        and log loss for binary, MAE and RMSE for regression, ...; after
        :meth:`compile`, the metrics chosen there). A funnel step (``Task(...,
        after=...)``) is judged on the rows where the task it follows is 1, its joint
        output over every row where the joint is known. A metric the rows do not define
        (an AUC over one class) is NaN, with an :class:`~mtlrec.UndefinedMetricWarning`
        saying why.

        Args:
            y: the labels passed apart, as in :meth:`fit` (``evaluate(X, [y1, y2])``);
                an int here is taken as ``batch_size`` (mtlrec 0.1's second argument).
            batch_size, threads: as in :meth:`predict`.
            sample_weight: a column of ``data`` or an array (one weight per row): the
                metrics are weighted means (AUC: the weighted share of ordered pairs).
            group: a column of ``data`` (a user id, say): adds ``gauc`` to every
                binary output, the AUC within each group averaged with the groups'
                row counts (total weights) over the groups holding both classes, with
                ``gauc_groups`` (groups used) and ``gauc_skipped`` (one-class groups).
        """
        self.network  # noqa: B018 - raises NotFittedError before any work
        if isinstance(y, int) and not isinstance(y, bool):
            y, batch_size = None, y
        if y is not None:
            if isinstance(data, Batch):
                raise DataError("evaluate: labels given apart need the raw table, not a Batch")
            data = self._with_labels(data, y, table="the data")
        with runtime.threads(threads):
            if is_stream(data):
                if group is not None or (
                    sample_weight is not None and not isinstance(sample_weight, str)
                ):
                    raise ConfigError(
                        "evaluate: with a file or dataset, sample_weight names a column and "
                        "group= needs a table in memory"
                    )
                source = self._stream_source(self._open(data), sample_weight, True, 0, "the data")
                return self._stream_metrics(source, batch_size)
            batch = self._as_batch(data, with_labels=True)
            if sample_weight is not None:
                batch.weights = sample_weights(data, sample_weight, len(batch), "the data")
            groups = None if group is None else (group, _group_codes(data, group))
            return self._metrics(batch, batch_size, groups)

    def _as_batch(self, data: Any, with_labels: bool) -> Batch:
        """Raw rows through the fitted preprocessor; a Batch is taken as it is."""
        if isinstance(data, Batch):
            if with_labels and data.labels is None:
                raise DataError("evaluate needs labels: this Batch has none")
            return data
        return self.preprocessor.transform(
            data,
            with_labels=with_labels,
            label_fix="evaluate needs every task's label column; use predict(data) for "
            "predictions without labels"
            if with_labels
            else None,
        )

    def _metrics(
        self,
        data: Batch,
        batch_size: int | None = None,
        groups: tuple[str, np.ndarray] | None = None,
        table: str = "the data",
        monitor: dict[str, str] | None = None,
        group: Group | None = None,
        outputs: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, dict[str, float]]:
        """Each output's metrics on the rows that carry its label (see :meth:`evaluate`);
        ``monitor``: {output: metric} computed whatever :meth:`compile` chose;
        ``outputs``: the predictions when computed already (``data`` needs only the
        labels, mask and weights then)."""
        if outputs is None:
            outputs = self._outputs(data, batch_size, group)
        network = self.network
        labels = data.labels.cpu().numpy()
        mask = np.ones(labels.shape, bool) if data.mask is None else data.mask.cpu().numpy()
        weights = None if data.weights is None else data.weights.cpu().numpy()
        judged = {t.name: (mask[:, i], labels[:, i]) for i, t in enumerate(self.tasks)}
        judged.update(
            funnel.evaluation_targets(data.labels, data.mask, network.funnel_steps, table)
        )
        targets = {t.name: labels[:, i] for i, t in enumerate(self.tasks)}
        judged.update(network.evaluation_targets(targets))
        heads = self._heads()
        result = {}
        for name, (rows, y) in judged.items():
            if not rows.any():
                warn(
                    f"evaluate: no row of {table} carries a label of {name!r}; it is left out",
                    UndefinedMetricWarning,
                )
                continue
            every = rows.all()
            y, p = (y, outputs[name].numpy()) if every else (y[rows], outputs[name].numpy()[rows])
            w = None if weights is None else (weights if every else weights[rows])
            head = heads[name]
            chosen = self._reported(name, head)
            monitored = (monitor or {}).get(name)
            if chosen is not None and monitored is not None and monitored not in chosen:
                chosen = [*chosen, monitored]  # early stopping reads it
            result[name] = head.evaluate(y, p, w, chosen)
            if groups is not None and head.grouped_auc:
                column, codes = groups
                codes = codes if every else codes[rows]
                result[name].update(_grouped(name, y, p, column, codes, w))
        return result

    @torch.inference_mode()
    def gate_weights(
        self, data: Any, batch_size: int | None = None, threads: int | None = None
    ) -> dict[str, np.ndarray]:
        """Gate weights for raw rows (or a Batch): {gate: array (N, experts)}; empty
        without gates."""
        self.network  # noqa: B018 - raises NotFittedError before any work
        with runtime.threads(threads):
            return self._gate_weights(self._as_batch(data, with_labels=False), batch_size)

    @torch.inference_mode()
    def _gate_weights(self, batch: Batch, batch_size: int | None) -> dict[str, np.ndarray]:
        network = self.network
        network.eval()
        parts: dict[str, list[torch.Tensor]] = {}
        for chunk in iterate_batches(batch, batch_size or inference_rows(network)):
            for name, w in network(chunk.to(self.device)).gates.items():
                parts.setdefault(name, []).append(w.float().cpu())
        return {name: torch.cat(ws).numpy() for name, ws in parts.items()}

    def _has_gates(self) -> bool:
        return any(isinstance(m, GateBank) for m in self.network.modules())

    def export_onnx(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the fitted model as ONNX (``path``, ending in .onnx) with its
        preprocessing spec beside it; see :mod:`mtlrec.export`."""
        from .export import export_onnx

        return export_onnx(self, path, overwrite=overwrite)

    def gate_summary(
        self, data: Any, batch_size: int | None = None, threads: int | None = None
    ) -> pd.DataFrame:
        """Mean gate weight per gate (rows) and expert (columns ``expert_0``, ...) on
        ``data``, NaN where a gate does not reach an expert (PLE: each row's experts are
        those of its level); see :func:`mtlrec.inspection.gate_summary`. ConfigError for
        architectures without gates."""
        if not self._has_gates():
            raise ConfigError(
                f"gate_summary: {type(self).__name__} ({self.architecture!r}) has no gates; "
                "mixture-of-experts architectures (OMoE, MMoE, CGC, PLE) have them"
            )
        return inspection.gate_summary(
            self.gate_weights(data, batch_size, threads), self.network.expert_groups()
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the bundle folder (config + preprocessor JSON, safetensors weights)."""
        network = self.network
        config = {
            "architecture": self.architecture,
            "hyperparameters": self.config.to_dict(),
            "seed": self.seed,
        }
        return write_bundle(
            Path(path), config, self.preprocessor, network.state_dict(), overwrite=overwrite
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> MultiTaskModel:
        """A model saved with :meth:`save` (also by earlier mtlrec versions), as an
        instance of its architecture's class (``MMoE``, ...)."""
        config, preprocessor, weights = read_bundle(path, device)
        architecture = config["architecture"]
        if architecture not in ARCHITECTURES:
            raise BundleError(
                f"bundle {path}: architecture {architecture!r} is not registered in this "
                f"mtlrec, which knows {ARCHITECTURES.names()}; {written_by(config)}"
            )
        hyperparameters = network_class(architecture).config_class.upgrade(
            config["hyperparameters"], preprocessor.tasks
        )
        model = model_class(architecture)(
            list(preprocessor.features),
            list(preprocessor.tasks),
            scaling=preprocessor.scaling,
            seed=config.get("seed", 0),
            device=device,
            **hyperparameters,
        )
        model.preprocessor = preprocessor
        network = model.build()
        try:
            network.load_state_dict(weights)
        except RuntimeError as err:
            raise BundleError(
                f"bundle {path}: weights do not fit the saved config ({err})"
            ) from None
        network.eval()
        return model

    def __repr__(self) -> str:
        state = "fitted" if self.network_ is not None else "not fitted"
        return (
            f"{type(self).__name__}(architecture={self.architecture!r}, "
            f"tasks={[t.name for t in self.tasks]}, {state})"
        )


def _check_loss(task: Task, name: str) -> None:
    """ConfigError unless the Keras loss ``name`` is ``task``'s head's loss."""
    if not isinstance(name, str):
        raise ConfigError(f"compile: the loss of task {task.name!r} must be a name, got {name!r}")
    head = task.head_class
    if name.lower() in head.keras_losses:
        return
    owners = [n for n, h in HEADS.items() if name.lower() in h.keras_losses]
    known = sorted(k for _, h in HEADS.items() for k in h.keras_losses)
    hint = (
        f"{name!r} is the loss of a {owners[0]!r} task: declare "
        f"Task({task.name!r}, type={owners[0]!r}) for it"
        if owners
        else f"mtlrec knows the losses {known}"
    )
    raise ConfigError(
        f"compile: loss {name!r} for task {task.name!r}, which is a {task.type!r} task "
        f"trained with {head.keras_losses[0]!r}; {hint}"
    )


def _hold_out(data: Any, share: float, validation: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the first rows, the last ``share`` of them) of a table, as Keras'
    ``validation_split`` takes them."""
    if validation is not None:
        raise ConfigError("fit: give validation data or validation_split, not both")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
        raise ConfigError(f"validation_split must be a share in (0, 1), got {share!r}")
    columns = as_columns(data, table="the training data")
    rows = len(next(iter(columns.values())))
    cut = rows - int(rows * share)
    if cut in (0, rows):
        raise ConfigError(
            f"validation_split={share} of {rows} rows leaves no row for "
            f"{'training' if cut == 0 else 'validation'}"
        )
    return {k: v[:cut] for k, v in columns.items()}, {k: v[cut:] for k, v in columns.items()}


def sample_weights(data: Any, sample_weight: Any, rows: int, table: str) -> torch.Tensor | None:
    """(rows,) float32 weights from a column name of ``data`` or an array; DataError for
    a missing column, a wrong length, negative or non-finite weights, or all zeros."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, str):
        columns = as_columns(data, table=table)
        if sample_weight not in columns:
            raise DataError(
                f"sample_weight: {table} has no column {sample_weight!r}; name a column of "
                "it or pass an array of one weight per row"
            )
        values, where = columns[sample_weight], f"column {sample_weight!r} of {table}"
    else:
        values, where = sample_weight, "the sample_weight array"
    if isinstance(values, torch.Tensor):
        values = values.cpu().numpy()
    try:
        w = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"sample_weight: {where} is not numeric; give numbers >= 0") from None
    if len(w) != rows:
        raise DataError(f"sample_weight: {where} has {len(w)} values for {rows} rows of {table}")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DataError(
            f"sample_weight: {where} has {int(bad.sum())} missing, infinite or negative "
            f"weights (first rows {np.flatnonzero(bad)[:5].tolist()}); weights are numbers >= 0"
        )
    if not w.any():
        raise DataError(f"sample_weight: every weight in {where} is 0")
    return torch.from_numpy(w.astype(np.float32))


def _group_codes(data: Any, group: str) -> np.ndarray:
    """Integer codes of the group column ``group`` of ``data`` (missing: a group of its
    own); DataError naming the column when absent."""
    if isinstance(data, Batch):
        raise DataError("evaluate(group=...) needs the raw table (a column of it), not a Batch")
    columns = as_columns(data, table="the data")
    if group not in columns:
        raise DataError(
            f"evaluate: group column {group!r} is not in the data; its columns are "
            f"{sorted(columns)[:20]}"
        )
    codes, _ = pd.factorize(np.asarray(as_numpy(columns[group])), use_na_sentinel=False)
    return codes


def _grouped(
    output: str,
    y: np.ndarray,
    p: np.ndarray,
    column: str,
    groups: np.ndarray,
    weights: np.ndarray | None,
) -> dict[str, float]:
    """``gauc``, ``gauc_groups`` and ``gauc_skipped`` of one output over the groups
    ``groups`` (codes of ``column``); the value NaN (with a warning naming the output and
    the column) when no group holds both classes."""
    try:
        scores = gauc(y, p, groups, sample_weight=weights)
    except UndefinedMetricError as why:
        value = undefined(output, f"gauc (groups: column {column!r})", why)
        return {"gauc": value, "gauc_groups": 0, "gauc_skipped": len(np.unique(groups))}
    return {
        "gauc": scores.value,
        "gauc_groups": scores.groups_used,
        "gauc_skipped": scores.groups_skipped,
    }


def _labels_only(batch: Batch) -> Batch:
    """The labels, mask and weights of ``batch``, without its features."""
    empty = batch.sparse[:, :0]
    return Batch(empty, batch.dense[:, :0], batch.labels, batch.mask, batch.weights)


def _training_encoder(
    encode: Callable[[pa.RecordBatch], Batch], objective: Objective
) -> Callable[[pa.RecordBatch], Batch]:
    """``encode``, then the labels as the losses read them (funnel steps)."""

    def encoded(rb: pa.RecordBatch) -> Batch:
        return objective.training_labels(encode(rb))

    return encoded


def load_model(path: str | Path, device: str = "cpu") -> MultiTaskModel:
    """Load a model saved with :meth:`MultiTaskModel.save` (``mtlrec.load``)."""
    return MultiTaskModel.load(path, device)


def _facade_doc(name: str, network: type[MultiTaskNetwork]) -> str:
    summary = (network.__doc__ or name).strip()
    return (
        f"{summary}\n\n"
        f"Takes the arguments of :class:`MultiTaskModel` (features, tasks, scaling, seed,\n"
        f"device) and the hyperparameters of ``{network.config_class.__name__}``; the\n"
        f"architecture is registered as ``{name!r}``."
    )


_CLASSES: dict[str, type[MultiTaskModel]] = {}  # architecture name -> its class


def model_class(architecture: str) -> type[MultiTaskModel]:
    """The estimator class of the architecture registered as ``architecture`` (made once,
    named by the network's ``facade_name``); ConfigError for unknown names."""
    cls = _CLASSES.get(architecture)
    if cls is None:
        network = network_class(architecture)
        facade = network.facade_name or "".join(p.title() for p in architecture.split("_"))
        cls = _CLASSES[architecture] = type(
            facade,
            (MultiTaskModel,),
            {
                "architecture": architecture,
                "__doc__": _facade_doc(architecture, network),
                "__module__": "mtlrec",
                "__qualname__": facade,
            },
        )
    return cls


def model_classes() -> dict[str, type[MultiTaskModel]]:
    """The estimator class of every registered architecture, by its class name."""
    return {cls.__name__: cls for cls in map(model_class, ARCHITECTURES.names())}


def create_model(architecture: str, features, tasks, **kwargs: Any) -> MultiTaskModel:
    """A model of the architecture registered as ``architecture`` (an instance of its
    class, e.g. ``MMoE`` for ``"mmoe"``)."""
    return model_class(architecture)(features, tasks, **kwargs)


def __getattr__(name: str) -> type[MultiTaskModel]:
    """``mtlrec.estimator.MMoE`` and the other named classes, from the registry."""
    classes = model_classes()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
