"""What every experiment writes: result records as JSON, with how and where they were made."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), std


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    """Where a benchmark ran: CPU, torch version and threads, Python, OS."""
    return {
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_records(records: Sequence[dict[str, Any]], out_dir: str | Path) -> Path:
    """Create ``out_dir`` (refusing a file of that name) and write ``results.json`` there."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; give a folder for the benchmark results")
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(list(records), indent=2, default=json_default) + "\n"
    (out / "results.json").write_text(text)
    return out


def provenance_lines(command: str | None, settings: dict[str, Any] | None = None) -> list[str]:
    """Markdown bullets saying how a result was made: command, date, machine, settings."""
    info = machine_info()
    lines = [
        f"- command: `{command or ' '.join(['mtlrec', *sys.argv[1:]])}`",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {info['cpu']}, {info['threads']} torch thread(s)",
        f"- torch {info['torch']}, Python {info['python']}, {info['platform']}",
    ]
    return lines + [f"- {key}: {value}" for key, value in (settings or {}).items()]


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
