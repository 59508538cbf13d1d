"""CAGrad, conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021).

With g_0 the average task gradient, the update d maximises the worst task's decrease
min_t g_t . d within a ball ||d - g_0|| <= c ||g_0|| around it. Its dual gives
d = g_0 + sqrt(phi) / ||g_w|| g_w, phi = c^2 ||g_0||^2, where g_w = sum_t w_t g_t and w
on the simplex minimises F(w) = g_w . g_0 + sqrt(phi) ||g_w||. As in the reference
implementation, d is divided by 1 + c^2 (``rescale``) and ||g_w|| gets 1e-8 added.

F is convex on the simplex; it is minimised on the Gram matrix by pairwise Frank-Wolfe
steps, each with an exact line search (along a segment, F is a linear function plus
c ||g_0|| times the square root of a quadratic: its minimum has a closed form), so two
tasks are solved in one step.
"""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import ConfigError
from .base import BALANCERS, GradientBalancer


def _segment_minimum(linear: float, q0: float, q1: float, q2: float, scale: float, hi: float):
    """gamma in [0, hi] minimising linear * gamma + scale * sqrt(q0 + q1 gamma + q2 gamma^2)."""

    def f(g: float) -> float:
        return linear * g + scale * math.sqrt(max(q0 + q1 * g + q2 * g * g, 0.0))

    candidates = [0.0, hi]
    # stationary points: scale (q2 g + q1 / 2) = -linear sqrt(q); squared, a quadratic
    k = scale * scale * q2 - linear * linear
    a, b, c = k * q2, k * q1, scale * scale * q1 * q1 / 4.0 - linear * linear * q0
    if abs(a) > 1e-300:
        disc = b * b - 4.0 * a * c
        if disc >= 0.0:
            root = math.sqrt(disc)
            candidates += [(-b + root) / (2.0 * a), (-b - root) / (2.0 * a)]
    elif abs(b) > 1e-300:
        candidates.append(-c / b)
    inside = [g for g in candidates if 0.0 <= g <= hi]
    return min(inside, key=f)


def cagrad_weights(
    gram: np.ndarray, c: float, max_iter: int = 500, tolerance: float = 1e-12
) -> np.ndarray:
    """w on the simplex minimising g_w . g_0 + c ||g_0|| ||g_w|| (g_0 the mean gradient)
    from the Gram matrix (T, T)."""
    t = len(gram)
    b = np.full(t, 1.0 / t)
    scale = c * math.sqrt(max(float(b @ gram @ b), 0.0))
    gb = gram @ b  # g_j . g_0
    w = b.copy()
    for _ in range(max_iter):
        gw = gram @ w
        norm = math.sqrt(max(float(w @ gw), 1e-30))
        grad = gb + scale * gw / norm  # dF/dw
        s = int(np.argmin(grad))  # towards this vertex ...
        support = np.flatnonzero(w > 0)
        v = int(support[np.argmax(grad[support])])  # ... away from this one
        if s == v or grad[v] - grad[s] <= tolerance * (1.0 + abs(grad).max()):
            break
        d = np.zeros(t)
        d[s], d[v] = 1.0, -1.0  # move weight from v to s
        gd = gram @ d
        gamma = _segment_minimum(
            float(gb @ d), float(w @ gw), 2.0 * float(w @ gd), float(d @ gd), scale, float(w[v])
        )
        if gamma <= 0.0:
            break
        w = w + gamma * d
        w[v] = max(w[v], 0.0)  # gamma = w[v] empties it exactly; no rounding below 0
    return w


@BALANCERS.register("cagrad", rank=60)
class CAGrad(GradientBalancer):
    """The average gradient, bent towards the worst-off task within radius c ||g_0||.

    Args:
        c: the ball's radius relative to ||g_0|| (the paper's 0.5; 0 is the average).
        rescale: divide the update by 1 + c^2, as the reference implementation does.
    """

    def __init__(self, c: float = 0.5, rescale: bool = True) -> None:
        if not isinstance(c, int | float) or c < 0:
            raise ConfigError(f"cagrad: c must be a number >= 0, got {c!r}")
        self.c, self.rescale = float(c), bool(rescale)

    def coefficients(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        t = len(gram)
        w = cagrad_weights(gram, self.c)
        g0_norm = math.sqrt(max(float(gram.mean()), 0.0))  # ||g_0||, g_0 = mean_t g_t
        gw_norm = math.sqrt(max(float(w @ gram @ w), 0.0))
        a = np.full(t, 1.0 / t) + self.c * g0_norm / (gw_norm + 1e-8) * w
        return a / (1.0 + self.c**2) if self.rescale else a

    def __repr__(self) -> str:
        return f"CAGrad(c={self.c!r}, rescale={self.rescale!r})"
