"""Sequence features and the new vocabulary options: list parsing in every input form,
pooling against hand-computed values, shared tables, min_count / max_size, hashed
buckets (checked against an independent SipHash-2-4), bad input, and bundles."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

import mtlrec
from mtlrec import DenseFeature, SequenceFeature, SparseFeature, Task
from mtlrec.data import Batch
from mtlrec.exceptions import ConfigError, DataError
from mtlrec.layers.embedding import InputLayer, SequenceInput
from mtlrec.preprocessing import Preprocessor
from mtlrec.vocabulary import HashedVocabulary, Vocabulary

TASKS = [Task("y")]
#: an item column and a history that shares its table and vocabulary
SHARED = [SparseFeature("item", embedding_dim=4), SequenceFeature("hist", shares="item", max_len=3)]
ITEMS = [7, 8, 9]
HISTORIES = [[7, 8], [], [9, 10, 11, 12]]  # oldest first; the last row is over max_len
#: what each row keeps: its most recent max_len items, oldest first
KEPT = [["7", "8"], [], ["10", "11", "12"]]


def frame(hist, items=ITEMS) -> pd.DataFrame:
    return pd.DataFrame({"item": items, "hist": hist, "y": np.arange(len(items)) % 2})


def sequence_of(pre: Preprocessor, batch: Batch, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The (N, max_len) ids and (N,) lengths of sequence feature ``name``."""
    features = pre.sequence_features
    q = [f.name for f in features].index(name)
    start = sum(f.max_len for f in features[:q])
    ids = batch.sequences[:, start : start + features[q].max_len].numpy()
    return ids, batch.lengths[:, q].numpy()


def decoded(pre: Preprocessor, batch: Batch, name: str) -> list[list[str]]:
    """Each row's real items as canonical strings ("<unknown>" for id 1), checking that
    the padding after them is id 0."""
    values = pre.vocabulary(name).values
    ids, lengths = sequence_of(pre, batch, name)
    rows = []
    for row, n in zip(ids, lengths, strict=True):
        assert (row[n:] == 0).all(), row
        assert (row[:n] >= 1).all(), row  # a real item is never padding
        rows.append(["<unknown>" if i == 1 else str(values[i - 2]) for i in row[:n]])
    return rows


# ---------------------------------------------------------------------- list parsing
def _arrow_table(hist):
    return pa.table({"item": ITEMS, "hist": pa.array(hist, pa.list_(pa.int64())), "y": [0, 1, 0]})


LIST_FORMS = {
    "python lists": lambda: frame(HISTORIES),
    "tuples": lambda: frame([tuple(h) for h in HISTORIES]),
    "numpy arrays": lambda: frame([np.array(h, dtype=np.int64) for h in HISTORIES]),
    "arrow list<int64> table": lambda: _arrow_table(HISTORIES),
    "arrow large_list table": lambda: pa.table(
        {"item": ITEMS, "hist": pa.array(HISTORIES, pa.large_list(pa.int64())), "y": [0, 1, 0]}
    ),
    "pandas ArrowDtype list": lambda: frame(
        pd.Series(HISTORIES, dtype=pd.ArrowDtype(pa.list_(pa.int64())))
    ),
    "delimited strings": lambda: frame(["7|8", "", "9|10|11|12"]),
    "arrow strings": lambda: pa.table(
        {"item": ITEMS, "hist": pa.array(["7|8", "", "9|10|11|12"]), "y": [0, 1, 0]}
    ),
    "dict of ragged lists": lambda: {"item": ITEMS, "hist": HISTORIES, "y": [0, 1, 0]},
}


@pytest.mark.parametrize("form", list(LIST_FORMS))
def test_every_list_form_reads_the_same_items(form: str) -> None:
    data = LIST_FORMS[form]()
    pre = Preprocessor(SHARED, TASKS).fit(data)
    batch = pre.transform(data)
    assert decoded(pre, batch, "hist") == KEPT
    assert batch.lengths.tolist() == [[2], [0], [3]]
    assert batch.sequences.dtype == torch.int64 and batch.sequences.shape == (3, 3)
    # the vocabulary is fitted over the item column and the history together
    vocabulary = pre.vocabulary("item")
    if vocabulary.kind == "int":
        assert list(vocabulary.values) == [7, 8, 9, 10, 11, 12]
    else:  # items read from strings: every value by its string key
        assert list(vocabulary.values) == ["10", "11", "12", "7", "8", "9"]
    # the item column is encoded through the same vocabulary: 7, 8, 9 are the first three
    # in either ordering, ints (7 < 8 < 9 < 10) or strings ("10" < ... < "7" < "8" < "9")
    values = [str(v) for v in pre.vocabulary("item").values]
    assert batch.sparse[:, 0].tolist() == [values.index(str(i)) + 2 for i in ITEMS]


def test_int_lists_have_an_int_vocabulary_with_ids_by_hand() -> None:
    pre = Preprocessor(SHARED, TASKS).fit(frame(HISTORIES))
    batch = pre.transform(frame(HISTORIES))
    # vocabulary 7..12 -> ids 2..7; the last row keeps 10, 11, 12
    assert pre.vocabulary("hist").kind == "int"
    assert batch.sparse.tolist() == [[2], [3], [4]]
    assert batch.sequences.tolist() == [[2, 3, 0], [0, 0, 0], [5, 6, 7]]
    assert batch.lengths.tolist() == [[2], [0], [3]]


