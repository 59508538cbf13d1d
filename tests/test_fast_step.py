"""The fast step (per-block rules on a tape) against autograd, over the registry.

For every registered architecture and a matrix of settings (activations, dropout, batch
norm, L2 terms, every head, micro-batches, batches that fold the embeddings), one
batch's gradients by the fast step equal autograd's, or the fast step declines and says
why. A network whose forward does something without a rule is trained by autograd.
"""

from __future__ import annotations

import pytest
import torch

import mtlrec
from conftest import (
    FEATURES,
    FUNNEL_TASKS,
    HEAD_TASKS,
    TASKS,
    check_fast_or_declared,
    declared_without_rule,
    funnel_table,
    make_heads_table,
    make_table,
)
from mtlrec import Task
from mtlrec.layers import Declined, Tape, Traced
from mtlrec.layers.folding import FoldedInput
from mtlrec.models import MultiTaskNetwork, list_models
from mtlrec.models.moe import MMoENet
from mtlrec.objective import Objective, l2_terms
from mtlrec.training import Accumulator, build_optimizers

#: settings -> the reason the fast step declines (None: it must run)
SETTINGS = [
    ({}, None),
    ({"activation": "tanh"}, None),
    ({"activation": "leaky_relu", "dropout": 0.0}, None),
    ({"dropout": 0.3}, None),
    ({"l2_embedding": 1e-3, "l2_dense": 1e-3}, None),
    ({"activation": "gelu"}, "activation 'gelu'"),
    ({"activation": "tanh", "dropout": 0.2}, "dropout after 'tanh'"),
    ({"batch_norm": True}, "batch norm"),
]
SMALL = {
    "single_task": {"bottom_units": [8]},
    "shared_bottom": {"bottom_units": [16, 8]},
    "omoe": {"num_experts": 3, "expert_units": [8]},
    "mmoe": {"num_experts": 3, "expert_units": [8, 8], "gate_units": [4]},
    "cgc": {"num_specific_experts": 2, "num_shared_experts": 1, "expert_units": [8]},
    "ple": {"num_specific_experts": 1, "num_shared_experts": 2, "expert_units": [8]},
    "esmm": {"tower_units": [8]},
}
TABLE = make_heads_table(1200)


def setup(arch: str, params: dict, tasks=None, rows: int = 256, table=None):
    """(model with a fitted preprocessor, a batch with the labels training reads, the
    objective)."""
    tasks = tasks or (FUNNEL_TASKS if arch == "esmm" else HEAD_TASKS)
    table = funnel_table(TABLE) if table is None else table  # b after a: b = 1 only where a = 1
    model = mtlrec.create_model(arch, FEATURES, tasks, **{**SMALL.get(arch, {}), **params})
    model.preprocessor.fit(table)
    c = model.config
    objective = Objective(
        model.tasks, model.preprocessor.heads, l2_terms(c.l2_embedding, c.l2_dense)
    )
    batch = objective.training_labels(model.preprocessor.transform(table.head(rows)))
    return model, batch, objective


def gradients(network, objective, batch, micro, fast, seed=11):
    """(path, loss, task losses, gradient per parameter) of one batch."""
    build_optimizers(network, "adam", 1e-3).zero_grad()  # gradients in the flat buffer
    network.train()
    step = Accumulator(network, objective, micro, fast=fast)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the same dropout masks for both steps
        loss, losses, _ = step(batch)
    grads = {n: p.grad.clone() for n, p in network.named_parameters()}
    return step, loss, losses, grads


def assert_same(fast, slow):
    _, loss_f, losses_f, grads_f = fast
    _, loss_s, losses_s, grads_s = slow
    torch.testing.assert_close(loss_f, loss_s, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses_f, losses_s, rtol=1e-5, atol=1e-6)
    for name, g in grads_s.items():
        scale = g.abs().max().item() or 1.0
        # a folded embedding table's gradient sums 1,200 rows' float32 terms in another
        # order than autograd's (seen: 2.1e-5 of the largest entry)
        tolerance = 5e-5 if name.startswith("embedding.") else 2e-5
        torch.testing.assert_close(
            grads_f[name] / scale, g / scale, rtol=0, atol=tolerance, msg=name
        )


