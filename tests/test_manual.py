"""ManualStep: hand-derived gradients equal autograd's, and it steps aside when unsure."""

from __future__ import annotations

import pytest
import torch

import mtlrec
import mtlrec.layers.folding as folding
from conftest import make_table
from mtlrec import DenseFeature, SparseFeature, Task
from mtlrec.layers.folding import FoldedInput
from mtlrec.manual import ManualStep
from mtlrec.training import Objective, _backward, build_optimizers

FEATURES = [  # two embedding sizes: two tables in the input layer
    SparseFeature("cat", embedding_dim=4),
    SparseFeature("color", embedding_dim=3),
    DenseFeature("x"),
]
TWO = [Task("a"), Task("b", weight=0.5)]


def twins(name: str, tasks, **params):
    """Two identical networks with flat gradients, and a training batch for them."""
    model = mtlrec.create_model(name, FEATURES, tasks, **params)
    data = model.preprocessor.fit_transform(make_table(300))
    pairs = []
    for _ in range(2):
        net = model.build()
        opt = build_optimizers(net, "adam", 1e-3)
        opt.zero_grad()
        pairs.append((net, opt))
    return pairs, data


def fold_always_or_never(monkeypatch, folded: bool) -> None:
    """Fold wherever it applies, whether or not it pays; or never."""
    if folded:
        monkeypatch.setattr(folding, "TRAINING_ROWS_PER_TABLE_ROW", 0)
        monkeypatch.setattr(folding, "TRAINING_OUTPUTS_PER_INPUT", 0)
    else:
        monkeypatch.setattr(folding, "FOLD_TABLE_BYTES", 0)


def manual_and_autograd(monkeypatch, folded: bool, name: str, tasks, **params):
    """Twin (network, optimizer) pairs, one for ManualStep and one for autograd, with the
    objective, a 300-row batch and the manual step; folding always or never."""
    fold_always_or_never(monkeypatch, folded)
    (manual, auto), data = twins(name, tasks, **params)
    objective = Objective(tasks)
    step = ManualStep.for_network(manual[0], objective)
    assert step is not None
    return manual, auto, objective, data.take(slice(0, 300)), step


def assert_same_step(result, reference, manual_opt, auto_opt) -> None:
    """Equal total and per-task losses, and equal gradients in the flat buffers."""
    torch.testing.assert_close(result[0], reference[0])
    torch.testing.assert_close(result[1], reference[1])
    torch.testing.assert_close(manual_opt.flat.grad, auto_opt.flat.grad, rtol=1e-4, atol=1e-7)


CASES = [
    ("shared_bottom", TWO, {}),
    ("shared_bottom", TWO, {"tower_units": [[8], [4, 4]], "activation": "tanh"}),
    ("shared_bottom", [Task("a"), Task("noise", type="regression", weight=2.0)], {}),
    ("esmm", TWO, {}),
    ("esmm", TWO, {"tower_units": [], "activation": "sigmoid"}),
    ("esmm", TWO, {"tower_units": [[6], [5, 3]], "activation": "leaky_relu"}),
    ("single_task", TWO, {"bottom_units": [8, 6]}),
    ("single_task", [Task("a")], {"bottom_units": [8], "tower_units": []}),
    (
        "single_task",
        [Task("a"), Task("b"), Task("noise", type="regression")],
        {"activation": "linear"},
    ),
    ("mmoe", TWO, {"num_experts": 3, "expert_units": [8, 6], "gate_units": [5]}),
    (
        "mmoe",
        TWO,
        {
            "num_experts": 4,
            "expert_units": [6],
            "gate_units": [],
            "gate_temperature": 2.0,
            "activation": "tanh",
            "tower_units": [[8], [4, 4]],
        },
    ),
    ("omoe", TWO, {"num_experts": 3, "expert_units": [8], "gate_units": [4, 4]}),
    (
        "omoe",
        [Task("a"), Task("noise", type="regression")],
        {"num_experts": 2, "expert_units": [5], "gate_units": [], "tower_units": []},
    ),
    ("cgc", TWO, {"num_specific_experts": 2, "num_shared_experts": 3, "expert_units": [8, 6]}),
    (
        "cgc",
        [Task("a"), Task("b"), Task("noise", type="regression")],
        {
            "num_specific_experts": 1,
            "num_shared_experts": 2,
            "gate_units": [],
            "activation": "tanh",
        },
    ),
    (  # two gate groups (task gates select 5, the shared gate 9), gate hidden layers
        "ple",
        TWO,
        {
            "num_specific_experts": 2,
            "num_shared_experts": 5,
            "expert_units": [6],
            "gate_units": [4],
        },
    ),
    (  # linear gates at every level, three levels, per-task towers
        "ple",
        TWO,
        {
            "num_specific_experts": 3,
            "num_shared_experts": 1,
            "num_levels": 3,
            "gate_units": [],
            "tower_units": [[8], [4, 4]],
            "activation": "leaky_relu",
        },
    ),
    (  # no shared experts: no shared gate; three tasks
        "ple",
        [Task("a"), Task("b"), Task("noise", type="regression")],
        {"num_specific_experts": 2, "num_shared_experts": 0, "gate_units": [3, 3]},
    ),
    (  # no task experts: every gate selects the shared experts only
        "ple",
        TWO,
        {"num_specific_experts": 0, "num_shared_experts": 3, "expert_units": [5, 5]},
    ),
]


