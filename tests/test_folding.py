"""Inference with the embeddings folded into the first layers gives the plain outputs."""

from __future__ import annotations

import pytest
import torch
from tests.test_models import SPEC, TASKS, build, inputs

import mtlrec.layers.folding as folding
from mtlrec.models import InputSpec, list_models, make_config, network_class

FOLDABLE = ["shared_bottom", "esmm", "mmoe", "omoe", "cgc", "ple"]
VARIANTS = [
    ("mmoe", {"gate_units": []}),  # linear gates read the input themselves
    ("cgc", {"gate_units": [], "tower_units": [[4], [6, 3]]}),
    ("ple", {"num_specific_experts": 1, "num_shared_experts": 0, "num_levels": 3}),
    ("esmm", {"tower_units": []}),  # towers are just their output layers
    ("esmm", {"tower_units": [[8], [5, 2]]}),  # towers that differ: two banks
    ("shared_bottom", {"batch_norm": True}),
]


def compare(net, rows: int = 40) -> tuple[bool, float]:
    """(folded?, largest difference of the logits folded against plain)."""
    net.eval()
    batch = inputs(rows, seed=5)
    with torch.inference_mode():
        plain = torch.stack(list(net(batch).named().values()))
        with net.folded_input(rows):
            used = net.embedding.folded is not None
            folded = torch.stack(list(net(batch).named().values()))
    assert net.embedding.folded is None  # the context leaves the plain input layer
    return used, (plain - folded).abs().max().item()


@pytest.mark.parametrize(
    "name, params", [(n, {}) for n in FOLDABLE] + VARIANTS, ids=lambda v: str(v)
)
def test_folded_input_gives_the_plain_logits(name, params):
    net = build(name, **params)
    with torch.no_grad():  # biases start at 0: give them values the fold must carry
        for layer in net.input_readers():
            layer.bias.normal_()
    used, difference = compare(net)
    assert used
    assert difference < 1e-5


def test_fold_table_rows_are_embeddings_times_their_weight_rows():
    net = build("mmoe")
    weight = torch.randn(net.embedding.out_features, 3)
    table = net.embedding.fold(weight)
    assert table.shape == (sum(SPEC.vocabulary_sizes), 3)
    # column 1 (dim 4, second in the dim-4 table) meets input columns 4:8; its id 2 is row 7 + 2
    emb = net.embedding.tables[0].weight[7 + 2]
    torch.testing.assert_close(table[7 + 2], emb @ weight[4:8])
    # column 2 (dim 8, the only one in its table) meets input columns 8:16
    emb = net.embedding.tables[1].weight[3]
    torch.testing.assert_close(table[18 + 3], emb @ weight[8:16])


def test_fold_and_unfold_follow_column_order_across_tables():
    """Columns 0 and 2 embed in 8 dims, column 1 in 4: the input row holds column 1's
    embedding first (tables by size), the folded table holds the columns in order."""
    spec = InputSpec(vocabulary_sizes=[3, 5, 2], embedding_dims=[8, 4, 8], num_dense=1)
    net = network_class("mmoe")(spec, TASKS, make_config("mmoe", {"num_experts": 2}, 2))
    emb = net.embedding
    sparse = torch.tensor([[2, 4, 1], [0, 1, 0]])
    weight = torch.randn(emb.out_features, 5, dtype=torch.float64)
    emb.double()
    x = emb.lookup(sparse, torch.zeros(2, 1, dtype=torch.float64))
    table = emb.fold(weight)
    looked_up = (table[sparse + torch.tensor([0, 3, 8])]).sum(1)
    torch.testing.assert_close(looked_up, x @ weight)
    # unfold: the gradient of sum(T * G) with respect to the weight and the embeddings
    d_table = torch.randn_like(table)
    for t in emb.tables:
        t.weight.grad = torch.zeros_like(t.weight)
    d_weight = torch.zeros_like(weight)
    with torch.no_grad():
        emb.unfold(weight, d_table, d_weight)
    by_hand = [t.weight.grad.clone() for t in emb.tables]
    for t in emb.tables:
        t.weight.grad.zero_()
    w = weight.clone().requires_grad_()
    (emb.fold(w) * d_table).sum().backward()  # the gradients of sum(T * d_table)
    torch.testing.assert_close(d_weight[:-1], w.grad[:-1])  # the dense row is not its part
    for t, grad in zip(emb.tables, by_hand, strict=True):
        torch.testing.assert_close(grad, t.weight.grad)


def test_no_fold_where_it_does_not_pay_or_apply(monkeypatch):
    assert not compare(build("mmoe"), rows=20)[0]  # fewer rows than the 23 table rows
    assert not compare(build("single_task"))[0]  # one embedding set per task
    assert not compare(build("mmoe", expert_units=[]))[0]  # experts hand the input on
    monkeypatch.setattr(folding, "FOLD_TABLE_BYTES", 4 * 23 * 100)
    assert not compare(build("mmoe"))[0]  # 23 rows x (8 x 64 + 2 x 32) outputs
    monkeypatch.setattr(folding, "FOLD_TABLE_BYTES", 4 * 23 * 576)
    assert compare(build("mmoe"))[0]


def test_no_fold_without_sparse_columns():
    spec = InputSpec(vocabulary_sizes=[], embedding_dims=[], num_dense=3)
    net = network_class("mmoe")(spec, TASKS, make_config("mmoe", {}, 2))
    with torch.inference_mode(), net.folded_input(100):
        assert net.embedding.folded is None


def test_every_architecture_declares_readers_or_none():
    for name in list_models():
        readers = build(name).input_readers()
        assert readers is None or all(r.shared_input for r in readers)


def test_training_folds_only_for_many_rows_per_table_row_and_wide_readers():
    def folds(net, rows):
        fold = folding.FoldedInput.build(net.embedding, net.input_readers(), rows, training=True)
        return fold is not None

    mmoe = build("mmoe")  # 23 table rows; 576 reader outputs for 19 input columns
    assert not folds(mmoe, 4 * 23 - 1)
    assert folds(mmoe, 4 * 23)
    assert not folds(build("shared_bottom", bottom_units=[8]), 1000)  # 8 outputs


def test_sparse_embedding_gradients_keep_the_plain_input_layer():
    net = build("mmoe")
    net.embedding.sparse_grad = True  # folding would give the embeddings dense gradients
    assert folding.FoldedInput.build(net.embedding, net.input_readers(), 1000) is None
