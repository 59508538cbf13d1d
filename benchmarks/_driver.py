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


#: the fields a summary takes from a group's first successful run
RUN_FIELDS = ("version", "torch", "epochs", "train_rows", "test_rows", "parameters", "note")


def summarize(
    runs: list[dict[str, Any]], keys: tuple[str, ...], metrics: list[str]
) -> list[dict[str, Any]]:
    """One record per group of ``keys``: the repeats that ran and the failures, the
    first run's :data:`RUN_FIELDS`, medians and min/max of every metric and of each
    task's AUC (``min["auc/<task>"]``)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in keys), []).append(run)
    records = []
    for key, group in groups.items():
        ok = [r for r in group if "error" not in r]
        record: dict[str, Any] = dict(zip(keys, key, strict=True))
        record.update(
            {
                "repeats": len(ok),
                "failures": [r["error"] for r in group if "error" in r],
                "min": {},
                "max": {},
            }
        )
        records.append(record)
        if not ok:
            continue
        for field in RUN_FIELDS:
            record[field] = ok[0].get(field)
        for metric in metrics:
            values = [r[metric] for r in ok if r.get(metric) is not None]
            record[metric] = median(values)
            if values:
                record["min"][metric], record["max"][metric] = min(values), max(values)
        record["auc"] = {t: median([r["auc"][t] for r in ok]) for t in ok[0]["auc"]}
        for task in record["auc"]:
            values = [r["auc"][task] for r in ok]
            record["min"][f"auc/{task}"], record["max"][f"auc/{task}"] = min(values), max(values)
    return records


def num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def spread(r: dict[str, Any], metric: str, digits: int = 0) -> str:
    """median (min–max) when there are several repeats."""
    text = num(r.get(metric), digits)
    if r.get("repeats", 0) > 1 and metric in r["min"]:
        text += f" ({num(r['min'][metric], digits)}–{num(r['max'][metric], digits)})"
    return text
