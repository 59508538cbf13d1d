"""MineThatData e-mail analytics challenge (Hillstrom, 2008): a visit -> conversion funnel.

64,000 customers who bought in the last twelve months, randomly sent a men's e-mail, a
women's e-mail or none (``segment``), then followed for two weeks: ``visit`` (14.68 %)
and ``conversion`` (0.90 %, always after a visit) form a two-step funnel like click ->
conversion; ``spend`` is the money spent (kept in the table, never a feature: it reveals
the conversion). The file (``hillstrom.csv(.gz)``, Kevin Hillstrom's MineThatData blog)
is not bundled; :func:`load_hillstrom` reads it from a path and never downloads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..exceptions import ConfigError, DataError
from ..features import DenseFeature, Feature, SparseFeature

#: file names looked for in a folder
HILLSTROM_FILES = ("hillstrom.csv", "hillstrom.csv.gz")
#: categorical inputs (the 0/1 flags too: each is one of two categories)
HILLSTROM_SPARSE = (
    "history_segment", "zip_code", "channel", "segment", "mens", "womens", "newbie",
)  # fmt: skip
#: numeric inputs: months since the last purchase, dollars spent in the last year
HILLSTROM_DENSE = ("recency", "history")
#: label columns of the funnel, in order
HILLSTROM_TASKS = ("visit", "conversion")
_COLUMNS = (*HILLSTROM_SPARSE, *HILLSTROM_DENSE, *HILLSTROM_TASKS, "spend")


class HillstromSplits(NamedTuple):
    """Train, validation and test frames of :func:`split_hillstrom`."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def _find(path: str | os.PathLike) -> Path:
    """The csv(.gz) file ``path`` names, or the one inside the folder ``path``."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for name in HILLSTROM_FILES:
            if (path / name).is_file():
                return path / name
        raise DataError(
            f"Hillstrom data not found: no {' or '.join(HILLSTROM_FILES)} in the folder {path}; "
            f"put the MineThatData file there or pass the file's path"
        )
    raise DataError(
        f"Hillstrom data not found: {path} does not exist; pass the hillstrom.csv(.gz) file "
        f"or a folder holding it"
    )


def load_hillstrom(path: str | os.PathLike) -> pd.DataFrame:
    """The 64,000 customers of the MineThatData e-mail data, one row each.

    Columns: ``HILLSTROM_SPARSE`` (strings and 0/1 flags as in the file), int64
    ``recency``, float64 ``history``, int64 labels ``visit`` and ``conversion`` (0/1;
    every conversion has a visit) and float64 ``spend``.

    Args:
        path: the ``hillstrom.csv`` or ``hillstrom.csv.gz`` file, or a folder holding it.

    Raises:
        DataError: no such file, a column missing, a non-numeric number column, missing
            values, labels other than 0/1, or a conversion without a visit.
    """
    file = _find(path)
    try:
        frame = pd.read_csv(file, compression="infer")
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{file}: cannot read it as a Hillstrom csv ({error})") from error
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{file}: not the Hillstrom data, columns {missing} are missing; expected the "
            f"header {','.join(_COLUMNS)} (any order)"
        )
    frame = frame[list(_COLUMNS)].copy()
    holes = [c for c in _COLUMNS if frame[c].isna().any()]
    if holes:
        raise DataError(f"{file}: missing values in column(s) {holes}; the file has none")
    for name in (*HILLSTROM_DENSE, "spend", *HILLSTROM_TASKS):
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise DataError(f"{file}: column {name!r} must hold numbers, got {frame[name].dtype}")
    for name in (*HILLSTROM_TASKS, "mens", "womens", "newbie"):
        if not frame[name].isin((0, 1)).all():
            values = sorted(set(frame[name].unique()) - {0, 1})[:5]
            raise DataError(f"{file}: column {name!r} must be 0 or 1, found {values}")
        frame[name] = frame[name].astype("int64")
    orphans = int(((frame["conversion"] == 1) & (frame["visit"] == 0)).sum())
    if orphans:
        raise DataError(
            f"{file}: {orphans} row(s) have conversion = 1 but visit = 0; a conversion "
            f"follows a visit"
        )
    frame["recency"] = frame["recency"].astype("int64")
    frame["history"] = frame["history"].astype("float64")
    frame["spend"] = frame["spend"].astype("float64")
    return frame


def split_hillstrom(
    frame: pd.DataFrame, seed: int = 0, validation: float = 0.1, test: float = 0.2
) -> HillstromSplits:
    """A seeded shuffle of ``frame`` cut into train, validation and test (row shares
    ``1 - validation - test``, ``validation``, ``test``); validation may be empty (0)."""
    for name, share in (("validation", validation), ("test", test)):
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
            raise ConfigError(f"{name} must be a share in [0, 1), got {share!r}")
    if not validation + test < 1 or test == 0:
        raise ConfigError(
            f"test must be > 0 and validation + test < 1 (some rows must train), got "
            f"validation={validation!r}, test={test!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    order = np.random.default_rng(seed).permutation(len(frame))
    cuts = [round(len(frame) * (1 - validation - test)), round(len(frame) * (1 - test))]
    parts = [frame.iloc[part].reset_index(drop=True) for part in np.split(order, cuts)]
    return HillstromSplits(*parts)


def hillstrom_features(embedding_dim: int = 8) -> list[Feature]:
    """Sparse then dense feature specs (``spend`` and the labels left out)."""
    return [SparseFeature(name, embedding_dim=embedding_dim) for name in HILLSTROM_SPARSE] + [
        DenseFeature(name) for name in HILLSTROM_DENSE
    ]
