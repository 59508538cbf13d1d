"""Bundles written by mtlrec 0.1.0 load and predict the numbers 0.1.0 predicted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mtlrec

FIXTURES = Path(__file__).parent / "data" / "bundles-0.1.0"
EXPECTED = json.loads((FIXTURES / "predictions.json").read_text())
INPUTS = pd.read_csv(FIXTURES / "inputs.csv")


def test_the_fixtures_were_written_by_0_1_0():
    assert EXPECTED["mtlrec_version"] == "0.1.0"
    for name in EXPECTED["predictions"]:
        config = json.loads((FIXTURES / name / "config.json").read_text())
        assert config["mtlrec_version"] == "0.1.0"


@pytest.mark.parametrize("name", sorted(EXPECTED["predictions"]))
def test_a_0_1_0_bundle_predicts_what_0_1_0_predicted(name, tmp_path):
    model = mtlrec.load(FIXTURES / name)
    expected = EXPECTED["predictions"][name]
    for rows in (INPUTS, INPUTS.head(7)):  # folded (many rows) and plain (few) inputs
        predicted = model.predict(rows)
        assert set(predicted) == set(expected)
        for output, values in expected.items():
            np.testing.assert_allclose(
                predicted[output], values[: len(rows)], rtol=0, atol=1e-6, err_msg=output
            )
    # saved again by this version, it still predicts the same
    model.save(tmp_path / "again")
    again = mtlrec.load(tmp_path / "again").predict(INPUTS)
    for output, values in expected.items():
        np.testing.assert_allclose(again[output], values, rtol=0, atol=1e-6)


def test_a_loaded_0_1_0_bundle_names_its_architecture():
    model = mtlrec.load(FIXTURES / "ple_regression")
    assert type(model).__name__ == "PLE" and "architecture='ple'" in repr(model)
    assert [t.type for t in model.tasks] == ["binary", "regression"]


FIXTURES_0_2 = Path(__file__).parent / "data" / "bundles-0.2"
EXPECTED_0_2 = json.loads((FIXTURES_0_2 / "predictions.json").read_text())
INPUTS_0_2 = pd.read_csv(FIXTURES_0_2 / "inputs.csv")


def test_the_0_2_fixtures_were_written_by_0_2_with_preprocessor_format_2():
    assert EXPECTED_0_2["mtlrec_version"] == "0.2.0.dev0"
    for name in EXPECTED_0_2["predictions"]:
        state = json.loads((FIXTURES_0_2 / name / "preprocessor.json").read_text())
        assert state["version"] == 2


@pytest.mark.parametrize("name", sorted(EXPECTED_0_2["predictions"]))
def test_a_0_2_bundle_predicts_what_0_2_predicted(name, tmp_path):
    """Funnel joints, Poisson and multiclass heads and float32-keyed categories, as 0.2
    saved them (before sequence features, shared tables and preprocessor format 3)."""
    model = mtlrec.load(FIXTURES_0_2 / name)
    expected = EXPECTED_0_2["predictions"][name]
    for again in (False, True):
        predicted = model.predict(INPUTS_0_2)
        assert set(predicted) == set(expected)
        for output, values in expected.items():
            np.testing.assert_allclose(
                np.asarray(predicted[output], dtype=float),
                values,
                rtol=0,
                atol=1e-6,
                err_msg=f"{output} (saved again: {again})",
            )
        model.save(tmp_path / "again", overwrite=True)  # saved by this version (format 3)
        model = mtlrec.load(tmp_path / "again")
