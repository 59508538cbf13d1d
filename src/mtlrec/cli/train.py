"""``mtlrec train``: train a model from a YAML config and save it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..bundle import existing_bundle
from ..distributed import is_main_process
from ..estimator import MultiTaskModel
from ..exceptions import ConfigError
from ..experiments.benchmark import load_dataset
from ..sources import describe_data
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
    elif config.stream or args.stream:  # read batch by batch: any size
        train, validation, test = config.train, config.validation, config.test
        features, tasks = config.features, config.tasks
    else:
        train = read_table(config.train)
        validation = read_table(config.validation) if config.validation else None
        test = read_table(config.test) if config.test else None
        features, tasks = config.features, config.tasks

    fit_options = dict(config.training)
    if args.epochs is not None:
        fit_options["epochs"] = args.epochs
    if args.checkpoint_dir is not None:
        fit_options["checkpoint_dir"] = Path(args.checkpoint_dir)
    if args.checkpoint_every is not None:
        fit_options["checkpoint_every"] = args.checkpoint_every
    if args.resume:
        if "checkpoint_dir" not in fit_options:
            raise ConfigError(
                "--resume needs the checkpoint folder: pass --checkpoint-dir or set "
                "training.checkpoint_dir in the config"
            )
        fit_options["resume"] = True
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
    if not is_main_process():  # under torchrun, rank 0 saves and reports
        return 0
    model.save(output, overwrite=args.overwrite)
    rows = describe_data(train).get("rows")
    print(
        f"trained {config.architecture} ({model.num_parameters():,} parameters) on "
        f"{'a stream' if rows is None else f'{rows:,} rows'} in {seconds:.1f}s; "
        f"saved to {output}"
    )
    if test is not None:
        print(f"test metrics ({describe_data(test).get('rows') or 'all'} rows):")
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
    p.add_argument(
        "--stream",
        action="store_true",
        help="read the data files batch by batch instead of into memory (any size; a "
        "folder of Parquet files is always streamed)",
    )
    p.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="save the training state there after every epoch (and every "
        "--checkpoint-every steps), to resume a stopped run",
    )
    p.add_argument(
        "--checkpoint-every", type=int, metavar="K", help="also save a checkpoint every K steps"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in the checkpoint folder from its newest checkpoint",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress on stderr")
    _add_threads(p)
