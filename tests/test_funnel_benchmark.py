"""Funnel benchmarks: hand-checked records, tiny runs through Python and the CLI, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlrec import ConfigError
from mtlrec.cli import main
from mtlrec.experiments.benchmark import summarize
from mtlrec.experiments.funnel import (
    FUNNEL_MODELS,
    _Split,
    format_funnel_table,
    funnel_records,
    run_funnel_benchmark,
    write_funnel_outputs,
)
from mtlrec.experiments.plots import plot_funnel

CONVERSION_FIELDS = {
    "model", "seed", "task", "auc", "logloss", "cvr_auc_clicked", "cvr_auc_all",
    "cvr_mean_pred_all", "cvr_mean_true_all", "cvr_mean_pred_clicked",
    "cvr_mean_true_clicked", "cvr_calibration_all", "seconds", "rows", "positives",
}  # fmt: skip


def hillstrom_like(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Rows with the Hillstrom columns; visits and conversions follow recency and segment."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(["Mens E-Mail", "Womens E-Mail", "No E-Mail"], n)
    recency = rng.integers(1, 13, n)
    p_visit = np.where(segment == "No E-Mail", 0.2, 0.4) * (1.2 - recency / 13)
    visit = (rng.random(n) < p_visit).astype(int)
    conversion = visit * (rng.random(n) < 0.3 + 0.2 * (recency < 4))
    return pd.DataFrame(
        {
            "recency": recency,
            "history_segment": rng.choice(["1) $0 - $100", "2) $100 - $200"], n),
            "history": rng.gamma(2.0, 100.0, n).round(2),
            "mens": rng.integers(0, 2, n),
            "womens": rng.integers(0, 2, n),
            "zip_code": rng.choice(["Urban", "Surburban", "Rural"], n),
            "newbie": rng.integers(0, 2, n),
            "channel": rng.choice(["Web", "Phone", "Multichannel"], n),
            "segment": segment,
            "visit": visit,
            "conversion": conversion.astype(int),
            "spend": conversion * rng.uniform(10, 200, n).round(2),
        }
    )


def test_records_of_one_run_are_computed_on_the_right_rows() -> None:
    test = pd.DataFrame(
        {
            "click": [1, 1, 1, 0, 0, 0],
            "conversion": [1.0, 0.0, 0.0, np.nan, np.nan, np.nan],
            "potential_conversion": [1, 0, 0, 1, 1, 0],
            "true_cvr": [0.5, 0.1, 0.2, 0.6, 0.4, 0.2],
        }
    )
    predictions = {
        "click": np.array([0.9, 0.8, 0.3, 0.4, 0.2, 0.1]),
        "conversion": np.array([0.6, 0.2, 0.4, 0.1, 0.5, 0.3]),
        "joint": np.array([0.5, 0.1, 0.2, 0.05, 0.1, 0.02]),
    }
    split = _Split(test.iloc[:0], test, "click", "conversion", True)
    click, cvr, joint = funnel_records(split, predictions)
    assert click["task"] == "click" and click["rows"] == 6 and click["positives"] == 3
    # click: positives 0.9, 0.8, 0.3 vs negatives 0.4, 0.2, 0.1: 8 of 9 pairs ordered
    assert click["auc"] == pytest.approx(8 / 9)
    # clicked rows: the converter (0.6) above both non-converters (0.2, 0.4)
    assert cvr["rows"] == 3 and cvr["positives"] == 1
    assert cvr["auc"] == cvr["cvr_auc_clicked"] == pytest.approx(1.0)
    # all rows against potential conversions: positives 0.6, 0.1, 0.5 vs 0.2, 0.4, 0.3
    assert cvr["cvr_auc_all"] == pytest.approx(6 / 9)
    assert cvr["potential_positives"] == 3
    assert cvr["cvr_mean_pred_all"] == pytest.approx(2.1 / 6)
    assert cvr["cvr_mean_true_all"] == pytest.approx(2.0 / 6)
    assert cvr["cvr_calibration_all"] == pytest.approx(2.1 / 2.0)
    assert cvr["cvr_mean_pred_clicked"] == pytest.approx(0.4)
    assert cvr["cvr_mean_true_clicked"] == pytest.approx(0.8 / 3)
    assert cvr["cvr_observed_clicked"] == pytest.approx(1 / 3)
    expected_loss = -np.mean(np.log([0.6, 0.8, 0.6]))
    assert cvr["logloss"] == pytest.approx(expected_loss)
    # joint: the only click-and-conversion row (0.5) above every other row
    assert joint["rows"] == 6 and joint["positives"] == 1 and joint["auc"] == pytest.approx(1.0)

    no_truth = _Split(test.iloc[:0], test[["click", "conversion"]], "click", "conversion", False)
    _, cvr, _ = funnel_records(no_truth, predictions)
    assert "cvr_auc_all" not in cvr and "cvr_mean_true_all" not in cvr
    assert cvr["cvr_calibration_clicked"] == pytest.approx(0.4 / (1 / 3))


def test_a_one_class_output_gets_no_auc() -> None:
    test = pd.DataFrame({"click": [1, 1, 0], "conversion": [0.0, 0.0, np.nan]})
    split = _Split(test.iloc[:0], test, "click", "conversion", False)
    predictions = {k: np.array([0.3, 0.2, 0.1]) for k in ("click", "conversion", "joint")}
    click, cvr, joint = funnel_records(split, predictions)
    assert "auc" in click and "auc" not in cvr and "auc" not in joint
    assert cvr["positives"] == joint["positives"] == 0


@pytest.fixture(scope="module")
def tiny_records() -> list[dict]:
    return run_funnel_benchmark(
        models=["naive_cvr", "esmm", "mmoe_ipw"],
        seeds=1,
        n_train=1500,
        n_test=1500,
        epochs=1,
        data_options={"conversion_rate": 0.2},
        verbose=0,
        warmup=False,
    )


def test_a_tiny_run_records_every_model_and_output(tiny_records: list[dict]) -> None:
    runs = {(r["model"], r["task"]) for r in tiny_records}
    models = ["naive_cvr", "esmm", "mmoe_ipw"]
    assert runs == {(m, t) for m in models for t in ("click", "conversion", "click_conversion")}
    for record in tiny_records:
        assert record["seed"] == 0 and record["seconds"] > 0 and record["parameters"] > 0
        assert 0 <= record["auc"] <= 1
        if record["task"] == "conversion":
            assert set(record) >= CONVERSION_FIELDS
            assert record["auc"] == record["cvr_auc_clicked"]
    # the naive model has two networks, counted together
    params = {r["model"]: r["parameters"] for r in tiny_records}
    assert params["naive_cvr"] > 0 and params["esmm"] > 0
    table = format_funnel_table(tiny_records)
    assert table.count("\n") == 1 + len(models)
    assert "CVR AUC (all)" in table and "naive_cvr" in table


def test_outputs_are_written(tmp_path: Path, tiny_records: list[dict]) -> None:
    paths = write_funnel_outputs(tiny_records, tmp_path / "out", settings={"rows": 1500})
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(tiny_records))
    text = paths["md"].read_text()
    assert "| naive_cvr |" in text and "positives in" in text and "- rows: 1500" in text
    assert paths["png"].stat().st_size > 0


def test_plot_funnel_needs_a_metric(tmp_path: Path) -> None:
    summary = summarize([{"model": "m", "seed": 0, "task": "click", "parameters": 1, "auc": 0.7}])
    assert plot_funnel(summary, tmp_path / "p.png").stat().st_size > 0
    with pytest.raises(ValueError, match="no funnel metric"):
        plot_funnel([{"model": "m", "task": "x", "seeds": 1}], tmp_path / "q.png")


def test_bad_arguments_fail_before_training() -> None:
    with pytest.raises(ConfigError, match="unknown or empty \\['omoe'\\]"):
        run_funnel_benchmark(models=["omoe"])
    with pytest.raises(ConfigError, match="n_train must be a positive integer"):
        run_funnel_benchmark(n_train=0)
    with pytest.raises(ConfigError, match="selection_bias must be"):
        run_funnel_benchmark(data_options={"selection_bias": -1.0})
    assert {"naive_cvr", "esmm", "mmoe_ipw", "ple_direct_penalty"} <= set(FUNNEL_MODELS)


def test_cli_funnel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "funnel"
    argv = ["benchmark", "funnel", "--quick", "--rows", "2000", "--seeds", "1"]
    argv += ["--models", "naive_cvr", "esmm", "--output", str(out), "--quiet"]
    assert main(argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in records} == {"naive_cvr", "esmm"}
    conversion = [r for r in records if r["task"] == "conversion"]
    assert all(set(r) >= CONVERSION_FIELDS for r in conversion)
    assert {r["rows"] for r in records if r["task"] == "click"} == {5000}  # quick test rows
    assert "| esmm |" in capsys.readouterr().out
    assert (out / "results.png").is_file() and "funnel" in (out / "results.md").read_text()
    assert main(argv) == 2  # results exist: --overwrite needed
    assert "already holds benchmark results" in capsys.readouterr().err


def test_cli_hillstrom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hillstrom_like().to_csv(tmp_path / "hillstrom.csv", index=False)
    out = tmp_path / "results"
    argv = ["benchmark", "hillstrom", "--data", str(tmp_path), "--seeds", "1", "--epochs", "1"]
    argv += ["--models", "naive_cvr", "esmm", "--output", str(out), "--quiet"]
    assert main(argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in records} == {"naive_cvr", "esmm"}
    assert {r["task"] for r in records} == {"click", "conversion", "click_conversion"}
    conversion = next(r for r in records if r["task"] == "conversion")
    assert "cvr_auc_clicked" in conversion and "cvr_auc_all" not in conversion
    test_rows = round(1200 * 0.3)
    assert {r["rows"] for r in records if r["task"] == "click"} == {test_rows}
    text = (out / "results.md").read_text()
    assert "positives in" in text and "CVR AUC (all)" not in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["hillstrom"], "hillstrom needs --data"),
        (["hillstrom", "--data", ".", "--rows", "10"], "--rows does not apply to hillstrom"),
        (["funnel", "--max-rows", "10"], "--max-rows do not apply to funnel"),
        (["funnel", "--models", "omoe"], "funnel runs"),
        (["adult", "--quick"], "--quick is an option of the funnel and hillstrom"),
    ],
)
def test_cli_option_errors(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["benchmark", *extra]) == 2
    assert message in capsys.readouterr().err
