"""The process settings mtlrec may touch, only for as long as asked: threads, allocator.

A library must leave the process that imports it as it found it, so nothing here is
set at import or kept after the call that asked for it:

* :func:`threads` sets torch's intra-op threads for the duration of a ``fit`` /
  ``predict`` / ``evaluate`` call (``threads=`` on each) and puts the previous count
  back; the default is the CPUs this process may run on (:func:`available_cpus`).
* :func:`retain_freed_memory` is opt-in glibc heap tuning (the ``mtlrec`` command turns
  it on for its own process; benchmarks turn it on explicitly), as a context manager
  or a plain call, with :func:`restore_allocator` to undo it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from .exceptions import ConfigError, warn

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- threads


CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpus(root: Path = CGROUP) -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max``, v1 ``cfs_quota``), in CPUs;
    None without a quota."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def available_cpus() -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, int(quota)))
    return max(1, cpus)


def check_threads(threads: int | None) -> int:
    """``threads`` validated, None meaning :func:`available_cpus`; more threads than
    this process may use are capped there with a warning (oversubscribed threads wait
    on each other: 80x slower was seen)."""
    cpus = available_cpus()
    if threads is None:
        return cpus
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
    if threads > cpus:
        warn(
            f"threads={threads} is more than the {cpus} CPU(s) this process may use (its "
            f"CPU affinity and cgroup quota, mtlrec.available_cpus()); running {cpus}"
        )
        return cpus
    return threads


@contextmanager
def threads(count: int | None) -> Iterator[int]:
    """Within: torch runs ``count`` intra-op threads (None: :func:`available_cpus`);
    the previous count is restored on exit."""
    count = check_threads(count)
    previous = torch.get_num_threads()
    if count != previous:
        torch.set_num_threads(count)
    try:
        yield count
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


# ---------------------------------------------------------------------------- allocator

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
#: what retain_freed_memory sets
TRIM_THRESHOLD = 64 << 20
MMAP_THRESHOLD = 16 << 20
#: glibc's defaults (malloc/malloc.c: DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_THRESHOLD_MIN)
_GLIBC_DEFAULTS = {M_TRIM_THRESHOLD: 128 << 10, M_MMAP_THRESHOLD: 128 << 10}
_ENVIRONMENT = {
    M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_",
    M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_",
}

_depth = 0  # nesting of retain_freed_memory, so the outermost exit restores


def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


def _previous(parameter: int) -> int:
    """The threshold in force before mtlrec touched it: the user's MALLOC_*_ value, else
    glibc's default."""
    try:
        return int(os.environ[_ENVIRONMENT[parameter]])
    except (KeyError, ValueError):
        return _GLIBC_DEFAULTS[parameter]


class _Retained:
    """What :func:`retain_freed_memory` returns: a context manager that restores on exit."""

    def __init__(self, applied: bool) -> None:
        self.applied = applied

    def __bool__(self) -> bool:
        return self.applied

    def __enter__(self) -> _Retained:
        return self

    def __exit__(self, *exc) -> None:
        restore_allocator()


def retain_freed_memory() -> _Retained:
    """Keep freed memory in the process heap (glibc only): opt-in speed for training and
    predicting on CPU.

    By default glibc gives freed memory back to the operating system as soon as more
    than about twice its (adaptive) mmap threshold lies free at the top of the heap, so
    every training step handed its activations back and page-faulted them in again at
    the next one: up to 19 % of PLE's training and 25 % of prediction
    (docs/benchmarks.md). This sets a trim threshold of 64 MiB and a fixed mmap
    threshold of 16 MiB. Use it as ``with mtlrec.retain_freed_memory(): model.fit(...)``
    or call it once and :func:`restore_allocator` later. Restoring puts back the
    thresholds in force before (your ``MALLOC_*_`` environment values, else glibc's
    defaults); glibc has no call that re-enables its adaptive mmap threshold, which stays
    at the restored value. Returns a false value where nothing was set (not glibc, or
    the user set glibc's variables).
    """
    global _depth
    libc = _libc()
    if libc is None or any(name in os.environ for name in _ENVIRONMENT.values()):
        return _Retained(False)
    applied = bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )
    if applied:
        _depth += 1
        logger.debug(
            "glibc heap: trim threshold %d, mmap threshold %d", TRIM_THRESHOLD, MMAP_THRESHOLD
        )
    return _Retained(applied)


def restore_allocator() -> None:
    """Undo :func:`retain_freed_memory` (the outermost one of nested calls) and hand the
    heap's free memory back to the kernel."""
    global _depth
    if _depth == 0:
        return
    _depth -= 1
    if _depth:
        return
    libc = _libc()
    if libc is not None:
        for parameter in (M_TRIM_THRESHOLD, M_MMAP_THRESHOLD):
            libc.mallopt(parameter, _previous(parameter))
        libc.malloc_trim(0)


def allocator_retained() -> bool:
    """True while :func:`retain_freed_memory` is in effect."""
    return _depth > 0


def release_freed_memory() -> None:
    """Hand the heap's free memory back to the kernel (glibc ``malloc_trim``), e.g. at
    the end of ``fit`` while memory is retained, so what was kept for its steps does not
    outlive it. (Not after each ``predict``: trimming there cost 10-30 % of prediction.)"""
    if _depth:
        libc = _libc()
        if libc is not None:
            libc.malloc_trim(0)
