"""Synthetic user x item interactions with entity structure, histories and ground truth.

Each row is a (user, item) pair. With ``K = factors``, ``U`` users, ``I`` items and the
coefficients of :data:`ENTITY_TRUTH` (``t``)::

    u_user ~ N(0, I_K / sqrt(K))       (U, K)  latent user factors, never observed
    v_item ~ N(0, I_K / sqrt(K))       (I, K)  latent item factors, never observed
    m = u_user . v_item                (N,)    the interaction, variance 1
    a(user) = t.segment_weight  * s[user_segment] + t.activity_weight * user_activity
              + t.user_noise * e_user                           (U,)  user-only effect
    b(item) = t.category_weight * g[item_category] + t.price_weight * item_price
              + t.item_noise * e_item                           (I,)  item-only effect
    click_logit_true = t.click_bias + a + b + t.click_interaction * m
    click ~ Bernoulli(sigmoid(click_logit_true))
    watch_true = t.watch_user * a + t.watch_item * b + t.watch_interaction * m
    watch = watch_true + t.watch_noise * N(0, 1)

with ``s`` (``t.segments``,) and ``g`` (``t.categories``,) standard normal, ``user_segment``
and ``item_category`` uniform ids, ``user_activity``, ``item_price``, ``e_user``,
``e_item`` standard normal. Users are drawn for rows with Zipf-like popularity
``p(rank r) ~ r^-t.user_zipf`` (ranks randomly permuted over ids), so a few users hold
many rows and most hold one or none; items with the milder ``r^-t.item_zipf``.

``history`` (the same list on every row of a user) holds ``history_len`` distinct item
ids drawn without replacement from ``softmax(u_user . v / t.temperature)`` over all items
(Gumbel top-k, in draw order), so it reveals the user's taste ``u_user``, which no
observed user column does.

What the ground truth predicts: the interaction ``m`` is invisible to every single
observed column and learnable from ids only for users with many rows, so pooling the
history (embeddings shared with ``item_id``) should beat a ``user_id`` embedding on the
many users with few rows; ``a`` and ``b`` are separable (additive, each from one
entity's features), so models with per-entity experts or towers should fit them
with fewer parameters than a flat model. ``user_effect_true``, ``item_effect_true`` and
``interaction_true`` (a, b, m per row) let each part be judged.

Random numbers come from one local ``np.random.default_rng(seed)``: a call is
reproducible from its arguments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..exceptions import ConfigError
from ..features import DenseFeature, Feature, SequenceFeature, SparseFeature
from ..tasks import Task
from .synthetic import check_int

logger = logging.getLogger(__name__)

#: label columns: click (binary) and watch (regression)
ENTITY_TASKS = ("click", "watch")
#: ground-truth columns (not features)
ENTITY_TRUTH_COLUMNS = (
    "click_logit_true", "watch_true", "user_effect_true", "item_effect_true",
    "interaction_true",
)  # fmt: skip

_CHUNK = 2_000_000  # score-matrix cells per history chunk


@dataclass(frozen=True)
class EntityTruth:
    """Fixed constants of :func:`synthetic_entities` (see the module docstring)."""

    segments: int = 10
    categories: int = 20
    user_zipf: float = 0.8
    item_zipf: float = 0.5
    segment_weight: float = 0.6
    activity_weight: float = 0.5
    user_noise: float = 0.2
    category_weight: float = 0.6
    price_weight: float = -0.5
    item_noise: float = 0.2
    click_bias: float = -1.0
    click_interaction: float = 1.5
    watch_user: float = 0.3
    watch_item: float = 1.0
    watch_interaction: float = 0.7
    watch_noise: float = 0.5
    temperature: float = 0.5


#: the coefficients every call uses
ENTITY_TRUTH = EntityTruth()


def _popularity(rng: np.random.Generator, size: int, exponent: float) -> np.ndarray:
    """(size,) probabilities ``~ rank^-exponent``, ranks randomly permuted over ids."""
    weights = np.arange(1, size + 1, dtype=np.float64) ** -exponent
    return (weights / weights.sum())[rng.permutation(size)]


def _histories(
    rng: np.random.Generator, user_latent: np.ndarray, item_latent: np.ndarray, length: int
) -> np.ndarray:
    """(users, length) item ids, each row drawn without replacement from
    softmax(user . items / temperature) by Gumbel top-k, in draw order."""
    step = max(1, _CHUNK // len(item_latent))
    out = np.empty((len(user_latent), length), dtype=np.int64)
    for start in range(0, len(user_latent), step):
        scores = user_latent[start : start + step] @ item_latent.T  # (c, I)
        keys = scores / ENTITY_TRUTH.temperature + rng.gumbel(size=scores.shape)
        top = np.argpartition(-keys, length - 1, axis=1)[:, :length]  # (c, length)
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        out[start : start + step] = np.take_along_axis(top, order, axis=1)
    return out


def synthetic_entities(
    rows: int = 100_000,
    users: int = 20_000,
    items: int = 2_000,
    factors: int = 8,
    history_len: int = 50,
    seed: int = 0,
) -> pd.DataFrame:
    """``rows`` user x item interactions with two tasks and their ground truth.

    Args:
        rows: interactions (rows) to draw (>= 1).
        users, items: ids of ``user_id`` (>= 1) and ``item_id`` (>= 2).
        factors: dimension ``K`` of the latent user and item vectors (>= 1).
        history_len: items in each user's history (1 .. ``items``).
        seed: seed of the local generator; equal arguments give equal frames.

    Returns:
        A frame with int64 ``user_id``, ``item_id``, ``user_segment``, ``item_category``;
        float32 ``user_activity``, ``item_price``; ``history`` (lists of ``history_len``
        distinct int item ids, one list object shared by a user's rows: do not mutate);
        int64 ``click``; float64 ``watch`` and the truth of ``ENTITY_TRUTH_COLUMNS``.
    """
    rows = check_int("rows", rows, 1)
    users = check_int("users", users, 1)
    items = check_int("items", items, 2)
    factors = check_int("factors", factors, 1)
    history_len = check_int("history_len", history_len, 1)
    seed = check_int("seed", seed, 0)
    if history_len > items:
        raise ConfigError(
            f"history_len ({history_len}) must not exceed items ({items}): a history holds "
            f"distinct items; lower history_len or raise items"
        )
    t = ENTITY_TRUTH
    rng = np.random.default_rng(seed)
    scale = factors**-0.25  # per-coordinate sd: covariance I / sqrt(K), so var(u . v) = 1
    user_latent = rng.standard_normal((users, factors)) * scale  # (U, K)
    item_latent = rng.standard_normal((items, factors)) * scale  # (I, K)
    segment_effect = rng.standard_normal(t.segments)  # (S,)
    category_effect = rng.standard_normal(t.categories)  # (C,)
    segment = rng.integers(0, t.segments, users)  # (U,)
    activity = rng.standard_normal(users)
    user_effect = (
        t.segment_weight * segment_effect[segment]
        + t.activity_weight * activity
        + t.user_noise * rng.standard_normal(users)
    )  # (U,)
    category = rng.integers(0, t.categories, items)  # (I,)
    price = rng.standard_normal(items)
    item_effect = (
        t.category_weight * category_effect[category]
        + t.price_weight * price
        + t.item_noise * rng.standard_normal(items)
    )  # (I,)
    user_p = _popularity(rng, users, t.user_zipf)
    item_p = _popularity(rng, items, t.item_zipf)

    user = rng.choice(users, size=rows, p=user_p)  # (N,)
    item = rng.choice(items, size=rows, p=item_p)  # (N,)
    seen, inverse = np.unique(user, return_inverse=True)
    history = _histories(rng, user_latent[seen], item_latent, history_len).tolist()

    a, b = user_effect[user], item_effect[item]  # (N,) each
    m = np.einsum("nk,nk->n", user_latent[user], item_latent[item])  # (N,)
    click_logit = t.click_bias + a + b + t.click_interaction * m
    click = (rng.random(rows) < 0.5 * (1.0 + np.tanh(0.5 * click_logit))).astype(np.int64)
    watch_true = t.watch_user * a + t.watch_item * b + t.watch_interaction * m
    watch = watch_true + t.watch_noise * rng.standard_normal(rows)
    frame = pd.DataFrame(
        {
            "user_id": user.astype(np.int64),
            "item_id": item.astype(np.int64),
            "user_segment": segment[user].astype(np.int64),
            "user_activity": activity[user].astype(np.float32),
            "item_category": category[item].astype(np.int64),
            "item_price": price[item].astype(np.float32),
            "history": [history[k] for k in inverse.tolist()],
            "click": click,
            "watch": watch,
            "click_logit_true": click_logit,
            "watch_true": watch_true,
            "user_effect_true": a,
            "item_effect_true": b,
            "interaction_true": m,
        }
    )
    logger.info(
        "synthetic_entities: %d rows, %d of %d users, click rate %.3f",
        rows,
        len(seen),
        users,
        click.mean(),
    )
    return frame


def entity_tasks() -> list[Task]:
    """``click`` (binary) and ``watch`` (regression)."""
    return [Task("click"), Task("watch", type="regression")]


def entity_features(
    history: bool = True, groups: bool = True, history_len: int = 50
) -> list[Feature]:
    """Feature specs of :func:`synthetic_entities`: user then item features, then (when
    ``history``) the history (``max_len=history_len``) pooled by mean, sharing the
    ``item_id`` embeddings. With ``groups`` each spec carries its entity group, else
    none.
    """
    user = {"group": "user"} if groups else {}
    item = {"group": "item"} if groups else {}
    features: list = [
        SparseFeature("user_id", **user),
        SparseFeature("user_segment", **user),
        DenseFeature("user_activity", **user),
        SparseFeature("item_id", **item),
        SparseFeature("item_category", **item),
        DenseFeature("item_price", **item),
    ]
    if history:
        features.append(
            SequenceFeature(
                "history", max_len=history_len, pooling="mean", shares="item_id", **user
            )
        )
    return features
