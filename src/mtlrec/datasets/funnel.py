"""Synthetic click -> conversion funnel with ground truth and sample-selection bias.

Ma et al., "Entire Space Multi-Task Model: An Effective Approach for Estimating Post-Click
Conversion Rate", SIGIR 2018: a CVR model trained on clicked impressions only is fitted on
a biased sample (clicks follow the CTR model, not the impression distribution) and meets
data sparsity (few clicks, fewer conversions), so it generalises badly to the entire
impression space where it is used. This simulator makes both effects controllable and
keeps the truth of every impression, so a CVR model can be judged on ALL impressions.

Each row is an impression with inputs

* ``user_segment`` (``num_segments`` ids) and ``item_category`` (``num_categories`` ids),
  drawn with Zipf-like popularity ``p(rank r) ~ 1 / r``, so many ids are rare;
* ``position`` (1 .. ``num_positions``): click only (position bias);
* dense ``user_activity`` (click and conversion), ``clickbait`` (raises click, lowers
  conversion, both by ``selection_bias``), ``item_price`` (conversion only) and ``noise``
  (neither), each standard normal.

With latent vectors ``z_u, w_i ~ N(0, I_4)`` of the segment and category and their match
``m = z_u . w_i / 2``, per-id effects ``a_u, a_i ~ N(0, 1)`` on click and
``b = 0.5 a + sqrt(0.75) e`` (``e ~ N(0, 1)``) on conversion::

    logit CTR = c + 0.5 a_u + 0.5 a_i - 0.25 (position - 1) + 0.4 activity
                + selection_bias * clickbait + 0.5 m
    logit CVR = d + 0.5 b_u + 0.5 b_i - 0.6 price + 0.3 activity
                - selection_bias * clickbait + 1.0 m

``true_ctr`` = P(click | x) and ``true_cvr`` = P(conversion | click, x). The intercepts
``c, d`` are solved (bisection) on 100,000 reference impressions of the same world so
that the mean CTR is ``click_rate`` and the CVR over clicked impressions (the observed
conversion rate, E[CTR x CVR] / E[CTR]) is ``conversion_rate``. Clicks and conversions
depend on ``x`` only (plus independent noise), so ``true_cvr`` is defined for every
impression: ``potential_conversion ~ Bernoulli(true_cvr)`` is drawn on every row (what
would happen were it clicked) and ``conversion`` equals it on clicked rows, NaN elsewhere.

The selection bias: clicked rows over-represent high ``clickbait``, which lowers CVR, so
with a large ``selection_bias`` the clicked rows convert less than the impressions as a
whole would; at 0 the shared effects (activity, match, correlated ids) make clicked rows
convert somewhat more. :func:`funnel_cvr_gap` gives that gap.

Random streams: ``seed`` spawns independent streams for the world (latents, id effects),
the reference rows and each column, so rows are i.i.d. and a prefix of a longer draw
equals a shorter draw: train / test splits are row slices of one call.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..exceptions import ConfigError, DataError
from ..features import DenseFeature, Feature, SparseFeature
from .synthetic import check_int, check_real

#: label columns: click on every impression, conversion after a click
FUNNEL_TASKS = ("click", "conversion")
#: categorical inputs
FUNNEL_SPARSE = ("user_segment", "item_category", "position")
#: numeric inputs
FUNNEL_DENSE = ("user_activity", "clickbait", "item_price", "noise")
#: ground-truth columns (not features)
FUNNEL_TRUTH = ("true_ctr", "true_cvr", "potential_conversion")

_LATENT = 4  # dimension of the segment and category latent vectors
_RHO = 0.5  # correlation of an id's click and conversion effects
_REFERENCE_ROWS = 100_000
_COLUMNS = ("segment", "category", "position", "activity", "clickbait", "price", "noise")
_STREAMS = ("world", "reference", *_COLUMNS, "click", "conversion")


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(s) for name, s in zip(_STREAMS, children, strict=True)}


class _World:
    """The per-id latents and effects of one seed, and the logits they give."""

    def __init__(self, rng: np.random.Generator, segments: int, categories: int) -> None:
        self.segment_latent = rng.standard_normal((segments, _LATENT))  # (S, K)
        self.category_latent = rng.standard_normal((categories, _LATENT))  # (C, K)
        self.segment_click, self.segment_conv = self._effects(rng, segments)  # (S,) each
        self.category_click, self.category_conv = self._effects(rng, categories)  # (C,) each
        self.segment_p = _zipf(segments)
        self.category_p = _zipf(categories)

    @staticmethod
    def _effects(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        click = rng.standard_normal(size)
        conv = _RHO * click + math.sqrt(1 - _RHO**2) * rng.standard_normal(size)
        return click, conv

    def draw(self, rngs: dict[str, np.random.Generator], n: int, positions: int) -> dict:
        """``n`` impressions' inputs; ``rngs`` maps each of _COLUMNS to a generator."""
        return {
            "segment": rngs["segment"].choice(len(self.segment_p), size=n, p=self.segment_p),
            "category": rngs["category"].choice(len(self.category_p), size=n, p=self.category_p),
            "position": rngs["position"].integers(1, positions + 1, size=n),
            "activity": rngs["activity"].standard_normal(n),
            "clickbait": rngs["clickbait"].standard_normal(n),
            "price": rngs["price"].standard_normal(n),
            "noise": rngs["noise"].standard_normal(n),
        }

    def logits(self, x: dict, bias: float) -> tuple[np.ndarray, np.ndarray]:
        """Click and conversion logits without intercepts, (N,) each."""
        u, i = x["segment"], x["category"]
        match = np.einsum("nk,nk->n", self.segment_latent[u], self.category_latent[i])
        match /= math.sqrt(_LATENT)
        click = (
            0.5 * self.segment_click[u]
            + 0.5 * self.category_click[i]
            - 0.25 * (x["position"] - 1)
            + 0.4 * x["activity"]
            + bias * x["clickbait"]
            + 0.5 * match
        )
        conv = (
            0.5 * self.segment_conv[u]
            + 0.5 * self.category_conv[i]
            - 0.6 * x["price"]
            + 0.3 * x["activity"]
            - bias * x["clickbait"]
            + 1.0 * match
        )
        return click, conv