@pytest.mark.parametrize("rows, micro", [(96, None), (256, 64), (1200, None)])
@pytest.mark.parametrize("params, declines", SETTINGS, ids=lambda v: str(v))
@pytest.mark.parametrize("arch", list_models())
def test_fast_gradients_equal_autograd_or_the_step_declines(arch, params, declines, rows, micro):
    model, batch, objective = setup(arch, params, rows=rows)
    network = model.build()
    slow = gradients(network, objective, batch, micro, fast=False)
    fast = gradients(network, objective, batch, micro, fast=True)
    if declines is not None:  # this setting's reason, or the network's own declaration
        declared = declared_without_rule(network)
        assert fast[0].path == "autograd"
        assert declines in fast[0].reason or (declared and declared in fast[0].reason)
        return
    check_fast_or_declared(network, fast, slow)
    assert_same(fast, slow)
    assert any(g.abs().sum() > 0 for g in fast[3].values())


FUNNELS = [
    {"funnel": "conditional"},
    {"funnel": "entire_space"},
    {"funnel": "direct", "penalty": 2.0},
    {"funnel": "conditional", "ipw": 0.5},
    {"funnel": "entire_space", "ipw": 1.0, "pos_weight": 3.0},
]


@pytest.mark.parametrize(("mode", "whole"), [("conditional", 0), ("entire_space", None)])
def test_a_conditional_step_keeps_the_stacked_logits(mode, whole):
    """Two binary tasks whose losses read their own towers' logits are scored from the
    towers' (T, B) output at once; a step whose loss reads the joint is not."""
    table = TABLE.assign(b=TABLE["b"].where(TABLE["a"] == 1))
    tasks = [Task("a"), Task("b", after="a", funnel=mode)]
    model, batch, objective = setup("mmoe", {}, tasks=tasks, rows=300, table=table)
    assert objective._whole == whole
    network = model.build()
    slow = gradients(network, objective, batch, None, fast=False)
    fast = gradients(network, objective, batch, None, fast=True)
    assert fast[0].path == "fast", fast[0].reason
    assert_same(fast, slow)


def test_a_funnel_chain_has_fast_gradients_equal_autograd():
    table = TABLE.assign(b=TABLE["b"].where(TABLE["a"] == 1))
    table["visits"] = ((table["b"] == 1) & (table["visits"] > 1)).astype(float)
    table.loc[table["b"] != 1, "visits"] = None
    tasks = [
        Task("a"),
        Task("b", after="a", funnel="entire_space", ipw=0.5),
        Task("visits", after="b", funnel="direct", penalty=1.0),
    ]
    model, batch, objective = setup("mmoe", {}, tasks=tasks, rows=300, table=table)
    network = model.build()
    slow = gradients(network, objective, batch, 128, fast=False)
    fast = gradients(network, objective, batch, 128, fast=True)
    assert fast[0].path == "fast", fast[0].reason
    assert_same(fast, slow)


@pytest.mark.parametrize("options", FUNNELS, ids=str)
@pytest.mark.parametrize("arch", [a for a in list_models() if a != "esmm"])
def test_funnel_steps_have_fast_gradients_equal_autograd(arch, options):
    """Every funnel mode and term on every architecture, with a partly missing label."""
    tasks = [Task("a"), Task("b", after="a", **options), Task("price", type="regression")]
    table = TABLE.assign(b=TABLE["b"].where(TABLE["a"] == 1))  # no b label where a = 0
    table.loc[::7, "price"] = None  # and some regression labels missing
    model, batch, objective = setup(arch, {}, tasks=tasks, rows=300, table=table)
    assert batch.mask is not None and not batch.mask[:, 2].all()
    network = model.build()
    slow = gradients(network, objective, batch, 128, fast=False)
    fast = gradients(network, objective, batch, 128, fast=True)
    check_fast_or_declared(network, fast, slow)
    assert_same(fast, slow)


