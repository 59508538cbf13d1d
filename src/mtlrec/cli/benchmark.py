"""``mtlrec benchmark``: train every reference model on a dataset (or the synthetic,
funnel and entity experiments) and write the results."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..balancers import list_balancers
from ..exceptions import ConfigError
from ..experiments.benchmark import (
    REFERENCE_CONFIGS,
    REFERENCE_TRAINING,
    describe_datasets,
    format_table,
    load_dataset,
    run_benchmark,
    write_outputs,
)
from ..experiments.funnel import FUNNEL_DEFAULTS, FUNNEL_MODELS
from ..experiments.synthetic import SYNTHETIC_CORRELATIONS, SYNTHETIC_DEFAULTS
from .common import _add_threads

#: benchmark epochs by dataset (census-kdd: the most, with early stopping on validation)
BENCHMARK_EPOCHS = {"adult": REFERENCE_TRAINING["epochs"], "census-kdd": 10}

#: where ``mtlrec benchmark`` writes without --output, relative to the current folder
RESULTS_DIR = Path("results")


def _results_name(args: argparse.Namespace) -> str:
    """The benchmark's name in its default results folder (census-kdd with its group)."""
    if args.dataset == "census-kdd":
        return f"census-kdd-group{args.group or 1}"
    return args.dataset


def default_results_folder(name: str, root: Path = RESULTS_DIR) -> Path:
    """``root/name``, or ``root/name-2``, ``-3``, ... when that already holds something:
    a default never overwrites earlier results."""

    def taken(path: Path) -> bool:
        return path.exists() and (not path.is_dir() or any(path.iterdir()))

    path, n = root / name, 1
    while taken(path):
        n += 1
        path = root / f"{name}-{n}"
    return path


def _output_folder(args: argparse.Namespace) -> Path:
    """Where the results go: --output, else a free :func:`default_results_folder`."""
    return Path(args.output) if args.output else default_results_folder(_results_name(args))


def _wrote(out: Path, paths: dict[str, Path]) -> None:
    """Say on stderr where a benchmark's files went."""
    names = ", ".join(p.name for p in paths.values())
    print(f"\nresults written to {out}{os.sep} ({names})", file=sys.stderr)


def cmd_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> int:
    out = Path(args.output) if args.output else None
    if out is not None and out.exists() and not out.is_dir():
        raise FileExistsError(f"--output {out} is a file; give a folder for the results")
    if out is not None and (out / "results.json").exists() and not args.overwrite:
        raise FileExistsError(
            f"{out} already holds benchmark results; pass --overwrite or another --output"
        )
    if args.dataset in ("movielens", "entities"):
        from ..experiments.entities import entity_benchmark_command

        return entity_benchmark_command(args, argv, _output_folder(args))
    if args.dataset == "synthetic":
        return _synthetic_benchmark(args, argv)
    if args.dataset in ("funnel", "hillstrom"):
        if args.balancer is not None:
            raise ConfigError("--balancer is an option of the reference and synthetic benchmarks")
        return _funnel_benchmark(args, argv)
    if args.quick:
        raise ConfigError("--quick is an option of the funnel and hillstrom benchmarks only")
    if args.correlations is not None or args.rows is not None:
        raise ConfigError("--correlations and --rows are options of the synthetic benchmark only")
    options: dict[str, Any] = {}
    if args.dataset == "census-kdd":
        options = {"group": args.group, "path": args.data, "download": args.download or None}
    elif args.group is not None or args.data is not None or args.download:
        raise ConfigError("--group, --data and --download are options of census-kdd only")
    data = load_dataset(args.dataset, **options)
    epochs = args.epochs or BENCHMARK_EPOCHS.get(args.dataset, REFERENCE_TRAINING["epochs"])
    batch_size = args.batch_size or REFERENCE_TRAINING["batch_size"]
    lr = args.lr or REFERENCE_TRAINING["lr"]
    if not args.quiet:
        print(f"{args.dataset}: {data.split}", file=sys.stderr)
    records = run_benchmark(
        data,
        models=args.models,
        seeds=args.seeds,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_rows=args.max_rows,
        verbose=0 if args.quiet else 1,
        patience=args.patience,
        threads=args.threads,
        balancer=args.balancer or "equal",
    )
    print(format_table(records))
    settings = {
        "dataset": args.dataset + (f" group {args.group or 1}" if options else ""),
        "split": data.split,
        "seeds": args.seeds,
        "epochs": epochs
        if data.validation is None
        else f"at most {epochs}, early stopping on validation {data.tasks[0].name} "
        f"(patience {args.patience}, best epoch kept)",
        "batch_size": batch_size,
        "optimizer": f"adam, lr {lr:g}",
        "balancer": args.balancer or "equal",
    }
    if args.max_rows:
        settings["max_rows"] = args.max_rows
    out = _output_folder(args)
    paths = write_outputs(records, out, command=" ".join(["mtlrec", *argv]), settings=settings)
    _wrote(out, paths)
    return 0


