"""Checkpoints and resume: a stopped fit continues to the very weights of an unbroken one."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import mtlrec
from mtlrec import CheckpointError, ConfigError, DenseFeature, SparseFeature, Task
from mtlrec.checkpoint import latest_checkpoint
from mtlrec.training import Optimizers

FEATURES = [SparseFeature("u"), SparseFeature("c"), DenseFeature("x")]
TASKS = [Task("click"), Task("buy")]


def table(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "u": rng.integers(0, 40, rows),
            "c": rng.choice(list("abcdef"), rows),
            "x": rng.normal(size=rows),
        }
    )
    frame["click"] = (rng.random(rows) < 1 / (1 + np.exp(-frame.x))).astype(int)
    frame["buy"] = ((frame.click == 1) & (rng.random(rows) < 0.3)).astype(int)
    return frame


def model(**params) -> mtlrec.MultiTaskModel:
    params = {"num_experts": 3, "expert_units": [16], "dropout": 0.1, **params}
    return mtlrec.MMoE(FEATURES, TASKS, seed=3, **params)


FIT = dict(epochs=3, batch_size=64, verbose=0, threads=1, checkpoint_every=7)


def same_weights(a: mtlrec.MultiTaskModel, b: mtlrec.MultiTaskModel) -> None:
    sa, sb = a.network.state_dict(), b.network.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


class Stop(Exception):
    """Stands for a crash in the middle of a fit."""


def stop_after(monkeypatch, steps: int) -> None:
    """Make the optimizer's ``steps``-th step of the next fit raise Stop."""
    original, calls = Optimizers.step, {"n": 0}

    def step(self):
        calls["n"] += 1
        if calls["n"] == steps:
            raise Stop
        original(self)

    monkeypatch.setattr(Optimizers, "step", step)


@pytest.mark.parametrize("balancer", ["equal", "uncertainty", "dwa"])
def test_a_fit_stopped_mid_epoch_resumes_to_the_unbroken_weights(tmp_path, monkeypatch, balancer):
    data, valid = table(), table(300, seed=1)
    kwargs = dict(FIT, balancer=balancer, validation=valid, early_stopping="click")
    unbroken = model().fit(data, checkpoint_dir=tmp_path / "a", **kwargs)
    with monkeypatch.context() as patch:
        stop_after(patch, 24 + 10)  # epoch 1 is 24 steps: stops in epoch 2, after step 7
        with pytest.raises(Stop):
            model().fit(data, checkpoint_dir=tmp_path / "b", **kwargs)
    assert latest_checkpoint(tmp_path / "b").name.endswith("epoch-0002-step-000000007")
    resumed = model().fit(data, checkpoint_dir=tmp_path / "b", resume=True, **kwargs)
    same_weights(unbroken, resumed)
    assert without_seconds(resumed.history_) == without_seconds(unbroken.history_)


def test_a_streamed_fit_resumes_to_the_unbroken_weights(tmp_path, monkeypatch):
    frame = table(2000)
    folder = tmp_path / "rows"
    folder.mkdir()
    for i, start in enumerate(range(0, 2000, 700)):
        part = pa.Table.from_pandas(frame.iloc[start : start + 700], preserve_index=False)
        pq.write_table(part, folder / f"part-{i}.parquet", row_group_size=200)
    kwargs = dict(FIT, shuffle_buffer=500)
    unbroken = model().fit(folder, checkpoint_dir=tmp_path / "a", **kwargs)
    with monkeypatch.context() as patch:
        stop_after(patch, 40)
        with pytest.raises(Stop):
            model().fit(folder, checkpoint_dir=tmp_path / "b", **kwargs)
    resumed = model().fit(folder, checkpoint_dir=tmp_path / "b", resume=True, **kwargs)
    same_weights(unbroken, resumed)
    assert without_seconds(resumed.history_) == without_seconds(unbroken.history_)


CHILD = """
import sys
import pandas as pd
sys.path.insert(0, {tests!r})
from test_resume import FIT, model
data = pd.read_parquet({data!r})
model().fit(data, checkpoint_dir={folder!r}, **dict(FIT, batch_size=8, checkpoint_every=20))
"""


