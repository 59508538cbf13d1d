"""Benchmark runner, summaries, tables, result files and plots (tiny data, fast)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mtlrec
from mtlrec.experiments import benchmark, plots
from mtlrec.experiments.benchmark import (
    REFERENCE_CONFIGS,
    BenchmarkData,
    format_table,
    run_benchmark,
    summarize,
    write_outputs,
)
from mtlrec.experiments.plots import plot_benchmark, plot_gates, plot_training_curves

BINARY_KEYS = {
    "model",
    "seed",
    "balancer",
    "task",
    "auc",
    "logloss",
    "fit_seconds",
    "train_samples_per_second",
    "parameters",
    "loss_curve",
}
REGRESSION_KEYS = BINARY_KEYS - {"auc", "logloss"} | {"mae", "rmse"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_frame(rows: int, seed: int) -> pd.DataFrame:
    """Two sparse and two dense columns; click depends on them, buy implies click."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], rows)
    shop = rng.integers(0, 5, rows)
    price = rng.normal(size=rows)
    age = rng.uniform(18, 70, rows)
    click = ((color == "red") | (price > 0.8)) ^ (rng.random(rows) < 0.1)
    buy = click & (shop < 2)
    return pd.DataFrame(
        {
            "color": color,
            "shop": shop,
            "price": price,
            "age": age,
            "click": click.astype(int),
            "buy": buy.astype(int),
            "spend": 3.0 * price + rng.normal(size=rows),
        }
    )


FEATURES = [
    mtlrec.SparseFeature("color", 4, group="user"),  # POSO's personalisation feature
    mtlrec.SparseFeature("shop", 4),
    mtlrec.DenseFeature("price"),
    mtlrec.DenseFeature("age"),
]


def tiny_loader() -> BenchmarkData:
    """Tiny synthetic click / buy data."""
    return BenchmarkData(
        tiny_frame(300, 0), tiny_frame(200, 1), FEATURES, [mtlrec.Task("click"), mtlrec.Task("buy")]
    )


def tiny_regression_loader() -> BenchmarkData:
    """Tiny synthetic click / spend data."""
    return BenchmarkData(
        tiny_frame(300, 0),
        tiny_frame(200, 1),
        FEATURES,
        [mtlrec.Task("click"), mtlrec.Task("spend", "regression")],
    )


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(benchmark.DATASETS, "tiny", tiny_loader)
    monkeypatch.setitem(benchmark.DATASETS, "tiny_regression", tiny_regression_loader)
    return "tiny"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    """Every reference model, two seeds, one epoch on the tiny data."""
    benchmark.DATASETS["tiny"] = tiny_loader
    try:
        return run_benchmark("tiny", seeds=2, epochs=1, batch_size=64, verbose=0, warmup=False)
    finally:
        del benchmark.DATASETS["tiny"]


def fake_records(seeds: int, tasks=(("click", "auc"), ("buy", "auc"))) -> list[dict]:
    out = []
    for m, model in enumerate(["shared_bottom", "mmoe", "ple"]):
        for seed in range(seeds):
            for task, metric in tasks:
                other = "logloss" if metric == "auc" else "rmse"
                out.append(
                    {
                        "model": model,
                        "seed": seed,
                        "task": task,
                        metric: 0.8 + 0.01 * m + 0.001 * seed,
                        other: 0.4,
                        "fit_seconds": 2.0 + seed,
                        "train_samples_per_second": 1000.0 / (1 + seed),
                        "parameters": 1000 * (m + 1),
                    }
                )
    return out


def test_reference_configs_cover_every_architecture():
    assert set(REFERENCE_CONFIGS) == set(mtlrec.list_models())
    assert REFERENCE_CONFIGS["ple"]["num_levels"] == 2
    assert REFERENCE_CONFIGS["omoe"] == REFERENCE_CONFIGS["mmoe"]


def test_one_record_per_model_seed_task_with_documented_keys(records):
    combos = [(r["model"], r["seed"], r["task"]) for r in records]
    expected = [(m, s, t) for m in REFERENCE_CONFIGS for s in (0, 1) for t in ("click", "buy")]
    assert combos == expected
    for r in records:
        assert set(r) == BINARY_KEYS
        assert 0.0 <= r["auc"] <= 1.0 and r["logloss"] > 0
        assert r["fit_seconds"] > 0
        assert r["train_samples_per_second"] == pytest.approx(300 * 1 / r["fit_seconds"])
        assert isinstance(r["parameters"], int) and r["parameters"] > 0
        assert len(r["loss_curve"]) == 1 and r["loss_curve"][0] > 0  # one epoch
    json.dumps(records)  # plain JSON types only


