"""Speed benchmark: mtlrec against DeepCTR-Torch 0.3.0, torch-rechub 0.9.0 and NextRec 0.6.14.

Every measurement runs in its own subprocess (``_worker_*.py``) that prints one JSON
line; measurements are interleaved (repeat -> batch size -> model -> library, library
order rotated each repeat) and summarised as medians with min-max. Also measured in the
same run: the machine's fp32 matmul rate (the ceiling), mtlrec's achieved FLOP rate from
analytic FLOPs per sample, and mtlrec's cost on synthetic click logs of growing size.

    python benchmarks/speed.py --quick --skip-scaling             # smoke test
    python benchmarks/speed.py --repeats 3 --output results/speed  # the full comparison
    python benchmarks/speed.py --models cross_stitch aitm poso pepnet snr_trans \
        --libraries mtlrec nextrec --batch-sizes 256 --skip-scaling    # the newer models

DeepCTR-Torch and torch-rechub run under ``--peer-python`` (default:
.venv-peers/bin/python, see requirements-peers.txt), NextRec under ``--nextrec-python``
(default: .venv-nextrec/bin/python, see requirements-nextrec.txt); a peer that is missing
or fails to import is skipped, and a model a peer does not have is not run for it.
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

import torch  # noqa: E402
from _driver import median, num, run_worker, spread, summarize  # noqa: E402
from _flops import counted_forward_flops, flops_per_sample  # noqa: E402
from _synthetic import DENSE, SPARSE, TASKS, make_click_log  # noqa: E402

from mtlrec import DenseFeature, MultiTaskModel, SparseFeature, Task  # noqa: E402
from mtlrec.datasets import load_adult  # noqa: E402
from mtlrec.datasets.adult import (  # noqa: E402
    ADULT_DENSE,
    ADULT_GROUPS,
    ADULT_SPARSE,
    ADULT_TASKS,
)
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS  # noqa: E402
from mtlrec.experiments.records import cpu_model  # noqa: E402

LIBRARIES = {
    "mtlrec": "mtlrec",
    "baseline": "mtlrec baseline",
    "deepctr": "DeepCTR-Torch",
    "rechub": "torch-rechub",
    "nextrec": "NextRec",
}
#: libraries that are mtlrec (the baseline: another checkout, --baseline-src)
MTLREC_LIBRARIES = ("mtlrec", "baseline")
PEER_MODULES = {"deepctr": "deepctr_torch", "rechub": "torch_rechub", "nextrec": "nextrec"}
#: the default models; their analytic FLOPs are counted (``_flops.py`` knows their layers)
MODELS = ["shared_bottom", "esmm", "mmoe", "cgc", "ple"]
#: the models each peer's worker builds; a (peer, model) pair outside these is not run
PEER_MODELS = {
    "deepctr": set(MODELS),
    "rechub": set(MODELS),
    "nextrec": {
        *("shared_bottom", "mmoe", "cgc", "ple"),
        *("cross_stitch", "aitm", "poso", "pepnet", "snr_trans"),
    },
}
#: hyperparameters every library gets instead of the reference, where a peer can only
#: build that shape: NextRec's PEPNet needs a domain group; its SNR-Trans routes after
#: every expert layer, so one-layer experts give both libraries one routing
COMPARISON_CONFIGS: dict[str, dict[str, Any]] = {
    "pepnet": {"domain_group": "domain"},
    "snr_trans": {"expert_units": [64]},
}
SCALING_MODELS = ["mmoe", "ple"]
SCALING_BATCH = 2048
SCALING_TEST_ROWS = 50_000
METRICS = [
    "train_samples_per_second",
    "predict_rows_per_second",
    "predict_rows_per_second_pretransformed",
    "predict_rows_per_second_compiled",
    "peak_rss_mb",
    "fit_seconds",
    "predict_seconds",
    "preprocess_seconds",
    "cpu_stall_percent",
]
WORKER_TIMEOUT_S = 3600


# ---------------------------------------------------------------------------- data
def write_dataset(folder: Path, train: Any, test: Any, spec: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train.to_parquet(folder / "train.parquet", index=False)
    test.to_parquet(folder / "test.parquet", index=False)
    (folder / "spec.json").write_text(json.dumps(spec))
    return folder


def adult_groups() -> dict[str, list[str]]:
    """Adult's feature groups (POSO's and PEPNet's inputs), as the workers read them."""
    return {name: list(columns) for name, columns in ADULT_GROUPS.items()}


