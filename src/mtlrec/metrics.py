"""Evaluation metrics over whole evaluation sets (numpy only)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .exceptions import DataError


def _pair(y_true: ArrayLike, y_pred: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat float64 copies of two equally long, non-empty, NaN-free arrays."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise DataError(f"{name}: y_true has {y.size} values but the prediction has {p.size}")
    if y.size == 0:
        raise DataError(f"{name}: no values to evaluate")
    if np.isnan(y).any() or np.isnan(p).any():
        raise DataError(f"{name}: labels and predictions must not contain NaN")
    return y, p


def _binary(y: np.ndarray, name: str) -> np.ndarray:
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError(f"{name}: y_true must contain only 0 and 1, got {np.unique(y)[:5]}")
    return y


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney statistic, tied scores count one half)."""
    y, s = _pair(y_true, y_score, "roc_auc")
    positive = _binary(y, "roc_auc") == 1
    n_pos = int(positive.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise DataError("roc_auc: y_true holds only one class; AUC needs positives and negatives")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # average 1-based rank of each distinct score: ranks end at cumsum(counts)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = float(mean_rank[inverse][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(y_true: ArrayLike, p: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy with probabilities clipped to [eps, 1 - eps]."""
    y, q = _pair(y_true, p, "log_loss")
    y = _binary(y, "log_loss")
    q = np.clip(q, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log1p(-q)))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    y, p = _pair(y_true, y_pred, "mae")
    return float(np.mean(np.abs(y - p)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    y, p = _pair(y_true, y_pred, "rmse")
    return float(np.sqrt(np.mean((y - p) ** 2)))


def poisson_deviance(y_true: ArrayLike, mean: ArrayLike) -> float:
    """Mean Poisson deviance 2 (y log(y / mu) - (y - mu)), with y log y = 0 at y = 0."""
    y, mu = _pair(y_true, mean, "poisson_deviance")
    if (y < 0).any() or (mu <= 0).any():
        raise DataError("poisson_deviance: counts must be >= 0 and predicted means > 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return float(np.mean(2.0 * (ylogy - (y - mu))))


def _classes(
    y_true: ArrayLike, probabilities: ArrayLike, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Class indices (N,) and probabilities (N, K), checked against each other."""
    y = np.asarray(y_true).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.size:
        raise DataError(f"{name}: expected probabilities (N, K) for {y.size} labels, got {p.shape}")
    if y.size == 0:
        raise DataError(f"{name}: no values to evaluate")
    if (y < 0).any() or (y >= p.shape[1]).any() or (y != np.trunc(y)).any():
        raise DataError(f"{name}: labels must be class indices in 0..{p.shape[1] - 1}")
    return y.astype(np.int64), p


def accuracy(y_true: ArrayLike, probabilities: ArrayLike) -> float:
    """Share of rows whose most probable class (first on ties) is the label."""
    y, p = _classes(y_true, probabilities, "accuracy")
    return float(np.mean(p.argmax(axis=1) == y))


def multiclass_log_loss(y_true: ArrayLike, probabilities: ArrayLike, eps: float = 1e-7) -> float:
    """Mean cross-entropy -log p[label], probabilities clipped to [eps, 1]."""
    y, p = _classes(y_true, probabilities, "multiclass_log_loss")
    return float(-np.mean(np.log(np.clip(p[np.arange(y.size), y], eps, 1.0))))


def macro_auc(y_true: ArrayLike, probabilities: ArrayLike) -> float:
    """Mean of the one-vs-rest AUCs of the classes that occur in y_true without filling
    it (the others have no AUC); NaN when no class qualifies."""
    y, p = _classes(y_true, probabilities, "macro_auc")
    aucs = [roc_auc(y == k, p[:, k]) for k in range(p.shape[1]) if 0 < int((y == k).sum()) < y.size]
    return float(np.mean(aucs)) if aucs else float("nan")
