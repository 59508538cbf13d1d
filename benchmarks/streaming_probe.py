"""Training from Parquet files read as a stream against the same rows in memory (issue 19).

    python benchmarks/streaming_probe.py [--rows 1000000 10000000] [--epochs 2]
        [--threads 2] [--repeats 1] [--skip-memory-above ROWS]
        [--data-dir /tmp/mtlrec-stream-data] [--output docs/results/issue19/streaming_probe]

For each ``--rows`` size, a synthetic click log is written once as Parquet (cached in
``--data-dir``; see :func:`write_click_log`): ``user_id`` (10^6 possible int64 ids,
Zipf-like), eight more categorical columns (10 to 10^5 values, strings and ints), eight
float32 columns and two labels, ``click`` (about 10 % positive, from per-user and per-item
effects, the device, the hour, the position and the price) and ``purchase`` (1 only where
``click`` is 1). One file per ``--rows-per-file`` rows, row groups of ``--row-group`` rows;
the generator holds one row group at a time (``numpy.random.default_rng((seed, group))``),
so a size that is a multiple of the row group holds the first rows of every larger one.

Every measurement runs in its own process (its peak RSS is its own), the MMoE of
:func:`build_model` trained on every row:

* ``memory``: ``pd.read_parquet(folder)``, then ``model.fit(frame, ...)``;
* ``stream``: ``model.fit(folder, ..., shuffle_buffer=...)``, the preprocessor fitted on
  one pass over the files and every epoch read again record batch by record batch.

Reported: seconds per epoch (``history_[i]["seconds"]``: the median over the epochs, and
the first epoch apart), rows/s (rows / median epoch seconds), the peak RSS of the process
(``ru_maxrss``), the total seconds from the files to a trained model (reading included:
``read_parquet`` for ``memory``, the preprocessor's pass for ``stream``), and the AUC of
both tasks on a held-out file of the same generator. Then issue 19's two bars: streaming
peak RSS at the largest size / at the smallest (<= 1.2), and streaming rows/s / in-memory
rows/s at 10^6 rows (>= 0.7; the smallest size both ran at when 10^6 is not measured).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from _driver import num, run_worker  # noqa: E402

#: bump when the generated rows change, so an old cache is not reused
DATA_VERSION = 1
USERS = 1_000_000
#: categorical columns besides user_id: (values, "int" or "str", Zipf exponent)
CATEGORICAL: dict[str, tuple[int, str, float]] = {
    "device": (10, "str", 1.0),
    "hour": (24, "int", 0.3),
    "os_version": (60, "str", 1.1),
    "country": (200, "str", 1.2),
    "ad_slot": (1_000, "int", 0.8),
    "item_category": (3_000, "str", 1.0),
    "brand": (20_000, "int", 1.0),
    "item_id": (100_000, "int", 0.9),
}
DENSE = (
    "price",
    "user_ctr",
    "item_ctr",
    "age",
    "session_length",
    "dwell_time",
    "distance",
    "position_score",
)
TASKS = ("click", "purchase")
USER_ZIPF = 0.9
HOLDOUT_ROWS = 50_000
#: first row group index of the held-out rows (disjoint from every training group)
HOLDOUT_GROUP = 10**9


# ---------------------------------------------------------------------------- the data
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class ClickLog:
    """The label model and the columns' distributions, the same for every size (drawn
    from ``default_rng((seed, 2**32 - 1))``); :meth:`rows` draws one row group."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        tables = np.random.default_rng([seed, 2**32 - 1])
        self.cdf = {"user_id": self._cdf(USERS, USER_ZIPF)}
        self.cdf.update({name: self._cdf(k, s) for name, (k, _, s) in CATEGORICAL.items()})
        # ids are keys, not ranks: the popular users are spread over the id range
        self.user_ids = tables.permutation(USERS).astype(np.int64) * 7_919 + 100_003
        self.user_effect = tables.normal(0.0, 0.6, USERS).astype(np.float32)
        self.item_effect = tables.normal(0.0, 0.6, CATEGORICAL["item_id"][0]).astype(np.float32)
        self.item_buy = tables.normal(0.0, 0.6, CATEGORICAL["item_id"][0]).astype(np.float32)
        self.device_effect = tables.normal(0.0, 0.4, CATEGORICAL["device"][0])
        self.hour_effect = 0.3 * np.sin(np.arange(24) / 24 * 2 * np.pi)
        self.text = {
            name: pa.array([f"{name[:3]}_{i}" for i in range(k)])
            for name, (k, kind, _) in CATEGORICAL.items()
            if kind == "str"
        }
        self.seen = np.zeros(USERS, dtype=bool)  # the users drawn so far

    @staticmethod
    def _cdf(values: int, exponent: float) -> np.ndarray:
        weights = 1.0 / np.arange(1, values + 1, dtype=np.float64) ** exponent
        cdf = np.cumsum(weights)
        return cdf / cdf[-1]

    def _draw(self, rng: np.random.Generator, name: str, rows: int) -> np.ndarray:
        cdf = self.cdf[name]
        return np.minimum(np.searchsorted(cdf, rng.random(rows), side="right"), len(cdf) - 1)

    def rows(self, group: int, rows: int) -> pa.Table:
        """Row group ``group`` (``rows`` rows), drawn from ``default_rng((seed, group))``."""
        rng = np.random.default_rng([self.seed, group])
        columns: dict[str, Any] = {}
        user = self._draw(rng, "user_id", rows)
        self.seen[user] = True
        columns["user_id"] = self.user_ids[user]
        codes = {name: self._draw(rng, name, rows) for name in CATEGORICAL}
        for name, (_, kind, _) in CATEGORICAL.items():
            if kind == "str":
                columns[name] = self.text[name].take(pa.array(codes[name]))
            else:
                columns[name] = codes[name].astype(np.int64) * 3 + 1
        u, item = self.user_effect[user], self.item_effect[codes["item_id"]]
        price = rng.lognormal(3.0, 1.0, rows)
        position = rng.random(rows)
        dense = {
            "price": price,
            "user_ctr": 0.1 * np.exp(0.8 * u + 0.4 * rng.standard_normal(rows)),
            "item_ctr": 0.1 * np.exp(0.8 * item + 0.4 * rng.standard_normal(rows)),
            "age": np.clip(rng.normal(35.0, 12.0, rows), 16, 90),
            "session_length": rng.exponential(5.0, rows),
            "dwell_time": rng.lognormal(2.0, 0.8, rows),
            "distance": rng.exponential(20.0, rows),
            "position_score": position,
        }
        for name in DENSE:
            columns[name] = dense[name].astype(np.float32)
        logit = (
            -2.45
            + u
            + item
            + self.device_effect[codes["device"]]
            + self.hour_effect[codes["hour"]]
            + 0.8 * (0.5 - position)
            - 0.15 * (np.log(price) - 3.0)
        )
        click = rng.random(rows) < _sigmoid(logit)
        buy = -1.6 + self.item_buy[codes["item_id"]] - 0.5 * (np.log(price) - 3.0) + 0.5 * u
        columns["click"] = click.astype(np.int8)
        columns["purchase"] = (click & (rng.random(rows) < _sigmoid(buy))).astype(np.int8)
        return pa.table(columns)


