"""ONNX export: onnxruntime predicts what ``model.predict`` does, for every registered
architecture with every head, a funnel, sequence features and entity experts, at two
batch sizes (the batch axis is dynamic); the preprocessing spec beside the graph."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mtlrec
from conftest import FEATURES, FUNNEL_TASKS, HEAD_TASKS, funnel_table, make_heads_table
from mtlrec.models import list_models

ort = pytest.importorskip("onnxruntime")  # the [onnx] extra

TABLE = make_heads_table(300)
SMALL = {
    "single_task": {"bottom_units": [8]},
    "shared_bottom": {"bottom_units": [8]},
    "omoe": {"num_experts": 2, "expert_units": [8]},
    "mmoe": {"num_experts": 2, "expert_units": [8], "gate_units": [4]},
    "cgc": {"num_specific_experts": 1, "num_shared_experts": 1, "expert_units": [8]},
    "ple": {"num_specific_experts": 1, "num_shared_experts": 1, "expert_units": [8]},
    "esmm": {"tower_units": [8]},
}


def onnx_predictions(path, batch) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path))
    feeds = {"sparse": batch.sparse.numpy(), "dense": batch.dense.numpy()}
    if batch.sequences is not None:
        feeds.update(sequences=batch.sequences.numpy(), lengths=batch.lengths.numpy())
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def assert_parity(model, table, tmp_path) -> None:
    path = model.export_onnx(tmp_path / "model.onnx", overwrite=True)
    for rows in (len(table), 7):
        part = table.head(rows)
        batch = model.preprocessor.transform(part, with_labels=False)
        got = onnx_predictions(path, batch)
        expected = model.predict(part)
        assert list(got) == list(expected)  # every output, named, in predict's order
        for name, values in expected.items():
            assert got[name].shape == np.shape(values), name
            # 1e-5, or float32's rounding step where the values are large (a regression
            # task in the labels' units near 1e6 moves in steps of 0.125)
            np.testing.assert_allclose(got[name], values, rtol=2.5e-7, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("architecture", list_models())
def test_onnx_predicts_what_predict_does_for_every_architecture(architecture, tmp_path) -> None:
    funnel = architecture == "esmm"
    tasks = FUNNEL_TASKS if funnel else HEAD_TASKS  # every head, or the funnel ESMM needs
    table = funnel_table(TABLE) if funnel else TABLE
    model = mtlrec.create_model(architecture, FEATURES, tasks, **SMALL.get(architecture, {}))
    model.fit(table, epochs=1, verbose=0)
    assert_parity(model, table, tmp_path)


def test_onnx_of_a_funnel_names_the_joint(tmp_path) -> None:
    model = mtlrec.MMoE(FEATURES, FUNNEL_TASKS, **SMALL["mmoe"])
    model.fit(funnel_table(TABLE), epochs=1, verbose=0)
    assert model.network.extra_outputs  # the joint output of the funnel step
    assert_parity(model, funnel_table(TABLE), tmp_path)


@pytest.mark.parametrize("pooling", ["mean", "sum", "max", "attention"])
def test_onnx_with_sequences_and_entity_experts(pooling, tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 200
    table = pd.DataFrame(
        {
            "user": rng.integers(0, 20, n),
            "item": rng.integers(0, 30, n),
            "price": rng.random(n),
            "history": [list(rng.integers(0, 40, rng.integers(0, 8))) for _ in range(n)],
            "click": rng.integers(0, 2, n),
        }
    )
    features = [
        mtlrec.SparseFeature("user", group="user"),
        mtlrec.SparseFeature("item", group="item", hash_buckets=16),
        mtlrec.DenseFeature("price", group="item"),
        mtlrec.SequenceFeature(
            "history",
            max_len=5,
            pooling=pooling,
            shares="item",
            target="item" if pooling == "attention" else None,
            group="user",
        ),
    ]
    model = mtlrec.MMoE(
        features,
        [mtlrec.Task("click")],
        num_experts=1,
        expert_units=[8],
        entity_experts={"user": 1, "item": 1},
    )
    model.fit(table, epochs=1, verbose=0)
    assert_parity(model, table, tmp_path)


def test_the_preprocessing_spec_lies_beside_the_graph_and_rebuilds_the_preprocessor(
    tmp_path,
) -> None:
    model = mtlrec.MMoE(FEATURES, HEAD_TASKS, **SMALL["mmoe"]).fit(TABLE, epochs=1, verbose=0)
    path = model.export_onnx(tmp_path / "m.onnx")
    spec = json.loads((tmp_path / "m.preprocessing.json").read_text())
    assert spec["inputs"]["sparse"] == [f.name for f in model.preprocessor.sparse_features]
    assert spec["outputs"] == list(model.predict(TABLE.head(2)))
    again = mtlrec.Preprocessor.from_dict(spec["preprocessor"])
    expected = model.preprocessor.transform(TABLE, with_labels=False)
    got = again.transform(TABLE, with_labels=False)
    assert np.array_equal(got.sparse.numpy(), expected.sparse.numpy())
    assert np.array_equal(got.dense.numpy(), expected.dense.numpy())
    with pytest.raises(FileExistsError, match="overwrite"):
        model.export_onnx(path)
    with pytest.raises(mtlrec.ConfigError, match=r"\.onnx"):
        model.export_onnx(tmp_path / "m.bin")


def test_the_export_command_writes_the_graph_and_the_spec(tmp_path, capsys) -> None:
    from mtlrec.cli import main

    model = mtlrec.MMoE(FEATURES, HEAD_TASKS, **SMALL["mmoe"]).fit(TABLE, epochs=1, verbose=0)
    model.save(tmp_path / "bundle")
    assert main(["export", str(tmp_path / "bundle"), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "model.onnx" in out and "preprocessing.json" in out
    batch = model.preprocessor.transform(TABLE, with_labels=False)
    got = onnx_predictions(tmp_path / "bundle" / "model.onnx", batch)
    np.testing.assert_allclose(got["a"], model.predict(TABLE)["a"], rtol=0, atol=1e-5)
    assert main(["export", str(tmp_path / "bundle")]) == 2  # exists: refused, named
    assert "overwrite" in capsys.readouterr().err
