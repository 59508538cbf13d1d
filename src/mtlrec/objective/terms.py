"""Addends of the training loss beyond the task losses: on the network, or on outputs."""

from __future__ import annotations

import torch

from ..data import Batch


class Term:
    """An addend of the training loss beyond the task losses (e.g. an L2 penalty).

    ``per_row`` terms return a sum over the batch's rows, divided by the whole batch's
    rows; the others are added once per step. A term may give the fast step its
    gradient through :meth:`add_gradients`; one that returns False makes it decline.
    """

    name = "term"
    per_row = True

    def value(self, network: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """The term's value for ``batch`` (a sum over rows when ``per_row``), through autograd."""
        raise NotImplementedError

    def add_gradients(self, network: torch.nn.Module, batch: Batch, scale: float) -> bool:
        """Add ``scale`` x the gradient of :meth:`value` to the parameters' ``.grad``;
        False when the term has no such rule."""
        return False


class OutputTerm:
    """An addend computed from the outputs' logits (a funnel's penalty, say): a sum over
    the batch's rows, divided by the whole batch's rows. :meth:`gradients` gives the
    fast step its derivative for the logits in closed form.
    """

    name = "output term"
    #: the outputs it reads
    reads: tuple[str, ...] = ()

    def value(self, logits: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """The sum over rows, differentiable (autograd)."""
        raise NotImplementedError

    def gradients(
        self, logits: dict[str, torch.Tensor], batch: Batch, scale: float
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(``scale`` x d value / d logits by output name, the value), without autograd."""
        raise NotImplementedError
