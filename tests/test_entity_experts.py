"""Experts bound to feature groups (``entity_experts``): what each expert reads, how gates
and ``expert_groups`` see them, and the fast step against autograd with entity experts
and with pooled sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import mtlrec
from conftest import FUNNEL_TASKS, TASKS, check_fast_or_declared
from mtlrec import DenseFeature, SequenceFeature, SparseFeature, Task
from mtlrec.exceptions import ConfigError
from mtlrec.layers.experts import GroupedExperts
from mtlrec.models import list_models
from mtlrec.objective import Objective, l2_terms
from test_fast_step import assert_same, gradients


def entity_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Users and items with attributes, a user's history of items (lists) and an item's
    related items (joined strings), two binary labels with a funnel (b only after a)."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 25, n)
    item = rng.integers(0, 30, n)
    x = rng.normal(size=n)
    price = rng.normal(size=n)
    logit = x - price + np.where(item % 3 == 0, 1.0, -0.5) + np.where(user % 2 == 0, 0.5, -0.5)
    a = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    b = a * (rng.random(n) < 0.6).astype(int)
    return pd.DataFrame(
        {
            "user_id": user,
            "user_segment": rng.choice(["new", "casual", "loyal"], n),
            "user_activity": x,
            "item_id": item,
            "item_category": [f"c{i % 5}" for i in item],
            "item_price": price,
            "history": [list(rng.integers(0, 35, rng.integers(0, 7))) for _ in range(n)],
            "related": [
                "|".join(map(str, rng.integers(0, 35, rng.integers(0, 4)))) for _ in range(n)
            ],
            "a": a,
            "b": b,
            "watch": 2.0 * x + price + rng.normal(0, 0.5, n),
        }
    )


TABLE = entity_table()

#: user and item groups; a user history and an item's related items share the item table
FEATURES = [
    SparseFeature("user_id", embedding_dim=4, group="user"),
    SparseFeature("user_segment", embedding_dim=3, group="user"),
    DenseFeature("user_activity", group="user"),
    SparseFeature("item_id", embedding_dim=4, group="item"),
    SparseFeature("item_category", embedding_dim=3, group="item"),
    DenseFeature("item_price", group="item"),
    SequenceFeature("history", shares="item_id", max_len=5, group="user"),
    SequenceFeature("related", shares="item_id", max_len=3, pooling="sum", group="item"),
]
USER_COLUMNS = ["user_id", "user_segment", "user_activity", "history"]
ITEM_COLUMNS = ["item_id", "item_category", "item_price", "related"]


def other_values(frame: pd.DataFrame, columns: list[str], seed: int = 1) -> pd.DataFrame:
    """``frame`` with ``columns`` replaced by another entity table's (other users or
    other items), every other column unchanged."""
    other = entity_table(len(frame), seed=seed)
    return frame.assign(**{c: other[c].to_numpy() for c in columns})


def built(model: mtlrec.MultiTaskModel, table: pd.DataFrame = TABLE):
    model.preprocessor.fit(table)
    network = model.build()
    network.eval()
    return network


def input_row(model, network, frame: pd.DataFrame) -> torch.Tensor:
    with torch.no_grad():
        return network.embedding(model.preprocessor.transform(frame, with_labels=False))


def members(bank: GroupedExperts, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return bank(x)  # (E, B, H)


def assert_reads_only_its_group(bank: GroupedExperts, model, network, frame) -> None:
    """Each user member's output is unchanged by other items and changed by other users,
    and the other way around for item members."""
    groups = np.array(bank.member_groups)
    base = members(bank, input_row(model, network, frame))
    new_items = members(bank, input_row(model, network, other_values(frame, ITEM_COLUMNS)))
    new_users = members(bank, input_row(model, network, other_values(frame, USER_COLUMNS)))
    for e, group in enumerate(groups):
        same, changed = (new_items, new_users) if group == "user" else (new_users, new_items)
        assert torch.equal(same[e], base[e]), (e, group)
        assert not torch.allclose(changed[e], base[e]), (e, group)
        assert (base[e] != 0).any(), (e, group)  # a live expert, not relu-dead everywhere


class _EntityOnly(torch.nn.Module):
    """The entity members of a bank with shared experts, as a bank of their own."""

    def __init__(self, bank: GroupedExperts) -> None:
        super().__init__()
        self.bank = bank
        self.skip = bank.member_groups.count("shared")
        self.member_groups = bank.member_groups[self.skip :]

    def forward(self, x):
        return self.bank(x)[self.skip :]


def entity_members(bank: GroupedExperts, skip: int) -> _EntityOnly:
    """The entity experts of ``bank``, after its ``skip`` shared (or task) ones."""
    only = _EntityOnly(bank)
    assert only.skip == skip
    return only


def test_mmoe_entity_experts_read_only_their_groups_features() -> None:
    model = mtlrec.MMoE(
        FEATURES, TASKS, num_experts=0, entity_experts={"user": 2, "item": 2}, expert_units=[8]
    )
    network = built(model)
    assert isinstance(network.experts, GroupedExperts) and network.experts.shared is None
    assert network.experts.member_groups == ["user", "user", "item", "item"]
    assert network.expert_groups() == {"": ["user", "user", "item", "item"]}
    assert_reads_only_its_group(network.experts, model, network, TABLE.head(64))


def test_the_input_row_columns_of_each_group() -> None:
    model = mtlrec.MMoE(FEATURES, TASKS, num_experts=1, entity_experts={"user": 1, "item": 1})
    network = built(model)
    layer = network.embedding
    # the row: embeddings by size (3: segment, category; 4: user_id, item_id), then the
    # pooled history (4) and related items (4), then the dense user_activity, item_price
    user = [0, 1, 2, 6, 7, 8, 9, 14, 15, 16, 17, 22]
    item = [3, 4, 5, 10, 11, 12, 13, 18, 19, 20, 21, 23]
    assert layer.out_features == 24
    assert layer.group_columns("user").tolist() == user
    assert layer.group_columns("item").tolist() == item
    assert layer.feature_groups == ["user", "item"]
    entity = network.experts.entity
    assert entity["user"].layers[0].in_features == entity["item"].layers[0].in_features == 12
    assert network.experts.shared.layers[0].in_features == 24


def test_mmoe_keeps_its_shared_experts_first() -> None:
    model = mtlrec.MMoE(
        FEATURES, TASKS, num_experts=2, entity_experts={"item": 1, "user": 3}, expert_units=[8]
    )
    network = built(model)
    groups = ["shared", "shared", "item", "user", "user", "user"]
    assert network.expert_groups() == {"": groups}
    out = network(model.preprocessor.transform(TABLE.head(10)))
    assert {k: tuple(v.shape) for k, v in out.gates.items()} == {"a": (10, 6), "b": (10, 6)}
    torch.testing.assert_close(out.gates["a"].sum(1), torch.ones(10))
    assert_reads_only_its_group(
        entity_members(network.experts, skip=2), model, network, TABLE.head(64)
    )


def test_a_two_tower_shared_bottom_keeps_user_and_item_apart() -> None:
    model = mtlrec.SharedBottom(
        FEATURES,
        TASKS,
        shared_bottom=False,
        entity_experts={"user": 1, "item": 1},
        bottom_units=[8, 6],
    )
    network = built(model)
    bottom = network.bottom
    assert bottom.shared is None and bottom.member_groups == ["user", "item"]
    assert network.towers.mlps[0].layers[0].in_features == 2 * 6  # the bottoms side by side
    assert_reads_only_its_group(bottom, model, network, TABLE.head(64))
    # so the towers' input: the first 6 columns move only with the user, the rest only
    # with the item (a hook on the towers sees what the bottoms handed on)
    seen = []
    handle = network.towers.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        for frame in (TABLE.head(32), other_values(TABLE.head(32), ITEM_COLUMNS)):
            network(model.preprocessor.transform(frame, with_labels=False))
    handle.remove()
    assert torch.equal(seen[0][:, :6], seen[1][:, :6])
    assert not torch.allclose(seen[0][:, 6:], seen[1][:, 6:])


def test_a_shared_bottom_beside_group_bottoms() -> None:
    model = mtlrec.SharedBottom(FEATURES, TASKS, entity_experts={"item": 2}, bottom_units=[5])
    network = built(model)
    assert network.bottom.member_groups == ["shared", "item", "item"]
    assert network.towers.mlps[0].layers[0].in_features == 3 * 5


def test_shared_bottom_false_needs_entity_experts() -> None:
    with pytest.raises(ConfigError, match="shared_bottom=False"):
        mtlrec.SharedBottom(FEATURES, TASKS, shared_bottom=False)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_ple_gates_mix_task_shared_and_entity_experts(levels: int) -> None:
    model = mtlrec.PLE(
        FEATURES,
        TASKS,
        num_specific_experts=2,
        num_shared_experts=1,
        num_levels=levels,
        entity_experts={"user": 2, "item": 1},
        expert_units=[6],
        gate_units=[],
    )
    network = built(model)
    first = ["a", "a", "b", "b", "shared", "user", "user", "item"]
    later = ["a", "a", "b", "b", "shared"]
    assert network.expert_groups() == {
        f"level{i}": first if i == 0 else later for i in range(levels)
    }
    out = network(model.preprocessor.transform(TABLE.head(10)))
    expected = {}  # gate -> the experts it mixes
    for i in range(levels):
        experts = len(first if i == 0 else later)
        shared = list(range(4, experts))  # the shared expert, then any entity experts
        expected[f"level{i}/a"] = [0, 1, *shared]
        expected[f"level{i}/b"] = [2, 3, *shared]
        if i < levels - 1:  # a shared gate feeds the next level: it mixes every expert
            expected[f"level{i}/shared"] = list(range(experts))
        # each gate's softmax is as wide as what it mixes: task gates 2 + 1 (+ 3 entity)
        widths = sorted({o.out_features for o in network.levels[i].gates.outs})
        assert widths == sorted({len(e) for n, e in expected.items() if n.startswith(f"level{i}/")})
    assert set(out.gates) == set(expected)
    for name, weights in out.gates.items():
        assert weights.shape == (10, len(first if name.startswith("level0") else later))
        mixed = weights.abs().sum(0).nonzero().flatten().tolist()
        assert mixed == expected[name], name
        torch.testing.assert_close(weights.sum(1), torch.ones(10))
    bank = network.levels[0].experts
    assert isinstance(bank, GroupedExperts) and bank.members == 8
    assert_reads_only_its_group(entity_members(bank, skip=5), model, network, TABLE.head(64))


def test_cgc_with_entity_experts_only_beside_its_task_experts() -> None:
    model = mtlrec.CGC(
        FEATURES,
        TASKS,
        num_specific_experts=1,
        num_shared_experts=0,
        entity_experts={"item": 2},
        expert_units=[4],
    )
    network = built(model)
    assert network.expert_groups() == {"level0": ["a", "b", "item", "item"]}
    out = network(model.preprocessor.transform(TABLE.head(7)))
    assert [o.out_features for o in network.levels[0].gates.outs] == [3]
    mixed = {k: v.abs().sum(0).nonzero().flatten().tolist() for k, v in out.gates.items()}
    assert mixed == {"level0/a": [0, 2, 3], "level0/b": [1, 2, 3]}


def test_omoe_with_entity_experts() -> None:
    model = mtlrec.OMoE(FEATURES, TASKS, num_experts=1, entity_experts={"user": 1, "item": 1})
    network = built(model)
    assert network.expert_groups() == {"": ["shared", "user", "item"]}
    out = network(model.preprocessor.transform(TABLE.head(5)))
    assert {k: tuple(v.shape) for k, v in out.gates.items()} == {"shared": (5, 3)}


@pytest.mark.parametrize("arch", ["esmm", "single_task"])
def test_architectures_without_experts_refuse_entity_experts(arch: str) -> None:
    tasks = FUNNEL_TASKS if arch == "esmm" else TASKS
    with pytest.raises(ConfigError, match="entity_experts"):
        mtlrec.create_model(arch, FEATURES, tasks, entity_experts={"user": 1})


def test_entity_experts_with_no_shared_experts_need_entity_experts() -> None:
    with pytest.raises(ConfigError, match="num_experts"):
        mtlrec.MMoE(FEATURES, TASKS, num_experts=0)


def test_a_model_with_entity_experts_trains_and_predicts() -> None:
    model = mtlrec.MMoE(
        FEATURES, TASKS, num_experts=0, entity_experts={"user": 2, "item": 2}, expert_units=[8]
    )
    model.fit(TABLE, epochs=1, batch_size=64, verbose=0)
    assert model.history_[0]["step"] == "fast"
    predictions = model.predict(TABLE.head(20))
    assert all(np.isfinite(predictions[t]).all() for t in ("a", "b"))


# --------------------------------------------------------------- fast step vs autograd
SMALL = {
    "single_task": {"bottom_units": [6]},
    "shared_bottom": {"bottom_units": [8, 6]},
    "omoe": {"num_experts": 2, "expert_units": [6]},
    "mmoe": {"num_experts": 2, "expert_units": [6, 4], "gate_units": [4]},
    "cgc": {"num_specific_experts": 1, "num_shared_experts": 1, "expert_units": [6]},
    "ple": {"num_specific_experts": 1, "num_shared_experts": 2, "expert_units": [6]},
    "esmm": {"tower_units": [6]},
}


def setup(arch: str, features, params: dict, rows: int = 200):
    """(network, objective, batch) like test_fast_step's, on the entity table."""
    tasks = (
        FUNNEL_TASKS if arch == "esmm" else [Task("a"), Task("b"), Task("watch", type="regression")]
    )
    model = mtlrec.create_model(arch, features, tasks, **{**SMALL.get(arch, {}), **params})
    model.preprocessor.fit(TABLE)
    c = model.config
    objective = Objective(
        model.tasks, model.preprocessor.heads, l2_terms(c.l2_embedding, c.l2_dense)
    )
    batch = objective.training_labels(model.preprocessor.transform(TABLE.head(rows)))
    return model.build(), objective, batch


