"""Gate inspection: how the gates of mixture-of-experts models use their experts.

Everything here reads the gate weights of :meth:`MultiTaskModel.gate_weights`,
``{gate: (N, E)}``, and needs no model. Shape legend: N rows, E experts of the gate's
level (a gate gives weight exactly 0 to the experts it does not mix, e.g. a PLE task
gate to the other tasks' experts: such an expert is *not reached* by that gate).

Gate names say which experts a gate mixes: ``"level1/click"`` mixes the experts of PLE
level 1, a name without ``/`` (MMoE's ``"click"``, OMoE's ``"shared"``) the model's one
set of experts. So ``expert_3`` under ``level0/...`` and under ``level1/...`` are two
different experts.

A gate has *collapsed* when its mean weight on one expert exceeds
:data:`COLLAPSED_WEIGHT`; an expert is *almost never used* when its mean share over the
gates that reach it is below :data:`RARE_SHARE` of the uniform share 1 / experts
(Shazeer et al., ICLR 2017, and Ma et al., KDD 2018, discuss both failure modes). Both
thresholds are set where a healthy model does not reach: over the reference OMoE, MMoE,
CGC and PLE fits on Adult (two seeds each) and the quick start's MMoE (three seeds),
trained to full AUC, the least used expert held 0.08-0.65 of its uniform share and no
gate put more than 0.87 on one expert (docs/benchmarks.md); below 1 % an expert is dead
weight. ``fit`` issues each as an :class:`~mtlrec.ExpertUtilisationWarning`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import ConfigError, DataError, ExpertUtilisationWarning, warn

#: a gate whose mean weight on one expert exceeds this has collapsed onto it
COLLAPSED_WEIGHT = 0.95
#: an expert whose mean share is below this fraction of the uniform share is unused
RARE_SHARE = 0.01
#: training rows that fit inspects the gates on (the first ones): cheap next to training
UTILISATION_ROWS = 1024


def _level(gate: str) -> str:
    """The set of experts a gate mixes: ``"level0"`` for ``"level0/click"``, ``""`` for
    a gate of a one-level model."""
    return gate.rpartition("/")[0]


def _expert_name(level: str, expert: int) -> str:
    return f"{level}/expert_{expert}" if level else f"expert_{expert}"


def gate_means(gate_weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Mean weight per expert of every gate, {gate: (E,)}, NaN for experts the gate does
    not reach (weight 0 in every row). ConfigError without gates."""
    if not gate_weights:
        raise ConfigError(
            "no gate weights: this architecture has no gates (mixture-of-experts models "
            "such as OMoE, MMoE, CGC and PLE have them)"
        )
    means = {}
    for name, weights in gate_weights.items():
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[0] == 0:
            raise DataError(
                f"gate {name!r}: expected weights (N, experts) with N > 0, got {w.shape}"
            )
        means[name] = np.where((w > 0).any(axis=0), w.mean(axis=0), np.nan)
    return means