def test_seeds_change_weights_but_not_size(records):
    by_run = {(r["model"], r["seed"], r["task"]): r for r in records}
    assert by_run[("mmoe", 0, "click")]["parameters"] == by_run[("mmoe", 1, "click")]["parameters"]
    assert by_run[("mmoe", 0, "click")]["auc"] != by_run[("mmoe", 1, "click")]["auc"]


def test_regression_task_reports_mae_and_rmse(tiny):
    out = run_benchmark(
        "tiny_regression", models=["mmoe"], epochs=1, batch_size=64, verbose=0, warmup=False
    )
    assert [set(r) for r in out] == [BINARY_KEYS, REGRESSION_KEYS]
    assert format_table(out).splitlines()[0] == (
        "| model | params | click AUC | spend MAE | fit s | samples/s |"
    )


def test_max_rows_limits_both_splits(tiny, monkeypatch):
    seen = []
    real_evaluate = mtlrec.MultiTaskModel.evaluate
    monkeypatch.setattr(
        mtlrec.MultiTaskModel,
        "evaluate",
        lambda self, df, **k: seen.append(len(df)) or real_evaluate(self, df, **k),
    )
    out = run_benchmark("tiny", models=["shared_bottom"], epochs=2, max_rows=120, verbose=0)
    assert seen == [120]
    assert out[0]["train_samples_per_second"] == pytest.approx(120 * 2 / out[0]["fit_seconds"])


def validated_loader(rows: int = 300) -> BenchmarkData:
    """Tiny click / buy data with a validation split."""
    return BenchmarkData(
        tiny_frame(rows, 0),
        tiny_frame(200, 1),
        FEATURES,
        [mtlrec.Task("click"), mtlrec.Task("buy")],
        validation=tiny_frame(200, 2),
        split="three tiny frames",
    )


def test_validation_split_stops_early_on_the_first_task(monkeypatch):
    fits = []
    real_fit = mtlrec.MultiTaskModel.fit
    monkeypatch.setattr(
        mtlrec.MultiTaskModel,
        "fit",
        lambda self, *a, **k: fits.append((a, k)) or real_fit(self, *a, **k),
    )
    out = run_benchmark(
        validated_loader(), models=["mmoe"], epochs=8, patience=1, verbose=0, warmup=False
    )
    ((args, kwargs),) = fits
    assert len(args[1]) == 200  # the validation frame reached fit
    stopper = kwargs["early_stopping"]
    assert (stopper.task, stopper.metric, stopper.patience) == ("click", "auc", 1)
    run = out[0]
    assert 1 <= run["best_epoch"] <= run["epochs_run"] <= 8
    # either it ran out of epochs or it stopped exactly `patience` epochs after the best
    assert run["epochs_run"] == 8 or run["epochs_run"] - run["best_epoch"] == 1
    # per-epoch curves of the run: the best epoch has the best validation AUC
    assert run["validation_metric"] == "auc"
    assert len(run["loss_curve"]) == len(run["validation_curve"]) == run["epochs_run"]
    assert max(run["validation_curve"]) == run["validation_curve"][run["best_epoch"] - 1]
    assert run["train_samples_per_second"] == pytest.approx(
        300 * run["epochs_run"] / run["fit_seconds"]
    )


def test_no_validation_split_means_fixed_epochs(tiny):
    (run, _) = run_benchmark("tiny", models=["shared_bottom"], epochs=2, verbose=0)
    assert "epochs_run" not in run and "best_epoch" not in run


def test_load_dataset_passes_options_and_names_unknown_ones(monkeypatch):
    seen = {}

    def loader(group: int = 1) -> BenchmarkData:
        seen["group"] = group
        return validated_loader()

    monkeypatch.setitem(benchmark.DATASETS, "opts", loader)
    assert benchmark.load_dataset("opts", group=2, path=None).split == "three tiny frames"
    assert seen == {"group": 2}  # None-valued options are dropped
    with pytest.raises(mtlrec.ConfigError, match=r"no option\(s\) \['colour'\]"):
        benchmark.load_dataset("opts", colour="red")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"models": ["mmoe", "nope"]}, "nope"),
        ({"models": []}, "choose from"),
        ({"seeds": 0}, "seeds"),
        ({"dataset": "nope"}, "unknown dataset"),
        ({"max_rows": 0}, "max_rows"),
    ],
)
def test_bad_arguments(tiny, kwargs, message):
    with pytest.raises(mtlrec.ConfigError, match=message):
        run_benchmark(**{"dataset": "tiny", **kwargs})


def test_summarize_mean_and_sample_std(records):
    rows = summarize(records)
    assert len(rows) == len(REFERENCE_CONFIGS) * 2
    row = next(r for r in rows if r["model"] == "cgc" and r["task"] == "buy")
    aucs = [r["auc"] for r in records if r["model"] == "cgc" and r["task"] == "buy"]
    assert row["seeds"] == 2
    assert row["auc_mean"] == pytest.approx(np.mean(aucs))
    assert row["auc_std"] == pytest.approx(np.std(aucs, ddof=1))
    assert {"fit_seconds_mean", "train_samples_per_second_std", "logloss_mean"} <= set(row)


