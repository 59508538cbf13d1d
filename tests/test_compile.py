"""Opt-in compiled inference: same predictions as eager, padding, fallback, reset on fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mtlrec.layers.folding as folding
from conftest import FEATURES, TASKS
from mtlrec import PLE

CONFIG = {"num_specific_experts": 2, "num_shared_experts": 1, "expert_units": [8], "num_levels": 2}


@pytest.fixture(autouse=True)
def no_folding(monkeypatch):
    """Predictions that fold run eagerly; these tests are about the compiled forward."""
    monkeypatch.setattr(folding, "FOLD_TABLE_BYTES", 0)


@pytest.fixture(scope="module")
def fitted(table):
    return PLE(FEATURES, TASKS, **CONFIG).fit(table.head(512), epochs=1, verbose=0)


def test_compiled_predictions_equal_eager_for_a_ragged_last_chunk(fitted, table):
    rows = table.head(150)  # chunks of 64: 64, 64 and a last chunk of 22 padded to 64
    eager = fitted.predict(rows, batch_size=64)
    fitted.compile_inference()
    try:
        compiled = fitted.predict(rows, batch_size=64)
        metrics = fitted.evaluate(rows, batch_size=64)
    finally:
        fitted._compiled = None
    for name in eager:
        assert compiled[name].shape == (150,)
        np.testing.assert_allclose(compiled[name], eager[name], atol=1e-6)
    for task, values in fitted.evaluate(rows, batch_size=64).items():
        assert metrics[task] == pytest.approx(values, abs=1e-6)


def test_failed_compilation_warns_and_predicts_eagerly(fitted, table, monkeypatch):
    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    expected = fitted.predict(table.head(40))
    fitted.compile_inference()
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        got = fitted.predict(table.head(40))
    assert fitted._compiled is None  # falls back for good
    for name in expected:  # eager without the folded input (layers.folding): rounding apart
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6)


def test_fit_drops_the_compiled_forward(table, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # no real compile needed
    model = PLE(FEATURES, TASKS, **CONFIG).fit(table.head(128), epochs=1, verbose=0)
    assert model.compile_inference()._compiled is not None
    model.fit(table.head(128), epochs=1, verbose=0)
    assert model._compiled is None


def test_every_chunk_reaches_the_compiled_forward_at_one_shape(table, monkeypatch):
    shapes = []

    def recording(fn, **kwargs):
        return lambda *inputs: shapes.append((len(inputs[0]), len(inputs[1]))) or fn(*inputs)

    monkeypatch.setattr(torch, "compile", recording)
    model = PLE(FEATURES, TASKS, **CONFIG).fit(table.head(128), epochs=1, verbose=0)
    eager = model.predict(table.head(150), batch_size=64)
    got = model.compile_inference().predict(table.head(150), batch_size=64)
    assert shapes == [(64, 64)] * 3  # 64 + 64 + 22 rows, the last padded
    for name in eager:
        np.testing.assert_allclose(got[name], eager[name], atol=1e-6)


def test_a_folding_prediction_runs_eagerly_after_compile_inference(table, monkeypatch):
    monkeypatch.setattr(folding, "FOLD_TABLE_BYTES", 16 << 20)
    calls = []

    def recording(fn, **kwargs):
        return lambda *inputs: calls.append(len(inputs[0])) or fn(*inputs)

    monkeypatch.setattr(torch, "compile", recording)
    model = PLE(FEATURES, TASKS, **CONFIG).fit(table.head(128), epochs=1, verbose=0)
    eager = model.predict(table.head(150), batch_size=64)
    got = model.compile_inference().predict(table.head(150), batch_size=64)
    assert calls == []  # 150 rows fold (the vocabularies hold fewer rows): no compiled call
    for name in eager:
        np.testing.assert_array_equal(got[name], eager[name])
    model.predict(table.head(5), batch_size=64)  # 5 rows: too few to fold
    assert calls == [64]
