"""``mtlrec train``: train a model from a YAML config and save it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..bundle import existing_bundle
from ..estimator import MultiTaskModel
from ..exceptions import ConfigError
from ..experiments.benchmark import load_dataset
from .common import _add_threads
from .config import load_config
from .tables import format_metrics, read_table


def _refuse_existing_bundle(path: Path, overwrite: bool, option: str = "--output") -> None:
    """Fail before any work when ``path`` cannot take a bundle: it (or a folder above it)
    is a file, or it already holds a saved model and ``overwrite`` is off."""
    place = next((p for p in (path, *path.parents) if p.exists()), None)
    if place is not None and not place.is_dir():
        what = "is a file" if place == path else f"lies in {place}, which is a file"
        raise FileExistsError(
            f"{option} {path} {what}; a model is saved as a folder of files: give the path "
            "of a folder (new or existing) instead"
        )
    existing = existing_bundle(path)
    if existing and not overwrite:
        raise FileExistsError(
            f"{path} already holds a saved model ({', '.join(existing)}); "
            "pass --overwrite to replace it or choose another --output"
        )


def cmd_train(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    output = Path(args.output) if args.output else config.output
    if output is None:
        raise ConfigError("no output folder: set 'output:' in the config or pass --output")
    option = "--output" if args.output else f"{args.config}: output"
    _refuse_existing_bundle(output, args.overwrite, option)

    if config.dataset is not None:
        bundled = load_dataset(config.dataset)
        train, validation, test = bundled.train, None, bundled.test
        features = config.features or bundled.features
        tasks = config.tasks or bundled.tasks
    else:
        train = read_table(config.train)
        validation = read_table(config.validation) if config.validation else None
        test = read_table(config.test) if config.test else None
        features, tasks = config.features, config.tasks

    fit_options = dict(config.training)
    if args.epochs is not None:
        fit_options["epochs"] = args.epochs
    seed = fit_options.pop("seed", 0)
    device = fit_options.pop("device", "cpu")
    model = MultiTaskModel(
        features,
        tasks,
        architecture=config.architecture,
        scaling=config.scaling,
        seed=seed,
        device=device,
        **config.hyperparameters,
    )
    start = time.perf_counter()
    model.fit(
        train, validation, verbose=0 if args.quiet else 1, threads=args.threads, **fit_options
    )
    seconds = time.perf_counter() - start
    model.save(output, overwrite=args.overwrite)
    print(
        f"trained {config.architecture} ({model.num_parameters():,} parameters) on "
        f"{len(train):,} rows in {seconds:.1f}s; saved to {output}"
    )
    if test is not None:
        print(f"test metrics ({len(test):,} rows):")
        print(format_metrics(model.evaluate(test, threads=args.threads)))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``train`` subcommand and its options."""
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config and save it",
        description="Train a model described by a YAML config (sections data, "
        "features, tasks, model, training, output) and save the "
        "bundle; prints test metrics when the data has a test split.",
    )
    p.add_argument(
        "--config",
        required=True,
        metavar="FILE.yaml",
        help="YAML config; relative paths in it are relative to its folder",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="bundle folder (overrides the config's 'output'; relative to the current folder)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a model already saved in the output folder",
    )
    p.add_argument(
        "--epochs",
        type=int,
        metavar="E",
        help="training epochs (overrides the config's training.epochs)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress on stderr")
    _add_threads(p)