def _synthetic_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``mtlrec benchmark synthetic``: the MMoE paper's controlled-correlation experiment."""
    from ..experiments.synthetic import (
        SYNTHETIC_CONFIGS,
        format_synthetic_table,
        run_synthetic_benchmark,
        write_synthetic_outputs,
    )

    census_only = args.group is not None or args.data is not None or args.download
    if census_only or args.max_rows is not None:
        raise ConfigError("--group, --data, --download and --max-rows do not apply to synthetic")
    models = args.models or list(SYNTHETIC_CONFIGS)
    unknown = [m for m in models if m not in SYNTHETIC_CONFIGS]
    if unknown:
        raise ConfigError(
            f"synthetic: {unknown} have no sizes for it (a funnel model, or one that needs "
            f"feature groups the generated rows lack); it runs {list(SYNTHETIC_CONFIGS)}"
        )
    settings = {
        "n_train": args.rows or SYNTHETIC_DEFAULTS["n_train"],
        "epochs": args.epochs or SYNTHETIC_DEFAULTS["epochs"],
        "batch_size": args.batch_size or SYNTHETIC_DEFAULTS["batch_size"],
        "lr": args.lr or SYNTHETIC_DEFAULTS["lr"],
        "balancer": args.balancer or "equal",
    }
    records = run_synthetic_benchmark(
        correlations=args.correlations or SYNTHETIC_CORRELATIONS,
        seeds=args.seeds,
        models=models,
        verbose=0 if args.quiet else 1,
        threads=args.threads,
        **settings,
    )
    print(format_synthetic_table(records))
    out = _output_folder(args)
    paths = write_synthetic_outputs(records, out, command=" ".join(["mtlrec", *argv]))
    _wrote(out, paths)
    return 0