def test_a_fit_killed_with_sigkill_mid_epoch_resumes_to_the_unbroken_weights(tmp_path):
    data = table(3000)
    data.to_parquet(tmp_path / "rows.parquet")
    folder = tmp_path / "run"
    code = CHILD.format(
        tests=str(Path(__file__).parent), data=str(tmp_path / "rows.parquet"), folder=str(folder)
    )
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)])
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            newest = latest_checkpoint(folder) if folder.exists() else None
            if newest is not None and "epoch-0002-step" in newest.name:
                break
            time.sleep(0.01)
        assert child.poll() is None, "the child ended before it could be killed mid-epoch"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    newest = latest_checkpoint(folder)
    assert newest is not None and "-step-" in newest.name  # a mid-epoch checkpoint
    kwargs = dict(FIT, batch_size=8, checkpoint_every=20)
    resumed = model().fit(data, checkpoint_dir=folder, resume=True, **kwargs)
    unbroken = model().fit(data, checkpoint_dir=tmp_path / "unbroken", **kwargs)
    same_weights(unbroken, resumed)
    assert without_seconds(resumed.history_) == without_seconds(unbroken.history_)


def test_resuming_with_other_settings_is_refused_naming_the_difference(tmp_path):
    data = table(500)
    model().fit(data, checkpoint_dir=tmp_path, **dict(FIT, epochs=1))
    with pytest.raises(CheckpointError, match=r"lr: saved 0\.001, now 0\.01"):
        model().fit(data, checkpoint_dir=tmp_path, resume=True, lr=0.01, **dict(FIT, epochs=1))
    with pytest.raises(CheckpointError, match=r"config\.num_experts: saved 3, now 4"):
        model(num_experts=4).fit(data, checkpoint_dir=tmp_path, resume=True, **FIT)
    with pytest.raises(CheckpointError, match=r"data\.rows: saved 500, now 400"):
        model().fit(data.iloc[:400], checkpoint_dir=tmp_path, resume=True, **FIT)


def test_a_folder_of_an_earlier_run_is_not_overwritten_without_resume(tmp_path):
    data = table(300)
    model().fit(data, checkpoint_dir=tmp_path, **dict(FIT, epochs=1))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ConfigError, match="holds checkpoints of an earlier run; pass resume=True"):
        model().fit(data, checkpoint_dir=tmp_path, **dict(FIT, epochs=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_resuming_a_finished_run_trains_no_more_and_extending_it_continues(tmp_path):
    data = table(400)
    done = model().fit(data, checkpoint_dir=tmp_path, **dict(FIT, epochs=2))
    again = model().fit(data, checkpoint_dir=tmp_path, resume=True, **dict(FIT, epochs=2))
    same_weights(done, again)
    assert [r["epoch"] for r in again.history_] == [1, 2]


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    data = table(400)
    import mtlrec.checkpoint as checkpoint

    real, calls = checkpoint._write_durably, {"n": 0}

    def full(path, data):  # the second checkpoint's tensors meet a full disk
        calls["n"] += 1
        if calls["n"] == 3:
            path.write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(checkpoint, "_write_durably", full)
    with pytest.raises(CheckpointError, match="No space left on device") as caught:
        model().fit(data, checkpoint_dir=tmp_path, **dict(FIT, epochs=2))
    assert str(tmp_path) in str(caught.value)
    kept = latest_checkpoint(tmp_path)
    assert kept is not None and kept.name.startswith("000000001-")  # the first, whole
    assert checkpoint.load_checkpoint(kept)["state"]["step"] == 7
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_checkpoint_every_must_be_a_positive_step_count(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint_every"):
        model().fit(table(100), checkpoint_dir=tmp_path, **dict(FIT, checkpoint_every=0))
    with pytest.raises(ConfigError, match="resume=True needs checkpoint_dir"):
        model().fit(table(100), resume=True, epochs=1, verbose=0)