def gate_summary(
    gate_weights: Mapping[str, Any], expert_groups: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame:
    """Mean gate weight per gate (rows, by gate name) and expert (columns ``expert_0``,
    ``expert_1``, ...; the experts of the gate's own level), NaN where a gate does not
    reach an expert. Each row sums to 1 over its numbers.

    ``expert_groups`` (a network's ``expert_groups()``: per level, each expert's group
    -- "shared", a task, or a feature group such as "user") names the columns
    ``expert_3 (user)`` when the experts are not all shared."""
    means = gate_means(gate_weights)
    experts = max(m.size for m in means.values())
    grid = np.full((len(means), experts), np.nan)
    for i, m in enumerate(means.values()):
        grid[i, : m.size] = m
    names = [f"expert_{e}" for e in range(experts)]
    for e, group in enumerate(_column_groups(expert_groups or {}, experts)):
        if group is not None:
            names[e] += f" ({group})"
    frame = pd.DataFrame(grid, index=list(means), columns=names)
    frame.index.name = "gate"
    return frame


def _column_groups(expert_groups: Mapping[str, Sequence[str]], experts: int) -> list:
    """The group of each expert column, where every level that has the column agrees
    (levels share their leading layout: task experts, shared, then feature groups)."""
    groups: list[str | None] = [None] * experts
    for level_groups in expert_groups.values():
        for e, group in enumerate(list(level_groups)[:experts]):
            if groups[e] not in (None, group):
                return [None] * experts
            groups[e] = group
    if set(groups) <= {None, "shared"}:  # one kind of expert: nothing to tell apart
        return [None] * experts
    return groups


def _entropy(p: np.ndarray) -> float:
    """Entropy of ``p`` over its finite entries divided by log(count): 1 uniform, 0 one-hot;
    NaN for a single entry."""
    p = p[np.isfinite(p)]
    if p.size < 2:
        return float("nan")
    p = p / p.sum()
    nonzero = p[p > 0]
    return float(-(nonzero * np.log(nonzero)).sum() / math.log(p.size))


def expert_utilisation(gate_weights: Mapping[str, Any]) -> dict[str, Any]:
    """How evenly the gates spread their weight over the experts.

    Returns a dict with
      ``rows``: the rows the weights cover;
      ``gates``: per gate, ``entropy`` (normalised entropy of its mean weights over the
      experts it reaches: 1 uniform, 0 all on one; NaN when it reaches one expert),
      ``experts`` (how many it reaches), ``top_expert`` and ``max_weight`` (its largest
      mean weight);
      ``experts``: per expert (``expert_3``, or ``level0/expert_3`` for PLE), ``share``
      (its mean weight averaged over the gates that reach it), ``gates`` (how many reach
      it) and ``uniform`` (the share it would have if those gates spread their weight
      evenly: 1 / the mean number of experts they reach).
    """
    means = gate_means(gate_weights)
    gates: dict[str, dict[str, Any]] = {}
    by_expert: dict[str, tuple[list[float], list[int]]] = {}
    for name, m in means.items():
        reached = np.flatnonzero(np.isfinite(m))
        top = int(reached[np.argmax(m[reached])])
        gates[name] = {
            "entropy": _entropy(m),
            "experts": int(reached.size),
            "top_expert": top,
            "max_weight": float(m[top]),
        }
        for e in reached:
            shares, counts = by_expert.setdefault(_expert_name(_level(name), int(e)), ([], []))
            shares.append(float(m[e]))
            counts.append(int(reached.size))
    experts = {
        name: {
            "share": float(np.mean(shares)),
            "gates": len(shares),
            "uniform": 1.0 / float(np.mean(counts)),
        }
        for name, (shares, counts) in sorted(by_expert.items(), key=lambda kv: _order(kv[0]))
    }
    rows = int(np.shape(next(iter(gate_weights.values())))[0])
    return {"rows": rows, "gates": gates, "experts": experts}


def _order(expert: str) -> tuple[str, int]:
    level, _, number = expert.rpartition("expert_")
    return level, int(number)


def utilisation_warnings(
    utilisation: Mapping[str, Any],
    collapsed: float = COLLAPSED_WEIGHT,
    rare: float = RARE_SHARE,
) -> list[str]:
    """One line per collapsed gate (mean weight > ``collapsed`` on one expert) and per
    almost unused expert (share < ``rare`` x its uniform share), from
    :func:`expert_utilisation`."""
    lines = []
    for name, gate in utilisation["gates"].items():
        if gate["experts"] > 1 and gate["max_weight"] > collapsed:
            lines.append(
                f"gate {name!r} has collapsed onto expert_{gate['top_expert']}: mean weight "
                f"{gate['max_weight']:.3f} of {gate['experts']} experts (normalised entropy "
                f"{gate['entropy']:.3f})"
            )
    for name, expert in utilisation["experts"].items():
        if expert["share"] < rare * expert["uniform"]:
            lines.append(
                f"expert {name} is almost never used: mean share {expert['share']:.4f} over "
                f"the {expert['gates']} gate(s) reaching it (uniform: {expert['uniform']:.3f})"
            )
    return lines


def utilisation_lines(utilisation: Mapping[str, Any]) -> list[str]:
    """A line per gate (entropy, top expert) for reports, then the warnings."""
    width = max(len(name) for name in utilisation["gates"])
    lines = [
        f"{name:<{width}}  entropy {gate['entropy']:.3f}  top expert_{gate['top_expert']} "
        f"{gate['max_weight']:.3f} of {gate['experts']} experts"
        for name, gate in utilisation["gates"].items()
    ]
    return lines + [f"warning: {line}" for line in utilisation_warnings(utilisation)]


def check_utilisation(gate_weights: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`expert_utilisation`, with an :class:`~mtlrec.ExpertUtilisationWarning` for
    each collapsed gate and unused expert."""
    utilisation = expert_utilisation(gate_weights)
    for line in utilisation_warnings(utilisation):
        warn(line, ExpertUtilisationWarning)
    return utilisation
