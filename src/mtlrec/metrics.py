"""Evaluation metrics over whole evaluation sets (numpy only).

A metric the rows do not define (an AUC over one class, a weighted mean of zero weight)
raises :class:`~mtlrec.exceptions.UndefinedMetricError`; ``evaluate`` turns it into NaN
with a warning that names the output and the metric (:func:`undefined`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .exceptions import DataError, UndefinedMetricError, UndefinedMetricWarning, warn


def undefined(output: str, metric: str, reason: object) -> float:
    """NaN, with an :class:`UndefinedMetricWarning` naming ``output``, ``metric`` and
    ``reason`` (why the rows do not define it)."""
    warn(
        f"evaluate: {metric} of {output!r} is undefined on the rows it is judged on "
        f"({reason}); it is reported as NaN",
        UndefinedMetricWarning,
    )
    return math.nan


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


def _weights(sample_weight: ArrayLike, size: int, name: str) -> np.ndarray:
    """Flat float64 sample weights: one per row, finite, >= 0, not all 0."""
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.size != size:
        raise DataError(f"{name}: sample_weight has {w.size} values for {size} rows")
    if not np.isfinite(w).all() or (w < 0).any():
        raise DataError(f"{name}: sample_weight must be finite and >= 0")
    if not w.sum() > 0:
        raise UndefinedMetricError(f"{name}: sample_weight is 0 for every row; nothing to evaluate")
    return w


def _grouped_auc(
    y: np.ndarray, s: np.ndarray, w: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted Mann-Whitney statistic of every group, in one pass over sorted rows.

    Rows sorted by (group, score) fall into blocks of tied scores. A positive row of
    weight w in a block counts w x (negative weight of the group's lower blocks + half
    the negative weight of its own block): ties count one half.

    Returns, per group in sorted order, (correctly ranked pair weight, positive weight,
    negative weight, rows), so AUC = pairs / (positive x negative).
    """
    order = np.lexsort((s, groups))
    g, s, y, w = groups[order], s[order], y[order], w[order]
    new_group = np.r_[True, g[1:] != g[:-1]]
    new_block = new_group | np.r_[True, s[1:] != s[:-1]]
    group = np.cumsum(new_group) - 1  # (N,) group index of each sorted row
    block = np.cumsum(new_block) - 1  # (N,) tie block of each sorted row
    positive = w * y
    negative = w - positive
    block_pos = np.bincount(block, positive)
    block_neg = np.bincount(block, negative)
    block_group = group[new_block]
    below = np.cumsum(block_neg) - block_neg  # negative weight in all earlier blocks
    first = np.flatnonzero(np.r_[True, block_group[1:] != block_group[:-1]])
    below -= below[first][block_group]  # ... of the same group only
    pairs = np.bincount(block_group, block_pos * (below + 0.5 * block_neg))
    rows = np.bincount(group)
    return pairs, np.bincount(group, positive), np.bincount(group, negative), rows


def _one_class(y: np.ndarray) -> str:
    """How one-class labels read in a message: 'all 1,204 labels are 1'."""
    return f"all {y.size:,} labels are {int(y[0])}" if (y == y[0]).all() else f"{y.size:,} labels"