WIDE = {
    "shared_bottom": {"bottom_units": [64, 8]},
    "omoe": {"num_experts": 6, "expert_units": [16]},
    "mmoe": {"num_experts": 6, "expert_units": [16], "gate_units": []},
    "cgc": {"num_specific_experts": 3, "num_shared_experts": 2, "expert_units": [16]},
    "ple": {
        "num_specific_experts": 2,
        "num_shared_experts": 2,
        "expert_units": [16],
        "gate_units": [8],
    },
    "esmm": {"tower_units": [[32], [24, 8]]},
}


@pytest.mark.parametrize("params", [{}, {"dropout": 0.2, "l2_embedding": 1e-3}], ids=str)
@pytest.mark.parametrize("arch", sorted(WIDE))
def test_folded_training_gradients_equal_autograd(arch, params):
    model, batch, objective = setup(arch, {**WIDE[arch], **params}, rows=1200)
    network = model.build()
    fold = FoldedInput.build(network.embedding, network.input_readers(), 1200, training=True)
    assert fold is not None  # wide readers and many rows per table row: the step folds
    slow = gradients(network, objective, batch, None, fast=False)
    fast = gradients(network, objective, batch, None, fast=True)
    assert fast[0].path == "fast"
    assert_same(fast, slow)


def test_large_batches_fold_the_embeddings_in_training():
    model, _, _ = setup("mmoe", {"expert_units": [32]}, rows=1200)
    net = model.build()
    assert FoldedInput.build(net.embedding, net.input_readers(), 1200, training=True) is not None
    assert FoldedInput.build(net.embedding, net.input_readers(), 96, training=True) is None


def test_each_head_alone_has_fast_gradients():
    for task in HEAD_TASKS:
        model, batch, objective = setup("shared_bottom", {}, tasks=[task])
        network = model.build()
        fast = gradients(network, objective, batch, None, fast=True)
        assert fast[0].path == "fast"
        assert_same(fast, gradients(network, objective, batch, None, fast=False))


class ScaledMMoE(MMoENet):
    """A subclass whose forward applies an operation no block has a rule for."""

    def forward(self, batch):
        out = super().forward(batch)
        out.logits = {k: 2.0 * v for k, v in out.logits.items()}
        return out


class ExpertPerTaskMMoE(MMoENet):
    """A subclass whose forward uses blocks only, differently from MMoE: task t's tower
    reads expert t, and the gates are not used at all."""

    def forward(self, batch):
        experts = self.experts(self.embedding(batch))  # (E, B, H)
        return self.outputs(self.towers(experts[: len(self.tasks)]))


def subclass_setup(cls):
    model, batch, objective = setup("mmoe", {}, tasks=TASKS)
    network = model.build()
    sub = cls(
        mtlrec.models.InputSpec(
            vocabulary_sizes=model.preprocessor.vocabulary_sizes,
            embedding_dims=[f.embedding_dim for f in model.preprocessor.sparse_features],
            num_dense=len(model.preprocessor.dense_features),
        ),
        TASKS,
        model.config,
    )
    sub.load_state_dict(network.state_dict())
    return sub, network, batch, objective


def test_a_subclass_with_an_operation_without_rule_trains_by_autograd():
    sub, parent, batch, objective = subclass_setup(ScaledMMoE)
    fast = gradients(sub, objective, batch, None, fast=True)
    assert fast[0].path == "autograd" and "without a rule" in fast[0].reason
    assert_same(fast, gradients(sub, objective, batch, None, fast=False))
    # and that is not what the parent's rules give
    parent_grads = gradients(parent, objective, batch, None, fast=True)[3]
    assert not torch.allclose(parent_grads["towers.outs.0.weight"], fast[3]["towers.outs.0.weight"])


