"""Saving and loading models: exact round trips, no pickle, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mtlrec
from conftest import FEATURES, FUNNEL_TASKS, TASKS, funnel_table, make_table
from mtlrec import BundleError, Task
from mtlrec.bundle import BUNDLE_FILES


@pytest.mark.parametrize("arch", mtlrec.list_models())
def test_loaded_bundle_predicts_exactly_what_was_saved(arch, table, tmp_path):
    tasks = FUNNEL_TASKS if arch == "esmm" else TASKS
    model = mtlrec.create_model(arch, FEATURES, tasks, batch_norm=True)
    model.fit(funnel_table(table.head(500)), epochs=1, verbose=0)
    rows = make_table(200, seed=9)
    rows.loc[0, "color"] = "purple"  # unseen category: maps to the unknown id, no error
    before = model.predict(rows)
    model.save(tmp_path / "m")
    loaded = mtlrec.load(tmp_path / "m")
    after = loaded.predict(rows)
    assert set(after) == set(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    assert loaded.architecture == arch and loaded.num_parameters() == model.num_parameters()


def test_bundle_files_are_json_and_safetensors(table, tmp_path):
    model = mtlrec.MMoE(FEATURES, TASKS, num_experts=2).fit(table.head(300), epochs=1, verbose=0)
    path = model.save(tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "preprocessor.json",
        "weights.safetensors",
    ]
    config = json.loads((path / "config.json").read_text())
    assert config["architecture"] == "mmoe" and config["hyperparameters"]["num_experts"] == 2
    assert (path / "weights.safetensors").read_bytes()[8:9] == b"{"  # safetensors JSON header


def test_save_never_overwrites_without_asking(table, tmp_path):
    model = mtlrec.SharedBottom(FEATURES, TASKS).fit(table.head(300), epochs=1, verbose=0)
    model.save(tmp_path / "m")
    (tmp_path / "m" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(tmp_path / "m")
    model.save(tmp_path / "m", overwrite=True)
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"


def test_save_before_fit_is_refused(tmp_path):
    with pytest.raises(mtlrec.NotFittedError):
        mtlrec.MMoE(FEATURES, TASKS).save(tmp_path / "m")


@pytest.fixture
def saved(table, tmp_path):
    model = mtlrec.SharedBottom(FEATURES, TASKS).fit(table.head(300), epochs=1, verbose=0)
    return model.save(tmp_path / "m")


@pytest.mark.parametrize("name", ["config.json", "preprocessor.json", "weights.safetensors"])
def test_missing_file_is_named(saved, name):
    (saved / name).unlink()
    with pytest.raises(BundleError, match=name):
        mtlrec.load(saved)


def test_other_format_version_is_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    config["format_version"] = 99
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="version 99"):
        mtlrec.load(saved)


def test_weights_that_do_not_fit_are_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    config["hyperparameters"]["bottom_units"] = [7]
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="do not fit"):
        mtlrec.load(saved)


def edit(path, change) -> None:
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))


def test_an_architecture_this_version_does_not_know_names_the_writing_version(saved):
    def future(config):
        config.update(architecture="hyper_moe", mtlrec_version="9.1.0")

    edit(saved / "config.json", future)
    with pytest.raises(BundleError, match=r"'hyper_moe' is not registered") as error:
        mtlrec.load(saved)
    assert f"written by mtlrec 9.1.0 and this is mtlrec {mtlrec.__version__}" in str(error.value)
    assert "a newer mtlrec may be needed" in str(error.value)


def test_a_task_type_this_version_does_not_know_names_the_writing_version(saved):
    edit(saved / "config.json", lambda config: config.update(mtlrec_version="9.1.0"))
    edit(saved / "preprocessor.json", lambda state: state["tasks"][0].update(type="ordinal"))
    with pytest.raises(BundleError, match=r"preprocessor\.json: .*unknown type 'ordinal'") as error:
        mtlrec.load(saved)
    assert "written by mtlrec 9.1.0" in str(error.value) and "newer mtlrec" in str(error.value)


def test_every_bundle_file_gets_the_same_permissions(saved):
    modes = {name: (saved / name).stat().st_mode & 0o777 for name in BUNDLE_FILES}
    assert len(set(modes.values())) == 1, modes  # weights.safetensors was 0600


def test_not_a_folder(tmp_path):
    with pytest.raises(BundleError, match="not a folder"):
        mtlrec.load(tmp_path / "nothing")


@pytest.mark.parametrize(
    "tasks",
    [
        [Task("a"), Task("b", after="a", funnel="direct", penalty=0.5, joint="ab")],
        [Task("a", pos_weight=2.0), Task("b", after="a", ipw=0.3)],
    ],
    ids=["direct", "ipw"],
)
def test_funnel_tasks_round_trip_through_a_bundle(tasks, table, tmp_path):
    model = mtlrec.MMoE(FEATURES, tasks, num_experts=2).fit(
        funnel_table(table.head(300)), epochs=1, verbose=0
    )
    model.save(tmp_path / "m")
    loaded = mtlrec.load(tmp_path / "m")
    assert loaded.tasks == model.tasks
    before, after = model.predict(table.head(50)), loaded.predict(table.head(50))
    assert set(after) == {"a", "b", tasks[1].joint_name}
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
