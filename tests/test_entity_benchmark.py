"""Entity benchmark (issue 18): tiny runs on the generator and on the MovieLens fixture."""

from __future__ import annotations

import argparse
import json
import math
import warnings

import numpy as np
import pytest

from fixtures_movielens import write_grouplens
from mtlrec import ConfigError
from mtlrec.datasets.entities import entity_features, entity_tasks, synthetic_entities
from mtlrec.exceptions import UndefinedMetricWarning
from mtlrec.experiments.benchmark import BenchmarkData, load_dataset
from mtlrec.experiments.entities import (
    ENTITY_EXPERTS,
    TRUTH,
    VARIANTS,
    entity_benchmark_command,
    entity_figure,
    format_entity_table,
    load_entities,
    run_entity_benchmark,
    summarize_entities,
    write_entity_outputs,
)
from mtlrec.features import SequenceFeature
from mtlrec.metrics import roc_auc


@pytest.fixture(scope="module")
def tiny() -> BenchmarkData:
    frame = synthetic_entities(rows=2000, users=200, items=100, history_len=10)
    order = np.random.default_rng(0).permutation(len(frame))
    return BenchmarkData(
        frame.iloc[np.sort(order[:1600])].reset_index(drop=True),
        frame.iloc[np.sort(order[1600:])].reset_index(drop=True),
        entity_features(history_len=10),
        entity_tasks(),
    )


@pytest.fixture(scope="module")
def mmoe_run(tiny):
    models: list = []
    records = run_entity_benchmark(
        tiny,
        models=("mmoe",),
        seeds=1,
        epochs=1,
        verbose=0,
        threads=1,
        on_fit=lambda model, run: models.append((run, model)),
    )
    return records, models


def test_every_variant_has_every_metric(mmoe_run) -> None:
    records, _ = mmoe_run
    runs = [r for r in records if r["model"] != TRUTH]
    variants = {(r["history"], r["entity_experts"]) for r in runs}
    assert variants == set(VARIANTS)
    for history, experts in VARIANTS:
        mine = {
            (r["task"], r["metric"])
            for r in runs
            if (r["history"], r["entity_experts"]) == (history, experts)
        }
        assert {("click", "auc"), ("click", "gauc"), ("watch", "rmse")} <= mine
    for r in runs:
        assert set(r) >= {"model", "history", "entity_experts", "seed", "task", "metric"}
        assert r["model"] == "mmoe" and r["seed"] == 0 and r["seconds"] > 0
        assert isinstance(r["value"], float) and math.isfinite(r["value"])
        if r["metric"] == "gauc":
            assert r["groups_used"] > 0


def test_ground_truth_rows_score_the_truth_columns(tiny, mmoe_run) -> None:
    records, _ = mmoe_run
    truth = {(r["task"], r["metric"]): r["value"] for r in records if r["model"] == TRUTH}
    test = tiny.test
    assert truth[("click", "auc")] == pytest.approx(
        roc_auc(test["click"], test["click_logit_true"])
    )
    floor = np.sqrt(np.mean((test["watch"] - test["watch_true"]) ** 2))
    assert truth[("watch", "rmse")] == pytest.approx(floor)
    assert ("click", "gauc") in truth
    assert 0.3 < floor < 0.7  # the generator's watch noise is 0.5


def test_variants_really_differ_in_history_and_experts(mmoe_run) -> None:
    _, models = mmoe_run
    assert len(models) == 4
    for run, model in models:
        names = {f.name for f in model.features}
        sequences = [f for f in model.features if isinstance(f, SequenceFeature)]
        if run["history"]:
            assert "history" in names and sequences
        else:
            assert "history" not in names and not sequences
        expected = ENTITY_EXPERTS["mmoe"] if run["entity_experts"] else {}
        assert model.config.entity_experts == expected
    params = {(r["history"], r["entity_experts"]): r["parameters"] for r in mmoe_run[0]}
    assert params[(False, True)] > params[(False, False)]  # the entity experts' weights


def test_table_chart_and_files(tmp_path, mmoe_run) -> None:
    records, _ = mmoe_run
    table = format_entity_table(records)
    lines = table.splitlines()
    assert lines[0].startswith("| model | history | entity experts | params")
    assert "click AUC" in lines[0] and "click GAUC" in lines[0] and "watch RMSE" in lines[0]
    assert lines[2].startswith(f"| {TRUTH}")  # the ceiling row first
    assert len(lines) == 2 + 1 + 4

    paths = write_entity_outputs(records, tmp_path / "out", command="mtlrec test")
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert json.loads(paths["json"].read_text())[0]["model"] == TRUTH
    md = paths["md"].read_text()
    assert table in md and "mtlrec test" in md and "GAUC uses" in md

    fig = entity_figure(records)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["click AUC", "click GAUC", "watch RMSE"]
    truth = {
        (r["task"], r["metric"]): r["mean"]
        for r in summarize_entities(records)
        if r["model"] == TRUTH
    }
    for ax, key in zip(
        fig.axes, [("click", "auc"), ("click", "gauc"), ("watch", "rmse")], strict=True
    ):
        low, high = ax.get_ylim()
        assert "test" in ax.get_ylabel()
        assert low < truth[key] < high  # the reference line is in view
        values = [r["value"] for r in records if (r["task"], r["metric"]) == key]
        assert low < min(values) and max(values) < high


