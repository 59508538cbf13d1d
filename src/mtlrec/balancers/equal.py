"""Equal weighting: each task's loss times its ``Task.weight``, nothing else (the default)."""

from __future__ import annotations

from .base import BALANCERS, Balancer


@BALANCERS.register("equal", rank=0)
class Equal(Balancer):
    """sum_t weight_t L_t: training exactly as without a balancer (fast step included)."""
