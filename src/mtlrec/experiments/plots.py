"""Charts for benchmark results and gate inspection.

Figures are drawn on matplotlib's Agg canvas directly, never through pyplot: no window
opens and the global backend of an interactive session is left alone. Each ``plot_*``
writes a PNG; its ``*_figure`` twin returns the laid-out :class:`~matplotlib.figure.Figure`
unsaved, for a caller (or a test) to inspect or change it.

Dot plots print every value (mean ± std over seeds) in a column right of the axes, so
each axis range can fit the data: AUC axes never leave [0, 1], and a model far from the
bulk (ESMM on Adult) sits at the axis edge as an arrowhead marked "off scale" instead of
squashing the others into one dot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps, ticker
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..inspection import gate_summary

#: a value lies off the bulk's scale when it is this many robust spreads from the median
OFF_SCALE_SPREADS = 8.0


def plot_benchmark(
    summary: Sequence[dict[str, Any]],
    path: str | Path,
    balancer: str | Iterable[str | None] | None = None,
) -> Path:
    """Dot plot of mean test AUC per model, one panel per task; see :func:`benchmark_figure`."""
    return save_figure(benchmark_figure(summary, balancer), path)


def benchmark_figure(
    summary: Sequence[dict[str, Any]], balancer: str | Iterable[str | None] | None = None
) -> Figure:
    """Dot plot of mean test AUC per model, one panel per task.

    Each model is a dot at its mean AUC with an error bar of the standard deviation over
    seeds; its value (mean ± std) is printed right of the panel. Dots need no zero
    baseline, so each panel's axis spans that task's range, within [0, 1]; a model far
    off that range (:func:`on_scale`) is drawn as an arrowhead at the axis edge. Tasks
    without AUC (regression) are left out. A ``balancer`` other than ``"equal"`` (a name,
    the names of the runs, or the rows' ``balancer``) is named in the title.
    """
    rows = [r for r in summary if "auc_mean" in r]
    if not rows:
        raise ValueError("plot_benchmark: no record has an AUC (binary task) to plot")
    models = list(dict.fromkeys(r["model"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    colors = series_colors(len(models))
    seeds = max(r["seeds"] for r in rows)

    fig = new_figure(max(6.0, 4.6 * len(tasks)), 1.3 + 0.4 * len(models))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        mine = {r["model"]: r for r in rows if r["task"] == task}
        names = [m for m in models if m in mine]
        means = np.array([mine[m]["auc_mean"] for m in names])
        stds = np.array([mine[m]["auc_std"] for m in names])
        y = np.arange(len(names))[::-1]  # first model on top
        spread = [mine[m]["seeds"] > 1 for m in names]
        _dot_panel(ax, means, stds, y, [colors[models.index(m)] for m in names], spread)
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_yticks(y, names, fontsize=8)
        ax.set_title(task)
        ax.set_xlabel("test AUC")
    given = [balancer] if balancer is None or isinstance(balancer, str) else list(balancer)
    note = balancer_note([*given, *(r.get("balancer") for r in rows)])
    fig.suptitle(_title("Test AUC per task", note, "mean ± std", seeds), fontsize=10)
    fig.tight_layout()
    return fig


def _title(text: str, note: str, summary: str, seeds: int) -> str:
    """A chart's title: ``text``, the balancer ``note``, and how seeds are summarised."""
    return (
        text
        + (f", {note}" if note else "")
        + (f" ({summary} over {seeds} seeds)" if seeds > 1 else "")
    )


def plot_training_curves(
    runs: Sequence[dict[str, Any]] | Mapping[str, Sequence[dict[str, Any]]],
    path: str | Path,
    monitor: str | None = None,
) -> Path:
    """Training loss and validation metric per epoch; see :func:`training_curves_figure`."""
    return save_figure(training_curves_figure(runs, monitor), path)


def training_curves_figure(
    runs: Sequence[dict[str, Any]] | Mapping[str, Sequence[dict[str, Any]]],
    monitor: str | None = None,
) -> Figure:
    """Training loss per epoch and, where there is one, the validation metric per
    epoch: one line per model (the mean over its seeds), one panel each, the legend
    right of the panels (it never covers a line).

    ``runs`` are benchmark records (:func:`mtlrec.experiments.benchmark.run_benchmark`:
    ``loss_curve``, ``validation_curve`` of the first task, the one early stopping
    monitors; a ``balancer`` other than ``"equal"`` is named in the title), or
    ``{label: model.history_}`` for fitted models, whose validation panel shows
    ``monitor`` (``"task/metric"``; default: the first task's first metric).
    """
    curves, label = _training_curves(runs, monitor)
    if not curves:
        raise ValueError("plot_training_curves: no run has a per-epoch training loss")
    has_validation = any(c["validation"] for c in curves.values())
    panels = 2 if has_validation else 1
    fig = new_figure(4.6 * panels + 1.6, 3.6)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    colors = dict(zip(curves, series_colors(len(curves)), strict=True))
    for ax, key, ylabel in zip(
        axes, ("loss", "validation"), ("training loss", f"validation {label}"), strict=False
    ):
        for model, curve in curves.items():
            if not curve[key]:
                continue
            values = _mean_curve(curve[key])
            x = np.arange(1, values.size + 1)
            marker = "." if values.size < 16 else None
            ax.plot(x, values, marker=marker, color=colors[model], label=model)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    legend_outside(axes[-1], *axes[0].get_legend_handles_labels())
    seeds = max(len(c["loss"]) for c in curves.values())
    note = "" if isinstance(runs, Mapping) else balancer_note(r.get("balancer") for r in runs)
    fig.suptitle(_title("Training curves", note, "mean", seeds), fontsize=10)
    fig.tight_layout()
    return fig


def _training_curves(
    runs: Sequence[dict[str, Any]] | Mapping[str, Sequence[dict[str, Any]]], monitor: str | None
) -> tuple[dict[str, dict[str, list[list[float]]]], str]:
    """{model: {"loss": [curve per seed], "validation": [curve per seed]}} and the
    validation metric's label, from benchmark records or {label: history}."""
    curves: dict[str, dict[str, list[list[float]]]] = {}
    if isinstance(runs, Mapping):
        label = monitor or ""
        for model, history in runs.items():
            entry = curves.setdefault(str(model), {"loss": [], "validation": []})
            entry["loss"].append([float(h["loss"]) for h in history])
            if history and "validation" in history[0]:
                if not label:
                    task, metrics = next(iter(history[0]["validation"].items()))
                    label = f"{task}/{next(iter(metrics))}"
                task, _, metric = label.partition("/")
                entry["validation"].append([float(h["validation"][task][metric]) for h in history])
        return curves, label
    first = next((r["task"] for r in runs), None)
    label = ""
    for r in runs:
        entry = curves.setdefault(r["model"], {"loss": [], "validation": []})
        if r["task"] != first or not r.get("loss_curve"):
            continue
        entry["loss"].append(list(r["loss_curve"]))
        if r.get("validation_curve"):
            entry["validation"].append(list(r["validation_curve"]))
            label = f"{first}/{r['validation_metric']}"
    return {m: c for m, c in curves.items() if c["loss"]}, label


def _mean_curve(curves: list[list[float]]) -> np.ndarray:
    """Mean over seeds at each epoch, over the seeds that ran it (early stopping ends
    runs at different epochs)."""
    grid = np.full((len(curves), max(len(c) for c in curves)), np.nan)
    for i, c in enumerate(curves):
        grid[i, : len(c)] = c
    return np.nanmean(grid, axis=0)


def plot_gates(gate_weights: dict[str, np.ndarray] | pd.DataFrame, path: str | Path) -> Path:
    """Heatmap of the mean weight each gate gives each expert; see :func:`gates_figure`."""
    return save_figure(gates_figure(gate_weights), path)


def gates_figure(gate_weights: dict[str, np.ndarray] | pd.DataFrame) -> Figure:
    """Heatmap of the mean weight each gate (row) gives each expert (column).

    ``gate_weights`` maps gate name to weights (N, experts), e.g. from
    :meth:`MultiTaskModel.gate_weights`, or is the table of
    :meth:`MultiTaskModel.gate_summary`; experts a gate does not reach (PLE's other
    tasks' experts) and gates with fewer experts leave blank cells. For CGC and PLE the
    columns are grouped (:func:`expert_groups`): each task's own experts and the shared
    ones, labelled above the map and split by white lines; rows of different PLE levels
    are split the same way.
    """
    if len(gate_weights) == 0:
        raise ValueError("plot_gates: no gate weights (this architecture has no gates)")
    frame = isinstance(gate_weights, pd.DataFrame)
    summary = gate_weights if frame else gate_summary(gate_weights)
    names = [str(n) for n in summary.index]
    grid = summary.to_numpy(dtype=np.float64)
    experts = grid.shape[1]
    groups = expert_groups(names, grid)

    fig = new_figure(max(4.0, 0.55 * experts + 2.5), max(2.0, 0.5 * len(names) + 1.2))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto", vmin=0.0)
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            light = value > 0.6 * np.nanmax(grid)
            ax.text(
                j,
                i,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if light else "white",
            )
    ax.set_xticks(range(experts), [str(e) for e in range(experts)])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("expert")
    for label, start, stop in groups:
        if start > 0:
            ax.axvline(start - 0.5, color="white", lw=2.5)
        ax.text(
            (start + stop - 1) / 2,
            1.02,
            label,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    levels = [n.rpartition("/")[0] for n in names]
    for i in range(1, len(names)):
        if levels[i] != levels[i - 1]:
            ax.axhline(i - 0.5, color="white", lw=2.5)
    ax.set_title("Mean gate weight per expert", pad=18 if groups else 6)
    fig.colorbar(image, ax=ax, label="mean weight")
    fig.tight_layout()
    return fig


def expert_groups(names: Sequence[str], grid: np.ndarray) -> list[tuple[str, int, int]]:
    """Column groups of a CGC / PLE gate table: ``(label, first, stop)`` for each task's
    own experts (``"income experts"``) and the shared ones (``"shared experts"``), in
    column order; ``[]`` when the table does not show that structure (MMoE, OMoE).

    ``names`` are the gate names (``"level0/income"``, ``"level0/shared"``), ``grid`` the
    mean weights (gates x experts), NaN where a gate does not reach an expert. In every
    level a task gate reaches its own experts and the shared ones, and the shared gate
    reaches all (:class:`mtlrec.models.ple.ExtractionLevel`); every level has the same
    layout, so one set of groups fits all rows.
    """
    reached: dict[str, set[int]] = {}
    for name, row in zip(names, np.asarray(grid, dtype=np.float64), strict=True):
        _, slash, task = name.rpartition("/")
        if not slash:
            return []  # not a CGC / PLE gate
        if task != "shared":
            reached.setdefault(task, set()).update(np.flatnonzero(np.isfinite(row)).tolist())
    if len(reached) < 2:
        return []
    shared = set.intersection(*reached.values())
    groups = [(f"{task} experts", sorted(cols - shared)) for task, cols in reached.items()]
    groups.append(("shared experts", sorted(shared)))
    groups = [(label, cols) for label, cols in groups if cols]
    taken = [c for _, cols in groups for c in cols]
    contiguous = all(cols == list(range(cols[0], cols[-1] + 1)) for _, cols in groups)
    if not contiguous or len(taken) != len(set(taken)) or len(groups) < 2:
        return []
    return sorted(((label, cols[0], cols[-1] + 1) for label, cols in groups), key=lambda g: g[1])


def plot_synthetic(
    records: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], path: str | Path
) -> Path:
    """Training loss per epoch per correlation plus test losses; see
    :func:`synthetic_figure`."""
    return save_figure(synthetic_figure(records, summary), path)


def synthetic_figure(
    records: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]]
) -> Figure:
    """Training loss per epoch, one panel per task correlation, plus test losses.

    ``records`` come from :func:`mtlrec.experiments.synthetic.run_synthetic_benchmark`,
    ``summary`` from its ``summarize_synthetic``.
    Each curve is a model's mean over seeds with a min-max band (log scale with decimal
    tick labels, shared by the panels); the last panel shows each model's mean test loss
    per correlation with std error bars and one dot per seed. One legend, right of the
    panels; a ``balancer`` other than ``"equal"`` is named in the title.
    """
    if not records:
        raise ValueError("plot_synthetic: no records to plot")
    models = list(dict.fromkeys(r["model"] for r in records))
    correlations = sorted({r["correlation"] for r in records}, reverse=True)
    colors = dict(zip(models, series_colors(len(models)), strict=True))

    panels = len(correlations) + 1
    fig = new_figure(3.6 * panels + 1.4, 3.8)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for ax, p in zip(axes, correlations, strict=False):
        for model in models:
            mine = [
                r["train_loss"]
                for r in records
                if r["model"] == model and r["correlation"] == p and r["train_loss"]
            ]
            if not mine:
                continue
            epochs = min(len(c) for c in mine)
            losses = np.array([c[:epochs] for c in mine], dtype=np.float64)  # (seeds, epochs)
            x = np.arange(1, epochs + 1)
            marker = "." if epochs < 8 else None
            ax.plot(x, losses.mean(0), color=colors[model], label=model, marker=marker)
            if len(mine) > 1:
                ax.fill_between(x, losses.min(0), losses.max(0), color=colors[model], alpha=0.2)
        ax.set_title(f"p = {p:g}")
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        decimal_log_ticks(ax.yaxis)
        if ax is not axes[0]:
            ax.sharey(axes[0])  # one scale, so the panels compare across correlations
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training loss (MSE y1 + y2)")

    ax = axes[-1]
    rows = {(r["model"], r["correlation"]): r for r in summary}
    step = 0.6 / max(len(models) - 1, 1)
    for i, model in enumerate(models):
        for j, p in enumerate(correlations):
            row = rows.get((model, p))
            if row is None:
                continue
            xi = j + (i - (len(models) - 1) / 2) * step
            dots = [
                r["test_loss"] for r in records if r["model"] == model and r["correlation"] == p
            ]
            ax.plot([xi] * len(dots), dots, ".", color=colors[model], alpha=0.5, markersize=4)
            ax.errorbar(
                xi,
                row["mean"],
                yerr=row["std"] or None,
                fmt="o",
                capsize=3,
                color=colors[model],
                label=model if j == 0 else None,
            )
    ax.set_xticks(range(len(correlations)), [f"p = {p:g}" for p in correlations])
    ax.set_ylabel("test loss (MSE y1 + y2)")
    ax.set_xlim(-0.6, len(correlations) - 0.4)
    ax.set_title("Test loss (mean ± std; dots: seeds)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    legend_outside(ax, *ax.get_legend_handles_labels())
    seeds = len({r["seed"] for r in records})
    note = balancer_note(r.get("balancer") for r in records)
    fig.suptitle(
        "Synthetic tasks with correlation p"
        + (f", {note}" if note else "")
        + (f" (mean over {seeds} seeds, band min-max)" if seeds > 1 else "")
    )
    fig.tight_layout()
    return fig


#: panels of :func:`plot_funnel`: (task, summary key, title, reference line); ``{}`` in a
#: title is the CVR a calibration ratio divides by ("true" or "observed")
_FUNNEL_PANELS = (
    ("click", "auc", "click AUC", None),
    ("conversion", "cvr_auc_clicked", "CVR AUC, clicked rows", None),
    ("conversion", "cvr_auc_all", "CVR AUC, all impressions", None),
    ("click_conversion", "auc", "CTCVR AUC", None),
    ("conversion", "cvr_calibration_all", "mean pCVR / {} CVR, all", 1.0),
    ("conversion", "cvr_calibration_clicked", "mean pCVR / {} CVR, clicked", 1.0),
)


def plot_funnel(
    summary: Sequence[dict[str, Any]], path: str | Path, title: str = "Funnel benchmark"
) -> Path:
    """Dot plot per metric of a funnel benchmark; see :func:`funnel_figure`."""
    return save_figure(funnel_figure(summary, title), path)


def funnel_figure(summary: Sequence[dict[str, Any]], title: str = "Funnel benchmark") -> Figure:
    """Dot plot per metric of a funnel benchmark: each model's mean with a ± std bar.

    ``summary`` comes from :func:`mtlrec.experiments.benchmark.summarize` of the records
    of :mod:`mtlrec.experiments.funnel`. One panel per metric present (AUCs, then the
    CVR calibration ratios with a line at 1); models run down the y-axis, each mean (±
    std) printed right of its panel. AUC axes stay within [0, 1] with far outliers at
    the edge (:func:`on_scale`); ratio axes start at 0, where a bar reaching below is
    cut (the panel title says so, the printed std stays whole). A ratio divides by the
    simulator's true CVR where the records have ground truth, else (Hillstrom) by the
    observed CVR of the clicked rows, and its title says which.
    """
    rows = {(r["model"], r["task"]): r for r in summary}
    models = list(dict.fromkeys(r["model"] for r in summary))
    panels = [
        p for p in _FUNNEL_PANELS if any(f"{p[1]}_mean" in r for r in summary if r["task"] == p[0])
    ]
    if not panels:
        raise ValueError("plot_funnel: no funnel metric (AUC or calibration) in the summary")
    truth = any("cvr_mean_true_clicked_mean" in r or "cvr_auc_all_mean" in r for r in summary)
    colors = series_colors(len(models))

    cols = min(3, len(panels))
    grid = (len(panels) + cols - 1) // cols
    fig = new_figure(4.6 * cols + 1.2, 0.32 * len(models) * grid + 1.4 * grid + 0.6)
    axes = fig.subplots(grid, cols, squeeze=False).reshape(-1)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    y = np.arange(len(models))[::-1]  # first model on top
    for k, (ax, (task, key, label, reference)) in enumerate(zip(axes, panels, strict=False)):
        have = [
            (i, rows[(m, task)])
            for i, m in enumerate(models)
            if f"{key}_mean" in rows.get((m, task), {})
        ]
        means = np.array([r[f"{key}_mean"] for _, r in have])
        stds = np.array([r[f"{key}_std"] for _, r in have])
        spread = [r["seeds"] > 1 for _, r in have]
        color = [colors[i] for i, _ in have]
        ys = y[[i for i, _ in have]]
        if reference is None:
            _dot_panel(ax, means, stds, ys, color, spread)
        else:
            cut = _ratio_panel(ax, means, stds, ys, color, spread, reference)
            label = label.format("true" if truth else "observed") + (
                " (bars cut at 0)" if cut else ""
            )
        ax.set_yticks(y, models if k % cols == 0 else [], fontsize=8)
        ax.set_ylim(-0.6, len(models) - 0.4)
        ax.set_title(label, fontsize=10)
    seeds = max(r["seeds"] for r in summary)
    fig.suptitle(title + (f" (mean ± std over {seeds} seeds)" if seeds > 1 else " (one seed)"))
    fig.tight_layout()
    return fig


def on_scale(means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Which values an axis fitted to the bulk shows (True) and which lie far off it.

    A value is off scale when it lies more than :data:`OFF_SCALE_SPREADS` robust spreads
    (the larger of 1.4826 x the median absolute deviation and the median std) from the
    median, at most a quarter of the values are, and leaving them out shrinks the axis
    span (whole error bars) at least four-fold; otherwise every value is on scale.
    """
    means, stds = np.asarray(means, dtype=np.float64), np.asarray(stds, dtype=np.float64)
    inside = np.ones(means.size, dtype=bool)
    if means.size < 4:
        return inside
    center = np.median(means)
    spread = max(1.4826 * float(np.median(np.abs(means - center))), float(np.median(stds)), 1e-4)
    far = np.abs(means - center) > OFF_SCALE_SPREADS * spread
    if not far.any() or far.sum() > means.size // 4:
        return inside
    full = (means + stds).max() - (means - stds).min()
    bulk = (means + stds)[~far].max() - (means - stds)[~far].min()
    return ~far if full >= 4 * max(bulk, 1e-12) else inside


def axis_range(
    lows: np.ndarray, highs: np.ndarray, bounds: tuple[float, float], pad: float = 0.08
) -> tuple[float, float]:
    """Axis limits around ``[min(lows), max(highs)]`` with ``pad`` of the span each side
    (at least 0.002 in all), kept within ``bounds``."""
    low, high = float(np.min(lows)), float(np.max(highs))
    span = max(high - low, 2e-3)
    return max(low - pad * span, bounds[0]), min(high + pad * span, bounds[1])


def _dot_panel(
    ax: Axes,
    means: np.ndarray,
    stds: np.ndarray,
    y: np.ndarray,
    colors: Sequence[Any],
    spread: Sequence[bool],
) -> None:
    """AUC dots with ± std bars on an axis fitted to the on-scale ones, within [0, 1];
    off-scale values as arrowheads at the edge; every value printed right of the axes."""
    inside = on_scale(means, stds)
    low, high = axis_range((means - stds)[inside], (means + stds)[inside], (0.0, 1.0))
    ax.set_xlim(low, high)
    for yi, mean, std, color, shown, several in zip(
        y, means, stds, colors, inside, spread, strict=True
    ):
        if shown:
            ax.errorbar(mean, yi, xerr=std if std > 0 else None, fmt="o", capsize=3, color=color)
        else:
            _off_scale(ax, mean, yi, color, low, high)
        _print_value(ax, yi, mean, std, several)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=3))
    ax.grid(axis="x", alpha=0.3)


def _ratio_panel(
    ax: Axes,
    means: np.ndarray,
    stds: np.ndarray,
    y: np.ndarray,
    colors: Sequence[Any],
    spread: Sequence[bool],
    reference: float,
) -> bool:
    """Ratio dots (positive by nature) with ± std bars cut at 0 and a dashed line at
    ``reference``, on an axis fitted to the bars and the line; True when a bar was cut."""
    lower = np.minimum(stds, means)  # a ratio is >= 0: the bar stops there
    low, high = axis_range(
        np.append(means - lower, reference), np.append(means + stds, reference), (0.0, np.inf)
    )
    ax.set_xlim(low, high)
    ax.axvline(reference, color="grey", lw=0.8, ls="--")
    for yi, mean, std, cut, color, several in zip(
        y, means, stds, lower, colors, spread, strict=True
    ):
        xerr = np.array([[cut], [std]]) if std > 0 else None
        ax.errorbar(mean, yi, xerr=xerr, fmt="o", capsize=3, color=color)
        _print_value(ax, yi, mean, std, several)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=5))
    ax.grid(axis="x", alpha=0.3)
    return bool((stds > means).any())


def _off_scale(ax: Axes, mean: float, y: float, color: Any, low: float, high: float) -> None:
    """An arrowhead at the axis edge toward an off-scale value, labelled."""
    left = mean < low
    edge = low if left else high
    ax.plot(edge, y, "<" if left else ">", color=color, markersize=9, clip_on=False)
    ax.annotate(
        f"{mean:.4f}, off scale",
        (edge, y),
        xytext=(9 if left else -9, 0),
        textcoords="offset points",
        ha="left" if left else "right",
        va="center",
        fontsize=7,
        color=color,
    )


def _print_value(ax: Axes, y: float, mean: float, std: float, spread: bool) -> None:
    """``mean ± std`` (``mean`` alone for one seed) right of the axes, level with ``y``."""
    text = f"{mean:.4f}" + (f" ± {std:.4f}" if spread else "")
    ax.text(1.03, y, text, transform=ax.get_yaxis_transform(), va="center", ha="left", fontsize=7)


def balancer_note(balancers: Iterable[str | None]) -> str:
    """``"balancer pcgrad"`` for runs with a loss balancer other than ``"equal"``
    (``"balancers a, b"`` for several), ``""`` for equal weights or none given."""
    names = sorted({b for b in balancers if b})
    if names in ([], ["equal"]):
        return ""
    return ("balancer " if len(names) == 1 else "balancers ") + ", ".join(names)


class _DecimalLogFormatter(ticker.LogFormatter):
    """Log-axis tick labels as plain decimals (0.6, 2, 10), on the ticks matplotlib's
    log formatter would label."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def decimal_log_ticks(axis: Any) -> None:
    """Label a log ``axis`` (``ax.yaxis``) in plain decimals, not ``6×10⁰``."""
    axis.set_major_formatter(_DecimalLogFormatter())
    axis.set_minor_formatter(_DecimalLogFormatter(labelOnlyBase=False))


def legend_outside(ax: Axes, handles: list, labels: list) -> None:
    """The legend right of ``ax``, outside every panel, so it covers no data."""
    ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8
    )


def series_colors(count: int) -> list[Any]:
    """``count`` distinct colours, one per model: tab10's, then (for 11 to 20) tab20's
    dark shades followed by its light ones, then evenly spaced turbo colours."""
    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in [*range(0, 20, 2), *range(1, 20, 2)][:count]]
    return [colormaps["turbo"](i / (count - 1)) for i in range(count)]


def new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
