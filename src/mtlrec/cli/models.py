"""``mtlrec models``: the architectures with their hyperparameters and defaults."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..estimator import model_class
from ..heads import list_heads
from ..models import list_models, network_class


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    return list(value) if isinstance(value, tuple) else value


def cmd_models(args: argparse.Namespace) -> int:
    for name in list_models():
        cls = model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name} ({cls.__name__}): {doc[0] if doc else ''}".rstrip(": "))
        for field in dataclasses.fields(network_class(name).config_class):
            print(f"    {field.name} = {_default(field)!r}")
    print(f"task types: {', '.join(list_heads())}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``models`` subcommand (alias ``list-models``)."""
    sub.add_parser(
        "models",
        aliases=["list-models"],
        help="list architectures with their hyperparameters and defaults",
        description="Print each registered architecture with its hyperparameters "
        "and their default values.",
    )