ENTITY_CASES = [
    ("mmoe", {"entity_experts": {"user": 2, "item": 1}}),
    ("mmoe", {"num_experts": 0, "entity_experts": {"user": 2, "item": 2}}),
    ("omoe", {"entity_experts": {"user": 1, "item": 2}}),
    ("cgc", {"entity_experts": {"user": 1, "item": 1}}),
    ("ple", {"entity_experts": {"user": 2, "item": 1}}),
    ("ple", {"num_shared_experts": 0, "num_levels": 3, "entity_experts": {"item": 1}}),
    ("shared_bottom", {"entity_experts": {"user": 1, "item": 1}}),
    ("shared_bottom", {"shared_bottom": False, "entity_experts": {"user": 1, "item": 1}}),
    ("shared_bottom", {"shared_bottom": False, "entity_experts": {"user": 1}}),
]
OPTIONS = [{}, {"dropout": 0.2, "l2_embedding": 1e-3, "l2_dense": 1e-3}, {"activation": "tanh"}]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize(("arch", "params"), ENTITY_CASES, ids=str)
def test_entity_experts_have_fast_gradients_equal_autograd(arch, params, options) -> None:
    network, objective, batch = setup(arch, FEATURES, {**params, **options})
    slow = gradients(network, objective, batch, None, fast=False)
    fast = gradients(network, objective, batch, None, fast=True)
    assert fast[0].path == "fast", fast[0].reason
    assert_same(fast, slow)
    entity = [n for n in fast[3] if ".entity." in n]
    assert entity and all(fast[3][n].abs().sum() > 0 for n in entity if n.endswith("weight"))