@pytest.mark.parametrize(("name", "tasks", "params"), CASES)
@pytest.mark.parametrize("micro_batch", [None, 128])
@pytest.mark.parametrize("folded", [True, False])
def test_manual_gradients_equal_autograd(name, tasks, params, micro_batch, folded, monkeypatch):
    manual, auto, objective, batch, step = manual_and_autograd(
        monkeypatch, folded, name, tasks, **params
    )
    (manual_net, manual_opt), (auto_net, auto_opt) = manual, auto
    fold = FoldedInput.build(manual_net.embedding, manual_net.input_readers(), 128, True)
    assert (fold is not None) == (folded and name != "single_task")
    result = _backward(manual_net, objective, batch, micro_batch, step)
    reference = _backward(auto_net, objective, batch, micro_batch)
    assert auto_opt.flat.grad.abs().sum() > 0
    assert_same_step(result, reference, manual_opt, auto_opt)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("shared_bottom", {"dropout": 0.3}),
        ("esmm", {"dropout": 0.2, "tower_units": [[6], [5, 3]]}),
        ("single_task", {"dropout": 0.2, "bottom_units": [8, 6]}),
        ("mmoe", {"dropout": 0.25, "num_experts": 3, "expert_units": [8, 6], "gate_units": [5]}),
        ("omoe", {"dropout": 0.1, "num_experts": 2, "expert_units": [5], "gate_units": []}),
        ("ple", {"dropout": 0.2, "num_specific_experts": 2, "num_shared_experts": 3}),
    ],
)
@pytest.mark.parametrize("micro_batch", [None, 128])
@pytest.mark.parametrize("folded", [True, False])
def test_manual_dropout_gradients_equal_autograd_with_the_same_masks(
    name, params, micro_batch, folded, monkeypatch
):
    """Dropout draws its masks in the network's forward order: with the same seed both
    paths drop the same units, folded or not (masks do not depend on memory layout)."""
    manual, auto, objective, batch, step = manual_and_autograd(
        monkeypatch, folded, name, TWO, **params
    )
    (manual_net, manual_opt), (auto_net, auto_opt) = manual, auto
    manual_net.train()
    auto_net.train()
    torch.manual_seed(11)
    result = _backward(manual_net, objective, batch, micro_batch, step)
    torch.manual_seed(11)
    reference = _backward(auto_net, objective, batch, micro_batch)
    assert_same_step(result, reference, manual_opt, auto_opt)
    torch.manual_seed(12)  # other masks: other gradients
    manual_opt.flat.grad.zero_()
    _backward(manual_net, objective, batch, micro_batch, step)
    assert not torch.allclose(manual_opt.flat.grad, auto_opt.flat.grad, rtol=1e-3)


def test_fit_with_manual_steps_trains_like_autograd(monkeypatch):
    table = make_table(600)
    fitted = mtlrec.SharedBottom(FEATURES, TWO, seed=3).fit(table, epochs=2, verbose=0)
    monkeypatch.setattr(ManualStep, "for_network", classmethod(lambda cls, *a: None))
    reference = mtlrec.SharedBottom(FEATURES, TWO, seed=3).fit(table, epochs=2, verbose=0)
    for p, q in zip(fitted.network.parameters(), reference.network.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    assert fitted.history_[1]["loss"] == pytest.approx(reference.history_[1]["loss"], rel=1e-5)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("mmoe", {"expert_units": []}),
        ("ple", {"expert_units": []}),
        ("cgc", {"dropout": 0.2, "activation": "tanh"}),  # dropout needs relu
        ("shared_bottom", {"dropout": 0.1, "activation": "leaky_relu"}),
        ("shared_bottom", {"batch_norm": True}),
        ("shared_bottom", {"activation": "gelu"}),
        ("esmm", {"l2_dense": 1e-4}),
        ("single_task", {"l2_embedding": 1e-4}),
    ],
)
def test_manual_step_stands_aside_where_it_does_not_apply(name, params):
    net = twins(name, TWO, **params)[0][0][0]
    objective = Objective(TWO)
    assert ManualStep.for_network(net, objective) is None


def test_manual_step_needs_gradient_buffers_and_dense_embeddings():
    model = mtlrec.create_model("shared_bottom", FEATURES, TWO)
    model.preprocessor.fit_transform(make_table(50))
    objective = Objective(TWO)
    assert ManualStep.for_network(model.build(), objective) is None
    net = model.build()
    build_optimizers(net, "adam", 1e-3, sparse_embeddings=True)
    assert ManualStep.for_network(net, objective) is None