def adult_dataset(tmp: Path) -> Path:
    train, test = load_adult()
    spec = {
        "sparse": ADULT_SPARSE,
        "dense": ADULT_DENSE,
        "tasks": list(ADULT_TASKS),
        "embedding_dim": 16,
        "groups": adult_groups(),
    }
    return write_dataset(tmp / "adult", train, test, spec)


def synthetic_dataset(tmp: Path, rows: int) -> Path:
    table = make_click_log(rows + SCALING_TEST_ROWS)
    spec = {"sparse": SPARSE, "dense": DENSE, "tasks": TASKS, "embedding_dim": 16}
    return write_dataset(tmp / f"synthetic_{rows}", table.iloc[:rows], table.iloc[rows:], spec)


# ---------------------------------------------------------------------------- workers
def has_model(library: str, model: str) -> bool:
    """Whether ``library``'s worker builds ``model`` (mtlrec builds every one)."""
    return library not in PEER_MODELS or model in PEER_MODELS[library]


def comparison_config(model: str) -> dict[str, Any]:
    """The hyperparameters every library's worker gets for ``model``."""
    return {**REFERENCE_CONFIGS[model], **COMPARISON_CONFIGS.get(model, {})}


def peer_problem(python: Path, module: str) -> str | None:
    """Why the peer cannot run (missing venv, failed import), or None."""
    if not python.exists():
        how = "requirements-nextrec.txt" if module == "nextrec" else "requirements-peers.txt"
        return f"{python} not found (see benchmarks/{how})"
    proc = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, text=True, timeout=300
    )
    if proc.returncode:
        return f"import {module} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


def ceiling(threads: int) -> dict[str, float]:
    result = run_worker(
        sys.executable, "_worker_matmul.py", ["--threads", str(threads)], WORKER_TIMEOUT_S
    )
    if "error" in result:
        print(f"matmul ceiling failed: {result['error']}", file=sys.stderr)
        return {}
    return result["gflops"]


# ---------------------------------------------------------------------------- FLOPs
def mtlrec_flops(models: list[str], data_dir: Path) -> dict[str, dict[str, float]]:
    """Analytic forward/train FLOPs per sample of each mtlrec reference model on Adult,
    with torch's FlopCounterMode count of the forward pass as a cross-check."""
    import pandas as pd

    train = pd.read_parquet(data_dir / "train.parquet")
    spec = json.loads((data_dir / "spec.json").read_text())
    features = [SparseFeature(c, embedding_dim=16) for c in spec["sparse"]]
    features += [DenseFeature(c) for c in spec["dense"]]
    out = {}
    for name in models:
        model = MultiTaskModel(
            features, [Task(t) for t in spec["tasks"]], architecture=name, **REFERENCE_CONFIGS[name]
        )
        model.preprocessor.fit(train)
        network = model.build()
        batch = model.preprocessor.transform(train.head(256), with_labels=False)
        out[name] = {
            **flops_per_sample(network),
            "forward_counted": counted_forward_flops(network, batch.sparse, batch.dense),
        }
    return out


# ---------------------------------------------------------------------------- summary
def add_efficiency(
    records: list[dict[str, Any]], flops: dict[str, dict[str, float]], ceiling_gflops: float | None
) -> None:
    """Achieved GFLOP/s and percent of the matmul ceiling, for mtlrec rows (None for peers)."""
    for r in records:
        r["ceiling_percent"] = None
        f = flops.get(r["model"])
        if r["library"] != "mtlrec" or f is None or r.get("train_samples_per_second") is None:
            continue
        r["flops_per_sample"] = f
        r["train_gflops"] = r["train_samples_per_second"] * f["train"] / 1e9
        r["predict_gflops"] = r["predict_rows_per_second"] * f["forward"] / 1e9
        pre = r.get("predict_rows_per_second_pretransformed")
        r["predict_gflops_pretransformed"] = None if pre is None else pre * f["forward"] / 1e9
        if ceiling_gflops:

            def pct(gflops: float | None) -> float | None:
                return None if gflops is None else 100 * gflops / ceiling_gflops

            r["ceiling_percent"] = pct(r["train_gflops"])
            r["ceiling_percent_predict"] = pct(r["predict_gflops"])
            r["ceiling_percent_predict_pretransformed"] = pct(r["predict_gflops_pretransformed"])


