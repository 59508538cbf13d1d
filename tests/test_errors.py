"""Every bad input of the core API gets a clear error naming the column or argument."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import mtlrec
from conftest import FEATURES, TASKS
from mtlrec import ConfigError, DataError, SparseFeature, Task


def fit(data, arch="shared_bottom", tasks=TASKS, **kw):
    return mtlrec.create_model(arch, FEATURES, tasks, **kw).fit(data, epochs=1, verbose=0)


def test_missing_feature_column(table):
    with pytest.raises(DataError, match="'color'"):
        fit(table.drop(columns=["color"]))


def test_missing_label_column(table):
    with pytest.raises(DataError, match="'b'"):
        fit(table.drop(columns=["b"]))


def test_missing_feature_column_at_predict(table):
    model = fit(table.head(200))
    with pytest.raises(DataError, match="'x'"):
        model.predict(table.drop(columns=["x"]))


def test_predict_needs_no_labels(table):
    model = fit(table.head(200))
    assert len(model.predict(table.drop(columns=["a", "b"]))["a"]) == len(table)


def test_binary_label_outside_zero_one(table):
    bad = table.assign(a=table["a"].replace({1: 2}))
    with pytest.raises(DataError, match=r"'a'.*2"):
        fit(bad)


def test_nan_labels(table):
    bad = table.assign(b=table["b"].astype(float))
    bad.loc[3, "b"] = np.nan
    with pytest.raises(DataError, match="'b' are missing"):
        fit(bad)


def test_empty_table(table):
    with pytest.raises(DataError, match="no rows"):
        fit(table.head(0))


def test_arrow_and_dict_inputs_work(table):
    model = fit(pa.Table.from_pandas(table.head(300)))
    p_arrow = model.predict(pa.Table.from_pandas(table.head(5)))["a"]
    p_dict = model.predict({c: table[c].to_numpy()[:5] for c in table.columns})["a"]
    np.testing.assert_array_equal(p_arrow, p_dict)


def test_unknown_task_type():
    with pytest.raises(ConfigError, match="unknown type 'binomial'"):
        Task("a", type="binomial")


def test_unknown_architecture():
    with pytest.raises(ConfigError, match=r"unknown architecture 'mmo'.*mmoe"):
        mtlrec.create_model("mmo", FEATURES, TASKS)


def test_tower_lists_must_match_tasks():
    with pytest.raises(ConfigError, match="tower_units has 3 lists but there are 2 tasks"):
        mtlrec.MMoE(FEATURES, TASKS, tower_units=[[8], [8], [8]])


def test_esmm_needs_exactly_two_tasks():
    with pytest.raises(ConfigError, match="exactly two tasks"):
        mtlrec.ESMM(FEATURES, [*TASKS, Task("c")])


def test_label_listed_as_feature():
    with pytest.raises(ConfigError, match="also listed as a feature"):
        mtlrec.MMoE([*FEATURES, SparseFeature("a")], TASKS)


def test_duplicate_feature():
    with pytest.raises(ConfigError, match="listed twice"):
        mtlrec.MMoE([*FEATURES, SparseFeature("cat")], TASKS)
