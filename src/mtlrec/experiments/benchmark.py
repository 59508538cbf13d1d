"""Reference benchmark: every architecture with its reference hyperparameters on a dataset.

``run_benchmark`` trains each model for each seed on the train split and evaluates it on
the test split; it returns flat records (one per model, seed and task) that
``summarize``, ``format_table`` and ``write_outputs`` turn into tables, JSON and a chart.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from ..balancers import BALANCERS
from ..estimator import MultiTaskModel
from ..exceptions import ConfigError
from ..features import Feature
from ..heads import HEADS
from ..models import declared_sizes
from ..tasks import Task
from ..training import EarlyStopping, say
from .plots import plot_benchmark, plot_training_curves
from .records import mean_std, provenance_lines, write_records


class BenchmarkData(NamedTuple):
    """What a dataset loader returns.

    ``validation``, when given, is evaluated after every epoch for early stopping on the
    first task; ``split`` says in words how the splits were made (it goes in reports).
    """

    train: pd.DataFrame
    test: pd.DataFrame
    features: list[Feature]
    tasks: list[Task]
    validation: pd.DataFrame | None = None
    split: str = ""


def _load_adult() -> BenchmarkData:
    """UCI Adult census (48,842 people): income > 50K and never-married, two binary tasks."""
    from ..datasets import adult_features, adult_tasks, load_adult

    train, test = load_adult()
    return BenchmarkData(
        train,
        test,
        list(adult_features(REFERENCE_TRAINING["embedding_dim"])),
        list(adult_tasks()),
        split="adult.data for training, adult.test for test",
    )


def _load_census_kdd(
    group: int = 1, path: str | Path | None = None, download: bool = False
) -> BenchmarkData:
    """UCI census-income KDD (299,285 people), MMoE's task groups 1 and 2 (--group); not
    bundled: --data DIR or --download.

    Group 1: income > 50K and never-married; group 2: college degree and never-married.
    """
    from ..datasets import census_features, census_tasks, load_census_kdd

    tasks = census_tasks(group)  # checks the group before the files are read
    data = load_census_kdd(path, seed=0, download=download)
    split = (
        "census-income.data for training; census-income.test halved (seed 0) into "
        "validation and test"
        if data.mode == "paper"
        else "census-income.test alone, split 2/3 : 1/6 : 1/6 (seed 0) into train, "
        "validation and test"
    )
    return BenchmarkData(
        data.train,
        data.test,
        list(census_features(group, REFERENCE_TRAINING["embedding_dim"])),
        list(tasks),
        validation=data.validation,
        split=f"{data.mode} mode: {split}",
    )


def _load_movielens(path: str | Path | None = None, history: bool = True) -> BenchmarkData:
    """MovieLens-100K (100,000 ratings of 1,682 movies by 943 users): like (rating >= 4)
    and rating, with user and item groups and the user's history; not bundled: --data DIR.

    Split by time: the last 20 % of ratings are the test set.
    """
    from ..datasets import load_movielens, movielens_features, movielens_tasks, split_by_time

    if path is None:
        raise ConfigError(
            "movielens is not bundled (its licence forbids it): pass --data DIR, the ml-100k "
            "folder (GroupLens's u.data/u.item/u.user, or RecBole's ml-100k.inter/.item/"
            ".user: pip download --no-deps recbole==1.2.1, unzip, "
            "recbole/dataset_example/ml-100k)"
        )
    train, test = split_by_time(load_movielens(path))
    return BenchmarkData(
        train,
        test,
        list(movielens_features(history=history)),
        list(movielens_tasks()),
        split="by time: ratings before the 80th percentile of timestamps for training, the "
        "rest for test; histories hold only earlier ratings",
    )


#: dataset name -> loader (keyword options only); the first paragraph of a loader's
#: docstring describes the dataset
DATASETS: dict[str, Callable[..., BenchmarkData]] = {
    "adult": _load_adult,
    "census-kdd": _load_census_kdd,
    "movielens": _load_movielens,
}

_BOTTOM = {"bottom_units": [128, 128], "tower_units": [64, 32]}
_MOE = {"num_experts": 8, "expert_units": [64, 64], "gate_units": [32, 32], "tower_units": [32, 32]}
_CGC = {
    "num_specific_experts": 8,
    "num_shared_experts": 4,
    "expert_units": [64, 64],
    "gate_units": [16, 16],
    "tower_units": [32, 32],
}

#: reference hyperparameters of each architecture (embedding dim 16 comes from the dataset);
#: the single-task baseline mirrors Shared-Bottom, OMoE mirrors MMoE, PLE is CGC x 2 levels
#: (every other architecture brings its reference hyperparameters in its own file)
REFERENCE_CONFIGS: dict[str, dict[str, Any]] = declared_sizes(
    "reference",
    {
        "single_task": dict(_BOTTOM),
        "shared_bottom": dict(_BOTTOM),
        "omoe": dict(_MOE),
        "mmoe": dict(_MOE),
        "cgc": dict(_CGC),
        "ple": {**_CGC, "num_levels": 2},
        "esmm": {"tower_units": [64, 64], "positional_roles": True},  # Adult's: no funnel
    },
)


#: reference optimisation settings
REFERENCE_TRAINING: dict[str, Any] = {
    "embedding_dim": 16,
    "epochs": 5,
    "batch_size": 256,
    "optimizer": "adam",
    "lr": 1e-3,
}


def primary_metric(task_type: str) -> str:
    """The metric a task type is ranked by in tables and charts (its head's first)."""
    return HEADS.get(task_type).metrics[0]


#: datasets of the experiment benchmarks (:mod:`.synthetic`, :mod:`.funnel`), which have
#: their own runners instead of a loader in :data:`DATASETS`
EXPERIMENT_DATASETS: dict[str, str] = {
    "synthetic": "The MMoE paper's two regression tasks of controlled correlation "
    "(--correlations), generated.",
    "funnel": "Simulated click -> conversion impressions with ground-truth CVR (--rows), "
    "generated.",
    "hillstrom": "MineThatData e-mails (64,000 customers): site visit -> purchase; not "
    "bundled: --data DIR (hillstrom.csv).",
    "entities": "Simulated user x item clicks and watch time with histories and ground truth "
    "(--rows), generated: history and entity experts, with and without.",
}


def describe_datasets() -> dict[str, str]:
    """Every dataset ``mtlrec benchmark`` accepts, with a one-line description: those of
    :data:`DATASETS` (their loader's first docstring paragraph), then
    :data:`EXPERIMENT_DATASETS`."""
    loaders = {
        name: " ".join((loader.__doc__ or "").strip().split("\n\n")[0].split())
        for name, loader in DATASETS.items()
    }
    return {**loaders, **EXPERIMENT_DATASETS}


def load_dataset(name: str, **options: Any) -> BenchmarkData:
    """Splits, features and tasks of the benchmark dataset ``name``.

    ``options`` go to the dataset's loader (census-kdd: ``group``, ``path``, ``download``);
    None values are dropped, so callers can pass unset CLI options through.
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    loader = DATASETS[name]
    options = {key: value for key, value in options.items() if value is not None}
    accepted = inspect.signature(loader).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"dataset {name!r} takes no option(s) {unknown}; it takes {sorted(accepted) or 'none'}"
        )
    return BenchmarkData(*loader(**options))


def run_benchmark(
    dataset: str | BenchmarkData = "adult",
    models: Sequence[str] | None = None,
    seeds: int = 1,
    epochs: int = 5,
    batch_size: int = 256,
    lr: float = 1e-3,
    max_rows: int | None = None,
    verbose: int = 1,
    warmup: bool = True,
    patience: int = 2,
    threads: int | None = None,
    balancer: str = "equal",
) -> list[dict[str, Any]]:
    """Train and test every model for seeds ``0 .. seeds-1``.

    Args:
        dataset: a name in :data:`DATASETS`, or data from :func:`load_dataset`. When the
            data has a validation split, each run stops early on the first task's
            validation AUC (MAE for regression) and keeps its best epoch.
        models: names in :data:`REFERENCE_CONFIGS` (default: all, in that order).
        seeds: runs per model; run ``i`` uses seed ``i``.
        epochs, batch_size, lr: the optimisation (Adam).
        max_rows: keep only the first ``max_rows`` rows of each split (quick runs).
        verbose: 0 silent, 1 one line per run on stderr, 2 also per-epoch progress.
        warmup: first train one untimed epoch on a few rows, so one-off start-up costs
            (thread pools, lazy initialisation) do not land in the first model's time.
        patience: epochs without validation improvement before stopping early.
        threads: torch threads for every fit and evaluation (default: available CPUs).
        balancer: the loss balancer of every fit (a name in
            :func:`mtlrec.balancers.list_balancers`).

    Returns:
        One record per model, seed and task: ``model``, ``seed``, ``balancer``, ``task``, the task's
        test metrics (``auc`` and ``logloss`` for binary, ``mae`` and ``rmse`` for
        regression), ``fit_seconds`` (the whole ``fit`` call, preprocessing included),
        ``train_samples_per_second`` (rows x epochs run / fit_seconds), ``parameters``,
        ``loss_curve`` (the run's training loss per epoch), and with a validation split
        ``epochs_run``, ``best_epoch``, ``validation_metric`` and ``validation_curve``
        (the task's validation value of that metric per epoch).
    """
    models = list(REFERENCE_CONFIGS) if models is None else list(models)
    unknown = [m for m in models if m not in REFERENCE_CONFIGS]
    if unknown or not models:
        raise ConfigError(
            f"models: unknown or empty {unknown or models}; choose from {list(REFERENCE_CONFIGS)}"
        )
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be a positive integer, got {seeds!r}")
    BALANCERS.get(balancer)  # unknown names fail before any data is read
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise ConfigError(f"max_rows must be a positive integer, got {max_rows!r}")
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    train, validation, test = data.train, data.validation, data.test
    if max_rows is not None:
        train, test = train.head(max_rows), test.head(max_rows)
        validation = None if validation is None else validation.head(max_rows)
    main = data.tasks[0]

    if warmup:
        MultiTaskModel(
            data.features, data.tasks, architecture=models[0], **REFERENCE_CONFIGS[models[0]]
        ).fit(
            train.head(8 * batch_size),
            epochs=1,
            batch_size=batch_size,
            verbose=0,
            threads=threads,
            balancer=balancer,
        )

    records: list[dict[str, Any]] = []
    for name in models:
        try:  # an architecture that needs what the data lacks (POSO: a feature group)
            MultiTaskModel(data.features, data.tasks, architecture=name, **REFERENCE_CONFIGS[name])
        except ConfigError as why:
            say(f"{name}: skipped on this dataset ({why})", verbose)
            continue
        for seed in range(seeds):
            model = MultiTaskModel(
                data.features, data.tasks, architecture=name, seed=seed, **REFERENCE_CONFIGS[name]
            )
            stopper = (
                None
                if validation is None
                else EarlyStopping(main.name, main.metrics[0], patience=patience)
            )
            start = time.perf_counter()
            model.fit(
                train,
                validation,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                early_stopping=stopper,
                verbose=int(verbose >= 2),
                threads=threads,
                balancer=balancer,
            )
            seconds = time.perf_counter() - start
            metrics = model.evaluate(test, threads=threads)
            epochs_run = len(model.history_)
            extra = {}
            if stopper is not None:
                extra = {"epochs_run": epochs_run, "best_epoch": stopper.best_epoch}
            run = [
                {
                    "model": name,
                    "seed": seed,
                    "balancer": balancer,
                    "task": task.name,
                    **metrics[task.name],
                    "fit_seconds": seconds,
                    "train_samples_per_second": len(train) * epochs_run / seconds,
                    "parameters": model.num_parameters(),
                    **extra,
                    **_curves(model.history_, task),
                }
                for task in model.tasks
            ]
            records.extend(run)
            if verbose >= 1:
                scores = " ".join(f"{r['task']} {_primary(r)} {r[_primary(r)]:.4f}" for r in run)
                stop = "" if stopper is None else f", best epoch {stopper.best_epoch}/{epochs_run}"
                print(f"{name} seed {seed}: {scores} - fit {seconds:.1f}s{stop}", file=sys.stderr)
    return records


def _curves(history: Sequence[dict[str, Any]], task: Task) -> dict[str, Any]:
    """Per-epoch curves of one run for a task's record: ``loss_curve`` (the training
    loss) and, with validation, ``validation_curve`` (the task's first metric) and
    ``validation_metric`` (its name)."""
    curves: dict[str, Any] = {"loss_curve": [float(h["loss"]) for h in history]}
    if history and "validation" in history[0]:
        metric = task.metrics[0]
        curves["validation_metric"] = metric
        curves["validation_curve"] = [float(h["validation"][task.name][metric]) for h in history]
    return curves


def _primary(record: dict[str, Any]) -> str:
    """The metric a record is ranked by: AUC for binary tasks, MAE for regression."""
    return "auc" if "auc" in record else "mae"


def _metric_keys(records: Iterable[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key not in ("model", "seed", "task", "parameters") and isinstance(value, float):
                keys.setdefault(key)
    return list(keys)


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds, one row per model and task.

    Each row has ``model``, ``task``, ``seeds`` (runs averaged), ``parameters`` and, for
    every metric and timing, ``<key>_mean`` and ``<key>_std`` (sample std, 0 for one seed).
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["model"], record["task"]), []).append(record)
    rows = []
    for (model, task), group in groups.items():
        row: dict[str, Any] = {
            "model": model,
            "task": task,
            "seeds": len(group),
            "parameters": group[0]["parameters"],
        }
        for key in _metric_keys(group):
            values = [r[key] for r in group if key in r]
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std(values)
        rows.append(row)
    return rows


def format_mean_std(
    mean: float, std: float, seeds: int, digits: int, thousands: bool = False
) -> str:
    text = f"{mean:,.{digits}f}" if thousands else f"{mean:.{digits}f}"
    if seeds > 1:
        text += f" ± {std:,.{digits}f}" if thousands else f" ± {std:.{digits}f}"
    return text


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown table, one row per model: params, each task's test AUC (MAE for
    regression), fit seconds and training samples per second; mean ± std over seeds."""
    rows = summarize(records)
    models = list(dict.fromkeys(r["model"] for r in rows))
    tasks: dict[str, str] = {}
    for r in rows:
        tasks.setdefault(r["task"], "auc" if "auc_mean" in r else "mae")
    header = [
        "model",
        "params",
        *(f"{t} {m.upper()}" for t, m in tasks.items()),
        "fit s",
        "samples/s",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for model in models:
        mine = {r["task"]: r for r in rows if r["model"] == model}
        first = next(iter(mine.values()))
        cells = [model, f"{first['parameters']:,}"]
        for task, metric in tasks.items():
            r = mine.get(task)
            ok = r is not None and f"{metric}_mean" in r
            cells.append(
                format_mean_std(r[f"{metric}_mean"], r[f"{metric}_std"], r["seeds"], 4)
                if ok
                else "–"
            )
        cells.append(
            format_mean_std(first["fit_seconds_mean"], first["fit_seconds_std"], first["seeds"], 1)
        )
        cells.append(
            format_mean_std(
                first["train_samples_per_second_mean"],
                first["train_samples_per_second_std"],
                first["seeds"],
                0,
                True,
            )
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(
    records: Sequence[dict[str, Any]],
    out_dir: str | Path,
    command: str | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``results.json`` (the records), ``results.md`` (table, command, date, machine,
    settings), ``results.png`` (AUC chart, when a task has AUC) and ``training.png``
    (training curves, when the records have them) into ``out_dir``.

    Returns the written paths by kind (``json``, ``md``, ``png``, ``curves``).
    """
    out = write_records(records, out_dir)
    paths = {"json": out / "results.json", "md": out / "results.md"}
    seeds = max((r["seed"] for r in records), default=-1) + 1
    lines = [
        "# mtlrec benchmark",
        "",
        format_table(records),
        "",
        f"Mean ± sample std over {seeds} seed(s); test-split metrics."
        if seeds > 1
        else "One seed; test-split metrics.",
        "",
        *provenance_lines(command, settings),
    ]
    paths["md"].write_text("\n".join(lines) + "\n")

    if any("auc" in r for r in records):
        balancers = [r.get("balancer") for r in records]  # named in the title
        paths["png"] = plot_benchmark(summarize(records), out / "results.png", balancers)
    if any(r.get("loss_curve") for r in records):
        paths["curves"] = plot_training_curves(records, out / "training.png")
    return paths
