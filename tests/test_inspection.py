"""Gate inspection: summaries, utilisation arithmetic, fit's warnings, ``mtlrec inspect``."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import mtlrec
from conftest import FEATURES, TASKS, make_table
from mtlrec import inspection
from mtlrec.cli import main
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.exceptions import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# gate a mixes experts 0 and 1 of three (0 for expert 2), gate b all three evenly
WEIGHTS = {
    "a": np.array([[0.5, 0.5, 0.0], [0.7, 0.3, 0.0]], dtype=np.float32),
    "b": np.full((2, 3), 1 / 3, dtype=np.float32),
}
# PLE-like: level 0 has a shared gate; level 1's experts are other experts
LEVELS = {
    "level0/a": np.array([[0.6, 0.0, 0.4]]),
    "level0/shared": np.array([[0.2, 0.3, 0.5]]),
    "level1/a": np.array([[0.9, 0.1, 0.0]]),
}


def test_gate_summary_means_and_unreached_experts() -> None:
    frame = inspection.gate_summary(WEIGHTS)
    assert list(frame.index) == ["a", "b"] and frame.index.name == "gate"
    assert list(frame.columns) == ["expert_0", "expert_1", "expert_2"]
    np.testing.assert_allclose(frame.loc["a", ["expert_0", "expert_1"]], [0.6, 0.4], rtol=1e-6)
    assert math.isnan(frame.loc["a", "expert_2"])  # gate a never reaches expert 2
    np.testing.assert_allclose(frame.loc["b"], [1 / 3] * 3, rtol=1e-6)
    # gates with fewer experts leave NaN at the end of their row
    short = inspection.gate_summary({"x": np.array([[0.5, 0.5]]), "y": np.ones((1, 3)) / 3})
    assert math.isnan(short.loc["x", "expert_2"])


def test_expert_utilisation_by_hand() -> None:
    u = inspection.expert_utilisation(WEIGHTS)
    assert u["rows"] == 2
    a, b = u["gates"]["a"], u["gates"]["b"]
    entropy_a = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4)) / math.log(2)
    assert a["entropy"] == pytest.approx(entropy_a, rel=1e-6)
    assert (a["experts"], a["top_expert"]) == (2, 0)
    assert a["max_weight"] == pytest.approx(0.6)
    assert b["entropy"] == pytest.approx(1.0) and b["experts"] == 3
    e0, e2 = u["experts"]["expert_0"], u["experts"]["expert_2"]
    # expert 0: weight 0.6 from a (2 experts), 1/3 from b (3 experts)
    assert e0["share"] == pytest.approx((0.6 + 1 / 3) / 2)
    assert e0["gates"] == 2 and e0["uniform"] == pytest.approx(1 / 2.5)
    # expert 2: only b reaches it
    assert e2["share"] == pytest.approx(1 / 3) and e2["gates"] == 1
    assert e2["uniform"] == pytest.approx(1 / 3)
    assert inspection.utilisation_warnings(u) == []


def test_levels_have_their_own_experts() -> None:
    u = inspection.expert_utilisation(LEVELS)
    assert list(u["experts"]) == [
        "level0/expert_0",
        "level0/expert_1",
        "level0/expert_2",
        "level1/expert_0",
        "level1/expert_1",
    ]
    assert u["experts"]["level0/expert_0"]["share"] == pytest.approx(0.4)  # (0.6 + 0.2) / 2
    assert u["experts"]["level0/expert_1"]["gates"] == 1  # level0/a does not reach it
    assert u["experts"]["level1/expert_0"]["share"] == pytest.approx(0.9)


def test_collapsed_gate_and_unused_expert_are_named() -> None:
    weights = {
        "a": np.array([[0.97, 0.025, 0.005], [0.99, 0.0099, 0.0001]]),
        "b": np.array([[0.5, 0.499, 0.001], [0.5, 0.4995, 0.0005]]),
    }
    lines = inspection.utilisation_warnings(inspection.expert_utilisation(weights))
    assert len(lines) == 2
    assert lines[0].startswith("gate 'a' has collapsed onto expert_0: mean weight 0.980")
    # expert 2: mean share (0.00255 + 0.00075) / 2 = 0.00165 (0.0016 printed) < 0.01 x 1/3
    assert lines[1].startswith("expert expert_2 is almost never used: mean share 0.0016")
    # thresholds are arguments
    u = inspection.expert_utilisation(weights)
    assert inspection.utilisation_warnings(u, collapsed=0.99, rare=0.001) == []


def test_a_healthy_spread_is_no_warning() -> None:
    """The least used expert of healthy Adult fits held 0.08 of its uniform share."""
    weights = {"a": np.array([[0.3, 0.3, 0.3, 0.08 / 4 * 1.01, 0.09]])}
    weights["a"] /= weights["a"].sum()
    u = inspection.expert_utilisation(weights)
    assert inspection.utilisation_warnings(u) == []


def test_a_gate_reaching_one_expert_has_not_collapsed() -> None:
    u = inspection.expert_utilisation({"a": np.array([[1.0, 0.0]])})
    assert math.isnan(u["gates"]["a"]["entropy"])
    assert inspection.utilisation_warnings(u) == []


def test_check_utilisation_warns_in_one_form() -> None:
    collapsed = {"a": np.array([[0.98, 0.01, 0.01]] * 4), "b": np.full((4, 3), 1 / 3)}
    with pytest.warns(mtlrec.ExpertUtilisationWarning) as caught:
        inspection.check_utilisation(collapsed)
    (warning,) = caught
    assert str(warning.message).startswith("gate 'a' has collapsed onto expert_0")
    assert warning.filename == __file__  # the caller's line, not mtlrec's


def test_no_gates_and_bad_weights() -> None:
    with pytest.raises(ConfigError, match="no gates"):
        inspection.gate_summary({})
    with pytest.raises(mtlrec.DataError, match="gate 'a'"):
        inspection.expert_utilisation({"a": np.ones(3)})


@pytest.fixture(scope="module")
def ple() -> mtlrec.MultiTaskModel:
    return mtlrec.PLE(
        FEATURES,
        TASKS,
        num_levels=2,
        num_specific_experts=2,
        num_shared_experts=1,
        expert_units=[8],
        gate_units=[],
        tower_units=[4],
    ).fit(make_table(400), epochs=1, batch_size=64, verbose=0)


def test_model_gate_summary_and_fit_utilisation(ple) -> None:
    frame = ple.gate_summary(make_table(100, seed=1))
    assert list(frame.index) == ["level0/a", "level0/b", "level0/shared", "level1/a", "level1/b"]
    assert frame.shape[1] == 5  # 2 x 2 task experts + 1 shared
    # a task gate reaches its own 2 experts and the shared one; each row sums to 1
    assert frame.loc["level0/a"].isna().tolist() == [False, False, True, True, False]
    np.testing.assert_allclose(frame.sum(axis=1, skipna=True), 1.0, rtol=1e-5)
    u = ple.expert_utilisation_
    assert u["rows"] == 400 and set(u["gates"]) == set(frame.index)
    assert "level1/expert_4" in u["experts"]


def test_fit_warns_about_a_collapsed_gate_on_the_first_rows_only(monkeypatch):
    seen = []

    def collapsed(self, data, batch_size):
        seen.append(len(data))
        return {
            "a": np.tile([0.97, 0.02, 0.01], (len(data), 1)),
            "b": np.full((len(data), 3), 1 / 3),
        }

    monkeypatch.setattr(mtlrec.MultiTaskModel, "_gate_weights", collapsed)
    model = mtlrec.MMoE(FEATURES, TASKS, num_experts=3, expert_units=[4], tower_units=[4])
    with pytest.warns(mtlrec.ExpertUtilisationWarning) as caught:
        model.fit(make_table(5000), epochs=1, batch_size=512, verbose=0)
    assert seen == [inspection.UTILISATION_ROWS]
    assert model.expert_utilisation_["gates"]["a"]["max_weight"] == pytest.approx(0.97)
    (warning,) = caught
    assert str(warning.message).startswith("gate 'a' has collapsed onto expert_0")
    assert warning.filename == __file__  # shown at the user's fit call


def test_the_quick_start_model_warns_nothing():
    """A healthy MMoE (the README's quick start, one epoch) trips no threshold."""
    train, _ = load_adult()
    with warnings.catch_warnings():
        warnings.simplefilter("error", mtlrec.ExpertUtilisationWarning)
        mtlrec.MMoE(adult_features(), adult_tasks(), seed=1).fit(train, epochs=1, verbose=0)


def test_architectures_without_gates() -> None:
    model = mtlrec.SharedBottom(FEATURES, TASKS, bottom_units=[4], tower_units=[4])
    model.fit(make_table(200), epochs=1, verbose=0)
    assert model.expert_utilisation_ is None
    with pytest.raises(ConfigError, match=r"SharedBottom .* has no gates"):
        model.gate_summary(make_table(10))


def test_inspect_command(ple, tmp_path: Path, capsys) -> None:
    bundle = ple.save(tmp_path / "ple")
    make_table(100, seed=2).drop(columns=["a", "b"]).to_csv(tmp_path / "rows.csv", index=False)
    argv = ["inspect", str(bundle), "--data", str(tmp_path / "rows.csv"), "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mean gate weight per expert (ple, 100 rows)" in out
    assert "level0/shared" in out and "expert_4" in out
    assert "level1/b" in out and "entropy" in out
    assert (bundle / "gates.png").read_bytes()[:8] == PNG_MAGIC
    assert mtlrec.load(bundle).architecture == "ple"  # the heatmap does not spoil the bundle
    # an existing heatmap is kept unless --overwrite
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()
    assert main([*argv, "--output", str(tmp_path / "g.jpg")]) == 2
    assert "ending in .png" in capsys.readouterr().err


def test_inspect_a_model_without_gates(tmp_path: Path, capsys) -> None:
    model = mtlrec.SharedBottom(FEATURES, TASKS, bottom_units=[4], tower_units=[4])
    bundle = model.fit(make_table(200), epochs=1, verbose=0).save(tmp_path / "sb")
    make_table(20).to_csv(tmp_path / "rows.csv", index=False)
    assert main(["inspect", str(bundle), "--data", str(tmp_path / "rows.csv")]) == 2
    assert "shared_bottom model has no gates" in capsys.readouterr().err
    assert not (bundle / "gates.png").exists()
