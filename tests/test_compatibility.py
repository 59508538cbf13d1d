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
