"""What the speed drivers (``speed.py``, ``sequence_speed.py``) share: running one worker
in its own process with the CPU-contention flag, and the medians and table cells of their
reports. Imports neither mtlrec nor a peer library, so a driver starts whatever state
those are in."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def cpu_stall_us() -> int | None:
    """Total microseconds some task waited for a CPU (Linux PSI), or None where unavailable."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(line.rsplit("total=", 1)[1])


def run_worker(
    python: str,
    script: str,
    args: list[str],
    timeout: float,
    threads: str = "2",
    pythonpath: str | None = None,
) -> dict[str, Any]:
    """Run a worker script of this folder; its last JSON stdout line (plus
    ``cpu_stall_percent``: the share of the worker's wall time in which some task on this
    machine waited for a CPU, a contention flag), or {"error": ...}. ``threads`` sets
    OMP/MKL threads; ``pythonpath`` puts another mtlrec checkout first."""
    env = {
        **os.environ,
        **({"PYTHONPATH": pythonpath} if pythonpath else {}),
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "PYTHONUNBUFFERED": "1",
        "TQDM_DISABLE": "1",
    }
    command = [python, str(HERE / script), *args]
    stall, start = cpu_stall_us(), time.perf_counter()
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, cwd=HERE
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    wall, stall_end = time.perf_counter() - start, cpu_stall_us()
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                break
            if stall is not None and stall_end is not None:
                result["cpu_stall_percent"] = 100 * (stall_end - stall) / 1e6 / wall
            return result
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail}"}


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def spread(r: dict[str, Any], metric: str, digits: int = 0) -> str:
    """median (min–max) when there are several repeats."""
    text = num(r.get(metric), digits)
    if r.get("repeats", 0) > 1 and metric in r["min"]:
        text += f" ({num(r['min'][metric], digits)}–{num(r['max'][metric], digits)})"
    return text
