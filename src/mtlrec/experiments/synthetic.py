"""The MMoE paper's synthetic experiment: every architecture as task correlation falls.

Ma et al., KDD 2018, section 5.1: on two regression tasks whose weight vectors have
cosine ``p`` (:func:`mtlrec.datasets.synthetic_correlated`), every model learns worse as
``p`` falls, MMoE least so; OMoE and MMoE are close at ``p = 1``.

Sizes follow the paper: MoE models have 8 experts of one 16-unit layer, linear gates
and towers of one 8-unit layer. The paper matches Shared-Bottom with a 113-unit bottom,
counting only expert/bottom and tower hidden weights (13,056 vs 13,108). Counting every
trainable parameter (biases, gates, output layers) as ``num_parameters`` does, MMoE has
14,834, OMoE 14,026 (one gate fewer) and a 126-unit bottom 14,776, the closest to MMoE
(113 units: 13,255), so the Shared-Bottom here is 126 units wide. The other
architectures are sized to MMoE's count within 5 %: the single-task baseline has two
68-unit bottoms, CGC MMoE's 8 experts (2 per task, 4 shared), PLE two levels of 14-unit
experts; each newer architecture's sizes are its config's ``reference_synthetic``. ESMM
(a funnel), POSO and PEPNet (they need feature groups) do not run here.

Run ``i`` uses seed ``i`` for the data (task pair and rows) and the model. Its rows are
one draw of ``n_train + n_test`` rows: the first ``n_train`` train, the rest test.

Defaults (:data:`SYNTHETIC_DEFAULTS`): 100,000 training rows, 10 epochs of batch 256,
so the 27 runs of 3 correlations x Shared-Bottom, OMoE, MMoE x 3 seeds take a few
minutes on 2 CPU cores
(with 20,000 rows the models overfit: training loss fell far below validation loss). The
learning rate was picked from the paper's {1e-4, 1e-3, 1e-2} by the loss on 5,000
validation rows of seed 100 (not a benchmark seed; test rows are never used), p in
{0.5, 1.0}: with 100,000 rows and 5 epochs, 1e-2 gave every model a validation loss of
1.0-1.7 against 6.4-7.5 for 1e-3 (1e-4 was slower still at 20,000 rows).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..balancers import BALANCERS
from ..datasets.synthetic import synthetic_correlated, synthetic_features, synthetic_tasks
from ..estimator import MultiTaskModel
from ..exceptions import ConfigError
from ..metrics import rmse
from ..models import declared_sizes
from .plots import plot_synthetic
from .records import mean_std, provenance_lines, write_records

_MOE = {"num_experts": 8, "expert_units": [16], "gate_units": [], "tower_units": [8]}
#: CGC's 8 experts as MMoE's: 2 per task and 4 shared
_PLE = {
    "num_specific_experts": 2,
    "num_shared_experts": 4,
    "expert_units": [16],
    "gate_units": [],
    "tower_units": [8],
}

#: architecture -> hyperparameters (paper sizes; see the module docstring for the bottom);
#: every other architecture brings its synthetic sizes in its own file, or has none (ESMM,
#: a funnel; POSO and PEPNet, which need feature groups the generated rows do not have)
SYNTHETIC_CONFIGS: dict[str, dict[str, Any]] = declared_sizes(
    "reference_synthetic",
    {
        "single_task": {"bottom_units": [68], "tower_units": [8]},
        "shared_bottom": {"bottom_units": [126], "tower_units": [8]},
        "omoe": dict(_MOE),
        "mmoe": dict(_MOE),
        "cgc": dict(_PLE),
        "ple": {**_PLE, "expert_units": [14], "num_levels": 2},
    },
)

#: default optimisation and data sizes of :func:`run_synthetic_benchmark`
SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "n_train": 100_000,
    "n_test": 20_000,
    "epochs": 10,
    "batch_size": 256,
    "lr": 1e-2,
}

#: the task correlations of the paper's figure 4
SYNTHETIC_CORRELATIONS = (0.5, 0.9, 1.0)

_SETTINGS = ("n_train", "n_test", "epochs", "batch_size", "lr", "dim", "balancer")


def run_synthetic_benchmark(
    correlations: Sequence[float] = SYNTHETIC_CORRELATIONS,
    seeds: int = 3,
    n_train: int = SYNTHETIC_DEFAULTS["n_train"],
    n_test: int = SYNTHETIC_DEFAULTS["n_test"],
    epochs: int = SYNTHETIC_DEFAULTS["epochs"],
    batch_size: int = SYNTHETIC_DEFAULTS["batch_size"],
    lr: float = SYNTHETIC_DEFAULTS["lr"],
    models: Sequence[str] | None = None,
    verbose: int = 1,
    warmup: bool = True,
    threads: int | None = None,
    balancer: str = "equal",
) -> list[dict[str, Any]]:
    """Train every model on fresh synthetic data for each correlation and seed
    (``threads``: torch threads for every fit, default the available CPUs).

    Args:
        correlations: task correlation scores ``p``, each in [-1, 1].
        seeds: runs per model and correlation; run ``i`` uses seed ``i`` (data and model).
        n_train, n_test: rows to train on and to test on.
        epochs, batch_size, lr: the optimisation (Adam, inputs standardised).
        models: names in :data:`SYNTHETIC_CONFIGS` (default: all, in that order).
        verbose: 0 silent, 1 one line per run on stderr, 2 also per-epoch progress.
        warmup: first train one untimed epoch on a few rows, so start-up costs do not
            land in the first run's ``fit_seconds``.
        balancer: the loss balancer of every fit (a name in
            :func:`mtlrec.balancers.list_balancers`).

    Returns:
        One record per model, correlation and seed: ``model``, ``correlation``, ``seed``,
        ``parameters``, ``train_loss`` (per epoch: summed MSE of the two tasks over the
        epoch's batches), ``train_task_loss`` ({task: per-epoch MSE}), ``test_loss``
        (summed test MSE), ``test_task_loss`` ({task: test MSE}), ``fit_seconds`` and the
        settings ``n_train``, ``n_test``, ``epochs``, ``batch_size``, ``lr``, ``dim``,
        ``balancer``.
    """
    models = list(SYNTHETIC_CONFIGS) if models is None else list(models)
    unknown = [m for m in models if m not in SYNTHETIC_CONFIGS]
    if unknown or not models:
        raise ConfigError(
            f"models: unknown or empty {unknown or models}; choose from {list(SYNTHETIC_CONFIGS)}"
        )
    correlations = _check_correlations(correlations)
    for name, value in (
        ("seeds", seeds),
        ("n_train", n_train),
        ("n_test", n_test),
        ("epochs", epochs),
        ("batch_size", batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    BALANCERS.get(balancer)  # unknown names fail before any run

    features, tasks = synthetic_features(), synthetic_tasks()
    settings = {
        "n_train": n_train,
        "n_test": n_test,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "dim": len(features),
        "balancer": balancer,
    }
    if warmup:
        rows = synthetic_correlated(min(n_train, 4 * batch_size), correlations[0], seed=0)
        _model(models[0], features, tasks, 0).fit(
            rows,
            epochs=1,
            batch_size=batch_size,
            lr=lr,
            verbose=0,
            threads=threads,
            balancer=balancer,
        )

    records: list[dict[str, Any]] = []
    for p in correlations:
        for seed in range(seeds):
            frame = synthetic_correlated(n_train + n_test, p, seed=seed)
            train, test = frame.iloc[:n_train], frame.iloc[n_train:]
            for name in models:
                model = _model(name, features, tasks, seed)
                start = time.perf_counter()
                model.fit(
                    train,
                    epochs=epochs,
                    batch_size=batch_size,
                    lr=lr,
                    verbose=int(verbose >= 2),
                    threads=threads,
                    balancer=balancer,
                )
                seconds = time.perf_counter() - start
                record = _record(model, test, p, seed, seconds, settings)
                records.append(record)
                if verbose >= 1:
                    print(
                        f"p={p:g} seed {seed} {name}: train loss {record['train_loss'][-1]:.4f}"
                        f" test loss {record['test_loss']:.4f} - fit {seconds:.1f}s",
                        file=sys.stderr,
                    )
    return records


def _check_correlations(correlations: Sequence[float]) -> list[float]:
    values = list(correlations) if isinstance(correlations, Sequence) else []
    if not values or not all(
        isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p) and -1 <= p <= 1
        for p in values
    ):
        raise ConfigError(
            f"correlations must be a non-empty list of numbers in [-1, 1], got {correlations!r}"
        )
    return [float(p) for p in values]


def _model(name: str, features, tasks, seed: int) -> MultiTaskModel:
    return MultiTaskModel(
        features,
        tasks,
        architecture=name,
        scaling="standard",
        seed=seed,
        **SYNTHETIC_CONFIGS[name],
    )


def _record(
    model: MultiTaskModel,
    test,
    correlation: float,
    seed: int,
    seconds: float,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """One run's record: training curves from ``history_``, test MSE from predictions."""
    predictions = model.predict(test)
    test_task_loss = {t.name: rmse(test[t.name], predictions[t.name]) ** 2 for t in model.tasks}
    return {
        "model": model.architecture,
        "correlation": correlation,
        "seed": seed,
        "parameters": model.num_parameters(),
        "train_loss": [h["loss"] for h in model.history_],
        "train_task_loss": {
            t.name: [h["task_loss"][t.name] for h in model.history_] for t in model.tasks
        },
        "test_loss": sum(test_task_loss.values()),
        "test_task_loss": test_task_loss,
        "fit_seconds": seconds,
        **settings,
    }


def _final(record: dict[str, Any], metric: str) -> float:
    value = record[metric]
    return float(value[-1]) if isinstance(value, list) else float(value)


def summarize_synthetic(
    records: Sequence[dict[str, Any]], metric: str = "test_loss"
) -> list[dict[str, Any]]:
    """Mean, sample std, min and max of ``metric`` over seeds, one row per model and
    correlation (``train_loss`` means the last epoch's)."""
    groups: dict[tuple[str, float], list[float]] = {}
    params: dict[str, int] = {}
    for r in records:
        groups.setdefault((r["model"], r["correlation"]), []).append(_final(r, metric))
        params.setdefault(r["model"], r["parameters"])
    rows = []
    for (model, p), values in groups.items():
        mean, std = mean_std(values)
        rows.append(
            {
                "model": model,
                "correlation": p,
                "seeds": len(values),
                "parameters": params[model],
                "mean": mean,
                "std": std,
                "min": min(values),
                "max": max(values),
            }
        )
    return rows


#: how table headers name the metrics (both: MSE of y1 plus MSE of y2)
_METRIC_LABELS = {"test_loss": "test MSE", "train_loss": "final train MSE"}


def format_synthetic_table(records: Sequence[dict[str, Any]], metric: str = "test_loss") -> str:
    """Markdown table, one row per model and one column per correlation: mean ± std over
    seeds of ``metric`` (``test_loss`` or the final ``train_loss``), named in each column
    header, with the seed count."""
    rows = summarize_synthetic(records, metric)
    models = list(dict.fromkeys(r["model"] for r in rows))
    correlations = sorted({r["correlation"] for r in rows}, reverse=True)
    cells = {(r["model"], r["correlation"]): r for r in rows}
    counts = sorted({r["seeds"] for r in rows})
    uniform = len(counts) == 1
    label = _METRIC_LABELS.get(metric, metric)
    header = ["model", "params", *(f"{label}, p = {p:g}" for p in correlations)]
    if uniform:
        header.append("seeds")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for model in models:
        line = [model, f"{next(r for r in rows if r['model'] == model)['parameters']:,}"]
        for p in correlations:
            r = cells.get((model, p))
            if r is None:
                line.append("–")
                continue
            text = f"{r['mean']:.4f}" + (f" ± {r['std']:.4f}" if r["seeds"] > 1 else "")
            line.append(text if uniform else f"{text} (n={r['seeds']})")
        if uniform:
            line.append(str(counts[0]))
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def write_synthetic_outputs(
    records: Sequence[dict[str, Any]],
    out_dir: str | Path,
    command: str | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``results.json`` (the records), ``results.md`` (tables, command, date,
    machine, settings) and ``results.png`` (loss curves and test losses) into ``out_dir``.

    ``settings`` defaults to the run settings stored in the records. Returns the written
    paths by kind (``json``, ``md``, ``png``).
    """
    if not records:
        raise ValueError("write_synthetic_outputs: no records to write")
    out = write_records(records, out_dir)
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "results.png"}
    if settings is None:
        settings = {key: records[0][key] for key in _SETTINGS if key in records[0]}
    total = sum(r["fit_seconds"] for r in records)
    settings = {"total fit time": f"{total:.1f}s over {len(records)} runs", **settings}
    lines = [
        "# mtlrec synthetic benchmark (MMoE paper, controlled task correlation)",
        "",
        "Test loss: MSE of y1 plus MSE of y2 on the test rows, mean ± sample std over seeds.",
        "",
        format_synthetic_table(records, "test_loss"),
        "",
        "Training loss of the last epoch (same sum, averaged over that epoch's batches):",
        "",
        format_synthetic_table(records, "train_loss"),
        "",
        *provenance_lines(command, settings),
    ]
    paths["md"].write_text("\n".join(lines) + "\n")
    plot_synthetic(records, summarize_synthetic(records), paths["png"])
    return paths
