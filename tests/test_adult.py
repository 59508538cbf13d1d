"""Bundled UCI Adult loader, checked against counts taken from the raw text."""

from __future__ import annotations

import dataclasses
import gzip
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from mtlrec.datasets import (
    ADULT_DENSE,
    ADULT_SPARSE,
    ADULT_TASKS,
    adult_features,
    adult_tasks,
    load_adult,
)
from mtlrec.estimator import MultiTaskModel
from mtlrec.exceptions import ConfigError, DataError
from mtlrec.features import DenseFeature, SparseFeature
from mtlrec.preprocessing import Preprocessor
from mtlrec.tasks import Task

COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "occupation", "relationship",
    "race", "gender", "capital_gain", "capital_loss", "hours_per_week", "native_country",
    "income", "marital",
]  # fmt: skip


def raw_lines(name: str) -> list[list[str]]:
    """Fields of every data row of a bundled file, split by hand (no pandas)."""
    path = resources.files("mtlrec.datasets").joinpath("data", f"{name}.gz")
    text = gzip.decompress(path.read_bytes()).decode()
    rows = [line.split(", ") for line in text.splitlines() if ", " in line]
    assert all(len(row) == 15 for row in rows)
    return rows


@pytest.fixture(scope="module")
def adult() -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_adult()


def test_shapes_and_columns(adult) -> None:
    train, test = adult
    assert train.shape == (32_561, 15)
    assert test.shape == (16_281, 15)
    assert list(train.columns) == COLUMNS == list(test.columns)
    assert "income_bracket" not in train and "marital_status" not in train
    assert set(ADULT_SPARSE) | set(ADULT_DENSE) | set(ADULT_TASKS) == set(COLUMNS)
    for frame in adult:
        assert frame[list(ADULT_TASKS)].dtypes.tolist() == ["int64", "int64"]
        assert set(frame["income"].unique()) == {0, 1} == set(frame["marital"].unique())


@pytest.mark.parametrize("split, name", [(0, "adult.data"), (1, "adult.test")])
def test_labels_match_raw_counts(adult, split: int, name: str) -> None:
    rows = raw_lines(name)
    frame = adult[split]
    assert len(rows) == len(frame)
    assert frame["income"].sum() == sum(row[14].rstrip(".") == ">50K" for row in rows)
    assert frame["marital"].sum() == sum(row[5] == "Never-married" for row in rows)
    for column, index in [("workclass", 1), ("occupation", 6), ("native_country", 13)]:
        assert frame[column].isna().sum() == sum(row[index] == "?" for row in rows)


def test_label_rates(adult) -> None:
    train, test = adult
    # counted with `zcat adult.data.gz | grep -c '>50K$'` and `grep -c ', Never-married, '`
    assert train["income"].sum() == 7_841  # 24.08 %
    assert test["income"].sum() == 3_846  # 23.62 %
    assert train["marital"].sum() == 10_683  # 32.81 %
    assert test["marital"].sum() == 5_434  # 33.38 %
    assert train["income"].mean() == pytest.approx(0.2408, abs=1e-4)
    assert test["marital"].mean() == pytest.approx(0.3338, abs=1e-4)
    # '?' stays missing
    assert train["workclass"].isna().sum() == 1_836
    assert test["native_country"].isna().sum() == 274
    assert train[ADULT_DENSE].notna().all().all()


def test_first_row_values(adult) -> None:
    train, test = adult
    first = train.iloc[0]
    assert (first["age"], first["workclass"], first["fnlwgt"], first["capital_gain"]) == (
        39,
        "State-gov",
        77516,
        2174,
    )
    assert (first["income"], first["marital"]) == (0, 1)
    assert (test.iloc[0]["age"], test.iloc[0]["education"]) == (25, "11th")


def test_path_with_plain_and_gzip_files(tmp_path, adult) -> None:
    data = resources.files("mtlrec.datasets").joinpath("data")
    (tmp_path / "adult.data").write_bytes(
        gzip.decompress(data.joinpath("adult.data.gz").read_bytes())
    )
    (tmp_path / "adult.test.gz").write_bytes(data.joinpath("adult.test.gz").read_bytes())
    train, test = load_adult(str(tmp_path))
    pd.testing.assert_frame_equal(train, adult[0])
    pd.testing.assert_frame_equal(test, adult[1])
    with pytest.raises(DataError, match=r"adult\.data"):
        load_adult(str(tmp_path / "nowhere"))


def test_feature_and_task_helpers(adult) -> None:
    features = adult_features(embedding_dim=8)
    assert [f.name for f in features] == ADULT_SPARSE + ADULT_DENSE
    assert all(isinstance(f, SparseFeature) and f.embedding_dim == 8 for f in features[:8])
    assert all(isinstance(f, DenseFeature) for f in features[8:])
    assert adult_tasks() == [Task("income"), Task("marital")]
    pre = Preprocessor(features, adult_tasks()).fit(adult[0])
    # gender: Female, Male + missing + unknown; race has 5 values
    sizes = dict(zip(ADULT_SPARSE, pre.vocabulary_sizes, strict=True))
    assert sizes["gender"] == 4 and sizes["race"] == 7
    assert sizes["age"] == adult[0]["age"].nunique() + 2
    batch = pre.transform(adult[1])
    assert tuple(batch.sparse.shape) == (16_281, 8)
    assert batch.labels.mean(0).tolist() == pytest.approx([3846 / 16281, 5434 / 16281])


def test_feature_groups_feed_poso_and_change_no_other_model(adult) -> None:
    """ADULT_GROUPS: POSO and PEPNet read the user group; Shared-Bottom's predictions
    are the same with and without the groups."""
    features = adult_features()
    groups = {f.name: f.group for f in features if f.group is not None}
    assert groups == {
        "age": "user", "gender": "user", "race": "user", "relationship": "user",
        "workclass": "domain",
    }  # fmt: skip
    plain = [dataclasses.replace(f, group=None) for f in features]
    train, test = adult[0].head(1024), adult[1].head(256)
    predictions = []
    for specs in (features, plain):
        model = MultiTaskModel(specs, adult_tasks(), architecture="shared_bottom", seed=0)
        model.fit(train, epochs=1, verbose=0)
        predictions.append(model.predict(test))
    for task in ADULT_TASKS:
        np.testing.assert_array_equal(predictions[0][task], predictions[1][task])
    poso = MultiTaskModel(features, adult_tasks(), architecture="poso", seed=0)
    poso.fit(train, epochs=1, verbose=0)  # plain features would be a ConfigError
    with pytest.raises(ConfigError, match="group='user'"):
        MultiTaskModel(plain, adult_tasks(), architecture="poso").fit(train, epochs=1, verbose=0)