# ---------------------------------------------------------------------------- tables
def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def ceiling_table(rates: dict[str, list[float]]) -> str:
    rows = [
        [
            name,
            "matmul",
            num(median(v), 1) + (f" ({min(v):.1f}–{max(v):.1f})" if len(v) > 1 else ""),
        ]
        for name, v in rates.items()
    ]
    return _table(["shape (fp32, 2 threads)", "op", "GFLOP/s median (min–max)"], rows)


def results_table(records: list[dict[str, Any]], batch_size: int) -> str:
    tasks = list(ADULT_TASKS)
    rows = []
    for r in (r for r in records if r["batch_size"] == batch_size):
        if not r["repeats"]:
            rows.append(
                [r["model"], LIBRARIES[r["library"]], "failed: " + "; ".join(r["failures"])[:120]]
                + [""] * (7 + len(tasks))
            )
            continue
        rows.append(
            [
                r["model"],
                LIBRARIES[r["library"]],
                num(r.get("parameters")),
                spread(r, "train_samples_per_second"),
                spread(r, "predict_rows_per_second"),
                spread(r, "predict_rows_per_second_pretransformed"),
                spread(r, "predict_rows_per_second_compiled"),
                *(num(r["auc"].get(t), 4) for t in tasks),
                num(r.get("peak_rss_mb")),
                num(r.get("ceiling_percent"), 1),
                num(r.get("cpu_stall_percent")),
            ]
        )
    return _table(
        [
            "model",
            "library",
            "params",
            "train samples/s",
            "predict rows/s",
            "predict rows/s (pre-transformed)",
            "predict rows/s (compiled)",
            *(f"{t} AUC" for t in tasks),
            "peak RSS MB",
            "train % ceiling",
            "CPU stall %",
        ],
        rows,
    )


def efficiency_table(records: list[dict[str, Any]]) -> str:
    rows = []
    for r in records:
        if r["library"] != "mtlrec" or "flops_per_sample" not in r:
            continue
        f = r["flops_per_sample"]
        rows.append(
            [
                r["model"],
                str(r["batch_size"]),
                num(f["forward"] / 1e6, 3),
                num(f["forward_counted"] / 1e6, 3),
                num(f["train"] / 1e6, 3),
                num(r["train_gflops"], 2),
                num(r["ceiling_percent"], 1),
                num(r["predict_gflops"], 2),
                num(r.get("ceiling_percent_predict"), 1),
                num(r.get("predict_gflops_pretransformed"), 2),
                num(r.get("ceiling_percent_predict_pretransformed"), 1),
            ]
        )
    return _table(
        [
            "model",
            "batch",
            "fwd MFLOP/sample",
            "fwd MFLOP (FlopCounter)",
            "train MFLOP/sample",
            "train GFLOP/s",
            "train % ceiling",
            "predict GFLOP/s",
            "predict % ceiling",
            "predict GFLOP/s (pre-tr.)",
            "predict % ceiling (pre-tr.)",
        ],
        rows,
    )


def baseline_table(records: list[dict[str, Any]]) -> str:
    """mtlrec / the baseline checkout, per model and batch size (>1: this checkout faster)."""
    index = {(r["library"], r["model"], r["batch_size"]): r for r in records if r["repeats"]}
    rows = []
    for (library, model, bs), mine in index.items():
        base = index.get(("baseline", model, bs))
        if library != "mtlrec" or base is None:
            continue
        cells = [model, str(bs)]
        for metric in (
            "train_samples_per_second",
            "predict_rows_per_second",
            "predict_rows_per_second_pretransformed",
        ):
            a, b = mine.get(metric), base.get(metric)
            cells.append("–" if not a or not b else f"{a / b:.3f}x")
        aucs = [f"{mine['auc'][t] - base['auc'][t]:+.4f}" for t in mine["auc"]]
        rows.append([*cells, " / ".join(aucs)])
    return _table(
        [
            "model",
            "batch",
            "train: mtlrec / baseline",
            "predict",
            "predict (pre-transformed)",
            "AUC difference per task",
        ],
        rows,
    )


