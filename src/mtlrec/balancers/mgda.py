"""MGDA, multi-task learning as multi-objective optimisation (Sener & Koltun, NeurIPS 2018).

The update is the minimum-norm point of the convex hull of the task gradients,
sum_t w_t g_t with w on the simplex: a direction that decreases every task's loss
unless the point is Pareto-stationary (the norm is then 0). The weights come from a
Frank-Wolfe solver on the Gram matrix whose line search is the paper's closed-form
minimum-norm point of two vectors (exact for two tasks). With ``normalization`` the
gradients are first divided by their loss ("loss"), their norm ("l2") or both
("loss+", the paper's choice for MultiMNIST).

This is MGDA on the gradients of the shared parameters (one backward per task), not
the paper's MGDA-UB, which takes the gradients of the shared representation instead.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ConfigError
from .base import BALANCERS, GradientBalancer

_NORMALIZATIONS = ("none", "loss", "loss+", "l2")


def min_norm_of_two(v1v1: float, v1v2: float, v2v2: float) -> float:
    """gamma in [0, 1] minimising ||gamma v1 + (1 - gamma) v2||^2, from the dot products
    (Sener & Koltun, Algorithm 1)."""
    if v1v2 >= v1v1:
        return 1.0
    if v1v2 >= v2v2:
        return 0.0
    return (v2v2 - v1v2) / (v1v1 + v2v2 - 2.0 * v1v2)


def min_norm_weights(gram: np.ndarray, max_iter: int = 250, tolerance: float = 1e-12) -> np.ndarray:
    """w on the simplex minimising ||sum_t w_t g_t||^2 given the Gram matrix (T, T).

    Frank-Wolfe from the uniform weights (Sener & Koltun, Algorithm 2), each line search
    the closed-form minimum-norm point of two vectors (:func:`min_norm_of_two`). Its
    steps are pairwise: they move weight from the support's worst vertex to the best
    one, which converges linearly where plain steps zigzag towards a face; for two
    tasks the first step is exact.
    """
    t = len(gram)
    w = np.full(t, 1.0 / t)
    for _ in range(max_iter if t > 1 else 0):
        gw = gram @ w  # (g_w . g_j)_j: the gradient of ||g_w||^2 / 2
        s = int(np.argmin(gw))
        support = np.flatnonzero(w > 0)
        v = int(support[np.argmax(gw[support])])
        if gw[v] - gw[s] <= tolerance * (1.0 + np.abs(gw).max()):
            break
        d = np.zeros(t)
        d[s], d[v] = w[v], -w[v]  # all of v's weight onto s: the segment's far end
        gd = gram @ d
        ww, wd = float(w @ gw), float(w @ gd)
        gamma = min_norm_of_two(ww, ww + wd, ww + 2.0 * wd + float(d @ gd))
        w = w + (1.0 - gamma) * d  # gamma g_w + (1 - gamma) g_(w + d)
        w[v] = max(w[v], 0.0)
    return w


@BALANCERS.register("mgda", rank=50)
class MGDA(GradientBalancer):
    """Minimum-norm convex combination of the task gradients.

    Args:
        normalization: ``"none"`` (default), ``"loss"``, ``"loss+"`` or ``"l2"``.
        max_iter: Frank-Wolfe iterations at most (three or more tasks).
    """

    def __init__(self, normalization: str = "none", max_iter: int = 250) -> None:
        if normalization not in _NORMALIZATIONS:
            raise ConfigError(
                f"mgda: unknown normalization {normalization!r}; choose one of {_NORMALIZATIONS}"
            )
        self.normalization, self.max_iter = normalization, max_iter

    def scales(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        """What each task's gradient is divided by (T,) before the solver."""
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        scale = {
            "none": np.ones_like(losses),
            "loss": losses,
            "loss+": losses * norms,
            "l2": norms,
        }[self.normalization]
        return np.where(scale > 0, scale, 1.0)

    def coefficients(self, gram: np.ndarray, losses: np.ndarray) -> np.ndarray:
        scale = self.scales(gram, losses)
        w = min_norm_weights(gram / np.outer(scale, scale), self.max_iter)
        return w / scale

    def __repr__(self) -> str:
        return f"MGDA(normalization={self.normalization!r})"
