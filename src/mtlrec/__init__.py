"""mtlrec: multi-task learning for recommender systems.

Shared-Bottom, one-gate MoE, MMoE, CGC, PLE and ESMM (plus a single-task baseline) on
sparse and dense columns, with a Keras-like ``fit`` / ``evaluate`` / ``predict`` workflow.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .bundle import load_bundle as load
from .data import ColumnBatch
from .estimator import (
    CGC,
    ESMM,
    PLE,
    MMoE,
    MultiTaskModel,
    OMoE,
    SharedBottom,
    SingleTask,
    create_model,
)
from .exceptions import BundleError, ConfigError, DataError, MtlrecError, NotFittedError
from .features import DenseFeature, SparseFeature
from .models import list_models
from .preprocessing import Preprocessor
from .tasks import Task
from .training import EarlyStopping

__all__ = [
    "CGC",
    "ESMM",
    "PLE",
    "BundleError",
    "ColumnBatch",
    "ConfigError",
    "DataError",
    "DenseFeature",
    "EarlyStopping",
    "MMoE",
    "MtlrecError",
    "MultiTaskModel",
    "NotFittedError",
    "OMoE",
    "Preprocessor",
    "SharedBottom",
    "SingleTask",
    "SparseFeature",
    "Task",
    "__version__",
    "create_model",
    "list_models",
    "load",
]