def ratio_table(records: list[dict[str, Any]]) -> str:
    """mtlrec / faster peer, per model and batch size."""
    index = {(r["library"], r["model"], r["batch_size"]): r for r in records if r["repeats"]}
    rows = []
    for (library, model, bs), mine in index.items():
        if library != "mtlrec":
            continue
        peers = [index[(p, model, bs)] for p in PEER_MODULES if (p, model, bs) in index]
        if not peers:
            continue
        cells = [model, str(bs)]
        for metric in ("train_samples_per_second", "predict_rows_per_second"):
            best = max(peers, key=lambda p: p[metric])
            cells.append(f"{mine[metric] / best[metric]:.2f}x vs {LIBRARIES[best['library']]}")
        pre = mine.get("predict_rows_per_second_pretransformed")
        best = max(peers, key=lambda p: p["predict_rows_per_second"])
        for rate in (pre, mine.get("predict_rows_per_second_compiled")):
            cells.append("–" if rate is None else f"{rate / best['predict_rows_per_second']:.2f}x")
        rows.append(cells)
    return _table(
        [
            "model",
            "batch",
            "train: mtlrec / faster peer",
            "predict: mtlrec / faster peer",
            "predict (pre-transformed) / faster peer",
            "predict (compile_inference) / faster peer",
        ],
        rows,
    )


def scaling_table(records: list[dict[str, Any]]) -> str:
    rows = []
    for r in records:
        if not r["repeats"]:
            rows.append(
                [r["model"], f"{r['rows']:,}", "failed: " + "; ".join(r["failures"])] + [""] * 5
            )
            continue
        fit, pre = r["fit_seconds"], r.get("preprocess_seconds")
        rows.append(
            [
                r["model"],
                f"{r['rows']:,}",
                spread(r, "fit_seconds", 1),
                num(pre, 1),
                num(fit / r["rows"] * 1e6, 1),
                num(r["train_samples_per_second"]),
                num(r["peak_rss_mb"]),
                " / ".join(f"{v:.3f}" for v in r["auc"].values()),
            ]
        )
    return _table(
        [
            "model",
            "rows",
            "epoch s (fit call)",
            "preprocess s (standalone)",
            "s per 1M rows",
            "rows/s",
            "peak RSS MB",
            f"AUC {' / '.join(TASKS)}",
        ],
        rows,
    )