def test_a_dict_of_equal_length_lists_is_a_list_column() -> None:
    """Every row holding two items must not be taken for a 2-D array."""
    data = {"item": [7, 8], "hist": [[7, 8], [9, 10]], "y": [0, 1]}
    pre = Preprocessor(SHARED, TASKS).fit(data)
    assert decoded(pre, pre.transform(data), "hist") == [["7", "8"], ["9", "10"]]


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_missing_cells_and_empty_strings_hold_no_items(missing) -> None:
    strings = frame(["7|8", missing, ""])
    lists = frame([[7, 8], missing, []])
    for data in (strings, lists):
        pre = Preprocessor(SHARED, TASKS).fit(data)
        batch = pre.transform(data)
        assert decoded(pre, batch, "hist") == [["7", "8"], [], []]
        assert batch.lengths.tolist() == [[2], [0], [0]]


def test_arrow_nulls_hold_no_items() -> None:
    data = pa.table(
        {"item": ITEMS, "hist": pa.array([[7], None, []], pa.list_(pa.int64())), "y": [0, 1, 0]}
    )
    pre = Preprocessor(SHARED, TASKS).fit(data)
    assert decoded(pre, pre.transform(data), "hist") == [["7"], [], []]


def test_a_custom_separator() -> None:
    features = [SequenceFeature("tags", separator=";", max_len=4)]
    data = pd.DataFrame({"tags": ["a;b", "a|b", "", "c;a;b"], "y": [0, 1, 0, 1]})
    pre = Preprocessor(features, TASKS).fit(data)
    assert list(pre.vocabulary("tags").values) == ["a", "a|b", "b", "c"]  # "|" is no separator
    assert decoded(pre, pre.transform(data), "tags") == [["a", "b"], ["a|b"], [], ["c", "a", "b"]]


def test_a_multi_character_separator() -> None:
    features = [SequenceFeature("tags", separator=", ")]
    data = pd.DataFrame({"tags": ["x, y", "y", "x,y"], "y": [0, 1, 0]})
    pre = Preprocessor(features, TASKS).fit(data)
    assert decoded(pre, pre.transform(data), "tags") == [["x", "y"], ["y"], ["x,y"]]


def test_string_lists_and_string_items() -> None:
    features = [SparseFeature("item"), SequenceFeature("hist", shares="item")]
    data = pd.DataFrame({"item": ["b", "z"], "hist": [["a", "b"], ["c"]], "y": [0, 1]})
    pre = Preprocessor(features, TASKS).fit(data)
    assert list(pre.vocabulary("item").values) == ["a", "b", "c", "z"]
    batch = pre.transform(data)
    assert batch.sparse.tolist() == [[3], [5]]
    assert batch.sequences[:, :2].tolist() == [[2, 3], [4, 0]]


def test_max_len_keeps_the_most_recent_items() -> None:
    features = [SequenceFeature("hist", max_len=2)]
    data = pd.DataFrame({"hist": [[1, 2, 3, 4, 5], [6], [7, 8]], "y": [0, 1, 0]})
    pre = Preprocessor(features, TASKS).fit(data)
    batch = pre.transform(data)
    # every item of training is in the vocabulary (1..8 -> ids 2..9), dropped ones too
    assert list(pre.vocabulary("hist").values) == list(range(1, 9))
    assert batch.sequences.tolist() == [[5, 6], [7, 0], [8, 9]]
    assert batch.lengths.tolist() == [[2], [1], [2]]


def test_unknown_history_items_are_id_1_and_count_as_items() -> None:
    pre = Preprocessor(SHARED, TASKS).fit(frame(HISTORIES))
    test = pd.DataFrame({"item": [12, 99], "hist": [[99, 7], [100]]})
    batch = pre.transform(test, with_labels=False)
    assert batch.sequences.tolist() == [[1, 2, 0], [1, 0, 0]]
    assert batch.lengths.tolist() == [[2], [1]]
    # 12 was only ever in a history, yet the item column knows it (id of 12 = 7)
    assert batch.sparse.tolist() == [[7], [1]]


def test_several_sequences_sit_side_by_side() -> None:
    features = [
        SequenceFeature("a", max_len=2),
        DenseFeature("x"),
        SequenceFeature("b", max_len=3),
    ]
    data = pd.DataFrame({"a": [[1], [2, 1, 2]], "x": [0.0, 1.0], "b": ["p|q", ""], "y": [0, 1]})
    pre = Preprocessor(features, TASKS).fit(data)
    batch = pre.transform(data)
    # a: 1 -> 2, 2 -> 3; b: p -> 2, q -> 3
    assert batch.sequences.tolist() == [[2, 0, 2, 3, 0], [2, 3, 0, 0, 0]]
    assert batch.lengths.tolist() == [[1, 2], [2, 0]]
    assert batch.sparse.shape == (2, 0)


# ------------------------------------------------------------------------ pooling
#: embeddings of a 6-row table (dim 2); row 0 is padding / missing, row 1 unknown
TABLE = torch.tensor([[0.0, 0.0], [7.0, 7.0], [2.0, 5.0], [3.0, -4.0], [-1.0, 1.0], [0.5, -2.0]])
#: (ids, length) rows of one sequence column, max_len 3; padding after the real items
ROWS = [([2, 3, 0], 2), ([0, 0, 0], 0), ([4, 5, 3], 3), ([3, 5, 0], 2), ([1, 0, 0], 1)]
POOLED = {  # by hand from TABLE
    "mean": [[2.5, 0.5], [0.0, 0.0], [2.5 / 3, -5 / 3], [1.75, -3.0], [7.0, 7.0]],
    "sum": [[5.0, 1.0], [0.0, 0.0], [2.5, -5.0], [3.5, -6.0], [7.0, 7.0]],
    # row 3 is all negative in its second coordinate: a leaked padding row (0) would win
    "max": [[3.0, 5.0], [0.0, 0.0], [3.0, 1.0], [3.0, -2.0], [7.0, 7.0]],
}
TARGETS = [2, 3, 4, 5, 3]  # the sparse column (attention's target) of each row


