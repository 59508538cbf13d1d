"""Charts for benchmark results and gate inspection.

Figures are drawn on matplotlib's Agg canvas directly, never through pyplot: no window
opens and the global backend of an interactive session is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..inspection import gate_summary


def plot_benchmark(summary: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Dot plot of mean test AUC per model, one panel per task.

    Each model is a dot at its mean AUC with an error bar of the standard deviation over
    seeds, and its value (mean ± std) printed beside it. Dots need no zero baseline, so
    each panel's axis spans that task's range and small differences stay visible without
    the truncated bars that would hide them. Tasks without AUC (regression) are left out.
    """
    rows = [r for r in summary if "auc_mean" in r]
    if not rows:
        raise ValueError("plot_benchmark: no record has an AUC (binary task) to plot")
    models = list(dict.fromkeys(r["model"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    colors = [colormaps["tab10"](i % 10) for i in range(len(models))]
    seeds = max(r["seeds"] for r in rows)

    fig = Figure(figsize=(max(6.0, 4.2 * len(tasks)), 1.2 + 0.4 * len(models)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        mine = {r["model"]: r for r in rows if r["task"] == task}
        names = [m for m in models if m in mine]
        means = np.array([mine[m]["auc_mean"] for m in names])
        stds = np.array([mine[m]["auc_std"] for m in names])
        y = np.arange(len(names))[::-1]  # first model on top
        for yi, name, mean, std in zip(y, names, means, stds, strict=True):
            _dot(ax, mean, std, yi, colors[models.index(name)], mine[name]["seeds"] > 1)
        low, high = float((means - stds).min()), float((means + stds).max())
        span = max(high - low, 2e-3)
        ax.set_xlim(low - 0.15 * span, high + 0.9 * span)  # room for the values
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_yticks(y, names, fontsize=8)
        ax.set_title(task)
        ax.set_xlabel("test AUC")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        "Test AUC per task" + (f" (mean ± std over {seeds} seeds)" if seeds > 1 else ""),
        fontsize=10,
    )
    return _save(fig, path)


def plot_training_curves(
    runs: Sequence[dict[str, Any]] | Mapping[str, Sequence[dict[str, Any]]],
    path: str | Path,
    monitor: str | None = None,
) -> Path:
    """Training loss per epoch and, where there is one, the validation metric per
    epoch: one line per model (the mean over its seeds), one panel each.

    ``runs`` are benchmark records (:func:`mtlrec.experiments.benchmark.run_benchmark`:
    ``loss_curve``, ``validation_curve`` of the first task, the one early stopping
    monitors), or ``{label: model.history_}`` for fitted models, whose validation panel
    shows ``monitor`` (``"task/metric"``; default: the first task's first metric).
    """
    curves, label = _training_curves(runs, monitor)
    if not curves:
        raise ValueError("plot_training_curves: no run has a per-epoch training loss")
    has_validation = any(c["validation"] for c in curves.values())
    panels = 2 if has_validation else 1
    fig = Figure(figsize=(4.6 * panels, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    colors = {m: colormaps["tab10"](i % 10) for i, m in enumerate(curves)}
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
    axes[0].legend(fontsize=7)
    seeds = max(len(c["loss"]) for c in curves.values())
    fig.suptitle(
        "Training curves" + (f" (mean over {seeds} seeds)" if seeds > 1 else ""), fontsize=10
    )
    return _save(fig, path)


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
    """Heatmap of the mean weight each gate (row) gives each expert (column).

    ``gate_weights`` maps gate name to weights (N, experts), e.g. from
    :meth:`MultiTaskModel.gate_weights`, or is the table of
    :meth:`MultiTaskModel.gate_summary`; experts a gate does not reach (PLE's other
    tasks' experts) and gates with fewer experts leave blank cells.
    """
    if len(gate_weights) == 0:
        raise ValueError("plot_gates: no gate weights (this architecture has no gates)")
    frame = isinstance(gate_weights, pd.DataFrame)
    summary = gate_weights if frame else gate_summary(gate_weights)
    names = [str(n) for n in summary.index]
    grid = summary.to_numpy(dtype=np.float64)
    experts = grid.shape[1]

    fig, ax = _figure(max(4.0, 0.55 * experts + 2.5), max(2.0, 0.5 * len(names) + 1))
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
    ax.set_title("Mean gate weight per expert")
    fig.colorbar(image, ax=ax, label="mean weight")
    return _save(fig, path)


def plot_synthetic(
    records: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], path: str | Path
) -> Path:
    """Training loss per epoch, one panel per task correlation, plus test losses.

    ``records`` come from :func:`mtlrec.experiments.synthetic.run_synthetic_benchmark`,
    ``summary`` from its ``summarize_synthetic``.
    Each curve is a model's mean over seeds with a min-max band (log scale, shared by
    the panels); the last panel shows each model's mean test loss per correlation with
    std error bars and one dot per seed.
    """
    if not records:
        raise ValueError("plot_synthetic: no records to plot")
    models = list(dict.fromkeys(r["model"] for r in records))
    correlations = sorted({r["correlation"] for r in records}, reverse=True)
    colors = {m: colormaps["tab10"](i % 10) for i, m in enumerate(models)}

    panels = len(correlations) + 1
    fig = Figure(figsize=(3.6 * panels, 3.8))
    FigureCanvasAgg(fig)
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
        if ax is not axes[0]:
            ax.sharey(axes[0])  # one scale, so the panels compare across correlations
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training loss (MSE y1 + y2)")
    axes[0].legend(fontsize=8)

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
    ax.legend(fontsize=8)
    seeds = len({r["seed"] for r in records})
    fig.suptitle(
        "Synthetic tasks with correlation p"
        + (f" (mean over {seeds} seeds, band min-max)" if seeds > 1 else "")
    )
    return _save(fig, path)


#: panels of :func:`plot_funnel`: (task, summary key, title, reference line)
_FUNNEL_PANELS = (
    ("click", "auc", "click AUC", None),
    ("conversion", "cvr_auc_clicked", "CVR AUC, clicked rows", None),
    ("conversion", "cvr_auc_all", "CVR AUC, all impressions", None),
    ("click_conversion", "auc", "CTCVR AUC", None),
    ("conversion", "cvr_calibration_all", "mean pCVR / true, all", 1.0),
    ("conversion", "cvr_calibration_clicked", "mean pCVR / true, clicked", 1.0),
)


def plot_funnel(
    summary: Sequence[dict[str, Any]], path: str | Path, title: str = "Funnel benchmark"
) -> Path:
    """Dot plot per metric of a funnel benchmark: each model's mean with a ± std bar.

    ``summary`` comes from :func:`mtlrec.experiments.benchmark.summarize` of the records
    of :mod:`mtlrec.experiments.funnel`. One panel per metric present (AUCs, then the
    CVR calibration ratios with a line at 1); models run down the y-axis, each mean (±
    std) printed beside its bar, and the x-range always holds every whole error bar.
    """
    rows = {(r["model"], r["task"]): r for r in summary}
    models = list(dict.fromkeys(r["model"] for r in summary))
    panels = [
        p for p in _FUNNEL_PANELS if any(f"{p[1]}_mean" in r for r in summary if r["task"] == p[0])
    ]
    if not panels:
        raise ValueError("plot_funnel: no funnel metric (AUC or calibration) in the summary")
    colors = [colormaps["tab10"](i % 10) for i in range(len(models))]

    cols = min(3, len(panels))
    grid = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(4.4 * cols, 0.32 * len(models) * grid + 1.4 * grid + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(grid, cols, squeeze=False).reshape(-1)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    y = np.arange(len(models))[::-1]  # first model on top
    for ax, (task, key, label, reference) in zip(axes, panels, strict=False):
        have = [
            (i, rows[(m, task)])
            for i, m in enumerate(models)
            if f"{key}_mean" in rows.get((m, task), {})
        ]
        means = np.array([r[f"{key}_mean"] for _, r in have])
        stds = np.array([r[f"{key}_std"] for _, r in have])
        ys = y[[i for i, _ in have]]
        for (i, r), yi, mean, std in zip(have, ys, means, stds, strict=True):
            _dot(ax, mean, std, yi, colors[i], r["seeds"] > 1)
        low, high = float((means - stds).min()), float((means + stds).max())
        if reference is not None:
            ax.axvline(reference, color="grey", lw=0.8, ls="--")
            low, high = min(low, reference), max(high, reference)
        span = max(high - low, 1e-3)
        ax.set_xlim(low - 0.1 * span, high + 0.9 * span)  # whole bars, room for the values
        ax.set_yticks(y, models, fontsize=8)
        ax.set_ylim(-0.6, len(models) - 0.4)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    seeds = max(r["seeds"] for r in summary)
    fig.suptitle(title + (f" (mean ± std over {seeds} seeds)" if seeds > 1 else " (one seed)"))
    return _save(fig, path)


def _dot(ax, mean: float, std: float, y: float, color, spread: bool) -> None:
    """One dot with its ± std bar (none for a single seed) and the value printed."""
    ax.errorbar(mean, y, xerr=std if std > 0 else None, fmt="o", capsize=3, color=color)
    text = f"{mean:.4f}" + (f" ± {std:.4f}" if spread else "")
    ax.annotate(
        text, (mean + std, y), xytext=(5, 0), textcoords="offset points", va="center", fontsize=7
    )


def _figure(width: float, height: float):
    """A figure on an Agg canvas and its single axes."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
