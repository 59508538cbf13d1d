"""Every null form is missing in every container, for feature and label columns alike."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

import mtlrec
from mtlrec import DenseFeature, SparseFeature, Task
from mtlrec.data import Batch
from mtlrec.preprocessing import Preprocessor

NULLS = {
    "None": None,
    "float nan": float("nan"),
    "numpy nan": np.float64("nan"),
    "pandas NA": pd.NA,
    "pandas NaT": pd.NaT,
}
N = object()  # where the row's value is missing: replaced by each null form

ROWS = {
    "city": ["b", "a", N, "b", "c"],  # sparse strings: a=2, b=3, c=4
    "level": [2, N, 1, 2, 7],  # sparse integers: 1=2, 2=3, 7=4
    "rate": [N, 0.5, 0.25, 1.5, 0.5],  # sparse fractions: 0.25=2, 0.5=3, 1.5=4
    "price": [1.0, 2.0, N, 5.0, N],  # dense: min 1, max 5, mean 8/3
    "click": [1, 0, N, 0, 1],  # binary label
    "spend": [N, 2.0, 4.0, 6.0, 8.0],  # regression label: mean 5, std sqrt(5)
    "segment": ["x", "y", "x", N, "y"],  # multiclass label: x=0, y=1
}
FEATURES = [
    SparseFeature("city"),
    SparseFeature("level"),
    SparseFeature("rate"),
    DenseFeature("price"),
]
TASKS = [Task("click"), Task("spend", type="regression"), Task("segment", type="multiclass")]

SPARSE = [[3, 3, 0], [2, 0, 3], [0, 2, 2], [3, 3, 4], [4, 4, 3]]
DENSE = [0.0, 0.25, 5 / 12, 1.0, 5 / 12]  # (x - 1) / 4, missing -> mean 8/3
S5 = math.sqrt(5.0)
LABELS = [[1, 0, 0], [0, -3 / S5, 1], [0, -1 / S5, 0], [0, 1 / S5, 0], [1, 3 / S5, 1]]
MASK = [
    [True, False, True],
    [True, True, True],
    [False, True, True],
    [True, True, False],
    [True, True, True],
]

STRINGS = ("city", "segment")
NUMERIC = ("level", "rate", "price", "click", "spend")
#: pandas' nullable dtype of each column
NULLABLE = {name: "string" if name in STRINGS else "Float64" for name in ROWS} | {
    "level": "Int64",
    "click": "Int64",
}


def rows(null: object) -> dict[str, list]:
    """ROWS with ``null`` where a value is missing, as Python lists."""
    return {name: [null if v is N else v for v in values] for name, values in ROWS.items()}


def _arrow(values: list) -> pa.Array:
    return pa.array(values, from_pandas=True)


def _category(name: str, values: list) -> pd.Series:
    if name == "click":
        return pd.Series(pd.array([None if pd.isna(v) else bool(v) for v in values], "boolean"))
    if name in (*STRINGS, "level", "rate"):
        return pd.Series(values).astype("category")
    return pd.Series(values)


#: container name -> build(dict of lists) -> the table as that container holds it
CONTAINERS: dict[str, Callable[[dict[str, list]], object]] = {
    "dict of lists": lambda d: d,
    "dict of tuples": lambda d: {k: tuple(v) for k, v in d.items()},
    "dict of object arrays": lambda d: {k: np.array(v, dtype=object) for k, v in d.items()},
    "dict of numpy arrays": lambda d: {
        k: np.array(v, dtype=np.float64 if k in NUMERIC else object) for k, v in d.items()
    },
    "dict of Series": lambda d: {k: pd.Series(v) for k, v in d.items()},
    "dict of object Series": lambda d: {k: pd.Series(v, dtype=object) for k, v in d.items()},
    "DataFrame": pd.DataFrame,
    "DataFrame of objects": lambda d: pd.DataFrame(d, dtype=object),
    "DataFrame, nullable dtypes": lambda d: pd.DataFrame(
        {k: pd.array(v, dtype=NULLABLE[k]) for k, v in d.items()}
    ),
    "DataFrame, python strings": lambda d: pd.DataFrame(d).astype(
        dict.fromkeys(STRINGS, "string[python]")
    ),
    "DataFrame, categories and booleans": lambda d: pd.DataFrame(
        {k: _category(k, v) for k, v in d.items()}
    ),
    "pyarrow Table": lambda d: pa.table({k: _arrow(v) for k, v in d.items()}),
    "pyarrow RecordBatch": lambda d: pa.record_batch({k: _arrow(v) for k, v in d.items()}),
    "pyarrow Table, dictionary strings": lambda d: pa.table(
        {k: _arrow(v).dictionary_encode() if k in STRINGS else _arrow(v) for k, v in d.items()}
    ),
    "dict of pyarrow arrays": lambda d: {k: _arrow(v) for k, v in d.items()},
    "dict of chunked arrays": lambda d: {
        k: pa.chunked_array([_arrow(v[:2]), _arrow(v[2:])]) for k, v in d.items()
    },
}


def build(container: str, null: object) -> object:
    """The rows in ``container``; skips where the container cannot hold that null form
    (pandas' nullable numbers and arrow's typed arrays refuse NaT, a date)."""
    try:
        return CONTAINERS[container](rows(null))
    except (TypeError, ValueError, pa.ArrowException) as err:
        pytest.skip(f"{container} cannot hold {null!r}: {err}")


def assert_batches_equal(batch: Batch, expected: Batch) -> None:
    assert torch.equal(batch.sparse, expected.sparse)
    assert torch.equal(batch.dense, expected.dense)
    assert torch.equal(batch.labels, expected.labels)
    assert torch.equal(batch.mask, expected.mask)


@pytest.fixture(scope="module")
def reference() -> tuple[Preprocessor, Batch]:
    """A Preprocessor fitted on the rows with None, and their batch, checked by hand."""
    pre = Preprocessor(FEATURES, TASKS)
    batch = pre.fit_transform(rows(None))
    assert batch.sparse.tolist() == SPARSE
    np.testing.assert_allclose(batch.dense[:, 0].numpy(), DENSE, rtol=1e-6)
    np.testing.assert_allclose(batch.labels.numpy(), LABELS, rtol=1e-6, atol=1e-7)
    assert batch.mask.tolist() == MASK
    return pre, batch


@pytest.mark.parametrize("null", NULLS.values(), ids=list(NULLS))
@pytest.mark.parametrize("container", CONTAINERS)
def test_every_null_form_is_missing_in_every_container(container, null, reference) -> None:
    fitted, expected = reference
    data = build(container, null)
    # predicting with the fitted preprocessor
    assert_batches_equal(fitted.transform(data), expected)
    # and training on the container itself: same vocabularies, statistics and batch
    pre = Preprocessor(FEATURES, TASKS)
    assert_batches_equal(pre.fit_transform(data), expected)
    assert pre.to_dict() == fitted.to_dict()


def test_nan_among_strings_of_a_list_is_missing_not_the_text_nan() -> None:
    pre = Preprocessor([SparseFeature("city")], [Task("click")])
    pre.fit({"city": ["a", float("nan"), "b"], "click": [0, 1, 1]})
    assert pre.vocabulary("city").values.tolist() == ["a", "b"]  # no category 'nan'
    batch = pre.transform({"city": [np.nan, "b", "nan"]}, with_labels=False)
    assert batch.sparse[:, 0].tolist() == [0, 3, 1]  # missing, b, the text 'nan' unknown


def test_a_list_of_lists_for_a_sparse_feature_points_to_sequence_features() -> None:
    with pytest.raises(
        mtlrec.DataError, match=r"'city' \(sparse feature\) holds lists.*SequenceFeature"
    ):
        Preprocessor([SparseFeature("city")], [Task("click")]).fit(
            {"city": [["a", "b"], ["c", "d"]], "click": [0, 1]}
        )


def test_a_model_predicts_the_same_from_a_dataframe_and_its_dict_of_lists() -> None:
    rng = np.random.default_rng(0)
    n = 200
    city = rng.choice(["paris", "rome", "oslo"], n).astype(object)
    city[rng.random(n) < 0.3] = np.nan
    x = rng.normal(size=n)
    x[rng.random(n) < 0.2] = np.nan
    income = (np.nan_to_num(x) + (city == "rome") + rng.normal(0, 0.5, n) > 0.5).astype(int)
    frame = pd.DataFrame({"city": city, "x": x, "income": income})
    frame["city"] = frame["city"].astype("str")  # pandas' string dtype, NaN kept
    assert frame["city"].isna().sum() > 0
    model = mtlrec.SharedBottom(
        [SparseFeature("city", embedding_dim=4), DenseFeature("x")], [Task("income")], seed=0
    ).fit(frame, epochs=2, verbose=0)

    lists = frame.to_dict("list")
    assert any(isinstance(v, float) and math.isnan(v) for v in lists["city"])
    from_frame = model.predict(frame)["income"]
    from_lists = model.predict(lists)["income"]
    np.testing.assert_array_equal(from_lists, from_frame)
    # a missing city predicts like any other missing city, not like an unknown one
    missing = frame["city"].isna().to_numpy()
    unknown = model.predict(frame.assign(city="atlantis"))["income"]
    assert not np.allclose(from_frame[missing], unknown[missing])
