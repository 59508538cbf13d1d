"""Data larger than memory: fitting from chunks, streamed epochs, files with faults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import mtlrec
from mtlrec import DataError, DenseFeature, Preprocessor, SequenceFeature, SparseFeature, Task
from mtlrec.data import Batch
from mtlrec.sources import StreamSource, open_dataset

FEATURES = [
    SparseFeature("u", min_count=2),
    SparseFeature("c"),
    SequenceFeature("h", max_len=4, shares="u"),
    DenseFeature("x"),
]
TASKS = [
    Task("click"),
    Task("value", type="regression"),
    Task("count", type="poisson"),
    Task("kind", type="multiclass"),
]


def frame(rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "id": np.arange(rows),
            "u": rng.integers(0, 60, rows),
            "c": rng.choice(["a", "b", "c", None], rows),
            "h": [list(rng.integers(0, 80, rng.integers(0, 6))) for _ in range(rows)],
            "x": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(3, 2, rows)),
        }
    )
    table["click"] = (rng.random(rows) < 0.3).astype(float)
    table.loc[rng.random(rows) < 0.2, "click"] = np.nan  # missing labels
    table["value"] = rng.normal(10, 4, rows)
    table["count"] = rng.poisson(2.0, rows)
    table["kind"] = rng.choice(["p", "q", "r"], rows)
    return table


def write_folder(table: pd.DataFrame, folder, parts=3, row_group=150) -> None:
    folder.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(table)), parts)):
        part = pa.Table.from_pandas(table.iloc[chunk], preserve_index=False)
        pq.write_table(part, folder / f"part-{i}.parquet", row_group_size=row_group)


def test_fitting_from_chunks_learns_what_fitting_the_whole_table_learns():
    table = frame()
    whole = Preprocessor(FEATURES, TASKS).fit(table)
    chunks = [table.iloc[i : i + 97] for i in range(0, len(table), 97)]
    chunked = Preprocessor(FEATURES, TASKS).fit_chunks(chunks)
    for name in ("u", "c"):
        assert whole.vocabulary(name).values.tolist() == chunked.vocabulary(name).values.tolist()
    for name, stats in whole._dense_stats.items():
        assert chunked._dense_stats[name] == pytest.approx(stats, rel=1e-12)
    for name, head in whole.heads.items():
        other = chunked.heads[name].state_dict()
        if name == "kind":
            assert other == head.state_dict()
        else:
            assert other == pytest.approx(head.state_dict(), rel=1e-12)
    a, b = whole.transform(table), chunked.transform(table)
    assert torch.equal(a.sparse, b.sparse) and torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(a.dense, b.dense)


def test_a_chunk_with_integers_and_one_with_text_meet_by_canonical_key():
    pre = Preprocessor([SparseFeature("u")], [Task("click")])
    chunks = [
        pd.DataFrame({"u": [1, 2, 2], "click": [0, 1, 0]}),
        pd.DataFrame({"u": ["2", "x", "1"], "click": [1, 0, 1]}),
    ]
    chunked = pre.fit_chunks(chunks).vocabulary("u").values.tolist()
    whole = Preprocessor([SparseFeature("u")], [Task("click")])
    whole.fit({"u": np.array([1, 2, 2, "2", "x", "1"], dtype=object), "click": [0, 1, 0, 1, 0, 1]})
    assert chunked == whole.vocabulary("u").values.tolist() == ["1", "2", "x"]


def test_no_label_in_any_chunk_is_a_clear_error():
    pre = Preprocessor([SparseFeature("u")], [Task("click")])
    chunks = [pd.DataFrame({"u": [1, 2], "click": [np.nan, np.nan]})] * 2
    with pytest.raises(DataError, match="holds no label at all"):
        pre.fit_chunks(chunks)


def stream(folder, shuffle_buffer=250, seed=0):
    table = frame()
    pre = Preprocessor(FEATURES, TASKS).fit(table)
    columns = ["id"] + [f.name for f in FEATURES] + [t.name for t in TASKS]

    def encode(rb):
        batch = pre.transform(rb)
        batch.weights = torch.from_numpy(rb.column("id").to_numpy().astype(np.float32))
        return batch  # the row id travels as the weight, to follow rows

    dataset = open_dataset(folder, columns)
    return StreamSource(dataset, encode, columns, seed=seed, shuffle_buffer=shuffle_buffer)


def ids(batches) -> list[int]:
    return [int(i) for b in batches for i in b.weights]


def test_a_streamed_epoch_holds_every_row_once_in_a_seeded_order(tmp_path):
    write_folder(frame(), tmp_path / "rows")
    source = stream(tmp_path / "rows")
    first = list(source.batches(1, 64))
    assert all(len(b) == 64 for b in first[:-1]) and isinstance(first[0], Batch)
    assert sorted(ids(first)) == list(range(1200))
    assert ids(first) != list(range(1200))  # shuffled
    assert ids(stream(tmp_path / "rows").batches(1, 64)) == ids(first)  # reproducible
    assert ids(source.batches(2, 64)) != ids(first)  # another order each epoch
    assert ids(stream(tmp_path / "rows", shuffle_buffer=0).batches(1, 64)) == list(range(1200))
    assert source.rows == 1200 and source.steps(64) == 19


def test_processes_read_disjoint_units_that_cover_the_epoch(tmp_path):
    write_folder(frame(), tmp_path / "rows")
    source = stream(tmp_path / "rows")
    parts = [ids(source.batches(1, 64, rank=r, world=2)) for r in range(2)]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == list(range(1200))


def test_fit_predict_and_evaluate_a_parquet_folder_as_a_table_in_memory(tmp_path):
    table = frame()
    write_folder(table, tmp_path / "rows")
    params = dict(num_experts=2, expert_units=[8], tower_units=[4])
    streamed = mtlrec.MMoE(FEATURES, TASKS, seed=1, **params)
    streamed.fit(tmp_path / "rows", epochs=2, batch_size=64, verbose=0, shuffle_buffer=300)
    assert streamed.history_[-1]["step"] == "fast"
    memory = mtlrec.MMoE(FEATURES, TASKS, seed=1, **params).fit(table, epochs=1, verbose=0)
    assert streamed.preprocessor.vocabulary("u").values.tolist() == (
        memory.preprocessor.vocabulary("u").values.tolist()
    )
    from_file, from_table = streamed.predict(tmp_path / "rows"), streamed.predict(table)
    for name in from_table:
        np.testing.assert_allclose(from_file[name], from_table[name], rtol=1e-6)
    scores, expected = streamed.evaluate(tmp_path / "rows"), streamed.evaluate(table)
    assert scores.keys() == expected.keys()
    for task, metrics in expected.items():
        assert scores[task] == pytest.approx(metrics, rel=1e-6)


def test_a_csv_file_is_read_as_a_stream(tmp_path):
    table = frame(300).drop(columns=["h"])
    table.to_csv(tmp_path / "rows.csv", index=False)
    features = [f for f in FEATURES if f.name != "h"]
    model = mtlrec.SharedBottom(features, [Task("click")], seed=0)
    model.fit(tmp_path / "rows.csv", epochs=1, batch_size=32, verbose=0)
    assert len(model.predict(tmp_path / "rows.csv")["click"]) == 300


def test_a_truncated_parquet_file_is_an_error_naming_it(tmp_path):
    write_folder(frame(), tmp_path / "rows")
    broken = tmp_path / "rows" / "part-1.parquet"
    broken.write_bytes(broken.read_bytes()[:-300])
    model = mtlrec.MMoE(FEATURES, TASKS)
    with pytest.raises(DataError, match=r"part-1\.parquet.*truncated or corrupt"):
        model.fit(tmp_path / "rows", epochs=1, verbose=0)


def test_a_file_without_a_column_is_an_error_naming_file_and_column(tmp_path):
    write_folder(frame(), tmp_path / "rows")
    pq.write_table(
        pa.Table.from_pandas(frame(50).drop(columns=["x"]), preserve_index=False),
        tmp_path / "rows" / "part-9.parquet",
    )
    with pytest.raises(DataError, match=r"part-9\.parquet: column 'x' is missing"):
        mtlrec.MMoE(FEATURES, TASKS).fit(tmp_path / "rows", epochs=1, verbose=0)


def test_a_column_whose_type_differs_between_files_is_an_error_naming_both(tmp_path):
    write_folder(frame(), tmp_path / "rows")
    odd = frame(50)
    odd["c"] = odd["c"].map({"a": 1, "b": 2, "c": 3})
    pq.write_table(
        pa.Table.from_pandas(odd, preserve_index=False), tmp_path / "rows" / "part-9.parquet"
    )
    message = r"column 'c' is double in .*part-9.* but (large_)?string in"
    with pytest.raises(DataError, match=message):
        mtlrec.MMoE(FEATURES, TASKS).fit(tmp_path / "rows", epochs=1, verbose=0)


def test_a_missing_path_and_an_unknown_suffix_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        mtlrec.MMoE(FEATURES, TASKS).fit(tmp_path / "nowhere.parquet", verbose=0)
    (tmp_path / "rows.json").write_text("{}")
    with pytest.raises(DataError, match=r"expected a \.parquet or \.csv file"):
        mtlrec.MMoE(FEATURES, TASKS).fit(tmp_path / "rows.json", verbose=0)