def roc_auc(y_true: ArrayLike, y_score: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Area under the ROC curve (Mann-Whitney statistic, tied scores count one half).

    With ``sample_weight``: the weighted share of (positive, negative) pairs ranked
    correctly, a pair weighing the product of its rows' weights (ties one half).
    """
    y, s = _pair(y_true, y_score, "roc_auc")
    positive = _binary(y, "roc_auc") == 1
    if sample_weight is not None:
        w = _weights(sample_weight, y.size, "roc_auc")
        pairs, pos, neg, _ = _grouped_auc(y, s, w, np.zeros(y.size, dtype=np.int64))
        if not (pos[0] > 0 and neg[0] > 0):
            raise UndefinedMetricError(
                f"roc_auc: y_true holds only one class with weight > 0 ({_one_class(y)}); "
                "AUC needs positives and negatives"
            )
        return float(pairs[0] / (pos[0] * neg[0]))
    n_pos = int(positive.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise UndefinedMetricError(
            f"roc_auc: y_true holds only one class ({_one_class(y)}); AUC needs positives "
            "and negatives"
        )
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # average 1-based rank of each distinct score: ranks end at cumsum(counts)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = float(mean_rank[inverse][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@dataclass(frozen=True)
class GroupAUC:
    """Group AUC: ``value`` averages the AUCs of the ``groups_used`` groups holding both
    classes (``rows_used`` rows); ``groups_skipped`` groups held one class only."""

    value: float
    groups_used: int
    groups_skipped: int
    rows_used: int

    def __float__(self) -> float:
        return self.value


def gauc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    groups: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> GroupAUC:
    """Group AUC (e.g. per user): the AUC within each group, averaged with impression
    weights, as in Zhou et al., "Deep Interest Network", KDD 2018.

    GAUC = sum_g n_g AUC_g / sum_g n_g over the groups holding both classes, with n_g
    the group's rows, or its total ``sample_weight`` when given (the AUCs are then
    weighted too, as in :func:`roc_auc`). Groups with one class (or with no weight on
    one) have no AUC: they are skipped and counted in ``groups_skipped``.

    Args:
        y_true: labels 0/1 (N,).
        y_score: scores (N,); only their order within a group matters.
        groups: group labels (N,), any sortable values (user ids, strings).
        sample_weight: optional weights (N,), >= 0.

    Raises:
        DataError: lengths differ, labels are not 0/1, or no group holds both classes.
    """
    y, s = _pair(y_true, y_score, "gauc")
    y = _binary(y, "gauc")
    g = np.asarray(groups).reshape(-1)
    if g.size != y.size:
        raise DataError(f"gauc: groups has {g.size} values for {y.size} rows")
    if g.dtype.kind == "f" and np.isnan(g).any():
        raise DataError("gauc: groups must not contain NaN; give every row a group")
    w = np.ones(y.size) if sample_weight is None else _weights(sample_weight, y.size, "gauc")
    pairs, pos, neg, rows = _grouped_auc(y, s, w, g)
    used = (pos > 0) & (neg > 0)
    if not used.any():
        raise UndefinedMetricError(
            f"gauc: none of the {rows.size:,} groups holds both positives and negatives, so "
            "no group has an AUC; group by a coarser column or evaluate with roc_auc"
        )
    auc = pairs[used] / (pos[used] * neg[used])
    impressions = (rows if sample_weight is None else pos + neg)[used]
    return GroupAUC(
        value=float(np.sum(impressions * auc) / np.sum(impressions)),
        groups_used=int(used.sum()),
        groups_skipped=int((~used).sum()),
        rows_used=int(rows[used].sum()),
    )


def _mean(values: np.ndarray, sample_weight: ArrayLike | None, name: str) -> float:
    """The mean of per-row values, weighted with ``sample_weight``."""
    if sample_weight is None:
        return float(np.mean(values))
    return float(np.average(values, weights=_weights(sample_weight, values.size, name)))


def log_loss(
    y_true: ArrayLike, p: ArrayLike, eps: float = 1e-7, sample_weight: ArrayLike | None = None
) -> float:
    """Mean binary cross-entropy with probabilities clipped to [eps, 1 - eps]; weighted
    mean with ``sample_weight``."""
    y, q = _pair(y_true, p, "log_loss")
    y = _binary(y, "log_loss")
    q = np.clip(q, eps, 1.0 - eps)
    return -_mean(y * np.log(q) + (1.0 - y) * np.log1p(-q), sample_weight, "log_loss")


def mae(y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Mean absolute error (weighted mean with ``sample_weight``)."""
    y, p = _pair(y_true, y_pred, "mae")
    return _mean(np.abs(y - p), sample_weight, "mae")


