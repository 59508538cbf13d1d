"""``mtlrec export``: a saved model as ONNX, with its preprocessing spec."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..estimator import load_model


def cmd_export(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    output = Path(args.output) if args.output else bundle / "model.onnx"
    model = load_model(args.bundle)
    path = model.export_onnx(output, overwrite=args.overwrite)
    outputs = ", ".join(model.network.output_names)
    print(
        f"wrote {path} (inputs: encoded tensors with a dynamic batch axis; outputs: "
        f"{outputs}) and {path.with_suffix('.preprocessing.json')} (how to encode raw rows)"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``export`` subcommand and its options."""
    p = sub.add_parser(
        "export",
        help="write a saved model as ONNX, with its preprocessing spec",
        description="Write a saved model as an ONNX graph over the encoded tensors "
        "(sparse ids, dense values, sequences and lengths; a dynamic batch axis) with one "
        "named output per task (and funnel joint), as predict returns them, and a "
        ".preprocessing.json file beside it with the vocabularies or hash settings, scalers "
        'and column order. Needs the onnx package: pip install "mtlrec[onnx]".',
    )
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder from 'train'")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="(default: onnx)")
    p.add_argument("--output", metavar="FILE", help="the .onnx file (default: BUNDLE/model.onnx)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
