"""Every bad input of the core API gets a clear error naming the column or argument."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

import mtlrec
import mtlrec.preprocessing
import mtlrec.training
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


def test_a_task_without_any_label_is_an_error(table):
    bad = table.assign(b=np.nan)
    with pytest.raises(DataError, match="'b' holds no label at all"):
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


# ------------------------------------------------------- found when tried as a new user would
def test_duplicate_columns_are_refused_in_every_input_kind(table):
    twice = pa.Table.from_pandas(table.head(300)).append_column("a", pa.array([0] * 300))
    with pytest.raises(DataError, match=r"duplicate columns \['a'\]"):
        fit(twice)
    model = fit(table.head(300))
    frame = table.head(20).copy()
    doubled = pd.concat([frame, frame[["x"]]], axis=1)  # a second 'x' would shift columns
    with pytest.raises(DataError, match=r"duplicate columns \['x'\]"):
        model.predict(doubled)
    arrow = pa.Table.from_pandas(frame).append_column("x", pa.array(frame["x"] * 2))
    with pytest.raises(DataError, match=r"duplicate columns \['x'\]"):
        model.predict(arrow)
    with pytest.raises(DataError, match=r"duplicate columns \['1'\]"):
        model.predict({1: [1.0], "1": [2.0], **{c: frame[c].to_numpy()[:1] for c in frame}})


def test_sparse_values_match_by_canonical_keys(table):
    rng = np.random.default_rng(0)
    price = np.round(rng.uniform(0, 5, len(table)), 1)  # 0.1 steps: most not exact floats
    data = table.assign(price=price)
    model = mtlrec.SharedBottom([*FEATURES, SparseFeature("price")], TASKS)
    model.fit(data.head(1000), epochs=1, verbose=0)
    unknown = mtlrec.preprocessing.UNKNOWN_ID
    ids = model.preprocessor.transform(data, with_labels=False).sparse[:, -1]
    for variant in (
        price.astype(np.float32),  # read back from a float32 Parquet column
        pd.array(price.astype(np.float32), dtype="Float32"),  # nullable: widened to float64
        pa.array(price.astype(np.float32)),
    ):
        got = model.preprocessor.transform(data.assign(price=variant), with_labels=False)
        assert torch.equal(got.sparse[:, -1], ids)
    assert (ids != unknown).all()
    # 2 and 2.0 are one category, in a column that mixes numbers and strings too
    mixed = table.head(6).assign(code=np.array([2, "x", 3.5, 2.0, "x", 3.5], dtype=object))
    model = mtlrec.SharedBottom([*FEATURES, SparseFeature("code")], TASKS)
    model.fit(mixed, epochs=1, verbose=0)
    assert model.preprocessor.vocabulary("code").values.tolist() == ["2", "3.5", "x"]
    rows = mixed.assign(code=np.array([2.0, 2, "x", np.float32(3.5), "2", 7], dtype=object))
    assert model.preprocessor.transform(rows, with_labels=False).sparse[:, -1].tolist() == [
        2,
        2,
        4,
        3,
        2,
        unknown,
    ]


@pytest.fixture
def bundle(table, tmp_path):
    model = fit(table.head(200))
    return model.save(tmp_path / "model")


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_weights_file_names_the_file(bundle, damage):
    weights = bundle / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    with pytest.raises(mtlrec.BundleError, match=r"weights\.safetensors.*truncated or corrupt"):
        mtlrec.load(bundle)


@pytest.mark.parametrize("name", ["config.json", "preprocessor.json"])
def test_a_corrupt_json_file_names_the_file(bundle, name):
    (bundle / name).write_text('{"format": "mtlrec-bun')
    with pytest.raises(mtlrec.BundleError, match=rf"{name.replace('.', '[.]')} is corrupt"):
        mtlrec.load(bundle)


def test_a_validation_table_without_a_label_says_it_is_the_validation_table(table):
    with pytest.raises(DataError, match=r"'b' \(label\) is missing from the validation table"):
        mtlrec.SharedBottom(FEATURES, TASKS).fit(
            table.head(200), table.head(50).drop(columns=["b"]), epochs=1, verbose=0
        )


def test_evaluate_without_labels_points_to_predict(table):
    model = fit(table.head(200))
    with pytest.raises(DataError, match=r"use predict\(data\)"):
        model.evaluate(table.drop(columns=["a"]))


def test_a_diverging_fit_stops_naming_the_learning_rate_and_keeps_the_weights(table):
    model = mtlrec.SharedBottom(FEATURES, TASKS)
    with pytest.raises(mtlrec.TrainingDivergedError, match=r"lr=1000.*try a smaller one") as err:
        model.fit(table, epochs=3, batch_size=32, lr=1000, verbose=0)
    assert "the initial weights were kept" in str(err.value)
    assert np.isfinite(model.predict(table.head(10))["a"]).all()
    # with a good first epoch, the weights of that epoch are kept
    good = mtlrec.SharedBottom(FEATURES, TASKS).fit(table, epochs=1, verbose=0)
    expected = good.predict(table.head(10))["a"]
    scheduled = mtlrec.SharedBottom(FEATURES, TASKS)
    original = mtlrec.training.Optimizers.step

    def step_then_explode(self):  # epoch 2 multiplies the learning rate by 1e6
        original(self)
        if self.steps_taken == len(table) // 256 + 1:
            for group in self.dense.param_groups:
                group["lr"] *= 1e6
        self.steps_taken += 1

    mtlrec.training.Optimizers.steps_taken = 0
    try:
        mtlrec.training.Optimizers.step = step_then_explode
        with pytest.raises(mtlrec.TrainingDivergedError, match=r"epoch 1 \(the last completed"):
            scheduled.fit(table, epochs=3, verbose=0)
    finally:
        mtlrec.training.Optimizers.step = original
        del mtlrec.training.Optimizers.steps_taken
    np.testing.assert_allclose(scheduled.predict(table.head(10))["a"], expected, rtol=1e-6)
    assert len(scheduled.history_) == 1


@pytest.mark.parametrize("as_dict", [False, True])
def test_the_notebook_call_style_fit_x_and_a_list_of_labels(table, as_dict):
    x = table.drop(columns=["a", "b"])
    if as_dict:
        x = {c: x[c].to_numpy() for c in x.columns}
    reference = mtlrec.MMoE(FEATURES, TASKS, num_experts=2).fit(table, epochs=1, verbose=0)
    expected = reference.predict(table.head(30))["b"]
    for labels in (
        [table["a"].to_numpy(), table["b"].to_numpy()],
        {"b": table["b"], "a": table["a"]},
        table[["a", "b"]],
        table[["a", "b"]].to_numpy(),
    ):
        model = mtlrec.MMoE(FEATURES, TASKS, num_experts=2).fit(x, labels, epochs=1, verbose=0)
        np.testing.assert_allclose(model.predict(x)["b"][:30], expected, rtol=1e-5)
    # validation as (table, labels)
    model = mtlrec.MMoE(FEATURES, TASKS, num_experts=2)
    model.fit(
        x, [table["a"], table["b"]], validation=(x, [table["a"], table["b"]]), epochs=1, verbose=0
    )
    assert set(model.history_[0]["validation"]) == {"a", "b"}


def test_labels_passed_apart_are_checked(table):
    x = table.drop(columns=["a", "b"])
    model = mtlrec.MMoE(FEATURES, TASKS)
    with pytest.raises(DataError, match=r"got 1 label arrays for 2 tasks"):
        model.fit(x, [table["a"]], verbose=0)
    with pytest.raises(DataError, match=r"missing \['b'\]"):
        model.fit(x, {"a": table["a"]}, verbose=0)
    with pytest.raises(DataError, match=r"task 'b'.*expected 2000 values"):
        model.fit(x, [table["a"], table["b"][:10]], verbose=0)
    with pytest.raises(DataError, match=r"already has a column 'a'"):
        model.fit(table.drop(columns=["b"]), [table["a"], table["b"]], verbose=0)
