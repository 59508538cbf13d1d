"""Training on several processes and machines with ``torch.distributed``.

Under ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``), :func:`current_group` joins the default process group:
gloo on CPU, nccl on GPU. A fit then trains data-parallel: each process computes the
gradients of its part of every global batch with the step it would use alone (the fast
step included), and one all-reduce sums them into the flat gradient buffer
(:mod:`mtlrec._flat`) before every process takes the same optimizer step.

This is what ``DistributedDataParallel`` does with one gradient bucket, without its
autograd hooks: DDP's hooks would force the autograd step (the fast step runs no
autograd) and need ``find_unused_parameters`` for gated models whose experts a step may
not use, while a summed flat buffer has every parameter's slot whatever the step used.
Three collectives run per step: the label counts N_t (so each process normalises its
losses by the global batch's counts, and the summed gradients are exactly the global
batch's gradient), the gradients, and the losses (for the epoch's record and the
balancers, which then see what one process would).
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .exceptions import DistributedError

logger = logging.getLogger(__name__)

#: seconds a collective waits for the other processes before it fails (a process that
#: died mid-epoch), unless MTLREC_DIST_TIMEOUT says otherwise
TIMEOUT = 600


@dataclass(frozen=True)
class Group:
    """This process (``rank``) of ``world`` processes training together."""

    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes bundles, checkpoints, logs and charts."""
        return self.rank == 0

    def _run(self, what: str, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except (RuntimeError, ValueError) as error:  # gloo/nccl: peer gone, timeout
            raise DistributedError(
                f"rank {self.rank} of {self.world}: {what} failed ({error}); another "
                "process probably stopped (see its log); this one stops too"
            ) from None

    def sum_(self, tensor: torch.Tensor, what: str = "an all-reduce") -> torch.Tensor:
        """Sum ``tensor`` over the processes, in place."""
        self._run(what, dist.all_reduce, tensor, dist.ReduceOp.SUM)
        return tensor

    def sum_gradients_(self, params: Sequence[torch.nn.Parameter], *more: torch.Tensor) -> None:
        """Sum the gradients of ``params`` (a missing gradient counts as zeros: it
        becomes a zero tensor first) and the tensors ``more`` over the processes, in
        place; the all-reduces are issued together and then waited for."""
        tensors = []
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            tensors.append(p.grad)

        def reduce_all() -> None:
            works = [
                dist.all_reduce(t, dist.ReduceOp.SUM, async_op=True) for t in [*tensors, *more]
            ]
            for work in works:
                work.wait()

        self._run("the gradients' all-reduce", reduce_all)

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's rows of ``tensor`` (N_r, ...), in rank order."""
        count = torch.tensor([tensor.shape[0]], device=tensor.device)
        counts = [torch.zeros_like(count) for _ in range(self.world)]
        self._run("gathering row counts", dist.all_gather, counts, count)
        sizes = [int(c) for c in counts]
        most = max(sizes)
        padded = tensor.new_zeros((most, *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        parts = [torch.zeros_like(padded) for _ in range(self.world)]
        self._run("gathering predictions", dist.all_gather, parts, padded.contiguous())
        return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


def current_group(device: torch.device | str = "cpu") -> Group | None:
    """The process group this process trains in; None when it trains alone.

    Joins the default group (gloo on CPU, nccl on CUDA) when a launcher such as
    ``torchrun`` set ``WORLD_SIZE`` > 1 and nothing joined it yet."""
    if not dist.is_available():
        return None
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        seconds = float(os.environ.get("MTLREC_DIST_TIMEOUT", TIMEOUT))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=seconds))
        logger.info(
            "joined a process group: rank %d of %d (%s)",
            dist.get_rank(),
            dist.get_world_size(),
            backend,
        )
    if dist.get_world_size() == 1:
        return None
    return Group(dist.get_rank(), dist.get_world_size())


def is_main_process() -> bool:
    """False only in a process group's ranks other than 0 (they write nothing)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
