"""Entity benchmark (issue 18): does a user's history help, and do per-entity experts?

:func:`run_entity_benchmark` trains each model with its reference hyperparameters
(:data:`~mtlrec.experiments.benchmark.REFERENCE_CONFIGS`) in four variants, for each seed:

* with or without the ``history`` feature (the user's recent items, a
  :class:`~mtlrec.features.SequenceFeature` sharing ``item_id``'s embeddings): "without"
  drops that one feature from the data's features;
* with or without entity experts (:data:`ENTITY_EXPERTS`): experts that read only the
  ``user`` or only the ``item`` features, beside the shared ones. MMoE / OMoE / CGC / PLE
  get 2 experts per group, Shared-Bottom one bottom per group (beside its shared bottom).
  PLE and CGC add entity experts to the first extraction level only (the one reading
  the features, :mod:`mtlrec.models.ple`), so PLE gets 2 per group in all, not per level.

Each run is tested on ``data.test``: AUC and group AUC (GAUC over ``group_column``, a
user id by default: the AUC within each user, averaged with the users' row counts over
the users holding both classes; :func:`mtlrec.metrics.gauc` through
``MultiTaskModel.evaluate(group=...)``) and log loss for every binary task, RMSE and MAE
for every regression task. Where the test rows carry ground truth (the generator
:func:`mtlrec.datasets.synthetic_entities`: ``<task>_logit_true`` of a binary task,
``<task>_true`` of a regression task), the records also hold the truth's own scores under
model :data:`TRUTH`: the AUC / GAUC of the true logit (the ceiling a model can reach on
these rows) and the RMSE of the true mean (the noise floor).

Two datasets: MovieLens-100K (:func:`~mtlrec.experiments.benchmark._load_movielens`,
split by time) and the generator (:func:`load_entities`: one draw with seed 0, split 80 /
20 at random with a seed-0 generator). Run ``i`` initialises its model with seed ``i``;
the data are the same for every seed.

Records are flat, one per run, task and metric: ``model``, ``history`` (bool),
``entity_experts`` (bool), ``seed``, ``task``, ``metric``, ``value``, ``seconds`` (the
fit), ``parameters``; GAUC records also ``groups_used`` and ``groups_skipped``. Ground
truth records have ``None`` for the history, entity_experts, seed, seconds and
parameters. :func:`summarize_entities`, :func:`format_entity_table`,
:func:`plot_entity_benchmark` and :func:`write_entity_outputs` turn them into tables, a
chart and files; :func:`entity_benchmark_command` is ``mtlrec benchmark movielens`` and
``mtlrec benchmark entities``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..estimator import MultiTaskModel
from ..exceptions import ConfigError, DataError, UndefinedMetricError
from ..features import SequenceFeature, groups_of
from ..heads import HEADS
from ..metrics import gauc, mae, rmse, roc_auc
from ..tasks import Task
from ..training import EarlyStopping
from .benchmark import REFERENCE_CONFIGS, REFERENCE_TRAINING, BenchmarkData, format_mean_std
from .plots import legend_outside, new_figure, save_figure
from .records import mean_std, provenance_lines, write_records

#: entity experts of the "with entity experts" variant, by architecture (the models the
#: benchmark can run); PLE / CGC: in the first extraction level only
ENTITY_EXPERTS: dict[str, dict[str, int]] = {
    "shared_bottom": {"user": 1, "item": 1},
    "omoe": {"user": 2, "item": 2},
    "mmoe": {"user": 2, "item": 2},
    "cgc": {"user": 2, "item": 2},
    "ple": {"user": 2, "item": 2},
}
#: models run by default
ENTITY_MODELS: tuple[str, ...] = ("shared_bottom", "mmoe", "ple")
#: name of the feature the "without history" variant drops
HISTORY_FEATURE = "history"
#: the model name of the ground-truth records
TRUTH = "ground truth"
#: (history, entity experts) of the four variants, in table and chart order
VARIANTS: tuple[tuple[bool, bool], ...] = (
    (False, False),
    (True, False),
    (False, True),
    (True, True),
)

#: defaults of :func:`run_entity_benchmark` and of the generator's data (:func:`load_entities`)
ENTITY_DEFAULTS: dict[str, Any] = {
    "epochs": 10,  # at most: early stopping on the validation rows ends most runs sooner
    "patience": 1,
    "validation": 0.1,
    "batch_size": REFERENCE_TRAINING["batch_size"],
    "lr": REFERENCE_TRAINING["lr"],
    "rows": 100_000,
    "users": 20_000,
    "items": 2_000,
    "history_len": 50,
    "test": 0.2,
}

_COUNTS = ("groups_used", "groups_skipped")


def variant_label(history: bool, entity_experts: bool) -> str:
    """How a variant reads in tables and charts: ``"base"``, ``"+history"``,
    ``"+entity experts"``, ``"+history +entity experts"``."""
    parts = (["+history"] if history else []) + (["+entity experts"] if entity_experts else [])
    return " ".join(parts) or "base"


def _maximised(task_type: str, metric: str) -> bool:
    return metric == "gauc" or metric in HEADS.get(task_type).maximised


# ---------------------------------------------------------------------------- data


def load_entities(
    rows: int = ENTITY_DEFAULTS["rows"],
    users: int = ENTITY_DEFAULTS["users"],
    items: int = ENTITY_DEFAULTS["items"],
    history_len: int = ENTITY_DEFAULTS["history_len"],
    test: float = ENTITY_DEFAULTS["test"],
    seed: int = 0,
) -> BenchmarkData:
    """:func:`~mtlrec.datasets.synthetic_entities` (``seed``) split at random into train
    (``1 - test``) and test (``test``) by a ``np.random.default_rng(seed)`` permutation;
    features :func:`~mtlrec.datasets.entities.entity_features` (user and item groups,
    the history), tasks ``click`` (binary) and ``watch`` (regression). The truth columns
    stay in both frames (they are no features)."""
    from ..datasets.entities import entity_features, entity_tasks, synthetic_entities

    if isinstance(test, bool) or not isinstance(test, int | float) or not 0 < test < 1:
        raise ConfigError(f"test must be a fraction in (0, 1), got {test!r}")
    frame = synthetic_entities(
        rows=rows, users=users, items=items, history_len=history_len, seed=seed
    )
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = round(len(frame) * (1 - test))
    if cut < 1 or cut >= len(frame):
        raise ConfigError(f"{rows} rows leave no train or no test rows at test={test}")
    train = frame.iloc[np.sort(order[:cut])].reset_index(drop=True)
    held_out = frame.iloc[np.sort(order[cut:])].reset_index(drop=True)
    return BenchmarkData(
        train,
        held_out,
        list(entity_features(history=True, groups=True, history_len=history_len)),
        list(entity_tasks()),
        split=f"synthetic_entities(rows={rows:,}, users={users:,}, items={items:,}, "
        f"history_len={history_len}, seed={seed}) split at random (seed {seed}): "
        f"{1 - test:.0%} train, {test:.0%} test",
    )


# ---------------------------------------------------------------------------- runs


def build_variant(
    data: BenchmarkData, name: str, *, history: bool, entity_experts: bool, seed: int = 0
) -> MultiTaskModel:
    """The unfitted model of one variant: ``name`` with ``REFERENCE_CONFIGS[name]``, the
    data's features without ``history`` when ``history`` is False, and
    ``ENTITY_EXPERTS[name]`` when ``entity_experts``."""
    if name not in ENTITY_EXPERTS:
        raise ConfigError(
            f"the entity benchmark runs {list(ENTITY_EXPERTS)} (architectures with experts "
            f"or bottoms to add entity experts to), not {name!r}"
        )
    features = list(data.features)
    if not history:
        features = [f for f in features if f.name != HISTORY_FEATURE]
    params = dict(REFERENCE_CONFIGS[name])
    if entity_experts:
        params["entity_experts"] = dict(ENTITY_EXPERTS[name])
    return MultiTaskModel(features, data.tasks, architecture=name, seed=seed, **params)


def _check_positive(**values: Any) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")


def _check(data: BenchmarkData, models: Sequence[str], group_column: str) -> None:
    unknown = [m for m in models if m not in ENTITY_EXPERTS]
    if unknown or not models:
        raise ConfigError(
            f"models: unknown or empty {unknown or list(models)}; the entity benchmark runs "
            f"{list(ENTITY_EXPERTS)}"
        )
    if not any(f.name == HISTORY_FEATURE and isinstance(f, SequenceFeature) for f in data.features):
        raise ConfigError(
            f"the entity benchmark compares runs with and without the sequence feature "
            f"{HISTORY_FEATURE!r}, which the data's features lack"
        )
    groups = groups_of(tuple(data.features))
    needed = sorted({g for m in models for g in ENTITY_EXPERTS[m]} - set(groups))
    if needed:
        raise ConfigError(
            f"entity experts need features of groups {needed}; the data's feature groups "
            f"are {groups}"
        )
    for part, frame in (("train", data.train), ("test", data.test)):
        if len(frame) == 0:
            raise DataError(f"the {part} split has no rows")
    if group_column not in data.test.columns:
        raise DataError(
            f"group_column {group_column!r} (GAUC's groups) is not a column of the test "
            f"split; its columns are {list(data.test.columns)[:20]}"
        )


def truth_records(data_test: Any, tasks: Sequence[Task], group_column: str) -> list[dict]:
    """Scores of the ground truth on the test rows, for every task whose truth column
    exists: a binary task's ``<task>_logit_true`` (AUC, GAUC over ``group_column``: the
    ceiling), a regression task's ``<task>_true`` (RMSE, MAE: the noise floor)."""
    records: list[dict[str, Any]] = []

    def add(task: str, metric: str, value: float, **extra: Any) -> None:
        records.append(
            {
                "model": TRUTH,
                "history": None,
                "entity_experts": None,
                "seed": None,
                "task": task,
                "metric": metric,
                "value": float(value),
                "seconds": None,
                "parameters": None,
                **extra,
            }
        )

    for task in tasks:
        y = data_test[task.name].to_numpy(dtype=np.float64)
        if task.type == "binary" and f"{task.name}_logit_true" in data_test.columns:
            score = data_test[f"{task.name}_logit_true"].to_numpy(dtype=np.float64)
            try:
                add(task.name, "auc", roc_auc(y, score))
                grouped = gauc(y, score, data_test[group_column].to_numpy())
            except UndefinedMetricError:
                continue
            add(
                task.name,
                "gauc",
                grouped.value,
                groups_used=grouped.groups_used,
                groups_skipped=grouped.groups_skipped,
            )
        elif task.type == "regression" and f"{task.name}_true" in data_test.columns:
            mean = data_test[f"{task.name}_true"].to_numpy(dtype=np.float64)
            add(task.name, "rmse", rmse(y, mean))
            add(task.name, "mae", mae(y, mean))
    return records