def pooling_layer(poolings, copies: int = 1) -> InputLayer:
    """One sparse column and one sequence per pooling, all on one table (TABLE)."""
    layer = InputLayer(
        [6],
        [2],
        num_dense=1,
        copies=copies,
        tables=[(6, 2)],
        sparse_tables=[0],
        sequences=[
            SequenceInput(0, 3, p, target=0 if p == "attention" else None) for p in poolings
        ],
    )
    with torch.no_grad():
        layer.tables[0].weight.copy_(TABLE.repeat(1, copies))
    return layer


def pooling_batch(columns: int, rows=ROWS) -> Batch:
    ids = torch.tensor([r[0] for r in rows])
    return Batch(
        torch.tensor(TARGETS[: len(rows)]).unsqueeze(1),
        torch.arange(len(rows), dtype=torch.float32).unsqueeze(1) / 10,
        sequences=ids.repeat(1, columns),
        lengths=torch.tensor([[r[1]] * columns for r in rows]),
    )


def test_mean_sum_and_max_pool_the_real_items_by_hand() -> None:
    poolings = ["mean", "sum", "max"]
    layer = pooling_layer(poolings)
    batch = pooling_batch(3)
    out = layer(batch)
    assert out.shape == (5, 2 + 3 * 2 + 1)
    torch.testing.assert_close(out[:, :2], TABLE[TARGETS])
    for i, p in enumerate(poolings):
        torch.testing.assert_close(out[:, 2 + 2 * i : 4 + 2 * i], torch.tensor(POOLED[p]), msg=p)
    torch.testing.assert_close(out[:, -1], batch.dense[:, 0])


def test_padding_never_leaks_into_a_pooled_sequence() -> None:
    poolings = ["mean", "sum", "max"]
    layer = pooling_layer(poolings)
    batch = pooling_batch(3)
    before = layer(batch)
    with torch.no_grad():
        layer.tables[0].weight[0] = 1e6  # the padding row
    assert torch.equal(layer(batch), before)
    # other ids at the padded positions: only the lengths say what is real
    lengths = batch.lengths[:, :1]
    padded = torch.arange(3).repeat(1, 3) >= lengths.repeat(1, 3).repeat_interleave(3, 1)
    batch.sequences = torch.where(padded, torch.full_like(batch.sequences, 2), batch.sequences)
    assert (batch.sequences != 0).all()
    assert torch.equal(layer(batch), before)


def test_an_empty_row_pools_to_zeros_even_with_a_huge_padding_row() -> None:
    layer = pooling_layer(["mean", "sum", "max"])
    with torch.no_grad():
        layer.tables[0].weight[0] = -1e6
    out = layer(pooling_batch(3, rows=[([0, 0, 0], 0)]))
    assert torch.equal(out[0, 2:8], torch.zeros(6))


def attention_by_hand(layer: InputLayer, batch: Batch, copy: int = 0) -> torch.Tensor:
    """DIN pooling with explicit matmuls: score(h, t) = MLP([h, t, h - t, h * t]) of each
    real item h against the target t, then the score-weighted sum of the real items."""
    weight = layer.tables[0].weight.detach()[:, 2 * copy : 2 * copy + 2]
    hidden, out = layer.attention[0]
    layers = [*hidden.layers, out]
    pooled = torch.zeros(len(batch), 2)
    for b in range(len(batch)):
        t = weight[batch.sparse[b, 0]]
        for j in range(int(batch.lengths[b, 0])):
            h = weight[batch.sequences[b, j]]
            z = torch.cat([h, t, h - t, h * t])
            for k, linear in enumerate(layers):
                z = z @ linear.weight[copy].detach() + linear.bias[copy, 0].detach()
                if k < len(layers) - 1:
                    z = torch.relu(z)
            pooled[b] += z[0] * h
    return pooled


def test_attention_pools_the_real_items_by_hand() -> None:
    torch.manual_seed(0)
    layer = pooling_layer(["attention"])
    batch = pooling_batch(1)
    out = layer(batch)
    expected = attention_by_hand(layer, batch)
    torch.testing.assert_close(out[:, 2:4], expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(out[1, 2:4], torch.zeros(2))  # no items
    assert expected.abs().sum() > 0


def test_attention_gives_padding_a_score_of_exactly_zero() -> None:
    torch.manual_seed(1)
    layer = pooling_layer(["attention"])
    batch = pooling_batch(1)
    before = layer(batch)
    # another id at every padded position changes nothing, exactly
    other = pooling_batch(1)
    other.sequences = torch.tensor([[2, 3, 4], [5, 2, 3], [4, 5, 3], [3, 5, 4], [1, 2, 2]])
    assert torch.equal(layer(other), before)
    # the padding row's embedding has no effect and receives no gradient
    with torch.no_grad():
        layer.tables[0].weight[0] = 1e6
    out = layer(batch)
    assert torch.equal(out, before)
    out[:, 2:4].sum().backward()
    grad = layer.tables[0].weight.grad
    assert torch.equal(grad[0], torch.zeros(2))
    assert grad[2:].abs().sum() > 0


def test_attention_with_copies_pools_each_copy_by_hand() -> None:
    torch.manual_seed(2)
    layer = pooling_layer(["attention", "mean"], copies=2)
    with torch.no_grad():  # a different table per copy
        layer.tables[0].weight[:, 2:] = TABLE.flip(0)
    batch = pooling_batch(2)
    out = layer(batch)
    assert out.shape == (2, 5, 2 + 2 + 2 + 1)
    for c in range(2):
        torch.testing.assert_close(
            out[c, :, 2:4], attention_by_hand(layer, batch, copy=c), rtol=1e-5, atol=1e-6
        )
    torch.testing.assert_close(out[0, :, 4:6], torch.tensor(POOLED["mean"]))
    other = pooling_batch(2)
    other.sequences = torch.where(other.sequences == 0, 4, other.sequences)
    other.sequences[1] = 4  # an empty row with ids everywhere
    assert torch.equal(layer(other), out)


def entity_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": rng.integers(0, 8, n),
            "item": rng.integers(0, 12, n),
            "h_mean": [list(rng.integers(0, 14, rng.integers(0, 6))) for _ in range(n)],
            "x": rng.normal(size=n),
            "a": rng.integers(0, 2, n),
            "b": rng.integers(0, 2, n),
        }
    ).assign(h_sum=lambda d: d["h_mean"], h_max=lambda d: d["h_mean"], h_att=lambda d: d["h_mean"])