def _funnel_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``mtlrec benchmark funnel`` (simulated funnels with ground truth) and ``hillstrom``
    (the MineThatData visit -> conversion funnel): CVR models, naive to entire-space."""
    from ..experiments.funnel import (
        FUNNEL_QUICK,
        HILLSTROM_DEFAULTS,
        format_funnel_table,
        run_funnel_benchmark,
        run_hillstrom_benchmark,
        write_funnel_outputs,
    )

    name = args.dataset
    if args.group is not None or args.download or args.correlations is not None:
        raise ConfigError(f"--group, --download and --correlations do not apply to {name}")
    models = args.models or list(FUNNEL_MODELS)
    unknown = [m for m in models if m not in FUNNEL_MODELS]
    if unknown:
        raise ConfigError(f"{name} runs {list(FUNNEL_MODELS)}, not {unknown}")
    defaults = FUNNEL_DEFAULTS if name == "funnel" else HILLSTROM_DEFAULTS
    quick = FUNNEL_QUICK if args.quick else {}
    fit = {
        "epochs": args.epochs or quick.get("epochs", defaults["epochs"]),
        "batch_size": args.batch_size or defaults["batch_size"],
        "lr": args.lr or defaults["lr"],
    }
    common = {"models": models, "seeds": args.seeds, "verbose": 0 if args.quiet else 1}
    if name == "funnel":
        if args.data is not None or args.max_rows is not None:
            raise ConfigError("--data and --max-rows do not apply to funnel (use --rows)")
        rows = {
            "n_train": args.rows or quick.get("n_train", defaults["n_train"]),
            "n_test": quick.get("n_test", defaults["n_test"]),
        }
        records = run_funnel_benchmark(**common, **rows, **fit, threads=args.threads)
        title = "mtlrec funnel benchmark (simulated click -> conversion, ground truth)"
        settings = {"data": "mtlrec.datasets.synthetic_funnel defaults", **rows}
    else:
        if args.data is None:
            raise ConfigError(
                "hillstrom needs --data: the hillstrom.csv(.gz) file or the folder holding it"
            )
        if args.rows is not None:
            raise ConfigError("--rows does not apply to hillstrom (use --max-rows)")
        max_rows = args.max_rows or quick.get("n_train")
        records = run_hillstrom_benchmark(
            args.data, **common, **fit, max_rows=max_rows, threads=args.threads
        )
        title = "mtlrec Hillstrom benchmark (e-mail visit -> conversion)"
        settings = {
            "data": f"{args.data}, shuffled with each run's seed, "
            f"{1 - defaults['test']:.0%} train / {defaults['test']:.0%} test"
        }
        if max_rows:
            settings["max_rows"] = max_rows
    print(format_funnel_table(records))
    settings = {**settings, "seeds": args.seeds, **fit, "optimizer": "adam"}
    notes = []
    if name == "hillstrom":
        notes = [
            "Hillstrom's funnel: `click` is the site visit, `conversion` a purchase "
            "after it. Few test conversions: differences within the std are noise."
        ]
    out = _output_folder(args)
    paths = write_funnel_outputs(
        records,
        out,
        title,
        command=" ".join(["mtlrec", *argv]),
        settings=settings,
        notes=notes,
    )
    _wrote(out, paths)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``benchmark`` subcommand and its options."""
    p = sub.add_parser(
        "benchmark",
        help="train every reference model on a dataset",
        description="Train each reference model (benchmark.REFERENCE_CONFIGS) "
        "for each seed on the train split (with early stopping where the dataset has a "
        "validation split, as census-kdd does), test it on the test split and print a "
        "Markdown table. 'synthetic' instead trains every architecture that has "
        "parameter-matched sizes for it (all but ESMM, POSO and PEPNet) on the "
        "MMoE paper's two regression tasks for each --correlations value. 'funnel' and "
        "'hillstrom' train click -> conversion models (experiments.funnel.FUNNEL_MODELS: "
        "a naive CVR model on clicked rows, ESMM, MMoE and PLE with each funnel loss) on "
        "simulated impressions with ground truth, or on the MineThatData e-mail data. "
        "'movielens' and 'entities' train Shared-Bottom, MMoE and PLE each with and without "
        "the user's history and with and without experts per entity (user, item), on "
        "MovieLens-100K or on simulated users and items with ground truth.",
    )
    p.add_argument(
        "dataset",
        choices=list(describe_datasets()),
        help="benchmark dataset; 'synthetic' runs the MMoE paper's task-correlation "
        "experiment (two regression tasks); 'funnel' and "
        "'hillstrom' the click -> conversion models",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="runs per model, with seeds 0..N-1 (default: %(default)s)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        choices=list(dict.fromkeys([*REFERENCE_CONFIGS, *FUNNEL_MODELS])),
        metavar="MODEL",
        help=f"models to run (default: all of {', '.join(REFERENCE_CONFIGS)}; funnel and "
        f"hillstrom: all of {', '.join(FUNNEL_MODELS)})",
    )
    p.add_argument(
        "--epochs",
        type=int,
        metavar="E",
        help="training epochs; the most epochs where early stopping applies (default: "
        + ", ".join(f"{k} {v}" for k, v in BENCHMARK_EPOCHS.items())
        + f", synthetic {SYNTHETIC_DEFAULTS['epochs']}, funnel and hillstrom "
        f"{FUNNEL_DEFAULTS['epochs']})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="B",
        help=f"training batch size (default: {REFERENCE_TRAINING['batch_size']})",
    )
    p.add_argument(
        "--lr",
        type=float,
        help=f"Adam learning rate (default: {REFERENCE_TRAINING['lr']:g}; synthetic: "
        f"{SYNTHETIC_DEFAULTS['lr']:g}, chosen on validation rows; funnel and hillstrom: "
        f"{FUNNEL_DEFAULTS['lr']:g})",
    )
    p.add_argument(
        "--correlations",
        type=float,
        nargs="+",
        metavar="P",
        help="synthetic: task correlation scores, each in [-1, 1] (default: 0.5 0.9 1.0)",
    )
    p.add_argument(
        "--rows",
        type=int,
        metavar="N",
        help="synthetic: training rows per run (default: 100,000; 20,000 more for test); "
        f"funnel: training impressions (default: {FUNNEL_DEFAULTS['n_train']:,}; "
        f"{FUNNEL_DEFAULTS['n_test']:,} more for test); entities: interactions generated "
        "(default 100,000; 20 %% of them for test)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="funnel and hillstrom: a small check of the pipeline, not a result (funnel: "
        "5,000 train and 5,000 test impressions; hillstrom: 5,000 rows of each split; "
        "1 epoch)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=2,
        metavar="P",
        help="with a validation split (census-kdd): epochs without improvement of the first "
        "task's validation AUC before stopping (default: %(default)s)",
    )
    p.add_argument(
        "--group",
        type=int,
        choices=[1, 2],
        help="census-kdd task group: 1 income + never married (default), "
        "2 college education + never married",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="census-kdd: folder with census-income.data(.gz) and census-income.test(.gz) "
        "(default: $MTLREC_DATA_DIR/census-kdd, else ~/.cache/mtlrec/census-kdd); "
        "hillstrom (required): the hillstrom.csv(.gz) file or the folder holding it; "
        "movielens (required): the ml-100k folder (GroupLens's or RecBole's files)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="census-kdd: download missing files from UCI into that folder (checksummed)",
    )
    p.add_argument(
        "--max-rows",
        type=int,
        metavar="N",
        help="use only the first N rows of each split (quick checks)",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="folder for results.md, results.json and results.png (adult, census-kdd: also "
        "training.png, the training curves); default: results/DATASET in the current folder "
        "(census-kdd: results/census-kdd-groupN), or results/DATASET-2, -3, ... when that "
        "already holds results: a default never overwrites",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace results already written to --output"
    )
    p.add_argument(
        "--balancer",
        choices=list_balancers(),
        metavar="NAME",
        help="loss balancer of every fit, one of: "
        + ", ".join(list_balancers())
        + " (default: equal; not for funnel and hillstrom)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines on stderr")
    _add_threads(p)