def run_entity_benchmark(
    data: BenchmarkData,
    *,
    models: Sequence[str] = ENTITY_MODELS,
    seeds: int = 3,
    epochs: int = ENTITY_DEFAULTS["epochs"],
    batch_size: int = ENTITY_DEFAULTS["batch_size"],
    lr: float = ENTITY_DEFAULTS["lr"],
    group_column: str = "user_id",
    verbose: int = 1,
    threads: int | None = None,
    max_rows: int | None = None,
    warmup: bool = True,
    on_fit: Callable[[MultiTaskModel, dict[str, Any]], None] | None = None,
    validation: float = ENTITY_DEFAULTS["validation"],
    patience: int = ENTITY_DEFAULTS["patience"],
) -> list[dict[str, Any]]:
    """Train and test every model x history (with, without) x entity experts (with,
    without) x seed ``0 .. seeds-1``.

    Args:
        data: splits, features (with the sequence feature ``history`` and features of
            groups ``user`` and ``item``) and tasks, e.g. ``load_dataset("movielens",
            path=...)`` or :func:`load_entities`.
        models: names in :data:`ENTITY_EXPERTS`.
        seeds: runs per variant; run ``i`` initialises the model with seed ``i``.
        epochs, batch_size, lr: the optimisation (Adam), the same for every run.
        group_column: a test column GAUC groups by (a user id).
        verbose: 0 silent, 1 one line per run on stderr, 2 also per-epoch progress.
        threads: torch threads for every fit and evaluation (default: available CPUs).
        max_rows: keep only the first ``max_rows`` rows of each split (quick runs).
        warmup: first train one untimed epoch on a few rows, so start-up costs do not
            land in the first run's ``seconds``.
        on_fit: called after each fit with the fitted model and ``{"model", "history",
            "entity_experts", "seed"}`` (to inspect or keep the models).
        validation: the last fraction of the training rows (the latest ones, for a table
            sorted by time such as MovieLens) held out for early stopping on the first
            task's AUC; the best epoch's weights are kept (0: no validation, every run
            trains ``epochs`` epochs). Without it the models overfit the ids: on the
            generator, Shared-Bottom's test click AUC falls from 0.71 after one epoch
            to 0.66 after four while its training AUC climbs to 0.89.
        patience: epochs without improvement before stopping.

    Returns:
        The ground truth's records (when the test rows carry it), then one record per
        run, task and metric (see the module docstring).
    """
    models = list(models)
    _check_positive(seeds=seeds, epochs=epochs, batch_size=batch_size)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    if max_rows is not None:
        _check_positive(max_rows=max_rows)
    _check(data, models, group_column)
    train, test = data.train, data.test
    if max_rows is not None:
        train, test = train.head(max_rows), test.head(max_rows)
    fit = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "threads": threads}
    held_out = None
    if validation:
        if not 0 < validation < 1:
            raise ConfigError(f"validation must be a fraction in [0, 1), got {validation!r}")
        cut = round(len(train) * (1 - validation))
        train, held_out = train.iloc[:cut], train.iloc[cut:]
    main = data.tasks[0]

    if warmup:
        build_variant(data, models[0], history=True, entity_experts=True).fit(
            train.head(4 * batch_size), **{**fit, "epochs": 1}, verbose=0
        )

    records = truth_records(test, data.tasks, group_column)
    for name in models:
        for history, experts in VARIANTS:
            for seed in range(seeds):
                model = build_variant(
                    data, name, history=history, entity_experts=experts, seed=seed
                )
                stopper = None
                if held_out is not None:
                    metric = HEADS.get(main.type).metrics[0]
                    stopper = EarlyStopping(main.name, metric, patience=patience)
                start = time.perf_counter()
                model.fit(train, held_out, **fit, early_stopping=stopper, verbose=int(verbose >= 2))
                seconds = time.perf_counter() - start
                head = {"model": name, "history": history, "entity_experts": experts}
                if on_fit is not None:
                    on_fit(model, {**head, "seed": seed})
                metrics = model.evaluate(test, group=group_column, threads=threads)
                run = _run_records(model, metrics, head, seed, seconds)
                records.extend(run)
                if verbose >= 1:
                    print(_progress(name, history, experts, seed, run, seconds), file=sys.stderr)
    return records


