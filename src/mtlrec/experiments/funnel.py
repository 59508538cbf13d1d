"""Funnel benchmarks: post-click conversion (CVR) models on the simulator and on Hillstrom.

The question of ESMM (Ma et al., SIGIR 2018): a CVR model is trained on clicked rows but
used on every impression. :func:`run_funnel_benchmark` trains each model of
:data:`FUNNEL_MODELS` on :func:`mtlrec.datasets.synthetic_funnel` impressions, where the
truth is known for every row, and scores the predicted P(conversion | click) twice:
``cvr_auc_clicked`` against the observed conversions of the clicked test rows (all a real
log allows) and ``cvr_auc_all`` against ``potential_conversion`` over ALL test
impressions (the entire space, simulator only). :func:`run_hillstrom_benchmark` runs the
same models on the MineThatData e-mail data (visit -> conversion), which has no ground
truth and little signal: a test split holds ~170 conversions, so differences of a few
AUC points are within seed noise (the records keep the positive counts).

The models (:data:`FUNNEL_MODELS`):

* ``naive_cvr``: a single-task CVR network fitted on the clicked training rows only
  (its vocabulary too), plus a single-task click network on all rows for CTR and CTCVR;
* ``esmm``: ESMM's two towers, CTCVR = CTR x CVR over the entire space;
* ``mmoe_*`` / ``ple_*``: MMoE / PLE with the funnel task trained ``conditional`` (loss on
  clicked rows), ``entire_space`` (ESMM's product), ``direct_penalty`` (the tower predicts
  the joint, penalty 1 on joint > CTR) or ``ipw`` (entire space plus ESCM^2's
  inverse-propensity-weighted CVR loss, weight 1); see :mod:`mtlrec.objective.funnel`;
* ``aitm_direct_penalty`` (AITM as its paper trains it: the joint over every impression,
  the calibrator as the penalty) and ``aitm_entire_space``.

Networks are small (4 experts of 32 units, towers of 16; embeddings of 8) and training is
a fixed number of epochs, sized so that ``seeds=3`` of the ten simulator models takes a
few minutes on 2 CPU cores. Run ``i`` uses seed ``i`` for the data (simulator: the world and rows;
Hillstrom: the train / test shuffle) and for the model. The defaults are a modest,
untuned choice (Adam, lr 2e-3), the same for every model.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..datasets.funnel import funnel_features, synthetic_funnel
from ..datasets.hillstrom import hillstrom_features, load_hillstrom, split_hillstrom
from ..estimator import MultiTaskModel
from ..exceptions import ConfigError, DataError
from ..features import Feature
from ..metrics import log_loss, roc_auc
from ..tasks import Task
from .benchmark import format_mean_std, summarize
from .plots import plot_funnel
from .records import provenance_lines, write_records

logger = logging.getLogger(__name__)

_MOE = {"num_experts": 4, "expert_units": [32], "gate_units": [], "tower_units": [16]}
_PLE = {
    "num_specific_experts": 2,
    "num_shared_experts": 2,
    "num_levels": 2,
    "expert_units": [32],
    "gate_units": [],
    "tower_units": [16],
}
_FUNNELS: dict[str, dict[str, Any]] = {
    "conditional": {},
    "entire_space": {"funnel": "entire_space"},
    "direct_penalty": {"funnel": "direct", "penalty": 1.0},
    "ipw": {"funnel": "entire_space", "ipw": 1.0},
}


class FunnelModel(NamedTuple):
    """An architecture, its hyperparameters and the funnel task's options (None: the
    naive two-network baseline)."""

    architecture: str
    params: dict[str, Any]
    funnel: dict[str, Any] | None


#: model name -> how it is built
FUNNEL_MODELS: dict[str, FunnelModel] = {
    "naive_cvr": FunnelModel("single_task", {"bottom_units": [32], "tower_units": [16]}, None),
    "esmm": FunnelModel("esmm", {"tower_units": [32, 16]}, {}),
    **{f"mmoe_{k}": FunnelModel("mmoe", _MOE, v) for k, v in _FUNNELS.items()},
    **{f"ple_{k}": FunnelModel("ple", _PLE, v) for k, v in _FUNNELS.items()},
    # AITM as its paper trains it: every step over all impressions, plus the calibrator
    "aitm_direct_penalty": FunnelModel(
        "aitm", {"tower_units": [32, 16]}, _FUNNELS["direct_penalty"]
    ),
    "aitm_entire_space": FunnelModel("aitm", {"tower_units": [32, 16]}, _FUNNELS["entire_space"]),
}

#: default data sizes and optimisation of :func:`run_funnel_benchmark`
FUNNEL_DEFAULTS: dict[str, Any] = {
    "n_train": 40_000,
    "n_test": 100_000,
    "epochs": 3,
    "batch_size": 256,
    "lr": 2e-3,
    "embedding_dim": 8,
}
#: what ``--quick`` runs: a check of the pipeline, not a result
FUNNEL_QUICK: dict[str, Any] = {"n_train": 5_000, "n_test": 5_000, "epochs": 1}
#: default optimisation and split of :func:`run_hillstrom_benchmark`
HILLSTROM_DEFAULTS: dict[str, Any] = {
    "test": 0.3,
    "epochs": 3,
    "batch_size": 256,
    "lr": 2e-3,
    "embedding_dim": 8,
}


class _Split(NamedTuple):
    """One seed's data: the label names, and whether ground truth columns exist."""

    train: pd.DataFrame
    test: pd.DataFrame
    click: str
    conversion: str
    truth: bool


