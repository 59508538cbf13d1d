"""Evaluation metrics over whole evaluation sets (numpy only)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .exceptions import ConfigError, DataError
from .tasks import TASK_TYPES


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


_METRICS = {"auc": roc_auc, "logloss": log_loss, "mae": mae, "rmse": rmse}


def task_metrics(task_type: str, y_true: ArrayLike, prediction: ArrayLike) -> dict[str, float]:
    """The metrics of ``tasks.TASK_TYPES[task_type]``, keyed by name."""
    if task_type not in TASK_TYPES:
        raise ConfigError(f"unknown task type {task_type!r}; choose one of {sorted(TASK_TYPES)}")
    return {name: float(_METRICS[name](y_true, prediction)) for name in TASK_TYPES[task_type]}