def _run_records(
    model: MultiTaskModel,
    metrics: dict[str, dict[str, float]],
    head: dict[str, Any],
    seed: int,
    seconds: float,
) -> list[dict[str, Any]]:
    """One record per task and metric of one run's ``evaluate`` result."""
    run = []
    parameters = model.num_parameters()
    for task, values in metrics.items():
        for metric, value in values.items():
            if metric.startswith("gauc_"):
                continue  # counts, kept on the gauc record
            record = {
                **head,
                "seed": seed,
                "task": task,
                "metric": metric,
                "value": float(value),
                "seconds": seconds,
                "parameters": parameters,
                "epochs_run": len(model.history_),
            }
            if metric == "gauc":
                record["groups_used"] = int(values.get("gauc_groups", 0))
                record["groups_skipped"] = int(values.get("gauc_skipped", 0))
            run.append(record)
    return run


def _progress(
    name: str,
    history: bool,
    experts: bool,
    seed: int,
    run: list[dict[str, Any]],
    seconds: float,
) -> str:
    shown = {"auc": "AUC", "gauc": "GAUC", "rmse": "RMSE"}
    scores: dict[str, list[str]] = {}
    for r in run:
        if r["metric"] in shown:
            scores.setdefault(r["task"], []).append(f"{shown[r['metric']]} {r['value']:.4f}")
    parts = ", ".join(f"{task} {' '.join(values)}" for task, values in scores.items())
    variant = variant_label(history, experts)
    return f"{name} {variant} seed {seed}: {parts} - fit {seconds:.1f}s"


