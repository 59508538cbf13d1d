"""Synthetic two-task regression data with controlled task relatedness (MMoE paper).

Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts", KDD 2018, section 3.2. For a correlation score ``p`` in [-1, 1]:

1. draw two orthogonal unit vectors ``u1, u2`` in R^dim (Gaussian draws, Gram-Schmidt);
2. ``w1 = c * u1`` and ``w2 = c * (p * u1 + sqrt(1 - p^2) * u2)``, so ``cos(w1, w2) = p``;
3. draw inputs ``x ~ N(0, I_dim)``;
4. ``y_k = w_k . x + sum_{i=1..m} sin(alpha_i * w_k . x + beta_i) + eps_k``.

Constants (paper unless noted): ``dim = 100``, scale ``c = 1``, ``m = 10`` sine terms,
noise ``eps_k ~ N(0, 0.01^2)``: the paper writes N(0, 0.01), read here as a standard
deviation of 0.01 (as in Google Research's public reimplementation). The paper does not
publish ``alpha_i, beta_i``; the default ``alpha_i = i`` and ``beta_i = (i - 1)^2``
(``i = 1..m``) is the reimplementation's choice. The Pearson correlation of the labels is
not ``p`` itself (the sines decorrelate them) but grows with ``p``.

Random streams: ``seed`` spawns three independent streams, one each for the weight
vectors, the inputs and the noise. The weights depend on ``seed`` and ``dim`` only
(``p`` and ``c`` just combine ``u1, u2``), so every call with one seed describes the
same task pair, whatever ``n``. Rows are i.i.d. and a prefix of a longer draw equals a
shorter draw, so train / validation / test splits are row slices of one call::

    frame = synthetic_correlated(n_train + n_test, correlation=0.9, seed=3)
    train, test = frame.iloc[:n_train], frame.iloc[n_train:]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..exceptions import ConfigError
from ..features import DenseFeature, Feature
from ..tasks import Task

#: label columns of the two tasks
SYNTHETIC_TASKS = ("y1", "y2")

_WEIGHTS, _INPUTS, _NOISE = range(3)  # child streams of the seed


def _streams(seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


def check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(name: str, value: object, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f" in [{low:g}, {high:g}]" if math.isfinite(low) or math.isfinite(high) else ""
        raise ConfigError(f"{name} must be a finite number{bounds}, got {value!r}")
    return value


def synthetic_weights(
    correlation: float, seed: int = 0, dim: int = 100, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The task weight vectors ``(w1, w2)``, float64 (dim,), with cosine ``correlation``.

    Both have norm ``scale``; ``u1, u2`` depend on ``seed`` and ``dim`` only.
    """
    p = check_real("correlation", correlation, -1.0, 1.0)
    seed = check_int("seed", seed, 0)
    dim = check_int("dim", dim, 2)
    c = check_real("scale", scale)
    if c == 0:
        raise ConfigError("scale must be non-zero (the tasks would be pure sine constants)")
    draw = _streams(seed)[_WEIGHTS].standard_normal((2, dim))
    u1 = draw[0] / np.linalg.norm(draw[0])
    v = draw[1] - (draw[1] @ u1) * u1  # Gram-Schmidt
    u2 = v / np.linalg.norm(v)
    return c * u1, c * (p * u1 + math.sqrt(max(0.0, 1.0 - p * p)) * u2)


def synthetic_correlated(
    n: int,
    correlation: float,
    seed: int = 0,
    *,
    dim: int = 100,
    scale: float = 1.0,
    num_sines: int = 10,
    noise_std: float = 0.01,
    alphas: Sequence[float] | None = None,
    betas: Sequence[float] | None = None,
) -> pd.DataFrame:
    """``n`` rows of the MMoE paper's synthetic two-task regression data.

    Args:
        n: rows to draw.
        correlation: cosine similarity ``p`` of the two task weight vectors, in [-1, 1].
        seed: fixes the task pair (weights) and, through separate streams, the rows.
        dim: input dimension (>= 2).
        scale: norm ``c`` of the weight vectors.
        num_sines: sine terms ``m`` per label.
        noise_std: standard deviation of the label noise (>= 0).
        alphas, betas: frequencies and phases of the sines (``num_sines`` values each);
            default ``alpha_i = i``, ``beta_i = (i - 1)^2``.

    Returns:
        A frame with float32 inputs ``x0 .. x{dim-1}`` and float32 labels ``y1``, ``y2``.
    """
    n = check_int("n", n, 1)
    m = check_int("num_sines", num_sines, 0)
    noise = check_real("noise_std", noise_std, 0.0)
    alpha, beta = _coefficients(m, alphas, betas)
    w1, w2 = synthetic_weights(correlation, seed, dim, scale)
    streams = _streams(seed)
    x = streams[_INPUTS].standard_normal((n, dim))  # (N, D)
    eps = streams[_NOISE].standard_normal((n, 2)) * noise  # (N, 2)
    linear = x @ np.stack([w1, w2], axis=1)  # (N, 2)
    sines = np.sin(linear[:, :, None] * alpha + beta).sum(axis=2)  # (N, 2)
    y = (linear + sines + eps).astype(np.float32)
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"x{i}" for i in range(dim)])
    frame[SYNTHETIC_TASKS[0]] = y[:, 0]
    frame[SYNTHETIC_TASKS[1]] = y[:, 1]
    return frame