def mse(y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Mean squared error (weighted mean with ``sample_weight``)."""
    y, p = _pair(y_true, y_pred, "mse")
    return _mean((y - p) ** 2, sample_weight, "mse")


def rmse(y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Root mean squared error (weighted mean with ``sample_weight``)."""
    return float(np.sqrt(mse(y_true, y_pred, sample_weight)))


def binary_accuracy(
    y_true: ArrayLike, p: ArrayLike, sample_weight: ArrayLike | None = None
) -> float:
    """Share of rows whose probability is on the label's side of 0.5 (Keras' binary
    accuracy; weighted mean with ``sample_weight``)."""
    y, q = _pair(y_true, p, "binary_accuracy")
    y = _binary(y, "binary_accuracy")
    return _mean(((q > 0.5) == (y == 1)).astype(np.float64), sample_weight, "binary_accuracy")


#: the names Keras code gives metrics (``compile(metrics=[...])``, compared in lower
#: case), by the name mtlrec reports them under
METRIC_ALIASES: dict[str, str] = {
    "auc": "auc",
    "roc_auc": "auc",
    "logloss": "logloss",
    "log_loss": "logloss",
    "binary_crossentropy": "logloss",
    "categorical_crossentropy": "logloss",
    "sparse_categorical_crossentropy": "logloss",
    "accuracy": "accuracy",
    "acc": "accuracy",
    "binary_accuracy": "accuracy",
    "categorical_accuracy": "accuracy",
    "sparse_categorical_accuracy": "accuracy",
    "mae": "mae",
    "mean_absolute_error": "mae",
    "mse": "mse",
    "mean_squared_error": "mse",
    "rmse": "rmse",
    "root_mean_squared_error": "rmse",
    "deviance": "deviance",
}


def poisson_deviance(
    y_true: ArrayLike, mean: ArrayLike, sample_weight: ArrayLike | None = None
) -> float:
    """Mean Poisson deviance 2 (y log(y / mu) - (y - mu)), with y log y = 0 at y = 0."""
    y, mu = _pair(y_true, mean, "poisson_deviance")
    if (y < 0).any() or (mu <= 0).any():
        raise DataError("poisson_deviance: counts must be >= 0 and predicted means > 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return _mean(2.0 * (ylogy - (y - mu)), sample_weight, "poisson_deviance")


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


def accuracy(
    y_true: ArrayLike, probabilities: ArrayLike, sample_weight: ArrayLike | None = None
) -> float:
    """Share of rows whose most probable class (first on ties) is the label."""
    y, p = _classes(y_true, probabilities, "accuracy")
    return _mean((p.argmax(axis=1) == y).astype(np.float64), sample_weight, "accuracy")


def multiclass_log_loss(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    eps: float = 1e-7,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Mean cross-entropy -log p[label], probabilities clipped to [eps, 1]."""
    y, p = _classes(y_true, probabilities, "multiclass_log_loss")
    losses = -np.log(np.clip(p[np.arange(y.size), y], eps, 1.0))
    return _mean(losses, sample_weight, "multiclass_log_loss")


def macro_auc(
    y_true: ArrayLike, probabilities: ArrayLike, sample_weight: ArrayLike | None = None
) -> float:
    """Mean of the one-vs-rest AUCs of the classes that occur in y_true without filling
    it (the others have no AUC); UndefinedMetricError when no class qualifies."""
    y, p = _classes(y_true, probabilities, "macro_auc")
    aucs = []
    for k in range(p.shape[1]):
        try:
            aucs.append(roc_auc(y == k, p[:, k], sample_weight))
        except UndefinedMetricError:  # the class is absent or fills the rows
            continue
    if not aucs:
        raise UndefinedMetricError(
            f"macro_auc: every one of the {y.size:,} labels is class {int(y[0])}; a "
            "one-vs-rest AUC needs a class that occurs without filling the rows"
        )
    return float(np.mean(aucs))