def test_error_bars_are_never_cut(mmoe_run) -> None:
    records, _ = mmoe_run
    twice = [
        *records,
        *({**r, "seed": 1, "value": r["value"] + 0.05} for r in records if r["model"] != TRUTH),
    ]
    rows = summarize_entities(twice)
    assert {r["seeds"] for r in rows if r["model"] != TRUTH} == {2}
    fig = entity_figure(twice)
    for ax, key in zip(
        fig.axes, [("click", "auc"), ("click", "gauc"), ("watch", "rmse")], strict=True
    ):
        low, high = ax.get_ylim()
        mine = [r for r in rows if (r["task"], r["metric"]) == key and r["model"] != TRUTH]
        assert low <= min(r["mean"] - r["std"] for r in mine)
        assert high >= max(r["mean"] + r["std"] for r in mine)


def test_bad_arguments_fail_before_training(tiny) -> None:
    with pytest.raises(ConfigError, match="entity benchmark runs"):
        run_entity_benchmark(tiny, models=("esmm",), seeds=1, epochs=1, verbose=0)
    no_history = tiny._replace(features=entity_features(history=False, history_len=10))
    with pytest.raises(ConfigError, match="history"):
        run_entity_benchmark(no_history, models=("mmoe",), seeds=1, epochs=1, verbose=0)
    with pytest.raises(ConfigError, match="seeds"):
        run_entity_benchmark(tiny, models=("mmoe",), seeds=0, verbose=0)


def test_load_entities_splits_80_20_at_random() -> None:
    data = load_entities(rows=500, users=50, items=40, history_len=5)
    assert (len(data.train), len(data.test)) == (400, 100)
    assert "click_logit_true" in data.test.columns
    assert any(f.name == "history" for f in data.features)


def _args(**options) -> argparse.Namespace:
    base = dict(
        seeds=1,
        models=None,
        epochs=1,
        batch_size=None,
        lr=None,
        output=None,
        overwrite=False,
        quiet=True,
        threads=1,
        data=None,
        rows=None,
        max_rows=None,
        group=None,
        download=False,
        correlations=None,
        quick=False,
        balancer=None,
    )
    return argparse.Namespace(**{**base, **options})


def test_movielens_fixture_through_the_command(tmp_path, capsys) -> None:
    folder = write_grouplens(tmp_path / "ml")
    out = tmp_path / "results"
    args = _args(dataset="movielens", data=str(folder), models=["shared_bottom"], output=str(out))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # tiny: one-class users
        assert entity_benchmark_command(args, ["benchmark", "movielens"]) == 0
    printed = capsys.readouterr().out
    assert "like AUC" in printed and "like GAUC" in printed and "rating RMSE" in printed
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "results.png"}
    records = json.loads((out / "results.json").read_text())
    assert TRUTH not in {r["model"] for r in records}  # MovieLens has no ground truth
    variants = {(r["history"], r["entity_experts"]) for r in records}
    assert variants == set(VARIANTS)
    assert {(r["task"], r["metric"]) for r in records} >= {
        ("like", "auc"),
        ("like", "gauc"),
        ("rating", "rmse"),
    }
    with pytest.raises(FileExistsError, match="overwrite"):
        entity_benchmark_command(args, ["benchmark", "movielens"])


def test_movielens_variants_build_on_the_fixture(tmp_path) -> None:
    data = load_dataset("movielens", path=str(write_grouplens(tmp_path / "ml")))
    models: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        run_entity_benchmark(
            data,
            models=("shared_bottom",),
            seeds=1,
            epochs=1,
            verbose=0,
            threads=1,
            warmup=False,
            on_fit=lambda model, run: models.append((run, model)),
        )
    for run, model in models:
        assert ("history" in {f.name for f in model.features}) == run["history"]
        expected = {"user": 1, "item": 1} if run["entity_experts"] else {}
        assert model.config.entity_experts == expected


def test_command_option_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--data"):
        entity_benchmark_command(_args(dataset="movielens"), [])
    with pytest.raises(ConfigError, match="--rows"):
        entity_benchmark_command(_args(dataset="entities", max_rows=10), [])
    with pytest.raises(ConfigError, match="runs"):
        entity_benchmark_command(_args(dataset="entities", models=["esmm"]), [])
    with pytest.raises(ConfigError, match="--group"):
        entity_benchmark_command(_args(dataset="entities", group=1), [])


def test_entities_command_small(tmp_path, capsys) -> None:
    out = tmp_path / "gen"
    args = _args(dataset="entities", rows=1500, models=["shared_bottom"], output=str(out))
    assert entity_benchmark_command(args, ["benchmark", "entities", "--rows", "1500"]) == 0
    printed = capsys.readouterr().out
    assert f"| {TRUTH}" in printed and "click GAUC" in printed
    assert (out / "results.png").stat().st_size > 0
    assert "rows: 1500" in (out / "results.md").read_text()
