"""The command line with production inputs: MovieLens exported as CSV (histories and
genres as "|"-joined strings) with a config that names sequence features, groups and
entity experts, trained and inspected as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import mtlrec
from fixtures_movielens import write_movielens
from mtlrec.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def exported(tmp_path: Path, capsys) -> Path:
    grouplens, _ = write_movielens(tmp_path / "raw")
    out = tmp_path / "export"
    code, _, err = run(
        capsys, "datasets", "export", "movielens", "--data", grouplens, "--output", out
    )
    assert code == 0, err
    return out


def test_movielens_exports_lists_as_joined_strings_that_read_back(exported: Path) -> None:
    train = pd.read_csv(exported / "train.csv")
    data = mtlrec.datasets.load_movielens(exported.parent / "raw" / "grouplens")
    first, _ = mtlrec.datasets.split_by_time(data)
    for written, original in zip(train["history"], first["history"], strict=True):
        items = [] if pd.isna(written) else [int(v) for v in str(written).split("|")]
        assert items == list(original)
    config = yaml.safe_load((exported / "config.yaml").read_text())
    sequences = {f["name"]: f for f in config["features"]["sequence"]}
    assert sequences["history"]["shares"] == "item_id"
    assert sequences["genres"]["pooling"] == "sum"


def test_a_config_with_sequences_and_entity_experts_trains_and_inspects(
    exported: Path, capsys
) -> None:
    path = exported / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["model"] = {
        "architecture": "mmoe",
        "num_experts": 1,
        "expert_units": [8],
        "gate_units": [],
        "entity_experts": {"user": 1, "item": 1},
    }
    config["training"].update(epochs=1, batch_size=16)
    path.write_text(yaml.safe_dump(config))
    code, out, err = run(capsys, "train", "--config", path, "--quiet")
    assert code == 0, err
    model = mtlrec.load(exported / config["output"])
    assert model.config.entity_experts == {"user": 1, "item": 1}
    kinds = {f.name: f.kind for f in model.features}
    assert kinds["history"] == "sequence" and kinds["genres"] == "sequence"
    test = pd.read_csv(exported / "test.csv")
    predicted = model.predict(test)
    assert np.isfinite(predicted["like"]).all() and len(predicted["rating"]) == len(test)
    code, out, err = run(
        capsys, "inspect", exported / config["output"], "--data", exported / "test.csv"
    )
    assert code == 0, err
    assert "expert_0 (shared)" in out and " (user)" in out and " (item)" in out


def test_a_config_sequence_entry_with_an_unknown_option_names_it(exported: Path, capsys) -> None:
    path = exported / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["features"]["sequence"][0]["poolin"] = "mean"
    path.write_text(yaml.safe_dump(config))
    code, _, err = run(capsys, "train", "--config", path)
    assert code != 0 and "unknown key 'poolin'" in err and "did you mean 'pooling'" in err
