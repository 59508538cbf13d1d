"""Errors raised by mtlrec.

Every error subclasses a built-in, so ``except ValueError`` keeps working::

    MtlrecError
    ├── ConfigError(MtlrecError, ValueError)    bad argument, architecture or task spec
    ├── DataError(MtlrecError, ValueError)      bad input table: missing column, bad label
    │   └── UndefinedMetricError                a metric the evaluated rows do not define
    ├── BundleError(MtlrecError, ValueError)    saved model folder missing a file / wrong version
    ├── NotFittedError(MtlrecError, RuntimeError)  predict/evaluate/save before fit
    └── TrainingDivergedError(MtlrecError, FloatingPointError)  loss exploded in fit

and every warning it issues is a ``MtlrecWarning`` (a ``UserWarning``)::

    MtlrecWarning
    ├── UndefinedMetricWarning      a metric reported as NaN, and why
    └── ExpertUtilisationWarning    a gate collapsed onto one expert, or an expert unused
"""

from __future__ import annotations

import sys
import warnings


class MtlrecError(Exception):
    """Base class of every error mtlrec raises on purpose."""


class ConfigError(MtlrecError, ValueError):
    """An argument, architecture name or task specification is invalid."""


class DataError(MtlrecError, ValueError):
    """The input data does not match the feature or task specification."""


class UndefinedMetricError(DataError):
    """A metric the rows evaluated do not define (an AUC over one class, say): ``evaluate``
    reports it as NaN with an :class:`UndefinedMetricWarning`."""


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


class DistributedError(MtlrecError, RuntimeError):
    """A collective of a multi-process fit failed: another process died, hung past the
    timeout or disagreed (the message names this process's rank)."""


class CheckpointError(MtlrecError, RuntimeError):
    """A checkpoint could not be written (the earlier ones are kept) or read (a folder
    incomplete, corrupt or of another format version), or belongs to another run."""


class MtlrecWarning(UserWarning):
    """Base class of every warning mtlrec issues (``warnings.simplefilter("ignore",
    mtlrec.MtlrecWarning)`` silences them all)."""


class UndefinedMetricWarning(MtlrecWarning):
    """A metric ``evaluate`` could not compute on the rows it judged, reported as NaN."""


class ExpertUtilisationWarning(MtlrecWarning):
    """After ``fit``: a gate put almost all its weight on one expert, or an expert gets
    almost none (:mod:`mtlrec.inspection`)."""


def warn(message: str, category: type[Warning] = MtlrecWarning) -> None:
    """Issue ``message`` as a ``category`` warning attributed to the first caller outside
    mtlrec: the line shown is the user's, and Python's default filter shows each message
    once per such line (not once per epoch of a fit)."""
    package = __name__.partition(".")[0]
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == package:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
