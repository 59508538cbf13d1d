"""Charts for benchmark results and gate inspection.

Figures are drawn on matplotlib's Agg canvas directly, never through pyplot: no window
opens and the global backend of an interactive session is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_benchmark(summary: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Bar chart of mean test AUC per model, one bar group (panel) per task.

    Error bars are the standard deviation over seeds and each bar carries its value.
    Every task gets its own panel with the y-axis zoomed to that task's range, so small
    differences between models stay visible. Tasks without AUC (regression) are left out.
    """
    rows = [r for r in summary if "auc_mean" in r]
    if not rows:
        raise ValueError("plot_benchmark: no record has an AUC (binary task) to plot")
    models = list(dict.fromkeys(r["model"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    colors = [colormaps["tab10"](i % 10) for i in range(len(models))]

    fig = Figure(figsize=(max(6.0, (0.55 * len(models) + 1.2) * len(tasks)), 4.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        mine = {r["model"]: r for r in rows if r["task"] == task}
        names = [m for m in models if m in mine]
        means = np.array([mine[m]["auc_mean"] for m in names])
        stds = np.array([mine[m]["auc_std"] for m in names])
        x = np.arange(len(names))
        ax.bar(
            x,
            means,
            0.8,
            yerr=stds if stds.any() else None,
            capsize=3,
            color=[colors[models.index(m)] for m in names],
        )
        low, high = float((means - stds).min()), float((means + stds).max())
        span = max(high - low, 2e-3)
        for xi, mean, std in zip(x, means, stds, strict=True):  # value above the error bar
            ax.text(
                xi,
                mean + std + 0.03 * span,
                f"{mean:.4f}",
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.set_ylim(max(0.0, low - 0.3 * span), min(1.0, high + 0.6 * span))
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
        ax.set_title(task)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test AUC")
    seeds = max(r["seeds"] for r in rows)
    fig.suptitle("Test AUC per task" + (f" (mean ± std over {seeds} seeds)" if seeds > 1 else ""))
    return _save(fig, path)


def plot_gates(gate_weights: dict[str, np.ndarray], path: str | Path) -> Path:
    """Heatmap of the mean weight each gate (row) gives each expert (column).

    ``gate_weights`` maps gate name to weights (N, experts), e.g. from
    :meth:`MultiTaskModel.gate_weights`; gates with fewer experts leave blank cells.
    """
    if not gate_weights:
        raise ValueError("plot_gates: no gate weights (this architecture has no gates)")
    names = list(gate_weights)
    means = [
        np.asarray(gate_weights[n], dtype=np.float64)
        .reshape(-1, np.shape(gate_weights[n])[-1])
        .mean(axis=0)
        for n in names
    ]
    experts = max(m.size for m in means)
    grid = np.full((len(names), experts), np.nan)
    for i, m in enumerate(means):
        grid[i, : m.size] = m

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