def _check_models(models: Sequence[str] | None) -> list[str]:
    models = list(FUNNEL_MODELS) if models is None else list(models)
    unknown = [m for m in models if m not in FUNNEL_MODELS]
    if unknown or not models:
        raise ConfigError(
            f"models: unknown or empty {unknown or models}; choose from {list(FUNNEL_MODELS)}"
        )
    return models


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_lr(lr: object) -> None:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ConfigError(f"lr must be a positive number, got {lr!r}")


def run_funnel_benchmark(
    models: Sequence[str] | None = None,
    seeds: int = 3,
    n_train: int = FUNNEL_DEFAULTS["n_train"],
    n_test: int = FUNNEL_DEFAULTS["n_test"],
    epochs: int = FUNNEL_DEFAULTS["epochs"],
    batch_size: int = FUNNEL_DEFAULTS["batch_size"],
    lr: float = FUNNEL_DEFAULTS["lr"],
    embedding_dim: int = FUNNEL_DEFAULTS["embedding_dim"],
    data_options: dict[str, Any] | None = None,
    verbose: int = 1,
    warmup: bool = True,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Train and test every model on simulated funnels for seeds ``0 .. seeds-1``.

    Args:
        models: names in :data:`FUNNEL_MODELS` (default: all, in that order).
        seeds: runs per model; run ``i`` draws its data and initialises its model with
            seed ``i``.
        n_train, n_test: impressions to train and test on (one draw, split by rows).
        epochs, batch_size, lr: the optimisation (Adam), the same for every model.
        embedding_dim: size of every id embedding.
        data_options: keyword options of :func:`~mtlrec.datasets.synthetic_funnel`
            (``click_rate``, ``conversion_rate``, ``selection_bias``, ...).
        verbose: 0 silent, 1 one line per run on stderr, 2 also per-epoch progress.
        warmup: first train one untimed epoch on a few rows, so start-up costs do not
            land in the first run's ``seconds``.
        threads: torch threads for every fit and prediction (default: available CPUs).

    Returns:
        Records (see :func:`funnel_records`) of every model, seed and output.
    """
    models = _check_models(models)
    _check_positive(
        seeds=seeds, n_train=n_train, n_test=n_test, epochs=epochs, batch_size=batch_size
    )
    _check_lr(lr)
    options = dict(data_options or {})
    synthetic_funnel(1, **options)  # bad data options fail before any training

    def split(seed: int) -> _Split:
        frame = synthetic_funnel(n_train + n_test, seed=seed, **options)
        return _Split(frame.iloc[:n_train], frame.iloc[n_train:], "click", "conversion", True)

    fit = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    features = funnel_features(embedding_dim)
    return _run(split, features, models, seeds, fit, verbose, warmup, threads)


def run_hillstrom_benchmark(
    path: str | Path,
    models: Sequence[str] | None = None,
    seeds: int = 3,
    test: float = HILLSTROM_DEFAULTS["test"],
    epochs: int = HILLSTROM_DEFAULTS["epochs"],
    batch_size: int = HILLSTROM_DEFAULTS["batch_size"],
    lr: float = HILLSTROM_DEFAULTS["lr"],
    embedding_dim: int = HILLSTROM_DEFAULTS["embedding_dim"],
    max_rows: int | None = None,
    verbose: int = 1,
    warmup: bool = True,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Train and test every model on the Hillstrom visit -> conversion funnel.

    Run ``i`` shuffles the 64,000 customers with seed ``i`` into train (``1 - test``)
    and test (``test``), and trains with seed ``i``; ``max_rows`` keeps the first rows
    of each split (quick runs). Arguments otherwise as :func:`run_funnel_benchmark`; the
    records have no ground-truth metrics (``cvr_auc_all``, ``cvr_mean_true_all``).
    """
    models = _check_models(models)
    _check_positive(seeds=seeds, epochs=epochs, batch_size=batch_size)
    _check_lr(lr)
    if max_rows is not None:
        _check_positive(max_rows=max_rows)
    frame = load_hillstrom(path)

    def split(seed: int) -> _Split:
        parts = split_hillstrom(frame, seed=seed, validation=0.0, test=test)
        train, held_out = parts.train, parts.test
        if max_rows is not None:
            train, held_out = train.head(max_rows), held_out.head(max_rows)
        return _Split(train, held_out, "visit", "conversion", False)

    fit = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    features = hillstrom_features(embedding_dim)
    return _run(split, features, models, seeds, fit, verbose, warmup, threads)


def _tasks(split: _Split, funnel: dict[str, Any]) -> list[Task]:
    return [Task(split.click), Task(split.conversion, after=split.click, **funnel)]


def _run(
    make_split: Callable[[int], _Split],
    features: list[Feature],
    models: list[str],
    seeds: int,
    fit: dict[str, Any],
    verbose: int,
    warmup: bool,
    threads: int | None,
) -> list[dict[str, Any]]:
    fit = {**fit, "verbose": int(verbose >= 2), "threads": threads}
    if warmup:
        first = make_split(0)
        spec = FUNNEL_MODELS["mmoe_conditional"]
        MultiTaskModel(features, _tasks(first, {}), architecture="mmoe", **spec.params).fit(
            first.train.head(4 * fit["batch_size"]), **{**fit, "epochs": 1, "verbose": 0}
        )
    records: list[dict[str, Any]] = []
    for seed in range(seeds):
        split = make_split(seed)
        for name in models:
            start = time.perf_counter()
            predictions, parameters = _fit_predict(name, split, features, seed, fit)
            seconds = time.perf_counter() - start
            run = funnel_records(split, predictions)
            for record in run:
                record.update(model=name, seed=seed, seconds=seconds, parameters=parameters)
            records.extend(run)
            if verbose >= 1:
                print(_progress(name, seed, run, seconds), file=sys.stderr)
    return [_ordered(r) for r in records]


def _fit_predict(
    name: str, split: _Split, features: list[Feature], seed: int, fit: dict[str, Any]
) -> tuple[dict[str, np.ndarray], int]:
    """{"click", "conversion", "joint"} predicted probabilities on the test rows and the
    trainable parameters of model ``name`` trained on ``split.train``."""
    spec = FUNNEL_MODELS[name]
    test = split.test
    if spec.funnel is None:  # the naive baseline: two networks, CVR on clicked rows only
        clicked = split.train[split.train[split.click] == 1]
        if clicked[split.conversion].nunique() < 2:
            raise DataError(
                f"naive_cvr: the {len(clicked)} clicked training rows hold one conversion "
                f"class only; give more training rows"
            )
        built = []
        for task, rows in ((split.click, split.train), (split.conversion, clicked)):
            model = MultiTaskModel(
                features, [Task(task)], architecture=spec.architecture, seed=seed, **spec.params
            )
            built.append(model.fit(rows, **fit))
        click = built[0].predict(test, threads=fit["threads"])[split.click]
        cvr = built[1].predict(test, threads=fit["threads"])[split.conversion]
        parameters = sum(m.num_parameters() for m in built)
        return {"click": click, "conversion": cvr, "joint": click * cvr}, parameters
    tasks = _tasks(split, spec.funnel)
    model = MultiTaskModel(
        features, tasks, architecture=spec.architecture, seed=seed, **spec.params
    ).fit(split.train, **fit)
    out = model.predict(test, threads=fit["threads"])
    joint = tasks[1].joint_name
    return {
        "click": out[split.click],
        "conversion": out[split.conversion],
        "joint": out[joint],
    }, model.num_parameters()


def _binary_metrics(y: np.ndarray, p: np.ndarray, auc: str = "auc", loss: str = "logloss"):
    """{auc: AUC, loss: log loss} of ``p`` against 0/1 ``y``; {} when ``y`` has one class."""
    if y.size == 0 or y.min() == y.max():
        return {}
    return {auc: roc_auc(y, p), loss: log_loss(y, p)}


def funnel_records(split: _Split, predictions: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Test metrics of one run, one record per output:

    * ``click``: ``auc``, ``logloss`` over all test rows;
    * ``conversion`` (P(conversion | click)): ``auc`` / ``logloss`` = ``cvr_auc_clicked``
      / ``cvr_logloss_clicked`` on the clicked test rows against the observed
      conversions; with ground truth also ``cvr_auc_all`` / ``cvr_logloss_all`` over ALL
      test rows against ``potential_conversion``; calibration: ``cvr_mean_pred_all``,
      ``cvr_mean_pred_clicked`` (mean prediction), ``cvr_observed_clicked`` (observed
      rate), with ground truth ``cvr_mean_true_all`` / ``cvr_mean_true_clicked`` (mean
      ``true_cvr``) and the ratios ``cvr_calibration_all`` / ``cvr_calibration_clicked``
      (mean prediction / mean truth; without ground truth the clicked ratio divides by
      the observed rate);
    * ``click_conversion`` (the joint): ``auc``, ``logloss`` over all test rows against
      click AND conversion.

    Every record has ``task``, ``rows`` and ``positives`` (of the rows it is judged on);
    a metric whose rows hold one class only is left out (with a warning).
    """
    test = split.test
    click = test[split.click].to_numpy().astype(np.int64)
    clicked = click == 1
    conversion = np.nan_to_num(test[split.conversion].to_numpy(dtype=np.float64)).astype(np.int64)
    joint = click * conversion
    p_click = np.asarray(predictions["click"], dtype=np.float64)
    p_cvr = np.asarray(predictions["conversion"], dtype=np.float64)
    p_joint = np.asarray(predictions["joint"], dtype=np.float64)

    observed = float(conversion[clicked].mean()) if clicked.any() else float("nan")
    cvr: dict[str, Any] = {
        "task": "conversion",
        "rows": int(clicked.sum()),
        "positives": int(conversion[clicked].sum()),
        **_binary_metrics(conversion[clicked], p_cvr[clicked]),
        **_binary_metrics(
            conversion[clicked], p_cvr[clicked], "cvr_auc_clicked", "cvr_logloss_clicked"
        ),
    }
    cvr["cvr_mean_pred_all"] = float(p_cvr.mean())
    if clicked.any():
        cvr["cvr_mean_pred_clicked"] = float(p_cvr[clicked].mean())
        cvr["cvr_observed_clicked"] = observed
    if split.truth:
        potential = test["potential_conversion"].to_numpy().astype(np.int64)
        true_cvr = test["true_cvr"].to_numpy(dtype=np.float64)
        cvr.update(_binary_metrics(potential, p_cvr, "cvr_auc_all", "cvr_logloss_all"))
        cvr["potential_positives"] = int(potential.sum())
        cvr["cvr_mean_true_all"] = float(true_cvr.mean())
        cvr["cvr_calibration_all"] = cvr["cvr_mean_pred_all"] / cvr["cvr_mean_true_all"]
        if clicked.any():
            cvr["cvr_mean_true_clicked"] = float(true_cvr[clicked].mean())
            cvr["cvr_calibration_clicked"] = (
                cvr["cvr_mean_pred_clicked"] / cvr["cvr_mean_true_clicked"]
            )
    elif clicked.any() and observed > 0:
        cvr["cvr_calibration_clicked"] = cvr["cvr_mean_pred_clicked"] / observed

    records = [
        {
            "task": "click",
            "rows": len(click),
            "positives": int(click.sum()),
            **_binary_metrics(click, p_click),
        },
        cvr,
        {
            "task": "click_conversion",
            "rows": len(joint),
            "positives": int(joint.sum()),
            **_binary_metrics(joint, p_joint),
        },
    ]
    for record in records:
        if "auc" not in record:
            logger.warning(
                "funnel benchmark: the %d test rows of %r hold one class only; no AUC",
                record["rows"],
                record["task"],
            )
    return records


def _ordered(record: dict[str, Any]) -> dict[str, Any]:
    """``model``, ``seed``, ``task`` first, then the rest in their order."""
    head = {k: record[k] for k in ("model", "seed", "task")}
    return {**head, **{k: v for k, v in record.items() if k not in head}}


def _progress(name: str, seed: int, run: list[dict[str, Any]], seconds: float) -> str:
    by_task = {r["task"]: r for r in run}
    parts = [
        f"{label} {by_task[task][key]:.4f}"
        for label, task, key in (
            ("click AUC", "click", "auc"),
            ("CVR AUC clicked", "conversion", "cvr_auc_clicked"),
            ("all", "conversion", "cvr_auc_all"),
            ("CTCVR AUC", "click_conversion", "auc"),
        )
        if key in by_task[task]
    ]
    return f"{name} seed {seed}: {', '.join(parts)} - {seconds:.1f}s"


#: table columns: (header, task, record key, digits)
_COLUMNS = (
    ("click AUC", "click", "auc", 4),
    ("CVR AUC (clicked)", "conversion", "cvr_auc_clicked", 4),
    ("CVR AUC (all)", "conversion", "cvr_auc_all", 4),
    ("CTCVR AUC", "click_conversion", "auc", 4),
    ("mean pCVR (all)", "conversion", "cvr_mean_pred_all", 4),
    ("true CVR (all)", "conversion", "cvr_mean_true_all", 4),
    ("mean pCVR (clicked)", "conversion", "cvr_mean_pred_clicked", 4),
    ("true CVR (clicked)", "conversion", "cvr_mean_true_clicked", 4),
    ("observed CVR (clicked)", "conversion", "cvr_observed_clicked", 4),
    ("fit s", "click", "seconds", 1),
)


def format_funnel_table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown table, one row per model: parameters, AUCs, CVR calibration and fit
    seconds, mean ± std over seeds; columns no record has (ground truth) are left out."""
    rows = summarize(records)
    cells = {(r["model"], r["task"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    columns = [c for c in _COLUMNS if any(f"{c[2]}_mean" in r for r in rows if r["task"] == c[1])]
    header = ["model", "params", *(c[0] for c in columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for model in models:
        first = next(r for r in rows if r["model"] == model)
        line = [model, f"{first['parameters']:,}"]
        for _, task, key, digits in columns:
            r = cells.get((model, task))
            ok = r is not None and f"{key}_mean" in r
            line.append(
                format_mean_std(r[f"{key}_mean"], r[f"{key}_std"], r["seeds"], digits)
                if ok
                else "–"
            )
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def positives_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """One markdown bullet per output: the test rows and positives it is judged on (mean,
    min and max over seeds), so low-signal results read as such."""
    lines = []
    first_model = records[0]["model"] if records else None
    for task in dict.fromkeys(r["task"] for r in records):
        mine = [r for r in records if r["task"] == task and r["model"] == first_model]
        positives = [r["positives"] for r in mine]
        rows = [r["rows"] for r in mine]
        spread = f" ({min(positives):,}-{max(positives):,})" if len(set(positives)) > 1 else ""
        lines.append(
            f"- test `{task}`: {np.mean(positives):,.0f}{spread} positives in "
            f"{np.mean(rows):,.0f} rows per seed"
        )
    return lines


def write_funnel_outputs(
    records: Sequence[dict[str, Any]],
    out_dir: str | Path,
    title: str = "mtlrec funnel benchmark",
    command: str | None = None,
    settings: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``results.json`` (the records), ``results.md`` (table, test positives,
    ``notes``, command, date, machine, settings) and ``results.png`` (:func:`plot_funnel`)
    into ``out_dir``; returns the written paths by kind (``json``, ``md``, ``png``)."""
    if not records:
        raise ValueError("write_funnel_outputs: no records to write")
    out = write_records(records, out_dir)
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "results.png"}
    seeds = len({r["seed"] for r in records})
    truth = any("cvr_auc_all" in r for r in records)
    lines = [
        f"# {title}",
        "",
        format_funnel_table(records),
        "",
        f"Mean ± sample std over {seeds} seed(s) on the test split. CVR AUC (clicked): "
        "P(conversion | click) against the observed conversions of the clicked test rows; "
        + (
            "CVR AUC (all): against the potential conversion of every test impression "
            "(ground truth); true CVR: mean of the simulator's P(conversion | click); "
            if truth
            else "no ground truth, so nothing is judged on the rows without a click; "
        )
        + "CTCVR: P(click and conversion) over all test rows.",
        "",
        *positives_lines(records),
        *(["", *notes] if notes else []),
        "",
        *provenance_lines(command, settings),
    ]
    paths["md"].write_text("\n".join(lines) + "\n")
    plot_funnel(summarize(records), paths["png"], title=title)
    return paths
