"""mtlrec: multi-task learning for recommender systems.

Shared-Bottom, one-gate MoE, MMoE, CGC, PLE and ESMM (plus a single-task baseline) on
sparse and dense columns, for binary, regression, multiclass and count targets, with a
Keras-like ``fit`` / ``evaluate`` / ``predict`` workflow. The named model classes
(``MMoE``, ``PLE``, ...) are made from the architecture registry.
"""

from __future__ import annotations

from ._version import __version__
from .balancers import list_balancers
from .data import Batch, ColumnBatch
from .estimator import MultiTaskModel, create_model, load_model, model_classes
from .exceptions import (
    BundleError,
    CheckpointError,
    ConfigError,
    DataError,
    DistributedError,
    ExpertUtilisationWarning,
    MtlrecError,
    MtlrecWarning,
    NotFittedError,
    TrainingDivergedError,
    UndefinedMetricError,
    UndefinedMetricWarning,
)
from .features import DenseFeature, SequenceFeature, SparseFeature
from .heads import list_heads
from .models import list_models
from .preprocessing import Preprocessor
from .runtime import available_cpus, restore_allocator, retain_freed_memory
from .tasks import Task
from .training import EarlyStopping

load = load_model

_MODEL_CLASSES = model_classes()
globals().update(_MODEL_CLASSES)  # CGC, ESMM, MMoE, OMoE, PLE, SharedBottom, SingleTask

__all__ = [
    "Batch",
    "BundleError",
    "CheckpointError",
    "ColumnBatch",
    "ConfigError",
    "DataError",
    "DenseFeature",
    "DistributedError",
    "EarlyStopping",
    "ExpertUtilisationWarning",
    "MtlrecError",
    "MtlrecWarning",
    "MultiTaskModel",
    "NotFittedError",
    "Preprocessor",
    "SequenceFeature",
    "SparseFeature",
    "Task",
    "TrainingDivergedError",
    "UndefinedMetricError",
    "UndefinedMetricWarning",
    "__version__",
    "available_cpus",
    "create_model",
    "list_balancers",
    "list_heads",
    "list_models",
    "load",
    "restore_allocator",
    "retain_freed_memory",
]
__all__ = sorted([*__all__, *_MODEL_CLASSES])  # one class per registered architecture