def _zipf(size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1)
    return weights / weights.sum()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def _solve(rate: float, mean_at) -> float:
    """The intercept ``b`` with ``mean_at(b) == rate`` (``mean_at`` increasing), bisected."""
    low, high = -40.0, 40.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if mean_at(mid) < rate else (low, mid)
    return 0.5 * (low + high)


def _intercepts(
    world: _World, rng: np.random.Generator, positions: int, bias: float, ctr: float, cvr: float
) -> tuple[float, float]:
    """Intercepts giving mean CTR ``ctr`` and clicked-row CVR ``cvr`` on reference rows."""
    reference = world.draw(dict.fromkeys(_COLUMNS, rng), _REFERENCE_ROWS, positions)
    click, conv = world.logits(reference, bias)
    c = _solve(ctr, lambda b: float(_sigmoid(click + b).mean()))
    weight = _sigmoid(click + c)
    d = _solve(cvr, lambda b: float((weight * _sigmoid(conv + b)).sum() / weight.sum()))
    return c, d


def synthetic_funnel(
    n: int,
    seed: int = 0,
    *,
    click_rate: float = 0.1,
    conversion_rate: float = 0.05,
    selection_bias: float = 1.5,
    num_segments: int = 200,
    num_categories: int = 50,
    num_positions: int = 10,
) -> pd.DataFrame:
    """``n`` impressions of a click -> conversion funnel with their ground truth.

    Args:
        n: impressions (rows) to draw.
        seed: fixes the world (per-id effects, intercepts) and, through separate streams,
            the rows.
        click_rate: mean P(click) over impressions, in (0, 1).
        conversion_rate: mean P(conversion | click) over CLICKED impressions (the
            observed CVR), in (0, 1).
        selection_bias: >= 0, how strongly ``clickbait`` raises the click logit and lowers
            the conversion logit (both by this much per unit); 0 makes it a noise column.
        num_segments, num_categories: ids of ``user_segment`` / ``item_category`` (>= 2).
        num_positions: slots of ``position`` (>= 1).

    Returns:
        A frame with int64 ``user_segment``, ``item_category``, ``position``; float32
        ``user_activity``, ``clickbait``, ``item_price``, ``noise``; int64 ``click``;
        float64 ``conversion`` (0/1 on clicked rows, NaN elsewhere); float64 ``true_ctr``
        and ``true_cvr`` (P(conversion | click, x)); int64 ``potential_conversion``.
    """
    n = check_int("n", n, 1)
    seed = check_int("seed", seed, 0)
    ctr = _check_rate("click_rate", click_rate)
    cvr = _check_rate("conversion_rate", conversion_rate)
    bias = check_real("selection_bias", selection_bias, 0.0)
    segments = check_int("num_segments", num_segments, 2)
    categories = check_int("num_categories", num_categories, 2)
    positions = check_int("num_positions", num_positions, 1)

    rngs = _streams(seed)
    world = _World(rngs["world"], segments, categories)
    c, d = _intercepts(world, rngs["reference"], positions, bias, ctr, cvr)
    x = world.draw(rngs, n, positions)
    click_logit, conv_logit = world.logits(x, bias)
    true_ctr, true_cvr = _sigmoid(click_logit + c), _sigmoid(conv_logit + d)  # (N,) each
    click = (rngs["click"].random(n) < true_ctr).astype(np.int64)
    potential = (rngs["conversion"].random(n) < true_cvr).astype(np.int64)
    frame = pd.DataFrame(
        {
            "user_segment": x["segment"].astype(np.int64),
            "item_category": x["category"].astype(np.int64),
            "position": x["position"].astype(np.int64),
            "user_activity": x["activity"].astype(np.float32),
            "clickbait": x["clickbait"].astype(np.float32),
            "item_price": x["price"].astype(np.float32),
            "noise": x["noise"].astype(np.float32),
            "click": click,
            "conversion": np.where(click == 1, potential, np.nan),
            "true_ctr": true_ctr,
            "true_cvr": true_cvr,
            "potential_conversion": potential,
        }
    )
    return frame


def _check_rate(name: str, value: object) -> float:
    rate = check_real(name, value, 0.0, 1.0)
    if not 0.0 < rate < 1.0:
        raise ConfigError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return rate


def funnel_cvr_gap(frame: pd.DataFrame) -> float:
    """Mean ``true_cvr`` of the clicked rows minus that of all rows (the selection bias:
    negative when clicked rows convert less than impressions as a whole would)."""
    clicked = frame["click"].to_numpy() == 1
    if not clicked.any():
        raise DataError("funnel_cvr_gap: no clicked row (click == 1) to average over")
    cvr = frame["true_cvr"].to_numpy()
    return float(cvr[clicked].mean() - cvr.mean())


def funnel_features(embedding_dim: int = 8) -> list[Feature]:
    """Sparse then dense feature specs of :func:`synthetic_funnel` (no labels, no truth)."""
    return [SparseFeature(name, embedding_dim=embedding_dim) for name in FUNNEL_SPARSE] + [
        DenseFeature(name) for name in FUNNEL_DENSE
    ]
