"""Preprocessor: vocabularies, scaling, input kinds, persistence and error messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlrec._validation import as_columns, require_columns
from mtlrec.exceptions import ConfigError, DataError, NotFittedError
from mtlrec.features import DenseFeature, SparseFeature
from mtlrec.preprocessing import Preprocessor
from mtlrec.tasks import Task
from mtlrec.vocabulary import Vocabulary

FEATURES = [SparseFeature("city"), SparseFeature("size"), DenseFeature("x")]
TASKS = [Task("y")]


def train_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "city": ["b", "a", None, "c", "a"],
            "size": [10, 30, 20, 10, 30],
            "x": [1.0, 3.0, np.nan, 5.0, 1.0],  # non-missing: min 1, max 5, mean 2.5
            "y": [0, 1, 1, 0, 1],
        }
    )


def test_vocabulary_ids_and_minmax_by_hand() -> None:
    pre = Preprocessor(FEATURES, TASKS)
    batch = pre.fit_transform(train_frame())
    # city: a=2, b=3, c=4, missing=0; size: 10=2, 20=3, 30=4
    assert batch.sparse.tolist() == [[3, 2], [2, 4], [0, 3], [4, 2], [2, 4]]
    assert batch.sparse.dtype == torch.int64
    assert batch.dense.dtype == torch.float32
    # (x - 1) / 4, the missing value imputed with the mean 2.5 -> 0.375
    assert batch.dense[:, 0].tolist() == [0.0, 0.5, 0.375, 1.0, 0.0]
    assert batch.labels.tolist() == [[0.0], [1.0], [1.0], [0.0], [1.0]]
    assert pre.vocabulary_sizes == [5, 5]
    assert pre.is_fitted


def test_unknown_and_missing_at_transform() -> None:
    pre = Preprocessor(FEATURES, TASKS).fit(train_frame())
    test = pd.DataFrame({"city": ["c", "zzz", np.nan], "size": [20, 99, None], "x": [9, None, -3]})
    batch = pre.transform(test, with_labels=False)
    assert batch.labels is None
    assert batch.sparse.tolist() == [[4, 3], [1, 1], [0, 0]]
    assert batch.dense[:, 0].tolist() == [2.0, 0.375, -1.0]  # not clipped


def test_standard_scaling_by_hand() -> None:
    pre = Preprocessor(FEATURES, TASKS, scaling="standard")
    dense = pre.fit_transform(train_frame()).dense[:, 0].numpy()
    std = math.sqrt(((1 - 2.5) ** 2 * 2 + 0.5**2 + 2.5**2) / 4)  # population std of 1,3,5,1
    expected = np.array([(v - 2.5) / std for v in [1.0, 3.0, 2.5, 5.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(dense, expected)
    assert dense[2] == 0.0  # imputed with the mean


def test_constant_dense_column_maps_to_zero() -> None:
    for scaling in ("minmax", "standard"):
        data = {"c": ["a", "b"], "x": [7.0, 7.0], "y": [0, 1]}
        pre = Preprocessor([SparseFeature("c"), DenseFeature("x")], TASKS, scaling=scaling)
        assert pre.fit_transform(data).dense[:, 0].tolist() == [0.0, 0.0]


def test_no_dense_or_no_sparse_features_give_empty_blocks() -> None:
    data = {"c": ["a", "b", "a"], "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}
    only_sparse = Preprocessor([SparseFeature("c")], TASKS).fit_transform(data)
    assert tuple(only_sparse.dense.shape) == (3, 0)
    only_dense = Preprocessor([DenseFeature("x")], TASKS).fit_transform(data)
    assert tuple(only_dense.sparse.shape) == (3, 0)
    assert only_dense.sparse.dtype == torch.int64


def vocab(pre: Preprocessor, name: str) -> dict:
    return pre.to_dict()["vocabularies"][name]


def fit_one(values: list, scaling: str = "minmax") -> Preprocessor:
    data = {"c": pd.Series(values, dtype=object), "y": [0] * len(values)}
    return Preprocessor([SparseFeature("c")], TASKS, scaling=scaling).fit(data)


def test_int_vs_str_vocabularies() -> None:
    assert vocab(fit_one([3, 1, 3, None]), "c") == {"kind": "int", "values": [1, 3]}
    assert vocab(fit_one(["10", "9", None]), "c") == {"kind": "str", "values": ["10", "9"]}
    assert vocab(fit_one(["a", 1, 2.5]), "c") == {"kind": "str", "values": ["1", "2.5", "a"]}
    assert vocab(fit_one([True, False, True]), "c") == {"kind": "int", "values": [0, 1]}
    pre = Preprocessor([SparseFeature("c")], TASKS).fit({"c": [0.5, 1.5, 0.5], "y": [0, 1, 0]})
    assert vocab(pre, "c") == {"kind": "str", "values": ["0.5", "1.5"]}
    assert pre.transform({"c": [1.5, 2.5]}, with_labels=False).sparse[:, 0].tolist() == [3, 1]


def test_float_integral_column_is_an_integer_vocabulary() -> None:
    # pandas reads an int column with gaps as float64
    pre = Preprocessor([SparseFeature("c")], TASKS).fit({"c": [3.0, np.nan, 1.0], "y": [0, 1, 0]})
    assert vocab(pre, "c") == {"kind": "int", "values": [1, 3]}
    json.dumps(pre.to_dict())  # JSON ints, not numpy scalars
    ids = pre.transform({"c": np.array([1, 3, 2])}, with_labels=False).sparse[:, 0]
    assert ids.tolist() == [2, 3, 1]
    # strings read from a text file map onto the integer vocabulary; 1.5 is unknown
    ids = pre.transform({"c": ["3", "1", "x", 1.5]}, with_labels=False).sparse[:, 0]
    assert ids.tolist() == [3, 2, 1, 1]


def test_string_vocabulary_accepts_numbers_at_transform() -> None:
    pre = fit_one(["10", "20"])
    ids = pre.transform({"c": [20, 10, 30]}, with_labels=False).sparse[:, 0]
    assert ids.tolist() == [3, 2, 1]


def test_pandas_pyarrow_and_dict_inputs_agree() -> None:
    frame = train_frame()
    frame["nullable"] = pd.array([1, None, 3, 3, 1], dtype="Int64")
    frame["flag"] = pd.array([True, None, False, True, True], dtype="boolean")
    frame["cat"] = pd.Categorical(["u", "v", None, "u", "v"])
    features = [*FEATURES, SparseFeature("nullable"), SparseFeature("flag"), SparseFeature("cat")]
    pre = Preprocessor(features, TASKS).fit(frame)
    inputs = [
        frame,
        pa.Table.from_pandas(frame, preserve_index=False),
        {
            "city": ["b", "a", None, "c", "a"],
            "size": np.array([10, 30, 20, 10, 30]),
            "x": [1.0, 3.0, None, 5.0, 1.0],
            "y": pd.Series([0, 1, 1, 0, 1]),
            "nullable": [1, None, 3, 3, 1],
            "flag": [True, None, False, True, True],
            "cat": ["u", "v", None, "u", "v"],
        },
    ]
    batches = [pre.transform(data) for data in inputs]
    # nullable: 1=2, 3=3; flag: False=2, True=3; cat: u=2, v=3; NA -> 0
    assert batches[0].sparse[:, 2:].tolist() == [
        [2, 3, 2],
        [0, 0, 3],
        [3, 2, 0],
        [3, 3, 2],
        [2, 3, 3],
    ]
    for batch in batches[1:]:
        assert torch.equal(batch.sparse, batches[0].sparse)
        assert torch.equal(batch.dense, batches[0].dense)
        assert torch.equal(batch.labels, batches[0].labels)


def test_pyarrow_string_and_chunked_columns() -> None:
    table = pa.Table.from_batches(
        [
            pa.record_batch({"city": pa.array(["a", None]), "x": [1.0, 2.0], "y": [0, 1]}),
            pa.record_batch({"city": pa.array(["b", "q"]), "x": [3.0, 4.0], "y": [1, 0]}),
        ]
    )
    pre = Preprocessor([SparseFeature("city"), DenseFeature("x")], TASKS).fit(table)
    assert vocab(pre, "city") == {"kind": "str", "values": ["a", "b", "q"]}
    batch = pre.transform(
        table.cast(pa.schema([("city", pa.large_string()), ("x", pa.float64()), ("y", pa.int64())]))
    )
    assert batch.sparse[:, 0].tolist() == [2, 0, 3, 4]


def test_json_round_trip_is_exact(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "city": rng.choice(["a", "b", "c", "ü"], 200),
            "size": rng.integers(0, 50, 200),
            "x": rng.normal(size=200) / 3,
            "y": rng.normal(size=200),
        }
    )
    pre = Preprocessor(FEATURES, [Task("y", type="regression")], scaling="standard").fit(frame)
    path = tmp_path / "pre.json"
    pre.save(path)
    loaded = Preprocessor.load(path)
    assert loaded.to_dict() == pre.to_dict()
    assert loaded.vocabulary_sizes == pre.vocabulary_sizes
    assert loaded.sparse_features == pre.sparse_features
    assert loaded.dense_features == (DenseFeature("x"),)
    test = frame.sample(frac=1.0, random_state=1)
    a, b = pre.transform(test), loaded.transform(test)
    assert torch.equal(a.sparse, b.sparse)
    assert torch.equal(a.dense, b.dense)
    assert torch.equal(a.labels, b.labels)
    # an unfitted preprocessor round-trips too
    fresh = Preprocessor.from_dict(Preprocessor(FEATURES, TASKS).to_dict())
    assert not fresh.is_fitted


def test_regression_labels_are_standardised_unless_asked_not_to() -> None:
    data = {"c": ["a", "b", "a"], "r": [2.5, -1e6, 4.0]}
    pre = Preprocessor([SparseFeature("c")], [Task("r", type="regression")])
    labels = pre.fit_transform(data).labels[:, 0].double()
    y = np.array(data["r"])
    np.testing.assert_allclose(labels.numpy(), (y - y.mean()) / y.std(), rtol=1e-6)
    head = pre.heads["r"]
    assert (head.mean, head.std) == pytest.approx((y.mean(), y.std()))
    # the statistics travel with the preprocessor and map predictions back
    loaded = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    back = loaded.heads["r"].activate(labels.float())  # float32 targets: 1e-7 of the spread
    np.testing.assert_allclose(back.numpy(), y, rtol=0, atol=1e-7 * y.std())
    raw = Preprocessor([SparseFeature("c")], [Task("r", type="regression", standardize=False)])
    assert raw.fit_transform(data).labels[:, 0].tolist() == [2.5, -1e6, 4.0]


# ---------------------------------------------------------------------------------- errors
def test_bad_scaling() -> None:
    with pytest.raises(ConfigError, match=r"scaling.*'minmax', 'standard'.*'zscore'"):
        Preprocessor(FEATURES, TASKS, scaling="zscore")


def test_not_fitted() -> None:
    pre = Preprocessor(FEATURES, TASKS)
    assert not pre.is_fitted
    with pytest.raises(NotFittedError, match="fit"):
        pre.transform(train_frame())
    with pytest.raises(NotFittedError):
        _ = pre.vocabulary_sizes


def test_missing_feature_column() -> None:
    with pytest.raises(DataError, match=r"column 'city' \(sparse feature\) is missing.*'size'"):
        Preprocessor(FEATURES, TASKS).fit(train_frame().drop(columns="city"))
    pre = Preprocessor(FEATURES, TASKS).fit(train_frame())
    with pytest.raises(DataError, match=r"column 'x' \(dense feature\) is missing"):
        pre.transform(train_frame().drop(columns="x"))


def test_missing_label_column() -> None:
    with pytest.raises(DataError, match=r"column 'y' \(label\) is missing"):
        Preprocessor(FEATURES, TASKS).fit(train_frame().drop(columns="y"))
    pre = Preprocessor(FEATURES, TASKS).fit(train_frame())
    with pytest.raises(DataError, match=r"'y' \(label\).*with_labels=False"):
        pre.transform(train_frame().drop(columns="y"))
    assert len(pre.transform(train_frame().drop(columns="y"), with_labels=False)) == 5


def test_non_numeric_dense_column() -> None:
    frame = train_frame().assign(x=["1", "2", "3", "4", "5"])
    with pytest.raises(DataError, match=r"column 'x' \(dense feature\) is not numeric"):
        Preprocessor(FEATURES, TASKS).fit(frame)


def test_dense_column_infinite_or_all_missing() -> None:
    with pytest.raises(DataError, match=r"'x' \(dense feature\) has infinite"):
        Preprocessor(FEATURES, TASKS).fit(train_frame().assign(x=[1.0, np.inf, 0, 0, 0]))
    with pytest.raises(DataError, match=r"'x' \(dense feature\) has no non-missing"):
        Preprocessor(FEATURES, TASKS).fit(train_frame().assign(x=np.nan))


def test_bad_labels() -> None:
    missing = Preprocessor(FEATURES, TASKS).fit(train_frame().assign(y=[0, 1, None, 0, 1]))
    batch = missing.transform(train_frame().assign(y=[0, 1, None, 0, np.nan]))
    assert batch.mask[:, 0].tolist() == [True, True, False, True, False]
    assert batch.labels[:, 0].tolist() == [0, 1, 0, 0, 0]  # a valid value under the mask
    assert missing.transform(train_frame()).mask is None  # every label there: no mask
    with pytest.raises(DataError, match=r"task 'y' \(binary\).*outside \{0, 1\}.*\[-1, 2\].*0/1"):
        Preprocessor(FEATURES, TASKS).fit(train_frame().assign(y=[0, 2, 1, -1, 2]))
    with pytest.raises(DataError, match=r"'y' \(label of task 'y'\) is not numeric"):
        Preprocessor(FEATURES, TASKS).fit(train_frame().assign(y=["no", "yes"] * 2 + ["no"]))
    regression = Preprocessor(FEATURES, [Task("y", type="regression")])
    with pytest.raises(DataError, match=r"task 'y' \(regression\) has infinite labels"):
        regression.fit(train_frame().assign(y=[0.0, np.inf, 1.0, 2.0, 3.0]))
    # labels are checked at transform time too
    pre = Preprocessor(FEATURES, TASKS).fit(train_frame())
    with pytest.raises(DataError, match=r"task 'y' \(binary\).*\[5\]"):
        pre.transform(train_frame().assign(y=[0, 1, 5, 0, 1]))
    # bools are valid binary labels
    assert pre.transform(train_frame().assign(y=[True, False] * 2 + [True])).labels.sum() == 3


def test_table_shape_errors() -> None:
    pre = Preprocessor(FEATURES, TASKS)
    with pytest.raises(DataError, match="the training data has no rows"):
        pre.fit(train_frame().iloc[:0])
    with pytest.raises(DataError, match="no rows"):
        as_columns({})
    with pytest.raises(DataError, match=r"different lengths.*'city': 2"):
        pre.fit({"city": ["a", "b"], "size": [1], "x": [1.0], "y": [0]})
    with pytest.raises(DataError, match="got list"):
        pre.fit([[1, 2, 3]])
    with pytest.raises(DataError, match="one-dimensional"):
        as_columns({"a": np.zeros((2, 2))})


def test_require_columns_lists_every_missing_column() -> None:
    with pytest.raises(DataError, match=r"columns 'a', 'b' \(sparse feature\) are missing"):
        require_columns({"c": None}, ["a", "b", "c"], "sparse feature")
    require_columns({"a": None}, ["a"], "sparse feature")  # no error


# ------------------------------------------------------------------------------ float keys
FRACTIONS = np.array([1 / 3, 0.1, 2.7, 1e-5, 123.456, -2 / 3, 2.0**24 + 1.5])


def float32_reads(values: np.ndarray) -> dict[str, object]:
    """A float64 column as float32 reads give it, through as_columns."""
    narrow = values.astype(np.float32)
    tables = {
        "numpy float32": {"c": narrow},
        "pandas float32": pd.DataFrame({"c": narrow}),
        "pandas Float32": pd.DataFrame({"c": pd.array(narrow, dtype="Float32")}),
        "arrow float32": pa.table({"c": pa.array(narrow)}),
        "widened to float64": {"c": narrow.astype(np.float64)},
    }
    return {name: as_columns(t, arrow_strings=True)["c"] for name, t in tables.items()}


def test_fractional_floats_fitted_as_float64_meet_their_float32_reads() -> None:
    vocabulary = Vocabulary.fit(as_columns({"c": FRACTIONS}, arrow_strings=True)["c"])
    assert vocabulary.values.tolist() == [
        "-0.6666667",
        "0.1",
        "0.33333334",
        "123.456",
        "16777218",  # 2**24 + 1.5 in float32 (which holds no fraction there)
        "1e-05",
        "2.7",
    ]
    expected = vocabulary.positions(FRACTIONS)
    assert sorted(expected.tolist()) == list(range(7))
    for name, column in float32_reads(FRACTIONS).items():
        assert vocabulary.positions(column).tolist() == expected.tolist(), name
    # and the other way round: fitted on float32, read as float64
    narrow = Vocabulary.fit(FRACTIONS.astype(np.float32))
    assert narrow.values.tolist() == vocabulary.values.tolist()


def test_integral_floats_ints_and_strings_keep_their_keys() -> None:
    vocabulary = Vocabulary.fit(np.array([2, 0.5, "a", "0.3333333333333333", "0.10"], dtype=object))
    assert vocabulary.values.tolist() == ["0.10", "0.3333333333333333", "0.5", "2", "a"]
    rows = np.array(
        [2.0, np.float32(2.0), "2", True, "a", "0.10", 0.1, "0.3333333333333333", 1 / 3],
        dtype=object,
    )
    assert vocabulary.positions(rows).tolist() == [3, 3, 3, -1, 4, 0, -1, 1, -1]
    # a string category that reads as float64's text of a float survives a round trip
    state = vocabulary.to_dict()
    assert state["float32_keys"] is True
    again = Vocabulary.from_dict(json.loads(json.dumps(state)))
    assert again.values.tolist() == vocabulary.values.tolist()
    assert "float32_keys" not in Vocabulary.fit(FRACTIONS).to_dict()


def test_a_version_2_vocabulary_with_float64_keys_is_rekeyed_in_place() -> None:
    # written before float keys were float32: 1/3 as float64 text; '0.10' and '2.0' are
    # strings (no float is written so), '1e-05' and '0.1' are already float32 text
    state = {"kind": "str", "values": ["0.1", "0.10", "0.3333333333333333", "1e-05", "2.0", "a"]}
    vocabulary = Vocabulary.from_dict(state)
    assert vocabulary.values.tolist() == ["0.1", "0.10", "0.33333334", "1e-05", "2.0", "a"]
    third = np.array([1 / 3])
    for column in (third, third.astype(np.float32), pa.array(third.astype(np.float32))):
        assert vocabulary.positions(column).tolist() == [2]
    rows = np.array(["0.10", "2.0", "a", 0.1, 1e-5, 2.0], dtype=object)
    assert vocabulary.positions(rows).tolist() == [1, 4, 5, 0, 3, -1]
    # reading it again changes nothing; mtlrec 0.1.0's vocabularies keep their keys
    assert Vocabulary.from_dict(vocabulary.to_dict()).values.tolist() == vocabulary.values.tolist()
    legacy = Vocabulary.from_dict(state, legacy=True)
    assert legacy.values.tolist() == state["values"]


def test_a_version_2_preprocessor_with_float64_keys_predicts_float32_rows() -> None:
    pre = Preprocessor([SparseFeature("c")], TASKS).fit({"c": FRACTIONS, "y": np.arange(7) % 2})
    state = pre.to_dict()
    assert state["version"] == 3
    state["version"] = 2  # as a version-2 Preprocessor wrote it before float keys were float32
    old = {
        "0.33333334": "0.3333333333333333",
        "-0.6666667": "-0.6666666666666666",
        "16777218": "16777217.5",
    }
    values = state["vocabularies"]["c"]["values"]
    state["vocabularies"]["c"]["values"] = [old.get(v, v) for v in values]
    loaded = Preprocessor.from_dict(json.loads(json.dumps(state)))
    assert loaded.vocabulary("c").values.tolist() == values
    expected = pre.transform({"c": FRACTIONS}, with_labels=False).sparse
    for name, column in float32_reads(FRACTIONS).items():
        got = loaded.transform({"c": column}, with_labels=False).sparse
        assert torch.equal(got, expected), name
    assert (expected >= 2).all()


def test_reading_keys_of_the_float32_form_changes_none() -> None:
    rng = np.random.default_rng(0)
    scale = np.float32(10.0) ** rng.integers(-40, 38, 20_000).astype(np.float32)
    vocabulary = Vocabulary.fit(rng.standard_normal(20_000).astype(np.float32) * scale)
    state = vocabulary.to_dict()
    assert "float32_keys" not in state  # nothing to protect: every key maps to itself
    assert Vocabulary.from_dict(state).values.tolist() == state["values"]


# -------------------------------------------------------------------------------- property
values = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["a", "b", "é", ""]))


@settings(max_examples=60, deadline=None)
@given(
    train=st.lists(values, min_size=1, max_size=30), test=st.lists(values, min_size=1, max_size=30)
)
def test_ids_follow_the_vocabulary(train: list, test: list) -> None:
    pre = fit_one(train)
    size = pre.vocabulary_sizes[0]
    ids = pre.transform({"c": pd.Series(test, dtype=object)}, with_labels=False).sparse[:, 0]
    assert ids.min() >= 0 and ids.max() < size
    seen = {str(v) for v in train if v is not None}
    assert size == len(seen) + 2
    for value, index in zip(test, ids.tolist(), strict=True):
        if value is None:
            assert index == 0
        elif str(value) in seen:
            assert index >= 2
        else:
            assert index == 1
    # re-encoding the training values never yields unknown
    assert (
        1
        not in pre.transform(
            {"c": pd.Series(train, dtype=object)}, with_labels=False
        ).sparse.tolist()
    )
