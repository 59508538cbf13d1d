"""What fit and load tell a user: early stopping's epoch on stderr and in the log, and a
loaded model's repr naming its architecture."""

from __future__ import annotations

import logging
import re

import mtlrec
from conftest import FEATURES, TASKS, make_table


def test_early_stopping_says_when_it_stopped_and_which_weights_it_kept(caplog, capsys):
    model = mtlrec.MMoE(FEATURES, TASKS, num_experts=2, expert_units=[4], tower_units=[4])
    with caplog.at_level(logging.INFO, logger="mtlrec"):
        model.fit(
            make_table(400),
            validation=make_table(200, seed=1),
            epochs=30,
            lr=0.3,  # a large step: validation AUC stops improving within a few epochs
            early_stopping="a/auc",
            patience=1,
            verbose=1,
        )
    err = capsys.readouterr().err
    kept = re.search(r"kept the weights of epoch (\d+) \(best a/auc (0\.\d{4})\)", err)
    assert kept, err
    best = int(kept.group(1))
    aucs = [h["validation"]["a"]["auc"] for h in model.history_]
    assert aucs[best - 1] == max(aucs) and f"{max(aucs):.4f}" == kept.group(2)
    if len(model.history_) < 30:
        assert f"early stopping after epoch {len(model.history_)}: a/auc did not improve" in err
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"kept the weights of epoch {best}") for m in messages)
    # verbose 0: the log only
    model.fit(
        make_table(400), validation=make_table(200, 1), epochs=2, early_stopping="a", verbose=0
    )
    assert "kept the weights" not in capsys.readouterr().err


def test_a_loaded_model_is_its_architecture_class(tmp_path):
    model = mtlrec.PLE(
        FEATURES,
        TASKS,
        num_specific_experts=1,
        num_shared_experts=1,
        expert_units=[4],
        gate_units=[],
        tower_units=[4],
    )
    path = model.fit(make_table(200), epochs=1, verbose=0).save(tmp_path / "ple")
    loaded = mtlrec.load(path)
    assert type(loaded) is mtlrec.PLE
    assert repr(loaded) == "PLE(architecture='ple', tasks=['a', 'b'], fitted)"
