"""UCI Adult (census income, 1994): the two-task income / never-married setup.

The original ``adult.data`` and ``adult.test`` files ship gzipped inside the package
(UCI, CC BY 4.0).
"""

from __future__ import annotations

import gzip
import io
import os
from importlib import resources
from typing import IO

import pandas as pd

from ..exceptions import DataError
from ..features import Feature, column_features
from ..tasks import Task

_RAW_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "gender", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income_bracket",
]  # fmt: skip

#: categorical inputs (age is categorical in the reference setup)
ADULT_SPARSE = [
    "age", "workclass", "education", "occupation", "relationship", "race", "gender",
    "native_country",
]  # fmt: skip
#: numeric inputs
ADULT_DENSE = ["fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
#: label columns: income > 50K, marital status is Never-married
ADULT_TASKS = ("income", "marital")
#: feature groups (``group=``), read only by the architectures that personalise with them
#: (POSO, PEPNet): the person's own attributes as ``user``, the employer type as
#: ``domain``; every other architecture's output is the same with or without them
ADULT_GROUPS = {"user": ("age", "gender", "race", "relationship"), "domain": ("workclass",)}


def _open(path: str | None, name: str) -> IO[bytes]:
    """Binary handle of ``name`` (plain or .gz) in ``path``, or of the bundled gzip copy."""
    if path is None:
        return resources.files(__package__).joinpath("data", f"{name}.gz").open("rb")
    for candidate in (name, f"{name}.gz"):
        full = os.path.join(path, candidate)
        if os.path.isfile(full):
            return open(full, "rb")
    raise DataError(f"neither {name} nor {name}.gz found in {path!r}; point path at that folder")


def _read(handle: IO[bytes], skip_first_line: bool) -> pd.DataFrame:
    with handle:
        raw = handle.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic number
        raw = gzip.decompress(raw)
    frame = pd.read_csv(
        io.BytesIO(raw),
        header=None,
        names=_RAW_COLUMNS,
        skipinitialspace=True,
        na_values=["?"],
        keep_default_na=False,
        skiprows=1 if skip_first_line else 0,
    )
    bracket = frame.pop("income_bracket").str.rstrip(".")
    marital = frame.pop("marital_status")
    frame["income"] = (bracket == ">50K").astype("int64")
    frame["marital"] = (marital == "Never-married").astype("int64")
    return frame


def load_adult(path: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train (32,561 rows) and test (16,281 rows) frames of UCI Adult.

    Columns: the 13 inputs of ``ADULT_SPARSE`` / ``ADULT_DENSE`` plus int64 labels
    ``income`` (income bracket >50K) and ``marital`` (Never-married); '?' becomes missing.

    Args:
        path: folder holding ``adult.data(.gz)`` and ``adult.test(.gz)``; the copy bundled
            with mtlrec when None.
    """
    train = _read(_open(path, "adult.data"), skip_first_line=False)
    test = _read(_open(path, "adult.test"), skip_first_line=True)
    return train, test


def adult_features(embedding_dim: int = 16) -> list[Feature]:
    """Sparse then dense feature specs of the reference setup, in :data:`ADULT_GROUPS`."""
    return column_features(ADULT_SPARSE, ADULT_DENSE, embedding_dim, ADULT_GROUPS)


def adult_tasks() -> list[Task]:
    """The two binary tasks: income and marital."""
    return [Task(name) for name in ADULT_TASKS]
