"""Process settings: threads per call, opt-in heap tuning, nothing left behind."""

from __future__ import annotations

import os

import pytest
import torch

import mtlrec
import mtlrec.cli
import mtlrec.estimator
import mtlrec.runtime as runtime
import mtlrec.training
from conftest import FEATURES, TASKS


class FakeLibc:
    """Records mallopt / malloc_trim calls instead of changing this process's heap."""

    def __init__(self):
        self.calls = []

    def mallopt(self, parameter, value):
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(runtime, "_libc", lambda: fake)
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    return fake


def test_fit_and_predict_leave_the_allocator_alone(libc, table):
    model = mtlrec.SharedBottom(FEATURES, TASKS).fit(table.head(300), epochs=1, verbose=0)
    model.predict(table.head(10))
    assert libc.calls == []


def test_retained_memory_is_opt_in_and_restored(libc, table):
    trim, mmap = runtime.M_TRIM_THRESHOLD, runtime.M_MMAP_THRESHOLD
    with mtlrec.retain_freed_memory() as retained:
        assert retained and runtime.allocator_retained()
        assert libc.calls == [("mallopt", trim, 64 << 20), ("mallopt", mmap, 16 << 20)]
        with mtlrec.retain_freed_memory():  # nested: only the outermost exit restores
            pass
        assert runtime.allocator_retained()
        mtlrec.SharedBottom(FEATURES, TASKS).fit(table.head(300), epochs=1, verbose=0)
        assert ("malloc_trim", 0) in libc.calls  # fit hands back what its steps kept
    assert not runtime.allocator_retained()
    assert libc.calls[-3:] == [
        ("mallopt", trim, 128 << 10),  # glibc's defaults
        ("mallopt", mmap, 128 << 10),
        ("malloc_trim", 0),
    ]


def test_the_users_glibc_variables_win(libc, monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert not mtlrec.retain_freed_memory()
    assert libc.calls == []


def test_the_cli_tunes_its_own_process_and_restores(libc, capsys):
    assert mtlrec.cli.main(["models"]) == 0
    assert libc.calls[0] == ("mallopt", runtime.M_TRIM_THRESHOLD, 64 << 20)
    assert not runtime.allocator_retained()


def test_threads_are_set_for_the_call_and_restored(monkeypatch, table):
    seen = []
    real_train = mtlrec.training.train

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_train(*args, **kwargs)

    monkeypatch.setattr(mtlrec.estimator, "train", spy)
    before = torch.get_num_threads()
    model = mtlrec.SharedBottom(FEATURES, TASKS)
    model.fit(table.head(300), epochs=1, verbose=0, threads=1)
    assert seen == [1] and torch.get_num_threads() == before
    monkeypatch.setattr(runtime, "available_cpus", lambda: 1)
    model.fit(table.head(300), epochs=1, verbose=0)  # default: the CPUs this process may use
    assert seen == [1, 1] and torch.get_num_threads() == before
    with pytest.raises(mtlrec.ConfigError, match="threads must be a positive integer"):
        model.predict(table.head(5), threads=0)


def test_available_cpus_follow_affinity_and_the_cgroup_quota(monkeypatch, tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert runtime.cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert runtime.cgroup_cpus(tmp_path) is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(runtime, "cgroup_cpus", lambda: None)
    assert mtlrec.available_cpus() == 4
    monkeypatch.setattr(runtime, "cgroup_cpus", lambda: 2.5)
    assert mtlrec.available_cpus() == 2


def test_more_threads_than_cpus_are_capped_with_a_warning(monkeypatch, table):
    monkeypatch.setattr(runtime, "available_cpus", lambda: 1)
    model = mtlrec.SharedBottom(FEATURES, TASKS).fit(table.head(200), epochs=1, verbose=0)
    seen = []
    original = model._outputs

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "_outputs", spy)
    with pytest.warns(mtlrec.MtlrecWarning, match=r"threads=8 is more than the 1 CPU\(s\)"):
        model.predict(table.head(5), threads=8)
    assert seen == [1]
