"""``mtlrec evaluate --group`` (group AUC) and ``mtlrec predict --keep`` (id columns)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mtlrec
from conftest import FEATURES, TASKS, make_table
from mtlrec.cli import main


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli_columns")
    model = mtlrec.MMoE(FEATURES, TASKS, num_experts=2, expert_units=[4], tower_units=[4])
    model.fit(make_table(600), epochs=1, batch_size=64, verbose=0)
    test = make_table(300, seed=1)
    test.insert(0, "user", np.arange(300) % 40)
    test.insert(1, "request", [f"r{i}" for i in range(300)])
    test.to_csv(folder / "test.csv", index=False)
    return model.save(folder / "model")


def test_evaluate_group_reports_gauc(bundle: Path, capsys) -> None:
    data = bundle.parent / "test.csv"
    argv = ["evaluate", "--model", str(bundle), "--data", str(data), "--group", "user"]
    assert main([*argv, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    expected = mtlrec.load(bundle).evaluate(pd.read_csv(data), group="user")
    for task in ("a", "b"):
        assert metrics[task] == pytest.approx(expected[task])
        assert 0.0 <= metrics[task]["gauc"] <= 1.0
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "gauc " in out
    assert f"gauc_groups {expected['a']['gauc_groups']} " in out  # counts print as integers
    assert main([*argv[:-1], "nope"]) == 2
    assert "--group nope" in capsys.readouterr().err


def test_predict_keeps_id_columns_first_in_order(bundle: Path, tmp_path: Path, capsys) -> None:
    data = bundle.parent / "test.csv"
    output = tmp_path / "predictions.csv"
    argv = ["predict", "--model", str(bundle), "--data", str(data), "--output", str(output)]
    assert main([*argv, "--keep", "request", "--keep", "user"]) == 0
    written = pd.read_csv(output)
    assert list(written.columns) == ["request", "user", "a", "b"]
    table = pd.read_csv(data)
    assert written["request"].tolist() == table["request"].tolist()
    assert written["user"].tolist() == table["user"].tolist()
    np.testing.assert_allclose(
        written["a"], mtlrec.load(bundle).predict(table)["a"], rtol=1e-6, atol=1e-7
    )
    capsys.readouterr()
    assert main([*argv, "--overwrite", "--keep", "user", "--keep", "session"]) == 2
    err = capsys.readouterr().err
    assert "--keep session" in err and "no such column" in err
    assert main([*argv, "--overwrite", "--keep", "a"]) == 2  # a label column clashes
    assert "predictions have a column of that name" in capsys.readouterr().err