def notes(records: list[dict[str, Any]]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    for r in records:
        if r["library"] != "mtlrec" and r.get("note"):
            seen.setdefault((r["library"], r["model"]), r["note"])
    return [f"- {LIBRARIES[lib]} {model}: {note}" for (lib, model), note in seen.items()]


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=list(REFERENCE_CONFIGS))
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 2048])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer-python", type=Path, default=HERE.parent / ".venv-peers/bin/python")
    parser.add_argument(
        "--nextrec-python", type=Path, default=HERE.parent / ".venv-nextrec/bin/python"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="the src/ folder of another mtlrec checkout (e.g. a git worktree of an older "
        "commit), timed side by side as library 'baseline'",
    )
    parser.add_argument(
        "--scaling-rows",
        nargs="+",
        type=int,
        default=None,
        help="default 1e5 1e6 4e6 (--quick: 1e4 3e4)",
    )
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 1 epoch (smoke test)")
    parser.add_argument("--output", type=Path, help="folder for speed.md and speed.json")
    args = parser.parse_args(argv)
    if args.baseline_src is None:
        args.libraries = [lib for lib in args.libraries if lib != "baseline"]
    if args.quick:
        args.repeats, args.epochs = 1, 1
    if args.scaling_rows is None:
        args.scaling_rows = [10_000, 30_000] if args.quick else [100_000, 1_000_000, 4_000_000]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    pythons = {"mtlrec": sys.executable, "baseline": sys.executable}
    for lib in [lib for lib in args.libraries if lib in PEER_MODULES]:
        python = args.nextrec_python if lib == "nextrec" else args.peer_python
        problem = peer_problem(python, PEER_MODULES[lib])
        if problem:
            print(f"skipping {LIBRARIES[lib]}: {problem}", file=sys.stderr)
        else:
            pythons[lib] = str(python)
    libraries = [lib for lib in args.libraries if lib in pythons]

    with tempfile.TemporaryDirectory(prefix="mtlrec-speed-") as tmp_name:
        tmp = Path(tmp_name)
        adult = adult_dataset(tmp)
        counted = [m for m in args.models if m in MODELS]
        flops = mtlrec_flops(counted, adult) if "mtlrec" in libraries else {}
        rates: dict[str, list[float]] = {}
        runs: list[dict[str, Any]] = []
        pairs = [(m, lib) for m in args.models for lib in libraries if has_model(lib, m)]
        total = args.repeats * len(args.batch_sizes) * len(pairs)
        for repeat in range(args.repeats):
            for shape, rate in ceiling(args.threads).items():
                rates.setdefault(shape, []).append(rate)
            order = libraries[repeat % len(libraries) :] + libraries[: repeat % len(libraries)]
            for bs in args.batch_sizes:
                for model in args.models:
                    for lib in (lib for lib in order if (model, lib) in pairs):
                        worker_args = [
                            "--data",
                            str(adult),
                            "--model",
                            model,
                            "--config",
                            json.dumps(comparison_config(model)),
                            "--batch-size",
                            str(bs),
                            "--epochs",
                            str(args.epochs),
                            "--threads",
                            str(args.threads),
                        ]
                        script = "mtlrec" if lib in MTLREC_LIBRARIES else lib
                        baseline = str(args.baseline_src) if lib == "baseline" else None
                        result = run_worker(
                            pythons[lib],
                            f"_worker_{script}.py",
                            worker_args,
                            WORKER_TIMEOUT_S,
                            pythonpath=baseline,
                        )
                        result.update(
                            {"library": lib, "model": model, "batch_size": bs, "repeat": repeat}
                        )
                        runs.append(result)
                        _progress(len(runs), total, result, started)
        ceiling_rates = {shape: median(v) for shape, v in rates.items()}
        best_ceiling = max(ceiling_rates.values(), default=None)
        records = summarize(runs, ("library", "model", "batch_size"), METRICS)
        add_efficiency(records, flops, best_ceiling)

        scaling: list[dict[str, Any]] = []
        scaling_models = [m for m in args.models if m in SCALING_MODELS] or SCALING_MODELS
        if not args.skip_scaling and "mtlrec" in libraries:
            scaling = run_scaling(tmp, args, scaling_models, started)

    elapsed = time.perf_counter() - started
    report = render(args, records, rates, best_ceiling, scaling, libraries, elapsed)
    print(report)
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "speed.md").write_text(report + "\n")
        table = [{"benchmark": "adult", **r} for r in records]
        table += [{"benchmark": "scaling", **r} for r in scaling]
        (args.output / "speed.json").write_text(json.dumps(table, indent=1) + "\n")
        raw = {
            "machine": machine(),
            "ceiling_gflops": rates,
            "elapsed_seconds": elapsed,
            "command": sys.argv,
            "runs": runs,
        }
        (args.output / "speed_raw.json").write_text(json.dumps(raw, indent=1) + "\n")
        print(
            f"\nwrote speed.md, speed.json (records), speed_raw.json (every run, "
            f"ceiling, machine) to {args.output}",
            file=sys.stderr,
        )


def run_scaling(
    tmp: Path, args: argparse.Namespace, models: list[str], started: float
) -> list[dict[str, Any]]:
    """One epoch of mtlrec MMoE / PLE (batch 2048) on synthetic click logs of growing size."""
    runs: list[dict[str, Any]] = []
    for rows in args.scaling_rows:
        folder = synthetic_dataset(tmp, rows)
        for repeat in range(args.repeats):
            for model in models:
                result = run_worker(
                    sys.executable,
                    "_worker_mtlrec.py",
                    [
                        "--data",
                        str(folder),
                        "--model",
                        model,
                        "--config",
                        json.dumps(REFERENCE_CONFIGS[model]),
                        "--batch-size",
                        str(SCALING_BATCH),
                        "--epochs",
                        "1",
                        "--threads",
                        str(args.threads),
                        "--predict-repeats",
                        "1",
                        "--predict-batch-sizes",
                        "8192",
                        "--time-preprocessing",
                    ],
                    WORKER_TIMEOUT_S,
                )
                result.update(
                    {
                        "library": "mtlrec",
                        "model": model,
                        "rows": rows,
                        "batch_size": SCALING_BATCH,
                        "repeat": repeat,
                    }
                )
                runs.append(result)
                _progress(
                    len(runs),
                    len(args.scaling_rows) * args.repeats * len(models),
                    result,
                    started,
                    f"scaling {rows:,} rows",
                )
        for path in folder.iterdir():
            path.unlink()
    records = summarize(runs, ("library", "model", "rows", "batch_size"), METRICS)
    for r in records:
        r["ceiling_percent"] = None
    return records


