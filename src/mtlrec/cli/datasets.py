"""``mtlrec datasets``: list the benchmark datasets or export one as CSV files."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ..experiments.benchmark import DATASETS, describe_datasets, load_dataset
from .config import config_template
from .tables import write_table


def cmd_datasets(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, description in describe_datasets().items():
            print(f"{name:<12} {description}")
        print(
            f"\nbenchmark any with: mtlrec benchmark NAME; export {', '.join(sorted(DATASETS))} "
            "as CSV with: mtlrec datasets export NAME --output DIR"
        )
        return 0
    out = Path(args.output)
    targets = [out / "train.csv", out / "test.csv", out / "config.yaml"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --overwrite")
    data = load_dataset(args.name, **({"path": args.data} if args.data else {}))
    write_table(data.train, targets[0], overwrite=True)
    write_table(data.test, targets[1], overwrite=True)
    targets[2].write_text(
        yaml.safe_dump(
            config_template(args.name, data.features, data.tasks),
            sort_keys=False,
            default_flow_style=None,
        )
    )
    print(
        f"wrote {len(data.train):,} train and {len(data.test):,} test rows to {out}; "
        f"train with: mtlrec train --config {targets[2]}"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``datasets`` subcommand with its ``list`` and ``export`` actions."""
    p = sub.add_parser(
        "datasets",
        help="list the datasets or export one",
        description="List every benchmark dataset, or export a bundled one as CSV files "
        "with a matching train config.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "list",
        help="names and descriptions of the datasets",
        description="Print every dataset 'mtlrec benchmark' accepts with a description.",
    )
    e = actions.add_parser(
        "export",
        help="write train.csv, test.csv and config.yaml",
        description="Write a dataset's train.csv and test.csv plus a "
        "config.yaml for 'mtlrec train' into a folder.",
    )
    e.add_argument("name", choices=sorted(DATASETS), help="dataset to export")
    e.add_argument("--output", required=True, metavar="DIR", help="folder to write into")
    e.add_argument("--overwrite", action="store_true", help="replace existing files")
    e.add_argument(
        "--data", metavar="DIR", help="the dataset's files, where it is not bundled (movielens)"
    )