POOLING_FEATURES = [
    SparseFeature("user", embedding_dim=3),
    SparseFeature("item", embedding_dim=4),
    DenseFeature("x"),
    SequenceFeature("h_mean", shares="item", max_len=4),
    SequenceFeature("h_sum", shares="item", max_len=4, pooling="sum"),
    SequenceFeature("h_max", shares="item", max_len=4, pooling="max"),
    SequenceFeature("h_att", shares="item", max_len=4, pooling="attention", target="item"),
]


def test_a_model_pools_its_histories_from_the_item_table_by_hand() -> None:
    """Raw lists -> preprocessor -> the network's input row, against the item table read
    by hand: the last four items of each history, looked up by their training value."""
    data = entity_frame()
    model = mtlrec.SharedBottom(POOLING_FEATURES, ["a"], bottom_units=[4], tower_units=[2])
    model.fit(data, epochs=1, batch_size=32, verbose=0)
    network = model.network.eval()
    layer = network.embedding
    stack, first = layer.placement[layer.sparse_tables[1]]  # the item column's table
    assert [q.table for q in layer.sequences] == [layer.sparse_tables[1]] * 4
    table = layer.tables[stack].weight.detach()[first : first + layer.table_shapes[1][0]]
    position = {int(v): i + 2 for i, v in enumerate(model.preprocessor.vocabulary("item").values)}
    with torch.no_grad():
        row = layer(model.preprocessor.transform(data, with_labels=False))
    start = 3 + 4  # the sparse embeddings, by size: user (3), item (4)
    for r, history in enumerate(data["h_mean"]):
        items = table[[position[int(i)] for i in history[-4:]]]
        expected = {
            "mean": items.mean(0) if len(items) else torch.zeros(4),
            "sum": items.sum(0),
            "max": items.max(0).values if len(items) else torch.zeros(4),
        }
        for i, pooling in enumerate(("mean", "sum", "max")):
            got = row[r, start + 4 * i : start + 4 * (i + 1)]
            torch.testing.assert_close(got, expected[pooling], msg=f"{pooling} row {r}")
    assert torch.isfinite(row).all()


def test_attention_in_the_single_task_baseline_runs_with_copies() -> None:
    data = entity_frame()
    model = mtlrec.SingleTask(
        POOLING_FEATURES, ["a", "b"], bottom_units=[4], tower_units=[2], seed=3
    )
    model.fit(data, epochs=1, batch_size=32, verbose=0)
    network = model.network
    assert network.embedding.copies == 2
    assert model.history_[0]["step"] == "autograd"  # max / attention pooling have no rule
    assert "pooling" in model.history_[0]["step_reason"]
    predictions = model.predict(data)
    for task in ("a", "b"):
        assert predictions[task].shape == (len(data),)
        assert np.isfinite(predictions[task]).all()
    # an id at a padded position changes no prediction
    batch = model.preprocessor.transform(data, with_labels=False)
    other = model.preprocessor.transform(data, with_labels=False)
    lengths = other.lengths.repeat_interleave(4, 1)
    padded = torch.arange(4).repeat(1, 4) >= lengths
    other.sequences = torch.where(padded, 3, other.sequences)
    assert padded.any()
    with torch.no_grad():
        network.eval()
        a, b = network(batch).logits, network(other).logits
    for task in ("a", "b"):
        torch.testing.assert_close(a[task], b[task], rtol=0, atol=0)


# ------------------------------------------------------------------- shared tables
def test_a_shared_table_is_one_table_with_one_row_range() -> None:
    data = frame(HISTORIES)
    shared = mtlrec.SharedBottom(SHARED, TASKS, bottom_units=[2], tower_units=[2])
    shared.fit(data, epochs=1, verbose=0)
    layer = shared.network.embedding
    # 6 distinct values (7..12) over both columns + missing + unknown, dimension 4
    assert layer.table_shapes == [(8, 4)]
    assert layer.sparse_tables == [0] and [q.table for q in layer.sequences] == [0]
    assert sum(t.weight.numel() for t in layer.tables) == 8 * 4
    own = [SparseFeature("item", embedding_dim=4), SequenceFeature("hist", max_len=3)]
    apart = mtlrec.SharedBottom(own, TASKS, bottom_units=[2], tower_units=[2])
    apart.fit(data, epochs=1, verbose=0)
    # item: 3 values + 2; hist: 6 values + 2 (dimension 16 by default)
    assert apart.network.embedding.table_shapes == [(5, 4), (8, 16)]
    assert sum(t.weight.numel() for t in apart.network.embedding.tables) == 5 * 4 + 8 * 16


