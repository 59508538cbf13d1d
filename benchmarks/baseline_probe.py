"""This checkout against another one (a baseline), in one process, paired.

    python benchmarks/baseline_probe.py BASELINE_SRC [models,comma,separated]
        [--batches 256 2048] [--rounds 15] [--what fit predict]

Copies the baseline's ``mtlrec`` package (from BASELINE_SRC, e.g. the ``src/`` of a git
worktree of an older commit) to a temporary folder as ``mtlrec_baseline`` (the package
imports itself relatively, so both load side by side), builds each reference model on
Adult in both versions with the same seed, and alternates them in short blocks, their
order shuffled each round:

* ``fit``: a whole ``fit`` call from raw rows, one epoch, at each batch size;
* ``predict``: ``predict`` on the 16,281 test rows from raw rows (default chunks).

Prints the median time of each and the median of the per-round ratios baseline / this
(> 1: this checkout is faster). Run it with this checkout's environment; both versions
opt into the same heap setting (the baseline may set it on its first ``fit``). Timing
in one process, alternated, cancels most of the drift that separate processes see on a
shared machine; ``--self`` times this checkout against itself to show the bias left.
"""

from __future__ import annotations

import argparse
import importlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS


def load_baseline(src: Path, folder: Path):
    """The baseline's package, imported as ``mtlrec_baseline``."""
    shutil.copytree(src / "mtlrec", folder / "mtlrec_baseline")
    for path in (folder / "mtlrec_baseline").rglob("*.py"):  # registries name their package
        text = path.read_text()
        if '"mtlrec.' in text:
            path.write_text(text.replace('"mtlrec.', '"mtlrec_baseline.'))
    sys.path.insert(0, str(folder))
    return importlib.import_module("mtlrec_baseline")


def make(package, name: str, seed: int = 0):
    features = [
        package.SparseFeature(f.name, f.embedding_dim)
        if isinstance(f, mtlrec.SparseFeature)
        else package.DenseFeature(f.name)
        for f in adult_features()
    ]
    tasks = [package.Task(t.name) for t in adult_tasks()]
    params = dict(REFERENCE_CONFIGS[name])
    accepted = package.models.network_class(name).config_class.__dataclass_fields__
    for option in set(params) - set(accepted):  # options newer than the baseline
        if params.pop(option) not in (False, None):
            print(f"{name}: the baseline has no option {option!r}", file=sys.stderr)
    return package.create_model(name, features, tasks, seed=seed, **params)


def paired(work: dict, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {key: [] for key in work}
    for _ in range(rounds):
        order = list(work.items())
        random.shuffle(order)
        for key, job in order:
            start = time.perf_counter()
            job()
            times[key].append(time.perf_counter() - start)
    return times


def report(label: str, times: dict[str, list[float]]) -> None:
    ratio = statistics.median(b / t for b, t in zip(times["baseline"], times["this"], strict=True))
    spread = sorted(b / t for b, t in zip(times["baseline"], times["this"], strict=True))
    quartiles = spread[len(spread) // 4], spread[(3 * len(spread)) // 4]
    print(
        f"{label}: this {statistics.median(times['this']) * 1e3:8.1f} ms, baseline "
        f"{statistics.median(times['baseline']) * 1e3:8.1f} ms, baseline / this {ratio:.3f} "
        f"(quartiles {quartiles[0]:.3f}-{quartiles[1]:.3f})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", type=Path, help="the src/ folder of the other checkout")
    parser.add_argument("models", nargs="?", default="shared_bottom,esmm,mmoe,cgc,ple")
    parser.add_argument("--batches", nargs="+", type=int, default=[256, 2048])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--what", nargs="+", default=["fit", "predict"])
    parser.add_argument("--self", action="store_true", help="this checkout against itself")
    args = parser.parse_args()
    torch.set_num_threads(2)
    mtlrec.retain_freed_memory()
    train, test = load_adult()
    with tempfile.TemporaryDirectory() as folder:
        other = mtlrec if args.self else load_baseline(args.baseline, Path(folder))
        for name in args.models.split(","):
            if "fit" in args.what:
                for rows in args.batches:

                    def fit(package, rows=rows, name=name):
                        make(package, name).fit(train, epochs=1, batch_size=rows, verbose=0)

                    work = {"this": lambda f=fit: f(mtlrec), "baseline": lambda f=fit: f(other)}
                    for job in work.values():
                        job()  # warm-up
                    report(f"{name:14s} fit batch {rows:5d}", paired(work, args.rounds))
            if "predict" in args.what:
                models = {
                    "this": make(mtlrec, name).fit(train, epochs=1, verbose=0),
                    "baseline": make(other, name).fit(train, epochs=1, verbose=0),
                }
                work = {key: (lambda m=m: m.predict(test)) for key, m in models.items()}
                for job in work.values():
                    job()
                report(f"{name:14s} predict      ", paired(work, 3 * args.rounds))


if __name__ == "__main__":
    main()