def test_micro_batches_with_entity_experts_equal_autograd() -> None:
    network, objective, batch = setup(
        "ple", FEATURES, {"entity_experts": {"user": 1, "item": 2}}, rows=200
    )
    slow = gradients(network, objective, batch, 64, fast=False)
    fast = gradients(network, objective, batch, 64, fast=True)
    assert fast[0].path == "fast", fast[0].reason
    assert_same(fast, slow)


#: no groups: a mean- and a sum-pooled sequence on the item table, for every architecture
POOLED = [
    SparseFeature("user_id", embedding_dim=4, group="user"),  # POSO personalises by it
    SparseFeature("item_id", embedding_dim=4),
    SparseFeature("item_category", embedding_dim=3),
    DenseFeature("user_activity"),
    DenseFeature("item_price"),
    SequenceFeature("history", shares="item_id", max_len=5),
    SequenceFeature("related", shares="item_id", max_len=3, pooling="sum"),
]


@pytest.mark.parametrize("options", [{}, {"dropout": 0.2, "l2_embedding": 1e-3}], ids=str)
@pytest.mark.parametrize("arch", list_models())
def test_pooled_sequences_have_fast_gradients_equal_autograd(arch: str, options) -> None:
    network, objective, batch = setup(arch, POOLED, options)
    assert network.embedding.sparse_tables[1] == network.embedding.sequences[0].table
    assert network.embedding.sequences[1].table == network.embedding.sequences[0].table
    slow = gradients(network, objective, batch, None, fast=False)
    fast = gradients(network, objective, batch, None, fast=True)
    check_fast_or_declared(network, fast, slow)
    assert_same(fast, slow)
    # the shared table's rows used only by the histories got their gradient too
    layer = network.embedding
    stack, first = layer.placement[layer.sparse_tables[1]]
    rows = layer.table_shapes[layer.sparse_tables[1]][0]
    used = set(batch.sequences[batch.sequences > 0].tolist()) - set(batch.sparse[:, 1].tolist())
    assert used
    grad = fast[3][f"embedding.tables.{stack}.weight"][first : first + rows]
    assert all(grad[i].abs().sum() > 0 for i in used)
    assert torch.equal(grad[0], torch.zeros_like(grad[0]))  # padding: no item, no gradient


def test_pooled_sequences_with_entity_experts_and_micro_batches() -> None:
    network, objective, batch = setup(
        "mmoe", FEATURES, {"num_experts": 1, "entity_experts": {"user": 1, "item": 1}}
    )
    slow = gradients(network, objective, batch, 48, fast=False)
    fast = gradients(network, objective, batch, 48, fast=True)
    assert fast[0].path == "fast", fast[0].reason
    assert_same(fast, slow)


@pytest.mark.parametrize("pooling", ["max", "attention"])
@pytest.mark.parametrize("arch", ["mmoe", "shared_bottom", "single_task"])
def test_max_and_attention_pooling_decline_naming_the_pooling(arch: str, pooling: str) -> None:
    target = "item_id" if pooling == "attention" else None
    features = [
        *[f for f in POOLED if f.name != "related"],
        SequenceFeature("related", shares="item_id", max_len=3, pooling=pooling, target=target),
    ]
    network, objective, batch = setup(arch, features, {})
    fast = gradients(network, objective, batch, None, fast=True)
    assert fast[0].path == "autograd"
    assert f"{pooling} pooling" in fast[0].reason
    assert_same(fast, gradients(network, objective, batch, None, fast=False))