def _progress(
    done: int, total: int, result: dict[str, Any], started: float, what: str = ""
) -> None:
    head = (
        f"[{done}/{total} {time.perf_counter() - started:6.0f}s] {what} "
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


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def render(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    rates: dict[str, list[float]],
    best_ceiling: float | None,
    scaling: list[dict[str, Any]],
    libraries: list[str],
    elapsed: float,
) -> str:
    info = machine()
    versions = {LIBRARIES[r["library"]]: r.get("version") for r in records if r.get("version")}
    parts = [
        "# mtlrec speed benchmark",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; elapsed {elapsed / 60:.1f} min",
        f"- machine: {info['cores']} cores, {info['cpu']}; {args.threads} torch threads per "
        f"worker; torch {info['torch']}, Python {info['python']}",
        "- libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        *(
            f"- {model}: every library gets {COMPARISON_CONFIGS[model]} instead of the "
            "reference (the shape the peer can build)"
            for model in args.models
            if model in COMPARISON_CONFIGS
        ),
        *(
            [f"- feature groups (POSO, PEPNet): {adult_groups()}"]
            if {"poso", "pepnet"} & set(args.models)
            else []
        ),
        f"- command: `python benchmarks/speed.py {' '.join(sys.argv[1:])}`",
        f"- Adult two-task (income, marital), 32,561 train / 16,281 test rows, reference "
        f"configs, Adam lr 1e-3, {args.epochs} epoch(s), {args.repeats} repeat(s): "
        "median (min–max); each measurement in its own process after an untimed 1-epoch "
        "warm-up fit on 8 batches.",
        "- train samples/s = rows x epochs / wall time of the fit call (mtlrec: from raw "
        "rows, preprocessing included; peers: from label-encoded arrays). predict rows/s = "
        "16,281 / median of 3 predict calls, at whichever predict batch size was fastest for "
        "that library (256, 2048, 16384; mtlrec also its default cache-sized chunks) "
        "(mtlrec: raw rows; pre-transformed: a ColumnBatch at the same size; peers: their "
        "encoded dict). predict rows/s (compiled): mtlrec after `compile_inference()`, fastest "
        "of the same sizes, the first (compiling) call at each size untimed. peak RSS "
        "(before compiling): "
        "ru_maxrss of the worker process (data frames included). CPU stall %: share of "
        "the worker's wall time in which some task on the machine waited for a CPU "
        "(/proc/pressure/cpu); high values mean contention distorted the timing.",
        "",
        f"## Machine ceiling (best: {num(best_ceiling, 1)} GFLOP/s)",
        "",
        ceiling_table(rates),
        "",
    ]
    for bs in args.batch_sizes:
        parts += [f"## Adult, batch {bs}", "", results_table(records, bs), ""]
    if "mtlrec" in libraries and "baseline" in libraries:
        parts += [
            f"## Against the baseline checkout ({args.baseline_src})",
            "",
            baseline_table(records),
            "",
        ]
    if "mtlrec" in libraries and any(lib in PEER_MODULES for lib in libraries):
        parts += [
            "## Speed ratio (mtlrec / faster peer, >1 = mtlrec faster)",
            "",
            ratio_table(records),
            "",
        ]
    if "mtlrec" in libraries:
        parts += [
            "## mtlrec FLOP efficiency",
            "",
            "Analytic FLOPs per sample: every expert/gate/tower linear layer "
            "members x in x out multiply-adds, plus gate mixing gates x experts x units; "
            "forward = 2 x MACs, training = 3 x forward; embeddings, biases, "
            "activations, softmax, loss and optimizer ignored. The FlopCounter column "
            "is torch.utils.flop_counter's count of one forward pass (cross-check). "
            "% ceiling = achieved GFLOP/s / best matmul GFLOP/s above.",
            "",
            efficiency_table(records),
            "",
        ]
    if scaling:
        parts += [
            "## Scaling: synthetic click log, mtlrec, 1 epoch, batch 2048",
            "",
            "20 sparse columns (vocabularies 10 to 10^6, Zipf-like ids), 10 dense, 2 "
            f"correlated binary labels; {SCALING_TEST_ROWS:,} extra test rows. Batch "
            "2048 keeps 4M rows feasible on 2 cores. The fit call includes "
            "preprocessing (vocabularies, scaling); the standalone preprocessing "
            "time is measured separately in the same worker.",
            "",
            scaling_table(scaling),
            "",
        ]
    peer_notes = notes(records)
    if peer_notes:
        parts += ["## Peer deviations from the reference configs", "", *peer_notes, ""]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
