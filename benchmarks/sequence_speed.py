"""Sequence-feature speed benchmark: mtlrec against DeepCTR-Torch 0.3.0 and torch-rechub
0.9.0 with a user history (up to 50 items, mean pooling, sharing the item-id table).

The data set is synthetic (``_sequence_data.py``: 10,000 users, 2,000 items, two binary
tasks click and like that depend on the history). Every measurement runs in its own
subprocess (``_worker_seq_*.py``) that prints one JSON line; measurements are interleaved
(repeat -> batch size -> model -> library, library order rotated each repeat) and
summarised as medians with min-max.

    python benchmarks/sequence_speed.py --rows 5000 --epochs 1 --repeats 1  # smoke test
    python benchmarks/sequence_speed.py --output results/sequence_speed      # full run

Peers run under ``--peer-python`` (default: .venv-peers/bin/python, see
requirements-peers.txt); a library that is missing or fails to import is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pyarrow.parquet as pq  # noqa: E402
from _driver import num, run_worker, spread, summarize  # noqa: E402
from _sequence_data import SPEC, TEST_ROWS, TRAIN_ROWS, describe, write_dataset  # noqa: E402

LIBRARIES = {"mtlrec": "mtlrec", "deepctr": "DeepCTR-Torch", "rechub": "torch-rechub"}
#: what each library's worker needs importable (checked in a subprocess before the runs)
IMPORT_CHECKS = {
    "mtlrec": "from mtlrec import SparseFeature, DenseFeature, SequenceFeature, Task, "
    "MMoE, SharedBottom",
    "deepctr": "from deepctr_torch.inputs import VarLenSparseFeat",
    "rechub": "from torch_rechub.basic.features import SequenceFeature",
}
PEERS = ("deepctr", "rechub")
MODELS = ["mmoe", "shared_bottom", "cgc", "ple"]
METRICS = [
    "train_samples_per_second",
    "predict_rows_per_second",
    "predict_rows_per_second_pretransformed",
    "fit_seconds",
    "peak_rss_mb",
    "cpu_stall_percent",
]


# ---------------------------------------------------------------------------- workers
def import_problem(python: str, library: str) -> str | None:
    """Why ``library`` cannot run under ``python`` (missing interpreter, failed import)."""
    if not Path(python).exists():
        return f"{python} not found (see benchmarks/requirements-peers.txt)"
    proc = subprocess.run(
        [python, "-c", IMPORT_CHECKS[library]], capture_output=True, text=True, timeout=300
    )
    if proc.returncode:
        return (
            f"`{IMPORT_CHECKS[library]}` failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        )
    return None


def reference_configs() -> dict[str, dict[str, Any]]:
    try:
        from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
    except Exception as error:  # mtlrec broken mid-change: nothing to compare against
        raise SystemExit(
            "sequence_speed: the reference configs come from "
            f"mtlrec.experiments.benchmark, which failed to import: {error!r}"
        ) from error
    return REFERENCE_CONFIGS


# ---------------------------------------------------------------------------- summary
def summarize_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per library, model and batch size (``_driver.summarize``), with the
    first note any run gave, and the ratios to the faster peer."""
    keys = ("library", "model", "batch_size")
    records = summarize(runs, keys, METRICS)
    notes: dict[tuple, str] = {}
    for run in runs:
        if run.get("note") and "error" not in run:
            notes.setdefault(tuple(run[k] for k in keys), run["note"])
    for record in records:
        if record["repeats"]:
            record["note"] = notes.get(tuple(record[k] for k in keys))
    add_ratios(records)
    return records


def add_ratios(records: list[dict[str, Any]]) -> None:
    """``ratio_to_faster_peer``: each rate / the faster peer's rate at the same model and
    batch size (>1: faster than both peers)."""
    index = {(r["library"], r["model"], r["batch_size"]): r for r in records if r["repeats"]}
    for r in records:
        r["ratio_to_faster_peer"] = {}
        if not r["repeats"]:
            continue
        key = (r["model"], r["batch_size"])
        peers = [index[(p, *key)] for p in PEERS if (p, *key) in index]
        for metric in ("train_samples_per_second", "predict_rows_per_second"):
            rates = [(p[metric], p["library"]) for p in peers if p.get(metric)]
            if rates and r.get(metric):
                best, library = max(rates)
                r["ratio_to_faster_peer"][metric] = {"ratio": r[metric] / best, "peer": library}