def test_a_shared_feature_takes_the_owners_dimension() -> None:
    pre = Preprocessor(SHARED, TASKS)
    assert pre.features[1].dim == 4
    with pytest.raises(ConfigError, match=r"hist.*embedding_dim must be 4"):
        Preprocessor(
            [
                SparseFeature("item", embedding_dim=4),
                SequenceFeature("hist", shares="item", embedding_dim=8),
            ],
            TASKS,
        )


def test_shared_vocabulary_options_belong_to_the_owner() -> None:
    with pytest.raises(ConfigError, match=r"'hist'.*min_count"):
        SequenceFeature("hist", shares="item", min_count=2)


def test_a_sparse_feature_may_share_a_sequences_table() -> None:
    features = [SequenceFeature("hist", embedding_dim=2), SparseFeature("item", shares="hist")]
    data = frame(HISTORIES)
    pre = Preprocessor(features, TASKS).fit(data)
    assert pre.input_layout()["tables"] == [(8, 2)]
    assert pre.transform(data).sparse.tolist() == [[2], [3], [4]]


# -------------------------------------------------------------- bounded vocabularies
LETTERS = ["b", "a", "c", "b", "a", "d", "c", "b", None]  # b 3, a 2, c 2, d 1


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        ({}, ["a", "b", "c", "d"]),
        ({"min_count": 2}, ["a", "b", "c"]),
        ({"min_count": 3}, ["b"]),
        ({"min_count": 4}, []),
        ({"max_size": 1}, ["b"]),
        ({"max_size": 2}, ["a", "b"]),  # a and c tie at 2: the smaller key
        ({"max_size": 3}, ["a", "b", "c"]),
        ({"max_size": 10}, ["a", "b", "c", "d"]),
        ({"min_count": 2, "max_size": 2}, ["a", "b"]),
    ],
)
def test_min_count_and_max_size_by_hand(options: dict, kept: list) -> None:
    data = pd.DataFrame({"s": LETTERS, "y": [0, 1] * 4 + [0]})
    pre = Preprocessor([SparseFeature("s", **options)], TASKS).fit(data)
    assert list(pre.vocabulary("s").values) == kept
    ids = pre.transform(data).sparse[:, 0].tolist()
    expected = [kept.index(v) + 2 if v in kept else (0 if v is None else 1) for v in LETTERS]
    assert ids == expected


def test_max_size_ties_keep_the_smaller_integer_key() -> None:
    values = np.array([9, 5, 3, 3, 5, 9, 1, 20, 20, 20])  # 20: 3; 3, 5, 9: 2; 1: 1
    assert list(Vocabulary.fit(values, max_size=3).values) == [3, 5, 20]
    assert list(Vocabulary.fit(values, max_size=2).values) == [3, 20]
    assert list(Vocabulary.fit(values, min_count=2).values) == [3, 5, 9, 20]
    arrow = pa.chunked_array([pa.array(["q", "p", "r"]), pa.array(["r", "p", None])])
    assert list(Vocabulary.fit(arrow, max_size=1).values) == ["p"]
    assert list(Vocabulary.fit(arrow, min_count=2).values) == ["p", "r"]


def test_min_count_counts_a_shared_vocabulary_over_every_column() -> None:
    features = [SparseFeature("item", min_count=2), SequenceFeature("hist", shares="item")]
    # 7: once in item + once in hist; 9: twice in one history; 8 and 10: once
    data = frame([[7], [9, 9], [10]], items=[7, 8, 8])
    pre = Preprocessor(features, TASKS).fit(data)
    assert list(pre.vocabulary("item").values) == [7, 8, 9]
    batch = pre.transform(data)
    assert batch.sparse[:, 0].tolist() == [2, 3, 3]
    assert batch.sequences[:, :2].tolist() == [[2, 0], [4, 4], [1, 0]]
    assert batch.lengths.tolist() == [[1], [2], [1]]


