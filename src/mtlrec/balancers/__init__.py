"""Multi-task loss balancers, one per file, registered by name (see ``base``).

``fit(..., balancer="uncertainty")`` picks the balancer registered under that name, or
takes a :class:`Balancer` instance (with its own options, e.g. ``DWA(temperature=1)``);
every registered class is also importable from here by its class name (``from
mtlrec.balancers import DWA``).
Adding a method is one file in this folder with a ``@BALANCERS.register("name")``
class. Loss-level balancers (equal, uncertainty, dwa) keep the fast step; the others
(gradnorm, pcgrad, mgda, cagrad, famo) train with autograd.
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .base import BALANCERS, Balancer, GradientBalancer, SmallAdam


def list_balancers() -> list[str]:
    """Names of every registered loss balancer."""
    return BALANCERS.names()


def make_balancer(spec: str | Balancer | None = None) -> Balancer:
    """The balancer for ``spec``: a registered name (None: ``"equal"``) or a
    :class:`Balancer` instance (returned as it is; ``start`` resets it for each fit)."""
    if spec is None:
        spec = "equal"
    if isinstance(spec, str):
        return BALANCERS.get(spec)()
    if isinstance(spec, Balancer):
        return spec
    raise ConfigError(
        f"balancer: expected a registered name (one of {BALANCERS.names()}) or a "
        f"mtlrec.balancers.Balancer instance, got {type(spec).__name__} {spec!r}"
    )


__all__ = [
    "BALANCERS",
    "Balancer",
    "GradientBalancer",
    "SmallAdam",
    "list_balancers",
    "make_balancer",
]


def __getattr__(name: str) -> type[Balancer]:
    """``mtlrec.balancers.DWA`` and the other registered classes, by class name."""
    for _, cls in BALANCERS.items():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *(cls.__name__ for _, cls in BALANCERS.items())])