# ---------------------------------------------------------------------------- report
def _ratio(r: dict[str, Any], metric: str) -> str:
    found = r["ratio_to_faster_peer"].get(metric)
    if found is None:
        return "–"
    return f"{found['ratio']:.2f}x vs {LIBRARIES[found['peer']]}"


def results_table(records: list[dict[str, Any]], tasks: list[str]) -> str:
    header = [
        "model",
        "batch",
        "library",
        "params",
        "train samples/s",
        "predict rows/s",
        "predict rows/s (pre-transformed)",
        *(f"{t} AUC" for t in tasks),
        "train / faster peer",
        "predict / faster peer",
        "CPU stall %",
    ]
    rows = []
    for r in sorted(records, key=lambda r: (MODELS.index(r["model"]), r["batch_size"])):
        cells = [r["model"], str(r["batch_size"]), LIBRARIES[r["library"]]]
        if not r["repeats"]:
            failure = "failed: " + "; ".join(r["failures"])[:160]
            rows.append([*cells, failure] + [""] * (len(header) - 4))
            continue
        rows.append(
            [
                *cells,
                num(r.get("parameters")),
                spread(r, "train_samples_per_second"),
                spread(r, "predict_rows_per_second"),
                spread(r, "predict_rows_per_second_pretransformed"),
                *(num(r["auc"].get(t), 4) for t in tasks),
                _ratio(r, "train_samples_per_second"),
                _ratio(r, "predict_rows_per_second"),
                num(r.get("cpu_stall_percent")),
            ]
        )
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|",
    ]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def render(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    data: dict[str, dict[str, float]],
    skipped: dict[str, str],
    elapsed: float,
) -> str:
    info = machine()
    versions = {
        LIBRARIES[r["library"]]: f"{r['version']} (torch {r['torch']})"
        for r in records
        if r.get("version")
    }
    train, test = data["train"], data["test"]
    tasks = SPEC["tasks"]
    rates = " / ".join(f"{train[t + '_rate']:.3f}" for t in tasks)
    parts = [
        "# mtlrec sequence-feature speed benchmark",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; elapsed {elapsed / 60:.1f} min",
        f"- machine: {info['cores']} cores, {info['cpu']}; {args.threads} torch threads per "
        f"worker; Python {info['python']}",
        "- libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- command: `python benchmarks/sequence_speed.py {' '.join(sys.argv[1:])}`",
        f"- data (`_sequence_data.py`, seed {args.seed}): {train['rows']:,} train / "
        f"{test['rows']:,} test rows; user_id (10,000), user_segment, user_activity, "
        "item_id (2,000), item_category, item_price, history (the user's previous items, "
        f"up to 50, mean length {train['history_mean_length']:.1f}, mean-pooled, sharing "
        f"item_id's table); tasks {' / '.join(tasks)} (train positive rates {rates}). "
        f"Embedding dim {SPEC['embedding_dim']}.",
        f"- reference configs, Adam lr 1e-3, {args.epochs} epoch(s), {args.repeats} "
        "repeat(s): median (min–max); each measurement in its own process after an "
        "untimed 1-epoch warm-up fit on 8 batches.",
        "- train samples/s = rows x epochs / wall time of the fit call (mtlrec: from raw "
        "rows, the history as arrays, preprocessing included; peers: label-encoded arrays "
        "with the history post-padded to 50, prepared untimed). predict rows/s: test rows "
        "/ median of 3 predict calls at the fastest of batch sizes 256, 2048, 16384 "
        "(mtlrec also its default chunks); pre-transformed: mtlrec on an already "
        "transformed batch. AUC: sklearn on each library's predictions. x / faster "
        "peer: the rate over the faster peer's at the same model and batch size. CPU "
        "stall %: share of the worker's wall time in which some task waited for a CPU "
        "(/proc/pressure/cpu); high values mean contention distorted the timing.",
        "",
        results_table(records, tasks),
        "",
    ]
    if skipped:
        parts += ["## Skipped", "", *(f"- {LIBRARIES[k]}: {v}" for k, v in skipped.items()), ""]
    notes: dict[tuple[str, str], str] = {}
    for r in records:
        if r.get("note"):
            notes.setdefault((r["library"], r["model"]), r["note"])
    if notes:
        parts += ["## Notes and peer deviations", ""]
        parts += [f"- {LIBRARIES[lib]} {model}: {note}" for (lib, model), note in notes.items()]
        parts += [""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    parser.add_argument("--models", nargs="+", default=["mmoe", "shared_bottom"], choices=MODELS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 2048])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=TRAIN_ROWS, help="train rows")
    parser.add_argument("--test-rows", type=int, default=TEST_ROWS)
    parser.add_argument("--seed", type=int, default=0, help="data and model seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer-python", type=Path, default=HERE.parent / ".venv-peers/bin/python")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per worker")
    parser.add_argument(
        "--output", type=Path, help="folder for sequence_speed.md and sequence_speed.json"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    configs = reference_configs()
    pythons, skipped = {}, {}
    for lib in args.libraries:
        python = sys.executable if lib == "mtlrec" else str(args.peer_python)
        problem = import_problem(python, lib)
        if problem:
            print(f"skipping {LIBRARIES[lib]}: {problem}", file=sys.stderr)
            skipped[lib] = problem
        else:
            pythons[lib] = python
    libraries = [lib for lib in args.libraries if lib in pythons]
    if not libraries:
        raise SystemExit("sequence_speed: no library can run")

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mtlrec-seq-speed-") as tmp:
        folder = write_dataset(Path(tmp) / "sequence", args.rows, args.test_rows, args.seed)
        data = {n: describe(pq.read_table(folder / f"{n}.parquet")) for n in ("train", "test")}
        print(f"data: {json.dumps(data)}", file=sys.stderr)
        total = args.repeats * len(args.batch_sizes) * len(args.models) * len(libraries)
        for repeat in range(args.repeats):
            order = libraries[repeat % len(libraries) :] + libraries[: repeat % len(libraries)]
            for bs in args.batch_sizes:
                for model in args.models:
                    for lib in order:
                        worker_args = [
                            "--data",
                            str(folder),
                            "--model",
                            model,
                            "--config",
                            json.dumps(configs[model]),
                            "--batch-size",
                            str(bs),
                            "--epochs",
                            str(args.epochs),
                            "--threads",
                            str(args.threads),
                            "--seed",
                            str(args.seed),
                        ]
                        result = run_worker(
                            pythons[lib],
                            f"_worker_seq_{lib}.py",
                            worker_args,
                            args.timeout,
                            threads=str(args.threads),
                        )
                        result.update(
                            {"library": lib, "model": model, "batch_size": bs, "repeat": repeat}
                        )
                        runs.append(result)
                        _progress(len(runs), total, result, started)

    records = summarize_runs(runs)
    elapsed = time.perf_counter() - started
    report = render(args, records, data, skipped, elapsed)
    print(report)
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "sequence_speed.md").write_text(report + "\n")
        out = {
            "machine": machine(),
            "command": sys.argv,
            "elapsed_seconds": elapsed,
            "data": data,
            "skipped": skipped,
            "records": records,
            "runs": runs,
        }
        (args.output / "sequence_speed.json").write_text(json.dumps(out, indent=1) + "\n")
        print(f"\nwrote sequence_speed.md, sequence_speed.json to {args.output}", file=sys.stderr)


def _progress(done: int, total: int, result: dict[str, Any], started: float) -> None:
    head = (
        f"[{done}/{total} {time.perf_counter() - started:6.0f}s] "
        f"{result['library']} {result['model']} bs={result['batch_size']}"
    )
    if "error" in result:
        print(f"{head}: FAILED {result['error']}", file=sys.stderr)
        return
    auc = " ".join(f"{t} {v:.4f}" for t, v in result["auc"].items())
    print(
        f"{head}: train {result['train_samples_per_second']:,.0f}/s, predict "
        f"{result['predict_rows_per_second']:,.0f}/s, AUC {auc}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