# ------------------------------------------------------------------ hashed buckets
_MASK = (1 << 64) - 1
PANDAS_HASH_KEY = b"0123456789123456"  # pandas.core.util.hashing._default_hash_key


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 (Aumasson & Bernstein, 2012), the reference algorithm."""
    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:16], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261,
         k1 ^ 0x7465646279746573]  # fmt: skip

    def sipround() -> None:
        v[0] = (v[0] + v[1]) & _MASK
        v[1] = _rotl(v[1], 13) ^ v[0]
        v[0] = _rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & _MASK
        v[3] = _rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & _MASK
        v[3] = _rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & _MASK
        v[1] = _rotl(v[1], 17) ^ v[2]
        v[2] = _rotl(v[2], 32)

    end = len(data) - len(data) % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v[3] ^= m
        sipround()
        sipround()
        v[0] ^= m
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[end:].ljust(8, b"\0"), "little")
    v[3] ^= last
    sipround()
    sipround()
    v[0] ^= last
    v[2] ^= 0xFF
    for _ in range(4):
        sipround()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def pandas_mix(h: int) -> int:
    """The 64-bit finaliser pandas' ``_hash_ndarray`` applies after SipHash (SplitMix64's:
    ``h ^= h >> 30; h *= 0xBF58476D1CE4E5B9; h ^= h >> 27; h *= 0x94D049BB133111EB;
    h ^= h >> 31``)."""
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & _MASK
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & _MASK
    return h ^ (h >> 31)


def bucket(value: str, buckets: int) -> int:
    """An integer key by its int64 value (two's complement bits) through the finaliser;
    any other key by SipHash-2-4 of its UTF-8 bytes, then the finaliser."""
    if re.fullmatch(r"0|-?[1-9][0-9]{0,18}", value):
        return pandas_mix(int(value) & _MASK) % buckets
    return pandas_mix(siphash24(PANDAS_HASH_KEY, value.encode("utf-8"))) % buckets


def test_the_siphash_oracle_matches_the_reference_vectors() -> None:
    key = bytes(range(16))  # the paper's test key and messages 00, 00 01, ...
    assert siphash24(key, b"") == 0x726FDB47DD0E0E31
    assert siphash24(key, bytes(range(8))) == 0x93F5F5799A932462
    assert siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5


STRINGS = [
    "a",
    "hello",
    "2",
    "-12",
    "007",
    "ünïcode ✓",
    "a longer key of more than sixteen bytes",
    "",
]


@pytest.mark.parametrize("buckets", [1, 7, 97, 1 << 20])
def test_hashed_buckets_are_siphash_of_the_canonical_key(buckets: int) -> None:
    vocabulary = HashedVocabulary(buckets)
    got = vocabulary.positions(np.array(STRINGS, dtype=object)).tolist()
    assert got == [bucket(s, buckets) for s in STRINGS]


def test_hashed_buckets_are_pinned() -> None:
    """Golden values: a bundle's hashed ids must not move across versions or platforms."""
    values = np.array(["a", "hello", "2", "ünïcode"], dtype=object)
    assert HashedVocabulary(97).positions(values).tolist() == [26, 63, 6, 35]


def test_a_value_hashes_alike_in_every_column_type() -> None:
    vocabulary = HashedVocabulary(1009)
    expected = [bucket(s, 1009) for s in ["2", "10", "-3"]]
    for column in (
        np.array([2, 10, -3]),
        np.array([2.0, 10.0, -3.0]),
        np.array(["2", "10", "-3"], dtype=object),
        np.array(["2", "10", "-3"]),
        pa.array(["2", "10", "-3"]),
        np.array([2, "10", -3.0], dtype=object),
    ):
        assert vocabulary.positions(column).tolist() == expected, column


def test_hashed_features_through_the_preprocessor() -> None:
    features = [
        SparseFeature("item", hash_buckets=5),
        SequenceFeature("hist", shares="item", max_len=3),
    ]
    train = pd.DataFrame(
        {
            "item": ["2", "x", None, "7"],
            "hist": [["2", "q"], [], ["x"], ["zz", "7", "2", "x"]],
            "y": [0, 1, 0, 1],
        }
    )
    pre = Preprocessor(features, TASKS).fit(train)
    assert pre.vocabulary_sizes == [5 + 2]
    batch = pre.transform(train)
    ids = batch.sparse[:, 0].tolist()
    assert ids == [bucket("2", 5) + 2, bucket("x", 5) + 2, 0, bucket("7", 5) + 2]
    assert ((batch.sequences >= 2) & (batch.sequences < 7) | (batch.sequences == 0)).all()
    assert batch.sequences.tolist() == [
        [bucket("2", 5) + 2, bucket("q", 5) + 2, 0],
        [0, 0, 0],
        [bucket("x", 5) + 2, 0, 0],
        [bucket(v, 5) + 2 for v in ("7", "2", "x")],
    ]
    # an int column at prediction meets the strings it was trained on; no id is unknown
    test = pd.DataFrame({"item": [2, 7, 12345], "hist": [[2], [7, 7], []]})
    again = pre.transform(test, with_labels=False)
    assert again.sparse[:, 0].tolist() == [
        bucket("2", 5) + 2,
        bucket("7", 5) + 2,
        bucket("12345", 5) + 2,
    ]
    assert again.sequences[:, 0].tolist() == [bucket("2", 5) + 2, bucket("7", 5) + 2, 0]


def test_hashed_ids_stay_in_range_over_many_values() -> None:
    pre = Preprocessor([SparseFeature("s", hash_buckets=3)], TASKS)
    values = [f"v{i}" for i in range(300)] + [None]
    data = pd.DataFrame({"s": values, "y": [0, 1] * 150 + [0]})
    ids = pre.fit(data).transform(data).sparse[:, 0]
    assert ids[-1] == 0
    assert set(ids[:-1].tolist()) == {2, 3, 4}  # every bucket used, none other


# ---------------------------------------------------------------------- bad input
def fit_error(features, data, match: str) -> None:
    with pytest.raises(DataError, match=match):
        Preprocessor(features, TASKS).fit(data)


@pytest.mark.parametrize(
    ("hist", "match"),
    [
        ([[1, 2], 3, [4]], r"'hist'.*mixes lists with other values.*3"),
        ([[1, 2], "3", [4]], r"'hist'.*mixes lists"),
        ([[[1], [2]], [[3]], []], r"'hist'.*nested lists"),
        ([[1, None], [2], []], r"'hist'.*missing values inside its lists"),
        (["a|b", "a||b", "c"], r"'hist'.*row 1 \('a\|\|b'\).*empty item"),
        (["a|", "b", "c"], r"'hist'.*row 0.*empty item"),
        (["|a", "b", "c"], r"'hist'.*row 0.*empty item"),
        ([1, 2, 3], r"'hist'"),
    ],
)
def test_bad_lists_name_the_column(hist, match: str) -> None:
    fit_error([SequenceFeature("hist")], pd.DataFrame({"hist": hist, "y": [0, 1, 0]}), match)


def test_nested_arrow_lists_name_the_column() -> None:
    data = pa.table({"hist": pa.array([[[1], [2]], [[3]]]), "y": [0, 1]})
    fit_error([SequenceFeature("hist")], data, r"'hist'.*nested lists")


def test_bad_lists_at_transform_name_the_column() -> None:
    pre = Preprocessor([SequenceFeature("hist")], TASKS).fit(frame(["1|2", "", "3"]))
    with pytest.raises(DataError, match=r"'hist'.*row 2.*empty item"):
        pre.transform(pd.DataFrame({"hist": ["1", "2", "3||4"]}), with_labels=False)


@pytest.mark.parametrize(
    "data",
    [
        pd.DataFrame({"s": [[1, 2], [3]], "y": [0, 1]}),
        pa.table({"s": pa.array([[1, 2], [3]]), "y": [0, 1]}),
        pd.DataFrame({"s": [np.array([1]), np.array([3])], "y": [0, 1]}),
    ],
    ids=["python lists", "arrow lists", "numpy arrays"],
)
def test_a_sparse_feature_given_lists(data) -> None:
    fit_error([SparseFeature("s")], data, r"'s' \(sparse feature\) holds lists.*SequenceFeature")


def test_a_sparse_feature_given_lists_at_transform() -> None:
    pre = Preprocessor([SparseFeature("s")], TASKS).fit(pd.DataFrame({"s": [1, 2], "y": [0, 1]}))
    with pytest.raises(DataError, match=r"'s' \(sparse feature\) holds lists"):
        pre.transform(pd.DataFrame({"s": [[1], [2]]}), with_labels=False)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: SparseFeature("s", hash_buckets=0), r"'s'.*hash_buckets"),
        (lambda: SparseFeature("s", hash_buckets=-3), r"'s'.*hash_buckets"),
        (lambda: SequenceFeature("h", hash_buckets=0), r"'h'.*hash_buckets"),
        (lambda: SparseFeature("s", hash_buckets=True), r"'s'.*hash_buckets"),
        (lambda: SparseFeature("s", hash_buckets=4, min_count=2), r"'s'.*hash_buckets"),
        (lambda: SparseFeature("s", max_size=0), r"'s'.*max_size"),
        (lambda: SparseFeature("s", min_count=0), r"'s'.*min_count"),
        (lambda: SparseFeature("s", min_count=True), r"'s'.*min_count"),
        (lambda: SequenceFeature("h", pooling="attention"), r"'h'.*attention.*target"),
        (lambda: SequenceFeature("h", target="item"), r"'h'.*target"),
        (lambda: SequenceFeature("h", pooling="median"), r"'h'.*pooling"),
        (lambda: SequenceFeature("h", max_len=0), r"'h'.*max_len"),
        (lambda: SequenceFeature("h", separator=""), r"'h'.*separator"),
        (lambda: SequenceFeature("h", shares="h"), r"'h'.*itself"),
        (lambda: SparseFeature("s", group=""), r"'s'.*group"),
        (lambda: DenseFeature("d", group=3), r"'d'.*group"),
    ],
)
def test_bad_feature_options_name_the_feature(make, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


@pytest.mark.parametrize(
    ("features", "match"),
    [
        (
            [SparseFeature("item"), SequenceFeature("hist", shares="itme")],
            r"'hist' shares 'itme', which is not among the features",
        ),
        (
            [DenseFeature("price"), SequenceFeature("hist", shares="price")],
            r"'hist' shares 'price', a DenseFeature",
        ),
        (
            [SparseFeature("a"), SparseFeature("b", shares="a"), SparseFeature("c", shares="b")],
            r"'c' shares 'b', which itself shares 'a'",
        ),
        (
            [SequenceFeature("hist", pooling="attention", target="item")],
            r"'hist' attends to target 'item'",
        ),
        (
            [SequenceFeature("t"), SequenceFeature("hist", pooling="attention", target="t")],
            r"'hist': target 't' must be a SparseFeature",
        ),
        (
            [
                SparseFeature("item", embedding_dim=8),
                SequenceFeature("hist", pooling="attention", target="item"),
            ],
            r"'hist': target 'item' must be a SparseFeature with embedding_dim 16",
        ),
    ],
)
def test_bad_references_between_features(features, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Preprocessor(features, TASKS)
    with pytest.raises(ConfigError, match=match):
        mtlrec.MMoE(features, TASKS)


def test_entity_experts_naming_a_group_no_feature_has() -> None:
    features = [SparseFeature("u", group="user"), SparseFeature("i", group="item")]
    with pytest.raises(ConfigError, match=r"'nope', which no feature has.*\['user', 'item'\]"):
        mtlrec.MMoE(features, TASKS, entity_experts={"nope": 1})
    with pytest.raises(ConfigError, match="'item'"):
        mtlrec.PLE([SparseFeature("u", group="user")], TASKS, entity_experts={"item": 1})


@pytest.mark.parametrize("experts", [{"user": 0}, {"user": True}, {"user": 1.0}, {3: 1}, ["user"]])
def test_entity_experts_must_map_groups_to_counts(experts) -> None:
    with pytest.raises(ConfigError, match="entity_experts"):
        mtlrec.MMoE([SparseFeature("u", group="user")], TASKS, entity_experts=experts)


# ---------------------------------------------------------------------- save / load
def bundle_frame(n: int = 120, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 15, n)
    return pd.DataFrame(
        {
            "user": rng.integers(0, 10, n),
            "segment": rng.choice(["s1", "s2", "s3", "rare"], n, p=[0.4, 0.3, 0.28, 0.02]),
            "item": items,
            "category": [f"c{i % 4}" for i in items],
            "price": rng.normal(size=n),
            "history": [
                "|".join(str(i) for i in rng.integers(0, 20, rng.integers(0, 7))) for _ in range(n)
            ],
            "clicked": [list(rng.integers(0, 20, rng.integers(0, 4))) for _ in range(n)],
            "a": rng.integers(0, 2, n),
            "b": rng.integers(0, 2, n),
        }
    )


BUNDLE_FEATURES = [
    SparseFeature("user", embedding_dim=4, hash_buckets=7, group="user"),
    SparseFeature("segment", embedding_dim=3, min_count=5, group="user"),
    SparseFeature("item", embedding_dim=4, max_size=12, group="item"),
    SparseFeature("category", embedding_dim=3, group="item"),
    DenseFeature("price", group="item"),
    SequenceFeature("history", shares="item", max_len=4, group="user"),
    SequenceFeature("clicked", shares="item", max_len=3, pooling="attention", target="item"),
]


def test_a_bundle_with_every_new_input_kind_predicts_the_same(tmp_path) -> None:
    data = bundle_frame()
    model = mtlrec.MMoE(
        BUNDLE_FEATURES,
        ["a", "b"],
        num_experts=1,
        entity_experts={"user": 1, "item": 2},
        expert_units=[6],
        gate_units=[],
        tower_units=[3],
        seed=2,
    )
    model.fit(data, epochs=1, batch_size=32, verbose=0)
    path = model.save(tmp_path / "bundle")
    loaded = mtlrec.MultiTaskModel.load(path)
    assert type(loaded) is type(model) and loaded.config.entity_experts == {"user": 1, "item": 2}
    assert loaded.preprocessor.features == model.preprocessor.features
    for name in ("user", "segment", "item", "category"):
        before, after = model.preprocessor.vocabulary(name), loaded.preprocessor.vocabulary(name)
        assert type(after) is type(before) and len(after) == len(before), name
    assert isinstance(loaded.preprocessor.vocabulary("user"), HashedVocabulary)
    assert list(loaded.preprocessor.vocabulary("segment").values) == ["s1", "s2", "s3"]
    assert len(loaded.preprocessor.vocabulary("item")) == 12
    assert loaded.network.expert_groups() == model.network.expert_groups()
    assert loaded.network.expert_groups() == {"": ["shared", "user", "item", "item"]}
    fresh = bundle_frame(40, seed=9)  # unseen users, items and histories too
    for rows in (data, fresh):
        a, b = model.predict(rows), loaded.predict(rows)
        assert list(a) == list(b) == ["a", "b"]
        for task in ("a", "b"):
            np.testing.assert_array_equal(a[task], b[task])
    batch_a = model.preprocessor.transform(fresh, with_labels=False)
    batch_b = loaded.preprocessor.transform(fresh, with_labels=False)
    for field in ("sparse", "dense", "sequences", "lengths"):
        assert torch.equal(getattr(batch_a, field), getattr(batch_b, field)), field


def test_a_preprocessor_with_sequences_round_trips_through_json(tmp_path) -> None:
    features = [
        SparseFeature("item", max_size=3, group="item"),
        SequenceFeature("tags", separator=";", max_len=2, pooling="sum", min_count=2, group="item"),
        SequenceFeature("hist", shares="item", pooling="max"),
    ]
    data = pd.DataFrame(
        {
            "item": [1, 2, 3, 4, 1],
            "tags": ["x;y", "y", "", "x;z", "y;x"],
            "hist": [[1, 2], [5], [], [1], [4, 4, 4]],
            "y": [0, 1, 0, 1, 0],
        }
    )
    pre = Preprocessor(features, TASKS).fit(data)
    pre.save(tmp_path / "pre.json")
    again = Preprocessor.load(tmp_path / "pre.json")
    assert again.features == pre.features
    assert list(again.vocabulary("tags").values) == ["x", "y"]  # z once: unknown
    assert list(again.vocabulary("item").values) == [1, 2, 4]  # 1: 4, 4: 4, 2: 2 uses
    a, b = pre.transform(data), again.transform(data)
    for field in ("sparse", "sequences", "lengths"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert again.input_layout() == pre.input_layout()


@pytest.mark.parametrize("hist", [[[], []], [None, None], ["", ""], [np.nan, None]], ids=str)
def test_a_table_without_any_item_transforms_and_pools_to_zeros(hist) -> None:
    model = mtlrec.SharedBottom(SHARED, TASKS, bottom_units=[2], tower_units=[2])
    model.fit(frame(HISTORIES), epochs=1, verbose=0)
    batch = model.preprocessor.transform(pd.DataFrame({"item": [7, 8], "hist": hist}), False)
    assert batch.sequences.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert batch.lengths.tolist() == [[0], [0]]
    with torch.no_grad():
        row = model.network.embedding(batch)
    assert torch.equal(row[:, 4:8], torch.zeros(2, 4))
    assert np.isfinite(model.predict(pd.DataFrame({"item": [7, 8], "hist": hist}))["y"]).all()


def test_a_csv_chunk_whose_histories_are_all_empty() -> None:
    """pandas reads an all-empty text column as float64 NaN: every row has no items."""
    pre = Preprocessor(SHARED, TASKS).fit(frame(["7|8", "", "9|10|11|12"]))
    chunk = pd.read_csv(io.StringIO("item,hist\n7,\n9,\n"))
    assert chunk["hist"].dtype == np.float64
    batch = pre.transform(chunk, with_labels=False)
    assert batch.lengths.tolist() == [[0], [0]]
    assert batch.sequences.tolist() == [[0, 0, 0], [0, 0, 0]]
