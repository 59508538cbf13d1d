"""Keep freed memory in the process heap while mtlrec trains and predicts (glibc only).

By default glibc gives freed memory back to the operating system as soon as more than
about twice its (adaptive) mmap threshold lies free at the top of the heap. A training
step frees its activations at the end of the backward pass, so every step handed its
memory back and page-faulted it in again at the next one: for models whose activations
outgrow the CPU cache (CGC, PLE, MMoE at large batches) that cost 5-15 % of training
and up to 25 % of prediction (docs/benchmarks.md). Raising the trim threshold to
256 MiB and fixing the mmap threshold at glibc's largest adaptive value (32 MiB) keeps
those pages mapped for reuse. Peak memory is unchanged; memory freed after training
stays with the process (up to the trim threshold) until it exits or allocates again.

Applied once per process on the first ``fit``/``predict``. Opt out with the
environment variable ``MTLREC_RETAIN_HEAP=0``; it is also skipped when the user set
glibc's own ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_MMAP_THRESHOLD_``, and off glibc.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
TRIM_THRESHOLD = 256 << 20
MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit

_applied: bool | None = None  # None: not decided yet in this process


def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


def retain_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds once per process; True when they are set."""
    global _applied
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
    return _applied