def test_table_has_one_row_per_model_and_task_columns(records):
    lines = format_table(records).splitlines()
    assert lines[0] == "| model | params | click AUC | buy AUC | fit s | samples/s |"
    body = lines[2:]
    assert [line.split(" | ")[0].strip("| ") for line in body] == list(REFERENCE_CONFIGS)
    assert all(line.count("±") == 4 for line in body)  # two AUCs, fit s, samples/s


def test_table_single_seed_has_no_std_and_formats_numbers():
    lines = format_table(fake_records(1)).splitlines()
    assert len(lines) == 2 + 3 and "±" not in "\n".join(lines)
    assert lines[2] == "| shared_bottom | 1,000 | 0.8000 | 0.8000 | 2.0 | 1,000 |"


def test_write_outputs(tmp_path, records):
    paths = write_outputs(
        records, tmp_path / "out", command="mtlrec benchmark tiny", settings={"epochs": 1}
    )
    assert set(paths) == {"json", "md", "png", "curves"}
    assert paths["curves"] == tmp_path / "out" / "training.png"
    assert paths["curves"].read_bytes()[:8] == PNG_MAGIC
    assert json.loads(paths["json"].read_text()) == records
    md = paths["md"].read_text()
    assert format_table(records) in md
    for text in ("mtlrec benchmark tiny", "torch", "thread", "epochs: 1", "UTC"):
        assert text in md
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC


def test_write_outputs_without_auc_skips_chart(tmp_path):
    paths = write_outputs(fake_records(1, tasks=(("spend", "mae"),)), tmp_path)
    assert set(paths) == {"json", "md"} and not (tmp_path / "results.png").exists()


def test_plot_benchmark_needs_auc(tmp_path):
    with pytest.raises(ValueError, match="AUC"):
        plot_benchmark(fake_records(1, tasks=(("spend", "mae"),)), tmp_path / "x.png")


def test_plot_training_curves_from_records_and_histories(tmp_path):
    runs = fake_records(2)
    for r in runs:  # seed 1 stopped an epoch early
        r["loss_curve"] = [0.6, 0.5, 0.45][: 3 - r["seed"]]
        r["validation_metric"], r["validation_curve"] = "auc", [0.7, 0.75, 0.74][: 3 - r["seed"]]
    path = plot_training_curves(runs, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    history = [
        {"epoch": e, "loss": 1.0 / e, "validation": {"click": {"auc": 0.7 + 0.01 * e}}}
        for e in (1, 2, 3)
    ]
    path = plot_training_curves({"mmoe": history, "ple": history[:2]}, tmp_path / "h.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="per-epoch training loss"):
        plot_training_curves(fake_records(1), tmp_path / "none.png")


def test_mean_curve_averages_the_seeds_that_ran_each_epoch():
    assert plots._mean_curve([[1.0, 2.0, 3.0], [3.0, 4.0]]).tolist() == [2.0, 3.0, 3.0]


def test_plot_gates_from_a_fitted_model(tmp_path):
    model = mtlrec.PLE(
        FEATURES,
        ["click", "buy"],
        num_specific_experts=2,
        num_shared_experts=1,
        expert_units=[8],
        gate_units=[],
        tower_units=[4],
    )
    model.fit(tiny_frame(200, 0), epochs=1, batch_size=64, verbose=0)
    weights = model.gate_weights(tiny_frame(50, 1))
    path = plot_gates(weights, tmp_path / "gates" / "ple.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="no gate"):
        plot_gates({}, tmp_path / "none.png")


def test_adult_smoke_learns_both_tasks():
    out = run_benchmark(
        "adult", models=["mmoe"], epochs=3, lr=1e-2, max_rows=3000, verbose=0, warmup=False
    )
    assert [r["task"] for r in out] == ["income", "marital"]
    # full runs reach 0.909 / 0.964; 3000 rows x 3 epochs reach about 0.87 / 0.96
    auc = {r["task"]: r["auc"] for r in out}
    assert auc["income"] > 0.83 and auc["marital"] > 0.93, auc


def test_an_architecture_the_data_cannot_feed_is_skipped_saying_why(capsys):
    data = tiny_loader()
    plain = [mtlrec.SparseFeature("color", 4), mtlrec.DenseFeature("price")]
    data = BenchmarkData(data.train, data.test, plain, data.tasks)
    records = run_benchmark(
        data, models=["poso", "shared_bottom"], seeds=1, epochs=1, verbose=1, warmup=False
    )
    assert {r["model"] for r in records} == {"shared_bottom"}
    assert "poso: skipped on this dataset (poso: no feature has group='user'" in (
        capsys.readouterr().err
    )
