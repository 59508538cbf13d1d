"""Task types (heads), one per file, registered by name.

A head owns everything that depends on what a task predicts: its number of outputs,
how labels are checked and encoded (with statistics fitted on the training labels),
the per-row loss from logits and (optionally) its closed-form gradient, the
activation that turns logits into predictions, and the metrics. ``Task(name,
type="poisson")`` picks the head registered as ``"poisson"``; adding a task type is
one file in this folder with a ``@HEADS.register("name")`` class.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Head

#: head name -> Head subclass (binary, regression, multiclass, poisson, ...)
HEADS: Registry[type[Head]] = Registry("task type", __name__)


def list_heads() -> list[str]:
    """Names of every registered task type."""
    return HEADS.names()


__all__ = ["HEADS", "Head", "list_heads"]
