"""Statistics gathered over a stream of chunks: count, mean, variance, min and max.

Chunks are merged by Chan, Golub and LeVeque's pairwise update ("Updating formulae and
a pairwise algorithm for computing sample variances", 1979): for parts a and b with
counts n, means m and sums of squared deviations M2, delta = m_b - m_a and

    n = n_a + n_b,  m = m_a + delta n_b / n,  M2 = M2_a + M2_b + delta^2 n_a n_b / n.

One chunk gives numpy's own ``mean``, ``var`` and ``std`` bit for bit (the same sums), so
fitting from a table in memory and from a stream of one chunk agree exactly.
"""

from __future__ import annotations

import math

import numpy as np


class RunningMoments:
    """Count, mean, population variance, min and max of the values added so far."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values: np.ndarray) -> None:
        """Add a chunk of finite float values (N,) (leave missing ones out first)."""
        n = int(values.size)
        if n == 0:
            return
        mean = values.mean()
        m2 = float(np.square(values - mean).sum())
        mean = float(mean)
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        if self.count == 0:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def var(self) -> float:
        """Population variance (NaN before any value)."""
        return self.m2 / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (NaN before any value)."""
        return math.sqrt(self.var)