# ---------------------------------------------------------------------------- summaries


def summarize_entities(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds (0 for one seed), one row per
    (model, history, entity_experts, task, metric): those keys, ``seeds`` (runs
    averaged), ``mean``, ``std``, ``parameters`` and ``seconds_mean`` / ``seconds_std``
    (None for the ground truth). A metric NaN in any seed has a NaN mean."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        key = (r["model"], r["history"], r["entity_experts"], r["task"], r["metric"])
        groups.setdefault(key, []).append(r)
    rows = []
    for (model, history, experts, task, metric), group in groups.items():
        mean, std = mean_std([r["value"] for r in group])
        seconds = [r["seconds"] for r in group if r.get("seconds") is not None]
        seconds_mean, seconds_std = mean_std(seconds) if seconds else (None, None)
        rows.append(
            {
                "model": model,
                "history": history,
                "entity_experts": experts,
                "task": task,
                "metric": metric,
                "seeds": len(group),
                "mean": mean,
                "std": std,
                "parameters": group[0].get("parameters"),
                "seconds_mean": seconds_mean,
                "seconds_std": seconds_std,
            }
        )
    return rows


def _columns(records: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(task, metric) of the headline metrics the runs have, in task order: each binary
    task's AUC and GAUC, each regression task's RMSE."""
    runs = [r for r in records if r["model"] != TRUTH]
    present = {(r["task"], r["metric"]) for r in runs}
    tasks: dict[str, set[str]] = {}
    for r in runs:
        tasks.setdefault(r["task"], set()).add(r["metric"])
    columns = []
    for task, metrics in tasks.items():
        if "auc" in metrics or "gauc" in metrics:
            wanted: tuple[str, ...] = ("auc", "gauc")
        elif "rmse" in metrics:
            wanted = ("rmse",)
        else:
            wanted = (sorted(metrics)[0],)
        columns += [(task, m) for m in wanted if (task, m) in present]
    return columns


def _header(task: str, metric: str) -> str:
    return f"{task} {metric.upper()}"


def format_entity_table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown table, one row per model and variant (history, entity experts):
    parameters, each task's headline metrics (test AUC and GAUC of binary tasks, RMSE
    of regression) and fit seconds, mean ± std over seeds; with ground truth, a first row
    of the truth's scores (AUC ceiling, RMSE noise floor)."""
    rows = summarize_entities(records)
    columns = _columns(records)
    cells = {
        (r["model"], r["history"], r["entity_experts"], r["task"], r["metric"]): r for r in rows
    }
    header = [
        "model",
        "history",
        "entity experts",
        "params",
        *(_header(t, m) for t, m in columns),
        "fit s",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|",
    ]
    truth = [(TRUTH, None, None)] if any(r["model"] == TRUTH for r in rows) else []
    variants = list(
        dict.fromkeys(
            (r["model"], r["history"], r["entity_experts"]) for r in rows if r["model"] != TRUTH
        )
    )
    for model, history, experts in truth + variants:
        is_truth = model == TRUTH
        mine = [
            r
            for r in rows
            if (r["model"], r["history"], r["entity_experts"]) == (model, history, experts)
        ]
        first = mine[0]
        line = [
            f"{model} (ceiling / noise floor)" if is_truth else model,
            "–" if is_truth else ("yes" if history else "no"),
            "–" if is_truth else ("yes" if experts else "no"),
            "–" if first["parameters"] is None else f"{first['parameters']:,}",
        ]
        for task, metric in columns:
            r = cells.get((model, history, experts, task, metric))
            line.append("–" if r is None else format_mean_std(r["mean"], r["std"], r["seeds"], 4))
        line.append(
            "–"
            if first["seconds_mean"] is None
            else format_mean_std(first["seconds_mean"], first["seconds_std"], first["seeds"], 1)
        )
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- chart

_VARIANT_STYLE = {  # (color, marker) per (history, entity experts)
    (False, False): ("#7f7f7f", "o"),
    (True, False): ("#1f77b4", "s"),
    (False, True): ("#ff7f0e", "D"),
    (True, True): ("#2ca02c", "^"),
}


def entity_figure(records: Sequence[dict[str, Any]], title: str = "Entity benchmark") -> Any:
    """One panel per headline metric (each binary task's test AUC and GAUC, each
    regression task's RMSE): the models along the x-axis, the four variants of each side
    by side, each a dot at its mean with a ± std bar over seeds; with ground truth, a
    dashed line at the truth's value (AUC ceiling, RMSE noise floor). Each y-axis spans
    every whole bar and the line (nothing is clipped, no forced zero: dots need no
    baseline) and is labelled with its metric and direction. Returns the Figure."""
    rows = summarize_entities(records)
    columns = _columns(records)
    if not columns:
        raise ValueError("plot_entity_benchmark: no run records to plot")
    cells = {
        (r["model"], r["history"], r["entity_experts"], r["task"], r["metric"]): r for r in rows
    }
    models = list(dict.fromkeys(r["model"] for r in rows if r["model"] != TRUTH))
    binary = {r["task"] for r in rows if r["metric"] in ("auc", "gauc")}
    types = {r["task"]: "binary" if r["task"] in binary else "regression" for r in rows}
    seeds = max(r["seeds"] for r in rows if r["model"] != TRUTH)

    fig = new_figure(max(5.0, 1.2 * len(models) + 2.2) * len(columns) + 1.8, 4.2)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    width = 0.8 / len(VARIANTS)
    for ax, (task, metric) in zip(axes, columns, strict=True):
        lows, highs = [], []
        for k, (history, experts) in enumerate(VARIANTS):
            color, marker = _VARIANT_STYLE[(history, experts)]
            xs, means, stds = [], [], []
            for i, model in enumerate(models):
                r = cells.get((model, history, experts, task, metric))
                if r is None or not math.isfinite(r["mean"]):
                    continue
                xs.append(i + (k - (len(VARIANTS) - 1) / 2) * width)
                means.append(r["mean"])
                stds.append(r["std"] if math.isfinite(r["std"]) else 0.0)
            if not xs:
                continue
            means_a, stds_a = np.array(means), np.array(stds)
            lows.append((means_a - stds_a).min())
            highs.append((means_a + stds_a).max())
            ax.errorbar(
                xs,
                means,
                yerr=stds if seeds > 1 else None,
                fmt=marker,
                color=color,
                capsize=3,
                markersize=5,
                label=variant_label(history, experts),
            )
        truth = cells.get((TRUTH, None, None, task, metric))
        if truth is not None and math.isfinite(truth["mean"]):
            lows.append(truth["mean"])
            highs.append(truth["mean"])
            what = "ceiling" if _maximised(types[task], metric) else "noise floor"
            ax.axhline(
                truth["mean"], color="black", lw=0.9, ls="--", label=f"ground truth ({what})"
            )
            ax.annotate(
                f"{truth['mean']:.4f}",
                (1.0, truth["mean"]),
                xycoords=("axes fraction", "data"),
                xytext=(-3, 3),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
            )
        if lows:
            low, high = min(lows), max(highs)
            pad = 0.1 * max(high - low, 1e-3)
            ax.set_ylim(low - pad, high + pad)
        better = "higher" if _maximised(types[task], metric) else "lower"
        ax.set_ylabel(f"test {_header(task, metric)} ({better} is better)")
        ax.set_title(_header(task, metric), fontsize=10)
        ax.set_xticks(range(len(models)), models, fontsize=8)
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_xlabel("model")
        ax.grid(axis="y", alpha=0.3)
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    labels = sorted(handles, key=lambda label: label.startswith("ground truth"))
    legend_outside(axes[-1], [handles[label] for label in labels], labels)
    fig.suptitle(
        title + (f" (mean ± std over {seeds} seeds)" if seeds > 1 else " (one seed)"),
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_entity_benchmark(
    records: Sequence[dict[str, Any]], path: str | Path, title: str = "Entity benchmark"
) -> Path:
    """Write :func:`entity_figure` as a PNG at ``path``."""
    return save_figure(entity_figure(records, title), path)


# ---------------------------------------------------------------------------- files


def _notes(records: Sequence[dict[str, Any]], group_column: str) -> list[str]:
    """Markdown bullets explaining the variants, GAUC's groups and the ground truth."""
    experts = ", ".join(
        f"{m} {ENTITY_EXPERTS[m]}"
        for m in dict.fromkeys(r["model"] for r in records)
        if m in ENTITY_EXPERTS
    )
    lines = [
        f"- variants: `history` yes / no keeps / drops the sequence feature "
        f"`{HISTORY_FEATURE}`; `entity experts` yes adds experts reading only the user or "
        f"only the item features ({experts}; PLE and CGC in their first level only)",
        f"- GAUC: the AUC within each `{group_column}`, averaged with row counts over the "
        "groups holding both classes",
    ]
    gaucs = [r for r in records if r["metric"] == "gauc" and r["model"] != TRUTH]
    if gaucs:
        used = sorted({r["groups_used"] for r in gaucs})
        total = gaucs[0]["groups_used"] + gaucs[0]["groups_skipped"]
        span = f"{used[0]:,}" if len(used) == 1 else f"{used[0]:,}-{used[-1]:,}"
        lines.append(f"- GAUC uses {span} of {total:,} test groups (the others hold one class)")
    if any(r["model"] == TRUTH for r in records):
        lines.append(
            "- ground truth: AUC / GAUC of the true logit on the test rows (the ceiling), "
            "RMSE / MAE of the true mean against the noisy label (the noise floor)"
        )
    return lines


def write_entity_outputs(
    records: Sequence[dict[str, Any]],
    out_dir: str | Path,
    title: str = "mtlrec entity benchmark",
    command: str | None = None,
    settings: dict[str, Any] | None = None,
    group_column: str = "user_id",
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``results.json`` (the records), ``results.md`` (table, notes, command,
    date, machine, settings) and ``results.png`` (:func:`entity_figure`) into
    ``out_dir``; returns the written paths by kind (``json``, ``md``, ``png``)."""
    if not any(r["model"] != TRUTH for r in records):
        raise ValueError("write_entity_outputs: no run records to write")
    out = write_records(records, out_dir)
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "results.png"}
    seeds = len({r["seed"] for r in records if r["model"] != TRUTH})
    lines = [
        f"# {title}",
        "",
        format_entity_table(records),
        "",
        f"Mean ± sample std over {seeds} seed(s) on the test split."
        if seeds > 1
        else "One seed, test split.",
        "",
        *_notes(records, group_column),
        *notes,
        "",
        *provenance_lines(command, settings),
    ]
    paths["md"].write_text("\n".join(lines) + "\n")
    plot_entity_benchmark(records, paths["png"], title=title)
    return paths


# ---------------------------------------------------------------------------- CLI


def _option(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def entity_benchmark_command(
    args: argparse.Namespace, argv: Sequence[str], default_output: Path | None = None
) -> int:
    """``mtlrec benchmark movielens --data DIR`` and ``mtlrec benchmark entities
    [--rows N]``: the entity benchmark, table on stdout, files in ``--output`` (else
    ``default_output``, the CLI's free ``results/<dataset>``)."""
    from .benchmark import load_dataset

    name = args.dataset
    if name not in ("movielens", "entities"):
        raise ConfigError(f"the entity benchmark runs movielens or entities, not {name!r}")
    for option, flag in (
        ("group", "--group"),
        ("download", "--download"),
        ("correlations", "--correlations"),
        ("quick", "--quick"),
        ("balancer", "--balancer"),
    ):
        if _option(args, option):
            raise ConfigError(f"{flag} does not apply to {name}")
    out = Path(args.output) if _option(args, "output") else None
    if out is not None and out.exists() and not out.is_dir():
        raise FileExistsError(f"--output {out} is a file; give a folder for the results")
    if out is not None and (out / "results.json").exists() and not _option(args, "overwrite"):
        raise FileExistsError(
            f"{out} already holds benchmark results; pass --overwrite or another --output"
        )
    models = list(_option(args, "models") or ENTITY_MODELS)
    unknown = [m for m in models if m not in ENTITY_EXPERTS]
    if unknown:
        raise ConfigError(f"{name} runs {list(ENTITY_EXPERTS)}, not {unknown}")
    fit = {
        "epochs": _option(args, "epochs") or ENTITY_DEFAULTS["epochs"],
        "batch_size": _option(args, "batch_size") or ENTITY_DEFAULTS["batch_size"],
        "lr": _option(args, "lr") or ENTITY_DEFAULTS["lr"],
    }
    max_rows = _option(args, "max_rows")
    if name == "movielens":
        if _option(args, "data") is None:
            raise ConfigError(
                "movielens needs --data: the ml-100k folder (GroupLens's u.data, u.item, "
                "u.user or RecBole's ml-100k.inter, .item, .user)"
            )
        if _option(args, "rows") is not None:
            raise ConfigError("--rows does not apply to movielens (use --max-rows)")
        data = load_dataset("movielens", path=args.data)
        title = "mtlrec entity benchmark: MovieLens-100K (history and entity experts)"
        settings: dict[str, Any] = {"dataset": f"movielens from {args.data}"}
    else:
        if _option(args, "data") is not None or max_rows is not None:
            raise ConfigError("--data and --max-rows do not apply to entities (use --rows)")
        rows = _option(args, "rows") or ENTITY_DEFAULTS["rows"]
        data = load_entities(rows=rows)
        title = "mtlrec entity benchmark: synthetic entities (history and entity experts)"
        settings = {"dataset": "entities (mtlrec.datasets.synthetic_entities)", "rows": rows}
    quiet = bool(_option(args, "quiet"))
    if not quiet:
        print(f"{name}: {data.split}", file=sys.stderr)
    records = run_entity_benchmark(
        data,
        models=models,
        seeds=args.seeds,
        **fit,
        verbose=0 if quiet else 1,
        threads=_option(args, "threads"),
        max_rows=max_rows,
    )
    print(format_entity_table(records))
    settings.update(
        {
            "split": data.split,
            "seeds": args.seeds,
            **fit,
            "epochs": f"at most {fit['epochs']}: early stopping on the first task's AUC over "
            f"the last {ENTITY_DEFAULTS['validation']:.0%} of the training rows (patience "
            f"{ENTITY_DEFAULTS['patience']}), the best epoch's weights kept",
            "optimizer": "adam",
            "models": ", ".join(models),
            "entity experts": "; ".join(f"{m} {ENTITY_EXPERTS[m]}" for m in models),
            "GAUC groups": "column user_id",
        }
    )
    if max_rows:
        settings["max_rows"] = max_rows
    out = out or default_output
    if out is None:
        raise ConfigError("give --output DIR: the folder for the results")
    paths = write_entity_outputs(
        records, out, title, command=" ".join(["mtlrec", *argv]), settings=settings
    )
    names = ", ".join(p.name for p in paths.values())
    print(f"\nresults written to {out}{os.sep} ({names})", file=sys.stderr)
    return 0
