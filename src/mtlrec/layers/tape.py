"""A traced forward pass whose backward is composed from per-block rules.

Autograd records several nodes per layer (matmul, bias, views, activation) and walks
them one by one; for the small matrices of a recommender's training step that
bookkeeping costs as much as the arithmetic (Shared-Bottom at batch 256: 9 % of a step,
ESMM 15 %; docs/benchmarks.md), and it cannot fold the embedding lookup into the first
layers at large batches (MMoE at batch 2048: 1.38x). So each building block (a bank MLP,
a gate bank, the mixture, the towers, the input layer, ESMM's product logit) owns, next
to its forward, a *rule*: the same forward computed without autograd, which records
on a :class:`Tape` what its backward needs, and that backward, which adds the
parameters' gradients straight into their ``.grad`` and returns the inputs' gradients.

A network's forward is written once, as plain PyTorch. For a fast step it is called on
a traced batch: the input layer returns a :class:`Traced` value, every block called on
a traced value runs its rule and returns traced values, and a handful of glue
operations between blocks (``squeeze``, ``unsqueeze``, ``unbind``, ``index_select``,
slicing along the first dimension) have rules of their own. Anything else applied to a
traced value -- an arithmetic operator, a torch function, a layer without a rule --
raises (:class:`Declined`, ``TypeError`` or ``AttributeError``), and the training step
declines and runs the batch through autograd instead. So a network, or a subclass that
overrides ``forward``, is trained by rules only for what its forward actually did.

Shape legend: B batch, G gate or group inputs, I input features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data import Batch

#: a rule's backward (a closure over what its forward kept): gradients of its outputs
#: (None where unused) -> gradients of its traced inputs (None where none flows)
Backward = Callable[[list[torch.Tensor | None]], Sequence[torch.Tensor | None]]


class Declined(Exception):
    """A traced forward met something without a backward rule; the reason says what."""


class Traced:
    """A tensor of a traced forward pass: its value, plus the tape that made it.

    Supports the metadata a forward reads (shape, dim, dtype, device) and the glue
    operations listed in the module docstring; everything else declines.

    Attributes:
        value: the tensor (no autograd history).
        grad_width: when set, only the first ``grad_width`` features of the last
            dimension need a gradient (the input row's embedding columns: dense columns
            have none), so the layers reading it skip the rest.
    """

    __slots__ = ("grad_width", "tape", "value")

    def __init__(self, tape: Tape, value: torch.Tensor, grad_width: int | None = None) -> None:
        self.tape, self.value, self.grad_width = tape, value, grad_width

    def __getattr__(self, name: str):
        raise Declined(f"{name!r} applied to a traced value outside a block")

    # metadata
    @property
    def shape(self) -> torch.Size:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def dtype(self) -> torch.dtype:
        return self.value.dtype

    @property
    def device(self) -> torch.device:
        return self.value.device

    def dim(self) -> int:
        return self.value.dim()

    def size(self, dim: int | None = None):
        return self.value.size() if dim is None else self.value.size(dim)

    def __len__(self) -> int:
        return len(self.value)

    # glue between blocks
    def squeeze(self, dim: int) -> Traced:
        if self.value.shape[dim] != 1:  # nothing to squeeze, as torch does
            return self
        out = self.tape.value(self.value.squeeze(dim), self.grad_width)
        self.tape.record(lambda g: [g[0].unsqueeze(dim)], [self], [out])
        return out

    def unsqueeze(self, dim: int) -> Traced:
        out = self.tape.value(self.value.unsqueeze(dim), self.grad_width)
        self.tape.record(lambda g: [g[0].squeeze(dim)], [self], [out])
        return out

    def unbind(self, dim: int = 0) -> tuple[Traced, ...]:
        parts = self.value.unbind(dim)
        outs = [self.tape.value(p) for p in parts]

        def backward(grads):
            full = [
                torch.zeros_like(p) if g is None else g for p, g in zip(parts, grads, strict=True)
            ]
            return [torch.stack(full, dim)]

        self.tape.record(backward, [self], outs)
        return tuple(outs)

    def index_select(self, dim: int, index: torch.Tensor) -> Traced:
        dim = dim % self.value.dim()
        out = self.tape.value(self.value.index_select(dim, index))
        shape = self.value.shape

        def backward(grads):
            (g,) = grads
            return [g.new_zeros(shape).index_add_(dim, index, g)]

        self.tape.record(backward, [self], [out])
        return out

    def __getitem__(self, key) -> Traced:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise Declined(f"indexing a traced value with {key!r} (only [start:stop] has a rule)")
        out = self.tape.value(self.value[key])
        shape = self.value.shape

        def backward(grads):
            full = grads[0].new_zeros(shape)
            full[key] = grads[0]
            return [full]

        self.tape.record(backward, [self], [out])
        return out


class Tape:
    """The rules a traced forward ran, in order, and the reverse pass over them."""

    def __init__(self) -> None:
        self._entries: list[tuple[Backward, list, list, bool]] = []

    def value(self, tensor: torch.Tensor, grad_width: int | None = None) -> Traced:
        """A traced value on this tape."""
        return Traced(self, tensor, grad_width)

    def record(
        self,
        backward: Backward,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        always: bool = False,
    ) -> None:
        """Remember a rule: ``backward(output grads)`` returns the inputs' grads.

        ``inputs`` and ``outputs`` are traced values (None or other objects for inputs
        without a gradient); ``always`` runs the backward even when no output gradient
        reached it (rules whose outputs collect their gradient themselves, like the
        folded input's projection).
        """
        self._entries.append((backward, list(inputs), list(outputs), always))

    def backward(self, seeds: dict[int, torch.Tensor]) -> None:
        """Run the rules in reverse from ``seeds``, gradients of traced values keyed by
        ``id(value)`` (the values live on the tape meanwhile); parameters' gradients
        accumulate into ``.grad``."""
        grads: dict[int, torch.Tensor] = dict(seeds)
        while self._entries:
            backward, inputs, outputs, always = self._entries.pop()
            out_grads = [grads.pop(id(o), None) for o in outputs]
            if not always and all(g is None for g in out_grads):
                continue
            for value, grad in zip(inputs, backward(out_grads), strict=True):
                if grad is None or not isinstance(value, Traced):
                    continue
                key = id(value)
                if key not in grads:
                    grads[key] = grad
                    continue
                total = grads[key]
                if total.shape == grad.shape:
                    total.add_(grad)
                    continue
                if total.shape[-1] < grad.shape[-1]:  # a consumer that used grad_width
                    total, grad = grad, total
                total[..., : grad.shape[-1]] += grad
                grads[key] = total


def cat(values: Sequence[Any], dim: int = 0):
    """``torch.cat`` of tensors, or of traced values with its rule (the gradient split
    back into the parts)."""
    tape = tape_of(*values)
    if tape is None:
        return torch.cat(values, dim)
    if not all(isinstance(v, Traced) for v in values):
        raise Declined("cat of traced and untraced values")
    out = tape.value(torch.cat([v.value for v in values], dim))
    sizes = [v.shape[dim] for v in values]
    tape.record(lambda g: list(g[0].split(sizes, dim)), list(values), [out])
    return out


def side_by_side(x):
    """(E, B, H) -> (B, E * H): the members' outputs of each row next to each other (a
    tensor, or a traced value with its rule)."""
    e, b, h = x.shape
    if isinstance(x, torch.Tensor):
        return x.permute(1, 0, 2).reshape(b, e * h)
    out = x.tape.value(x.value.permute(1, 0, 2).reshape(b, e * h))
    x.tape.record(lambda g: [g[0].view(b, e, h).permute(1, 0, 2)], [x], [out])
    return out


def tape_of(*values: Any) -> Tape | None:
    """The tape of the first traced value among ``values``, or None (an untraced call)."""
    for value in values:
        tape = getattr(value, "tape", None) if not isinstance(value, torch.Tensor) else None
        if tape is not None:
            return tape
    return None


@dataclass
class TracedBatch(Batch):
    """A batch whose forward pass is traced on ``tape`` (see the module docstring)."""

    tape: Tape | None = None
