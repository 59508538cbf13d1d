"""Errors raised by mtlrec.

Every error subclasses a built-in, so ``except ValueError`` keeps working::

    MtlrecError
    ├── ConfigError(MtlrecError, ValueError)    bad argument, architecture or task spec
    ├── DataError(MtlrecError, ValueError)      bad input table: missing column, bad label
    ├── BundleError(MtlrecError, ValueError)    saved model folder missing a file / wrong version
    ├── NotFittedError(MtlrecError, RuntimeError)  predict/evaluate/save before fit
    └── TrainingDivergedError(MtlrecError, FloatingPointError)  loss exploded in fit
"""

from __future__ import annotations


class MtlrecError(Exception):
    """Base class of every error mtlrec raises on purpose."""


class ConfigError(MtlrecError, ValueError):
    """An argument, architecture name or task specification is invalid."""


class DataError(MtlrecError, ValueError):
    """The input data does not match the feature or task specification."""


class BundleError(MtlrecError, ValueError):
    """A saved model folder is incomplete or written by another format version."""


class NotFittedError(MtlrecError, RuntimeError):
    """The model must be fitted before this call."""


class TrainingDivergedError(MtlrecError, FloatingPointError):
    """The training loss became non-finite or exploded (usually: the learning rate is
    too high); the best weights so far were kept. ``history`` holds the completed
    epochs' records."""

    def __init__(self, message: str, history: list | None = None) -> None:
        super().__init__(message)
        self.history = history or []