def test_a_subclass_composed_of_blocks_gets_the_gradients_of_its_own_forward():
    sub, parent, batch, objective = subclass_setup(ExpertPerTaskMMoE)
    fast = gradients(sub, objective, batch, None, fast=True)
    assert fast[0].path == "fast"
    assert_same(fast, gradients(sub, objective, batch, None, fast=False))
    assert all(not g.any() for n, g in fast[3].items() if n.startswith("gates."))  # unused
    parent_grads = gradients(parent, objective, batch, None, fast=True)[3]
    assert parent_grads["gates.outs.0.weight"].any()


def test_hooks_and_heads_without_a_gradient_make_the_step_decline():
    model, batch, objective = setup("shared_bottom", {}, tasks=TASKS)
    network = model.build()
    handle = network.bottom.register_forward_hook(lambda *args: None)
    assert "module hooks" in gradients(network, objective, batch, None, True)[0].reason
    handle.remove()
    network.towers.outs[0].weight.register_hook(lambda g: g)
    assert "autograd hooks" in gradients(network, objective, batch, None, True)[0].reason

    class NoGradientBinary(type(model.preprocessor.heads["a"])):
        gradient = mtlrec.heads.Head.gradient

    heads = dict(model.preprocessor.heads, a=NoGradientBinary(TASKS[0]))
    net = model.build()
    step = gradients(net, Objective(TASKS, heads), batch, None, True)[0]
    assert step.path == "autograd" and "no closed-form gradient" in step.reason


def test_traced_values_decline_operations_without_rules():
    tape = Tape()
    x = tape.value(torch.ones(2, 3))
    for operation in (lambda: x * 2, lambda: torch.relu(x), lambda: x.exp(), lambda: x[0]):
        with pytest.raises((Declined, TypeError)):
            operation()
    assert isinstance(x.squeeze(0), Traced) and x.shape == (2, 3)


def test_fit_reports_the_step_that_ran_and_both_train_alike():
    table = make_table(1500)
    runs = {}
    for fast in (True, False):
        model = mtlrec.MMoE(FEATURES, TASKS, num_experts=3, dropout=0.1, seed=4)
        model.fit(table, epochs=2, batch_size=128, fast=fast, verbose=0)
        runs[fast] = model
    assert [h["step"] for h in runs[True].history_] == ["fast", "fast"]
    assert [h["step"] for h in runs[False].history_] == ["autograd", "autograd"]
    assert runs[False].history_[0]["step_reason"] == "fast=False"
    a, b = runs[True].predict(table.head(300)), runs[False].predict(table.head(300))
    for task in ("a", "b"):  # same masks, same gradients to float rounding: same model
        torch.testing.assert_close(
            torch.from_numpy(a[task]), torch.from_numpy(b[task]), rtol=0, atol=2e-4
        )


def test_a_declining_network_still_fits_and_logs_why(caplog):
    model = mtlrec.create_model("mmoe", FEATURES, TASKS, activation="gelu")
    with caplog.at_level("INFO", logger="mtlrec.training"):
        model.fit(make_table(500), epochs=1, verbose=0)
    assert model.history_[0]["step"] == "autograd"
    assert "activation 'gelu'" in model.history_[0]["step_reason"]
    assert any("training step: autograd" in r.message for r in caplog.records)


def test_every_registered_network_is_a_multitask_network():
    for name in list_models():
        assert issubclass(mtlrec.models.network_class(name), MultiTaskNetwork)


def test_a_forward_that_replaces_logits_is_never_scored_on_the_towers_stack():
    sub, _, batch, objective = subclass_setup(ScaledMMoE)
    out = sub.eval()(batch)
    assert out.towers is not None and out.stacked is None  # replaced: the stack is stale
    sums = objective.sums(out.logits, batch, out.stacked)
    by_hand = torch.stack(
        [
            torch.nn.functional.binary_cross_entropy_with_logits(
                out.logits[t.name], batch.labels[:, i], reduction="sum"
            )
            for i, t in enumerate(TASKS)
        ]
    )
    torch.testing.assert_close(sums, by_hand)
    plain = MMoENet.forward(sub, batch)  # the parent's forward keeps its stack
    assert plain.stacked is not None and plain.stacked.shape == (2, len(batch))
