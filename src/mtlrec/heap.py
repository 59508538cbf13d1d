"""Keep freed memory in the process heap while mtlrec trains and predicts (glibc only).

By default glibc gives freed memory back to the operating system as soon as more than
about twice its (adaptive) mmap threshold lies free at the top of the heap. A training
step frees its activations at the end of the backward pass, so every step handed its
memory back and page-faulted it in again at the next one: for models whose activations
outgrow the CPU cache (CGC, PLE, MMoE at large batches) that cost up to 19 % of training
and 25 % of prediction (docs/benchmarks.md). A trim threshold of 64 MiB keeps a step's
pages mapped for reuse, and a fixed mmap threshold of 16 MiB serves the blocks of a
training micro-batch (up to 6 MiB) or an inference chunk from the heap while larger ones
(say a 16384-row chunk's activations) are still mapped apart and unmapped when freed,
which keeps the heap from growing with them. (With 4 MiB, blocks of 5 MiB were mapped
and page-faulted afresh at every step: PLE at 1024 rows per step ran 2x slower.)
``fit`` ends with a ``malloc_trim``, so memory kept for training is handed back when it
returns: peak memory stays at or below glibc's default behaviour (docs/benchmarks.md).

Applied once per process on the first ``fit``/``predict``. Opt out with the
environment variable ``MTLREC_RETAIN_HEAP=0``; it is also skipped when the user set
glibc's own ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_MMAP_THRESHOLD_``, and off glibc.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
TRIM_THRESHOLD = 64 << 20
MMAP_THRESHOLD = 16 << 20

_applied: bool | None = None  # None: not decided yet in this process
_glibc: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


def retain_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds once per process; True when they are set."""
    global _applied, _glibc
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("MTLREC_RETAIN_HEAP", "1") == "0" or any(
        name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
    ):
        return False
    libc = _libc()
    if libc is None:
        return False
    _applied = bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )
    _glibc = libc if _applied else None
    return _applied


def release_freed_memory() -> None:
    """Hand the heap's free memory back to the kernel (glibc ``malloc_trim``), e.g. at
    the end of ``fit``, so what was kept for its steps does not outlive it. (Not after
    each ``predict``: trimming there cost 10-30 % of prediction speed.)"""
    if _glibc is not None:
        _glibc.malloc_trim(0)