def synthetic_label_correlation(
    correlation: float,
    *,
    scale: float = 1.0,
    num_sines: int = 10,
    noise_std: float = 0.01,
    alphas: Sequence[float] | None = None,
    betas: Sequence[float] | None = None,
) -> float:
    """Population Pearson correlation of ``y1`` and ``y2`` (exact, for any ``dim``/seed).

    ``z_k = w_k . x`` are jointly Gaussian (variance ``c^2``, correlation ``p``), so every
    moment is closed-form: ``E cos(u + phi) = cos(phi) exp(-Var(u) / 2)`` for Gaussian
    ``u``, and Stein's lemma ``E[z_j g(z_k)] = Cov(z_j, z_k) E[g'(z_k)]``.
    """
    p = check_real("correlation", correlation, -1.0, 1.0)
    s2 = check_real("scale", scale) ** 2
    m = check_int("num_sines", num_sines, 0)
    noise = check_real("noise_std", noise_std, 0.0)
    a, b = _coefficients(m, alphas, betas)
    mean_sin = np.sin(b) * np.exp(-a * a * s2 / 2)  # E sin(a_i z + b_i), (m,)
    ai, al = a[:, None], a[None, :]  # (m, 1), (1, m): sine i of one task, sine l of other
    bi, bl = b[:, None], b[None, :]

    def covariance(rho: float) -> float:
        """Cov(y_j, y_k) without noise when corr(z_j, z_k) = rho."""
        linear_sine = np.sum(rho * s2 * a * np.cos(b) * np.exp(-a * a * s2 / 2))
        sine_sine = (
            0.5 * np.cos(bi - bl) * np.exp(-s2 * (ai * ai + al * al - 2 * ai * al * rho) / 2)
            - 0.5 * np.cos(bi + bl) * np.exp(-s2 * (ai * ai + al * al + 2 * ai * al * rho) / 2)
            - mean_sin[:, None] * mean_sin[None, :]
        )
        return float(rho * s2 + 2 * linear_sine + sine_sine.sum())

    return covariance(p) / (covariance(1.0) + noise * noise)


def _coefficients(
    m: int, alphas: Sequence[float] | None, betas: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validated sine frequencies and phases, (m,) each; the defaults when None."""
    default = {"alphas": np.arange(1, m + 1.0), "betas": np.arange(m, dtype=np.float64) ** 2}
    result = []
    for name, given in (("alphas", alphas), ("betas", betas)):
        if given is None:
            result.append(default[name])
            continue
        array = np.asarray(given, dtype=np.float64) if _numeric(given) else None
        if array is None or array.shape != (m,) or not np.isfinite(array).all():
            raise ConfigError(
                f"{name} must be {m} finite numbers (one per sine term, num_sines={m}), "
                f"got {given!r}"
            )
        result.append(array)
    return result[0], result[1]


def _numeric(values: object) -> bool:
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def synthetic_features(dim: int = 100) -> list[Feature]:
    """Dense feature specs ``x0 .. x{dim-1}``."""
    dim = check_int("dim", dim, 2)
    return [DenseFeature(f"x{i}") for i in range(dim)]


def synthetic_tasks() -> list[Task]:
    """The two regression tasks ``y1`` and ``y2``, trained on the raw labels as in the
    paper (the labels have unit scale already; the losses stay the paper's MSE)."""
    return [Task(name, "regression", standardize=False) for name in SYNTHETIC_TASKS]
