"""Task types: each head's labels, loss, gradient and predictions, and fits with them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mtlrec
from conftest import FEATURES, HEAD_TASKS, make_heads_table
from mtlrec import ConfigError, DataError, Task
from mtlrec.heads import HEADS, Head, list_heads

TABLE = make_heads_table(4000)
TEST = make_heads_table(2000, seed=7)


def test_the_registry_lists_the_shipped_heads_and_names_unknown_ones():
    assert list_heads()[:4] == ["binary", "regression", "multiclass", "poisson"]
    with pytest.raises(ConfigError, match=r"unknown type 'ordinal'.*'multiclass'"):
        Task("y", type="ordinal")
    with pytest.raises(ConfigError, match="standardize=False does not apply to a 'binary'"):
        Task("y", standardize=False)


@pytest.mark.parametrize("name", ["binary", "regression", "multiclass", "poisson"])
def test_each_head_has_the_contract(name):
    cls = HEADS.get(name)
    assert issubclass(cls, Head) and cls.metrics
    assert cls.metrics[0] in cls.metrics and all(isinstance(m, str) for m in cls.metrics)
    assert cls.gradient is not Head.gradient  # every shipped head has a closed form


@pytest.mark.parametrize("name", ["binary", "regression", "multiclass", "poisson"])
def test_closed_form_gradients_equal_autograd(name):
    head = HEADS.get(name)(Task("y", type=name))
    g = torch.Generator().manual_seed(0)
    k = 4 if name == "multiclass" else None
    logits = torch.randn(50, k, generator=g) if k else torch.randn(50, generator=g)
    targets = {
        "binary": torch.randint(0, 2, (50,), generator=g).float(),
        "regression": torch.randn(50, generator=g),
        "multiclass": torch.randint(0, 4, (50,), generator=g).float(),
        "poisson": torch.poisson(torch.full((50,), 2.0), generator=g),
    }[name]
    z = logits.clone().requires_grad_()
    head.loss(z, targets).sum().backward()
    torch.testing.assert_close(head.gradient(logits, targets), z.grad)


def test_losses_by_hand():
    z, y = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    binary = HEADS.get("binary")()
    torch.testing.assert_close(
        binary.loss(z, y), torch.tensor([math.log(2), math.log1p(math.e**2)])
    )
    poisson = HEADS.get("poisson")()
    # half the unit deviance: mu - y - y log(mu / y); y = 0: mu
    z, y = torch.tensor([math.log(2.0), 0.0]), torch.tensor([2.0, 0.0])
    torch.testing.assert_close(poisson.loss(z, y), torch.tensor([0.0, 1.0]))
    multiclass = HEADS.get("multiclass")()
    z, y = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([1.0])
    torch.testing.assert_close(multiclass.loss(z, y), torch.tensor([-math.log(0.75)]))


def test_regression_on_labels_around_a_million_beats_the_mean_by_far():
    tasks = [Task("price", type="regression")]
    model = mtlrec.SharedBottom(FEATURES, tasks, seed=1)
    model.fit(TABLE, epochs=8, batch_size=128, lr=3e-3, verbose=0)
    mae = model.evaluate(TEST)["price"]["mae"]
    baseline = np.abs(TEST["price"] - TABLE["price"].mean()).mean()
    assert baseline > 1.5e5 and mae < 0.25 * baseline, (mae, baseline)
    predicted = model.predict(TEST)["price"]
    assert abs(predicted.mean() - TEST["price"].mean()) < 0.05 * baseline
    # the statistics are saved: a loaded model predicts the same values
    head = model.preprocessor.heads["price"]
    assert head.mean == pytest.approx(TABLE["price"].mean())


def test_regression_without_standardisation_trains_on_raw_labels(tmp_path):
    tasks = [Task("price", type="regression", standardize=False)]
    model = mtlrec.SharedBottom(FEATURES, tasks).fit(TABLE.head(500), epochs=1, verbose=0)
    head = model.preprocessor.heads["price"]
    assert (head.mean, head.std) == (0.0, 1.0)
    assert model.history_[0]["loss"] > 1e10  # squared error in raw units
    model.save(tmp_path / "m")
    assert mtlrec.load(tmp_path / "m").tasks[0].standardize is False


def test_multiclass_with_string_labels(tmp_path):
    tasks = [Task("size", type="multiclass"), Task("a")]
    model = mtlrec.MMoE(FEATURES, tasks, num_experts=3, seed=0)
    model.fit(TABLE, epochs=6, batch_size=128, lr=3e-3, verbose=0)
    assert model.classes("size").tolist() == ["large", "medium", "small"]
    probabilities = model.predict(TEST)["size"]
    assert probabilities.shape == (len(TEST), 3)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    labels = model.predict_classes(TEST)["size"]
    assert set(labels) <= {"large", "medium", "small"}
    majority = TEST["size"].value_counts(normalize=True).max()
    metrics = model.evaluate(TEST)["size"]
    assert set(metrics) == {"accuracy", "logloss", "auc"}
    assert metrics["accuracy"] == pytest.approx(np.mean(labels == TEST["size"].to_numpy()))
    assert metrics["accuracy"] > majority + 0.15 and metrics["auc"] > 0.8, metrics
    model.save(tmp_path / "m")
    loaded = mtlrec.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(TEST)["size"], probabilities)
    np.testing.assert_array_equal(loaded.predict_classes(TEST)["size"], labels)


def test_multiclass_label_errors():
    model = mtlrec.SharedBottom(FEATURES, [Task("size", type="multiclass")])
    with pytest.raises(DataError, match="only the class"):
        model.fit(TABLE.assign(size="small"), epochs=1, verbose=0)
    with pytest.raises(DataError, match=r"'size' holds no label at all"):
        model.fit(TABLE.assign(size=None), epochs=1, verbose=0)
    partial = model.preprocessor.fit(TABLE.assign(size=TABLE["size"].where(TABLE.index != 5)))
    batch = partial.transform(
        TABLE.head(8).assign(size=TABLE["size"].head(8).where(lambda s: s.index != 5))
    )
    assert batch.mask[:, 0].tolist() == [True] * 5 + [False] + [True] * 2  # missing: masked
    model.fit(TABLE.head(500), epochs=1, verbose=0)
    with pytest.raises(DataError, match=r"classes not seen in training: \['huge'\]"):
        model.evaluate(TEST.assign(size=np.where(TEST["x"] > 2, "huge", TEST["size"])))
    with pytest.raises(ConfigError, match="not a multiclass task"):
        mtlrec.SharedBottom(FEATURES, [Task("a")]).fit(TABLE.head(300), verbose=0).classes("a")


def test_poisson_counts():
    model = mtlrec.SharedBottom(FEATURES, [Task("visits", type="poisson")], seed=2)
    model.fit(TABLE, epochs=6, batch_size=128, lr=3e-3, verbose=0)
    metrics = model.evaluate(TEST)["visits"]
    assert set(metrics) == {"deviance", "mae", "rmse"}
    mean_only = np.abs(TEST["visits"] - TABLE["visits"].mean()).mean()
    assert metrics["mae"] < 0.85 * mean_only, (metrics, mean_only)
    assert (model.predict(TEST)["visits"] > 0).all()
    with pytest.raises(DataError, match=r"non-negative finite counts.*\[-1\]"):
        model.fit(TABLE.assign(visits=np.where(TABLE.index == 3, -1, TABLE["visits"])), verbose=0)


def test_all_heads_in_one_model_and_early_stopping_on_a_minimised_metric():
    model = mtlrec.PLE(FEATURES, HEAD_TASKS, num_specific_experts=1, num_shared_experts=1)
    model.fit(TABLE, TEST, epochs=3, early_stopping="visits/deviance", verbose=0)
    assert {h["step"] for h in model.history_} == {"fast"}
    assert set(model.evaluate(TEST)) == {t.name for t in HEAD_TASKS}


def test_every_head_predicts_float32():
    model = mtlrec.SharedBottom(FEATURES, HEAD_TASKS, seed=0).fit(TABLE, epochs=1, verbose=0)
    predictions = model.predict(TEST)
    assert {name: p.dtype for name, p in predictions.items()} == {
        t.name: np.dtype(np.float32) for t in HEAD_TASKS
    }  # regression came back float64
