"""retain_freed_memory: glibc thresholds set once, with opt-outs honoured."""

from __future__ import annotations

import pytest

import mtlrec
from conftest import FEATURES, TASKS, make_table
from mtlrec import heap


class FakeLibc:
    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.trims: list[int] = []
        self.result = result

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result

    def malloc_trim(self, pad: int) -> int:
        self.trims.append(pad)
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(heap, "_libc", lambda: fake)
    monkeypatch.setattr(heap, "_applied", None)
    monkeypatch.setattr(heap, "_glibc", None)
    for name in ("MTLREC_RETAIN_HEAP", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    return fake


def test_sets_trim_and_mmap_thresholds_once_per_process(libc):
    assert heap.retain_freed_memory()
    assert heap.retain_freed_memory()
    assert libc.calls == [(-1, 64 << 20), (-3, 16 << 20)]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MTLREC_RETAIN_HEAP", "0"),
        ("MALLOC_TRIM_THRESHOLD_", "131072"),
        ("MALLOC_MMAP_THRESHOLD_", "131072"),
    ],
)
def test_opt_out_and_user_settings_leave_malloc_alone(libc, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert not heap.retain_freed_memory()
    assert libc.calls == []


def test_refused_setting_reports_false(libc):
    libc.result = 0
    assert not heap.retain_freed_memory()


def test_fit_applies_it(libc):
    mtlrec.MMoE(FEATURES, TASKS, num_experts=2).fit(make_table(64), epochs=1, verbose=0)
    assert libc.calls[:2] == [(-1, 64 << 20), (-3, 16 << 20)]
    assert libc.trims == [0]  # fit hands its kept memory back when it returns


def test_release_trims_only_where_thresholds_were_set(libc):
    heap.release_freed_memory()  # nothing applied yet: glibc untouched
    assert libc.trims == []
    assert heap.retain_freed_memory()
    heap.release_freed_memory()
    assert libc.trims == [0]