def data_folder(data_dir: Path, rows: int, seed: int, rows_per_file: int, row_group: int) -> Path:
    return data_dir / f"clicks-v{DATA_VERSION}-seed{seed}-{rows}-f{rows_per_file}-g{row_group}"


def write_click_log(
    data_dir: Path, rows: int, seed: int, rows_per_file: int, row_group: int
) -> dict[str, Any]:
    """The manifest of the click log of ``rows`` rows (written now unless cached):
    ``folder`` of Parquet files, ``holdout`` file, generation seconds, label rates."""
    folder = data_folder(data_dir, rows, seed, rows_per_file, row_group)
    manifest_path = folder.with_name(folder.name + ".json")
    if manifest_path.exists() and folder.is_dir():
        manifest = json.loads(manifest_path.read_text())
        manifest["cached"] = True
        return manifest
    partial = folder.with_name(folder.name + ".partial")
    for stale_folder in (partial, folder):  # an interrupted earlier write
        for stale in stale_folder.iterdir() if stale_folder.is_dir() else ():
            stale.unlink()
    if folder.is_dir():
        folder.rmdir()
    partial.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = ClickLog(seed)
    positives = dict.fromkeys(TASKS, 0)
    group, done, files = 0, 0, 0
    while done < rows:
        in_file = min(rows_per_file, rows - done)
        path = partial / f"part-{files:05d}.parquet"
        writer = None
        written = 0
        while written < in_file:
            table = log.rows(group, min(row_group, in_file - written))
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=row_group)
            for task in TASKS:
                positives[task] += int(np.asarray(table.column(task)).sum())
            written += table.num_rows
            group += 1
        assert writer is not None
        writer.close()
        done += in_file
        files += 1
    seconds = time.perf_counter() - start
    distinct_users = int(log.seen.sum())
    holdout = folder.with_name(folder.name + ".holdout.parquet")
    pq.write_table(log.rows(HOLDOUT_GROUP, HOLDOUT_ROWS), holdout)
    partial.rename(folder)
    manifest = {
        "folder": str(folder),
        "holdout": str(holdout),
        "rows": rows,
        "seed": seed,
        "files": files,
        "row_group": row_group,
        "row_groups": group,
        "bytes_on_disk": sum(p.stat().st_size for p in folder.iterdir()),
        "generation_s": round(seconds, 2),
        "distinct_users": distinct_users,
        **{f"{task}_rate": positives[task] / rows for task in TASKS},
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    manifest["cached"] = False
    return manifest


# ---------------------------------------------------------------------------- the worker
def build_model(seed: int = 0) -> Any:
    import mtlrec
    from mtlrec import DenseFeature, SparseFeature, Task

    features = [SparseFeature("user_id", embedding_dim=16)]
    features += [SparseFeature(name) for name in CATEGORICAL]
    features += [DenseFeature(name) for name in DENSE]
    tasks = [Task(name) for name in TASKS]
    return mtlrec.MMoE(
        features, tasks, seed=seed, num_experts=4, expert_units=[64], tower_units=[32]
    )


def rss_gib() -> float:
    """The current resident set of this process, GiB (Linux)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**30


def peak_rss_gib() -> float:
    """The peak resident set of this process so far, GiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class RssSampler(threading.Thread):
    """Samples the current RSS every ``interval`` seconds: (seconds since start, GiB)."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples = interval, []
        self.start_time = time.perf_counter()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.perf_counter() - self.start_time, rss_gib()))
            self._halt.wait(self.interval)

    def stop(self) -> list[tuple[float, float]]:
        self._halt.set()
        self.join()
        step = max(1, len(self.samples) // 120)  # at most ~120 points in the JSON
        return [(round(t, 1), round(g, 3)) for t, g in self.samples[::step]]


def model_state_bytes(model: Any) -> int:
    """Bytes of the network's parameters and of its optimizers' state (Adam's moments,
    SparseAdam's for the embedding tables): what the vocabularies' size drives."""
    import torch

    total = sum(p.numel() * p.element_size() for p in model.network.parameters())
    optimizers = getattr(model, "_optimizers", None)  # private: absent in other versions
    for optimizer in (getattr(optimizers, "dense", None), getattr(optimizers, "sparse", None)):
        for state in optimizer.state.values() if optimizer is not None else ():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    total += value.numel() * value.element_size()
    return total


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement (``args.worker``: "memory" or "stream"), as a JSON-able record."""
    import pandas as pd
    import torch

    import mtlrec

    record: dict[str, Any] = {
        "mode": args.worker,
        "rows": args.rows_here,
        "version": mtlrec.__version__,
        "torch": torch.__version__,
        "pyarrow": pa.__version__,
        "pandas": pd.__version__,
        "rss_imports_gib": round(rss_gib(), 3),
    }
    sampler = RssSampler()
    sampler.start()
    start = time.perf_counter()
    if args.worker == "memory":
        data: Any = pd.read_parquet(args.data)
        record["read_s"] = round(time.perf_counter() - start, 3)
        record["rss_after_read_gib"] = round(rss_gib(), 3)
        record["frame_gib"] = round(data.memory_usage(deep=True).sum() / 2**30, 3)
        assert len(data) == args.rows_here, (len(data), args.rows_here)
    else:
        data = args.data
    model = build_model(args.seed)
    fit_start = time.perf_counter()
    model.fit(
        data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        threads=args.threads,
        **({"shuffle_buffer": args.shuffle_buffer} if args.worker == "stream" else {}),
    )
    end = time.perf_counter()
    record["fit_s"] = round(end - fit_start, 3)
    record["total_s"] = round(end - start, 3)
    record["peak_rss_gib"] = round(peak_rss_gib(), 4)
    record["rss_end_gib"] = round(rss_gib(), 3)
    record["rss_timeline"] = sampler.stop()
    record["model_state_gib"] = round(model_state_bytes(model) / 2**30, 3)
    seconds = [float(h["seconds"]) for h in model.history_]
    epoch_s = statistics.median(seconds)
    record.update(
        {
            "epoch_seconds": [round(s, 3) for s in seconds],
            "epoch_s": round(epoch_s, 3),
            "first_epoch_s": round(seconds[0], 3),
            "later_epoch_s": round(statistics.median(seconds[1:]), 3) if seconds[1:] else None,
            "rows_per_s": args.rows_here / epoch_s,
            "outside_epochs_s": round(end - fit_start - sum(seconds), 3),
            "loss": [round(float(h["loss"]), 5) for h in model.history_],
            "step": model.history_[-1].get("step"),
            "step_reason": model.history_[-1].get("step_reason"),
            "vocabulary_sizes": dict(
                zip(
                    [f.name for f in model.preprocessor.sparse_features],
                    model.preprocessor.vocabulary_sizes,
                    strict=True,
                )
            ),
        }
    )
    del data
    metrics = model.evaluate(pd.read_parquet(args.holdout), threads=args.threads)
    record["auc"] = {task: round(float(metrics[task]["auc"]), 4) for task in TASKS}
    return record


# ---------------------------------------------------------------------------- the report
METRICS = (
    "epoch_s",
    "first_epoch_s",
    "rows_per_s",
    "peak_rss_gib",
    "model_state_gib",
    "total_s",
    "fit_s",
    "read_s",
    "cpu_stall_percent",
)


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (rows, mode): medians over the repeats that ran, and the failures."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["rows"], run["mode"]), []).append(run)
    records = []
    for (rows, mode), group in sorted(groups.items()):
        ok = [r for r in group if "error" not in r and "skipped" not in r]
        record: dict[str, Any] = {
            "rows": rows,
            "mode": mode,
            "repeats": len(ok),
            "failures": [r["error"] for r in group if "error" in r],
            "skipped": next((r["skipped"] for r in group if "skipped" in r), None),
        }
        for metric in METRICS:
            values = [r[metric] for r in ok if r.get(metric) is not None]
            record[metric] = statistics.median(values) if values else None
            if len(values) > 1:
                record[f"{metric}_range"] = [min(values), max(values)]
        if ok:
            record["auc"] = {t: statistics.median(r["auc"][t] for r in ok) for t in TASKS}
            record["vocabulary_sizes"] = ok[0]["vocabulary_sizes"]
        records.append(record)
    return records


def checks(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 19's two bars, each with its value, bound and verdict (None: not measured)."""
    stream = {r["rows"]: r for r in records if r["mode"] == "stream" and r["peak_rss_gib"]}
    memory = {r["rows"]: r for r in records if r["mode"] == "memory" and r["rows_per_s"]}
    out = []
    if len(stream) >= 2:
        small, large = min(stream), max(stream)
        ratio = stream[large]["peak_rss_gib"] / stream[small]["peak_rss_gib"]
        name = f"streaming peak RSS at {large:,} rows / at {small:,} rows"
        out.append({"check": name, "value": ratio, "bound": "<= 1.2", "pass": ratio <= 1.2})
        ends = (small, large)
        if all(stream[n].get("model_state_gib") is not None for n in ends):
            rest = [stream[n]["peak_rss_gib"] - stream[n]["model_state_gib"] for n in ends]
            name = "the same, less the model + optimizer state (vocabulary-driven; information)"
            out.append({"check": name, "value": rest[1] / rest[0], "bound": "", "pass": None})
    else:
        out.append({"check": "streaming peak RSS ratio", "value": None, "pass": None})
    both = sorted(set(stream) & set(memory))
    at = 1_000_000 if 1_000_000 in both else (both[0] if both else None)
    if at is not None:
        ratio = stream[at]["rows_per_s"] / memory[at]["rows_per_s"]
        name = f"streaming rows/s / in-memory rows/s at {at:,} rows"
        out.append({"check": name, "value": ratio, "bound": ">= 0.7", "pass": ratio >= 0.7})
    else:
        out.append({"check": "streaming / in-memory throughput", "value": None, "pass": None})
    return out


def render(
    args: argparse.Namespace,
    manifests: dict[int, dict[str, Any]],
    records: list[dict[str, Any]],
    verdicts: list[dict[str, Any]],
    info: dict[str, Any],
    elapsed: float,
) -> str:
    lines = [
        "# Streaming against in-memory training (issue 19)",
        "",
        f"- command: `python benchmarks/streaming_probe.py {shlex.join(sys.argv[1:])}`",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; elapsed {elapsed / 60:.1f} min",
        f"- machine: {info['cores']} cores, {info['cpu']}, {info['memory_gib']:.0f} GiB RAM; "
        f"Python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in info["libraries"].items()),
        f"- model: MMoE, 4 experts [64], towers [32], user_id embedding 16 (other features "
        f"mtlrec's default); Adam 1e-3, batch {args.batch_size}, {args.epochs} epoch(s), "
        f"{args.threads} torch threads; stream shuffle_buffer {args.shuffle_buffer:,}; "
        f"{args.repeats} repeat(s), medians; each run in its own process.",
        "- data (seed "
        f"{args.seed}, `write_click_log`): user_id (int64, {USERS:,} possible ids, Zipf "
        f"{USER_ZIPF}), "
        + ", ".join(f"{n} ({k:,} {kind})" for n, (k, kind, _) in CATEGORICAL.items())
        + f"; {len(DENSE)} float32 columns; click, purchase (only where click). Files of "
        f"{args.rows_per_file:,} rows, row groups of {args.row_group:,}.",
        "",
        "| rows | files | row groups | on disk GiB | distinct users | click rate | "
        "purchase rate | generation s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, m in sorted(manifests.items()):
        cached = " (cached)" if m.get("cached") else ""
        lines.append(
            f"| {rows:,} | {m['files']} | {m['row_groups']} | {m['bytes_on_disk'] / 2**30:.2f} "
            f"| {m['distinct_users']:,} | {m['click_rate']:.3f} | {m['purchase_rate']:.4f} "
            f"| {m['generation_s']:.1f}{cached} |"
        )
    lines += [
        "",
        "s/epoch: median of `history_[i]['seconds']` over the epochs (first epoch apart); "
        "rows/s: rows / s per epoch; peak RSS: `ru_maxrss` of the run's process; total s: "
        "files to trained model (`read_parquet` + `fit` in memory, `fit` streaming, which "
        "includes the preprocessor's pass over the files); AUC on 50,000 held-out rows; "
        "model + optimizer: the parameters and the optimizers' state (the embedding tables "
        "grow with the distinct ids the rows hold, not with the rows); CPU stall %: share "
        "of the run's wall time some task waited for a CPU (/proc/pressure/cpu), a "
        "contention flag.",
        "",
        "| rows | mode | s/epoch (median) | first epoch s | rows/s | peak RSS GiB | total s "
        "| AUC click / purchase | model + optimizer GiB | CPU stall % |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in records:
        if r["skipped"] or not r["repeats"]:
            why = r["skipped"] or "; ".join(r["failures"])
            lines.append(f"| {r['rows']:,} | {r['mode']} | {why} | | | | | | | |")
            continue
        auc = " / ".join(f"{r['auc'][t]:.4f}" for t in TASKS)
        lines.append(
            f"| {r['rows']:,} | {r['mode']} | {num(r['epoch_s'], 2)} | "
            f"{num(r['first_epoch_s'], 2)} | {num(r['rows_per_s'])} | "
            f"{num(r['peak_rss_gib'], 2)} | {num(r['total_s'], 1)} | {auc} | "
            f"{num(r['model_state_gib'], 3)} | {num(r['cpu_stall_percent'], 0)} |"
        )
    failed = [(r, f) for r in records if r["repeats"] for f in r["failures"]]
    if failed:
        lines += ["", "Failed repeats (left out of the medians):", ""]
        lines += [f"- {r['rows']:,} {r['mode']}: {f}" for r, f in failed]
    lines += ["", "| check | value | bound | verdict |", "|---|---:|---|---|"]
    for v in verdicts:
        verdict = "–" if v["pass"] is None else ("PASS" if v["pass"] else "FAIL")
        lines.append(f"| {v['check']} | {num(v['value'], 4)} | {v.get('bound', '')} | {verdict} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--skip-memory-above",
        type=int,
        metavar="ROWS",
        help="measure only streaming above this many rows (in memory needs the whole table)",
    )
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--shuffle-buffer", type=int, default=262_144)
    parser.add_argument("--seed", type=int, default=0, help="data and model seed")
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    parser.add_argument("--row-group", type=int, default=125_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/mtlrec-stream-data"))
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per run")
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE.parent / "docs/results/issue19/streaming_probe",
        help="folder for streaming_probe.md and streaming_probe.json",
    )
    parser.add_argument("--worker", choices=["memory", "stream"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--holdout", help=argparse.SUPPRESS)
    parser.add_argument("--rows-here", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args)), flush=True)
        return
    started = time.perf_counter()
    sizes = sorted(set(args.rows))
    manifests = {}
    for rows in sizes:
        m = write_click_log(args.data_dir, rows, args.seed, args.rows_per_file, args.row_group)
        manifests[rows] = m
        state = "cached" if m["cached"] else "written"
        print(
            f"data {rows:,} rows: {state} in {m['generation_s']:.1f}s "
            f"({m['bytes_on_disk'] / 2**30:.2f} GiB, {m['files']} files, "
            f"{m['distinct_users']:,} users, click {m['click_rate']:.3f}, "
            f"purchase {m['purchase_rate']:.4f}) {m['folder']}",
            file=sys.stderr,
            flush=True,
        )
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        for rows in sizes:
            modes = ["memory", "stream"] if repeat % 2 == 0 else ["stream", "memory"]
            for mode in modes:
                limit = args.skip_memory_above
                if mode == "memory" and limit is not None and rows > limit:
                    why = f"skipped (--skip-memory-above {limit:,})"
                    runs.append({"rows": rows, "mode": mode, "skipped": why})
                    continue
                worker_args = [
                    "--worker",
                    mode,
                    "--data",
                    manifests[rows]["folder"],
                    "--holdout",
                    manifests[rows]["holdout"],
                    "--rows-here",
                    str(rows),
                    "--epochs",
                    str(args.epochs),
                    "--threads",
                    str(args.threads),
                    "--batch-size",
                    str(args.batch_size),
                    "--shuffle-buffer",
                    str(args.shuffle_buffer),
                    "--seed",
                    str(args.seed),
                ]
                result = run_worker(
                    sys.executable,
                    Path(__file__).name,
                    worker_args,
                    args.timeout,
                    threads=str(args.threads),
                )
                result.update({"rows": rows, "mode": mode, "repeat": repeat})
                runs.append(result)
                short = {k: result.get(k) for k in ("epoch_s", "rows_per_s", "peak_rss_gib")}
                print(
                    f"[{time.perf_counter() - started:7.0f}s] {rows:,} {mode} repeat {repeat}: "
                    + (result["error"] if "error" in result else json.dumps(short)),
                    file=sys.stderr,
                    flush=True,
                )
    records = summarize(runs)
    verdicts = checks(records)
    info = machine()
    done = next((r for r in runs if "version" in r), {})
    info["libraries"] = {
        name: done[name] for name in ("version", "torch", "pyarrow", "pandas") if name in done
    }
    if "version" in info["libraries"]:
        info["libraries"]["mtlrec"] = info["libraries"].pop("version")
    elapsed = time.perf_counter() - started
    report = render(args, manifests, records, verdicts, info, elapsed)
    print(report)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "streaming_probe.md").write_text(report + "\n")
    out = {
        "command": sys.argv,
        "machine": info,
        "elapsed_s": elapsed,
        "data": manifests,
        "records": records,
        "checks": verdicts,
        "runs": runs,
    }
    (args.output / "streaming_probe.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote streaming_probe.md and .json to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
