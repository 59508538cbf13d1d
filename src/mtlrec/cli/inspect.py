"""``mtlrec inspect``: how a saved model's gates use their experts."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import inspection
from ..estimator import load_model
from ..exceptions import ConfigError
from .common import _add_batch_size, _add_threads
from .tables import read_table


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..experiments.plots import plot_gates

    output = Path(args.output) if args.output else Path(args.bundle) / "gates.png"
    if output.suffix.lower() != ".png":
        raise ConfigError(f"--output {output}: the heatmap is a PNG; give a path ending in .png")
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite or another --output")
    model = load_model(args.bundle)
    weights = model.gate_weights(
        read_table(args.data), batch_size=args.batch_size, threads=args.threads
    )
    if not weights:
        raise ConfigError(
            f"{args.bundle}: a {model.architecture} model has no gates to inspect; "
            "mixture-of-experts architectures (OMoE, MMoE, CGC, PLE) have them"
        )
    summary = inspection.gate_summary(weights, model.network.expert_groups())
    rows = len(next(iter(weights.values())))
    print(f"mean gate weight per expert ({model.architecture}, {rows:,} rows):")
    print(summary.to_string(float_format="{:.3f}".format, na_rep="-"))
    print()
    print("\n".join(inspection.utilisation_lines(inspection.expert_utilisation(weights))))
    plot_gates(summary, output)
    print(f"\nwrote {output}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``inspect`` subcommand and its options."""
    p = sub.add_parser(
        "inspect",
        help="show how a saved model's gates use their experts",
        description="Print the mean gate weight per gate and expert of a saved "
        "mixture-of-experts model (OMoE, MMoE, CGC, PLE) on a data file, each gate's "
        "normalised entropy and top expert, warnings about collapsed gates and unused "
        "experts, and write the table as a heatmap PNG.",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder from 'train'")
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) file with every feature column",
    )
    p.add_argument(
        "--output",
        metavar="PNG",
        help="heatmap file (default: BUNDLE/gates.png)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing heatmap file")
    _add_batch_size(p)
    _add_threads(p)
