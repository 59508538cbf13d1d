"""UCI Census-Income (KDD), 1994–1995 CPS: the two task groups of the MMoE paper.

Group 1 predicts ``income`` (over 50K) and ``marital`` (never married); group 2 predicts
``education_college`` and ``marital``. "At least college" is read as holding a bachelors,
masters, doctorate or professional school degree (:data:`CENSUS_COLLEGE_EDUCATION`);
associates degrees and "Some college but no degree" count as negative.

The files (UCI, CC BY 4.0) are too large to bundle: :func:`load_census_kdd` reads them from
a folder and fetches them from UCI only when asked to (``download=True``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from pathlib import Path
from typing import NamedTuple
from urllib.request import urlopen

import numpy as np
import pandas as pd

from ..exceptions import ConfigError, DataError
from ..features import Feature, column_features
from ..tasks import Task

#: folder used when neither ``path`` nor ``$MTLREC_DATA_DIR`` is given
CENSUS_KDD_DEFAULT_DIR = Path("~/.cache/mtlrec/census-kdd")
CENSUS_KDD_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/"
#: file stem -> md5 of its uncompressed text
CENSUS_KDD_MD5 = {
    "census-income.data": "887f4dc410a99bc332bddbb0a4195b88",
    "census-income.test": "b82952d217858365c8e597827e3e5468",
}

#: the 42 fields of a row, in the order of UCI's census-income.names
_RAW_COLUMNS = [
    "age", "class_of_worker", "detailed_industry_recode", "detailed_occupation_recode",
    "education", "wage_per_hour", "enroll_in_edu_inst_last_wk", "marital_stat",
    "major_industry_code", "major_occupation_code", "race", "hispanic_origin", "sex",
    "member_of_a_labor_union", "reason_for_unemployment", "full_or_part_time_employment_stat",
    "capital_gains", "capital_losses", "dividends_from_stocks", "tax_filer_stat",
    "region_of_previous_residence", "state_of_previous_residence",
    "detailed_household_and_family_stat", "detailed_household_summary_in_household",
    "instance_weight", "migration_code_change_in_msa", "migration_code_change_in_reg",
    "migration_code_move_within_reg", "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt", "num_persons_worked_for_employer",
    "family_members_under_18", "country_of_birth_father", "country_of_birth_mother",
    "country_of_birth_self", "citizenship", "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin", "veterans_benefits", "weeks_worked_in_year",
    "year", "label",
]  # fmt: skip

#: numeric inputs
CENSUS_DENSE = [
    "age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
    "num_persons_worked_for_employer", "weeks_worked_in_year",
]  # fmt: skip
#: categorical inputs (numeric-looking codes such as ``year`` are read as strings)
CENSUS_SPARSE = [c for c in _RAW_COLUMNS if c not in {*CENSUS_DENSE, "instance_weight", "label"}]
#: feature groups (``group=``), read only by the architectures that personalise with them
#: (POSO, PEPNet): the person's demographics as ``user``, the class of worker as
#: ``domain``; every other architecture's output is the same with or without them
CENSUS_FEATURE_GROUPS = {
    "user": ("age", "sex", "race", "hispanic_origin"),
    "domain": ("class_of_worker",),
}
#: ``education`` values counted as positive for ``education_college``
CENSUS_COLLEGE_EDUCATION = (
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Doctorate degree(PhD EdD)",
    "Prof school degree (MD DDS DVM LLB JD)",
)
#: task group -> label columns
CENSUS_GROUPS = {1: ("income", "marital"), 2: ("education_college", "marital")}
#: columns each label is derived from, removed from the inputs of its group
_SOURCES = {"income": (), "marital": ("marital_stat",), "education_college": ("education",)}
_LABELS = {"- 50000.": 0, "50000+.": 1}


class CensusKDD(NamedTuple):
    """Train, validation and test frames, and how they were split ("paper" or "test-only")."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    mode: str


def census_kdd_dir(path: str | os.PathLike | None = None) -> Path:
    """Folder of the files: ``path``, else ``$MTLREC_DATA_DIR/census-kdd``, else the default."""
    if path is not None:
        return Path(path).expanduser()
    root = os.environ.get("MTLREC_DATA_DIR")
    return Path(root).expanduser() / "census-kdd" if root else CENSUS_KDD_DEFAULT_DIR.expanduser()


def _find(folder: Path, stem: str) -> Path | None:
    return next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):  # a truncated or corrupt gzip stream
        return "unreadable"
    return digest.hexdigest()


def _fetch(url: str, handle: int) -> None:
    """Copy the body of ``url`` into the open file descriptor ``handle``."""
    try:
        with os.fdopen(handle, "wb") as out, urlopen(url, timeout=60) as reply:
            while chunk := reply.read(1 << 20):
                out.write(chunk)
    except OSError as error:  # URLError and HTTPError included
        raise DataError(f"could not download {url}: {error}") from error


def _download(folder: Path) -> None:
    """Fetch the missing files from UCI, checking the md5 of their uncompressed text."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, expected in CENSUS_KDD_MD5.items():
        if _find(folder, stem) is not None:
            continue
        target = folder / f"{stem}.gz"
        handle, temp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=folder)
        try:
            _fetch(CENSUS_KDD_URL + target.name, handle)
            if (actual := _md5(Path(temp))) != expected:
                raise DataError(
                    f"downloaded {target.name} has md5 {actual}, expected {expected} (of the "
                    f"uncompressed text); the download was deleted, try again later"
                )
            if not target.exists():  # never overwrite a file that appeared meanwhile
                os.rename(temp, target)
        finally:
            if os.path.exists(temp):
                os.remove(temp)


def _read(path: Path) -> pd.DataFrame:
    """Parse one file into the 40 attributes, instance_weight and the three int64 labels."""
    numeric = {name: "int64" for name in CENSUS_DENSE} | {"instance_weight": "float64"}
    dtypes = {name: numeric.get(name, "str") for name in _RAW_COLUMNS}
    try:
        frame = pd.read_csv(
            path, header=None, names=_RAW_COLUMNS, dtype=dtypes, skipinitialspace=True,
            na_values=["?"], keep_default_na=False, compression="gzip" if _is_gzip(path) else None,
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError) as error:
        raise DataError(f"{path}: not a Census-Income (KDD) file ({error})") from error
    for name in CENSUS_SPARSE:
        frame[name] = frame[name].str.strip()  # some values end with a space before the comma
    label = frame.pop("label").map(_LABELS)
    if label.isna().any():
        raise DataError(f"{path}: last field must be '- 50000.' or '50000+.' on every row")
    frame["income"] = label.astype("int64")
    frame["marital"] = (frame["marital_stat"] == "Never married").astype("int64")
    frame["education_college"] = frame["education"].isin(CENSUS_COLLEGE_EDUCATION).astype("int64")
    return frame


def _split(frame: pd.DataFrame, seed: int, *fractions: float) -> list[pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    cuts = [round(len(frame) * f) for f in np.cumsum(fractions)]
    return [frame.iloc[part].reset_index(drop=True) for part in np.split(order, cuts)]


def load_census_kdd(
    path: str | os.PathLike | None = None, seed: int = 0, download: bool = False
) -> CensusKDD:
    """Train, validation and test frames of Census-Income (KDD).

    With both ``census-income.data(.gz)`` and ``census-income.test(.gz)`` (mode "paper"):
    train is the training file (199,523 rows) and the test file is shuffled by ``seed`` and
    halved into validation then test (49,881 rows each). With only the test file (mode
    "test-only"): a seeded 2/3 : 1/6 : 1/6 split of it. Frames hold the 40 attributes ('?'
    is missing), ``instance_weight`` (a survey weight, not a feature) and int64 labels
    ``income``, ``marital`` and ``education_college``.

    Args:
        path: folder of the files; see :func:`census_kdd_dir` when None.
        seed: seed of the shuffle.
        download: fetch missing files from UCI first (md5-checked).
    """
    folder = census_kdd_dir(path)
    if download:
        _download(folder)
    data, test = _find(folder, "census-income.data"), _find(folder, "census-income.test")
    if test is None:
        wanted = " and ".join(f"{s}(.gz)" for s in CENSUS_KDD_MD5 if not data or "test" in s)
        raise DataError(
            f"Census-Income (KDD) data not found: looked for {wanted} in {folder}. Get "
            f"census-income.data.gz and census-income.test.gz from {CENSUS_KDD_URL} into that "
            f"folder (or set MTLREC_DATA_DIR), or pass download=True (CLI --download) to fetch "
            f"them."
        )
    if data is None:
        return CensusKDD(*_split(_read(test), seed, 2 / 3, 1 / 6), mode="test-only")
    validation, rest = _split(_read(test), seed, 1 / 2)
    return CensusKDD(_read(data), validation, rest, mode="paper")


def _check_group(group: int) -> tuple[str, ...]:
    if group not in CENSUS_GROUPS:
        raise ConfigError(f"group must be 1 or 2 (see CENSUS_GROUPS), got {group!r}")
    return CENSUS_GROUPS[group]


def census_features(group: int, embedding_dim: int = 16) -> list[Feature]:
    """Sparse then dense feature specs of ``group``, without its labels' source columns,
    in :data:`CENSUS_FEATURE_GROUPS`."""
    removed = {source for task in _check_group(group) for source in _SOURCES[task]}
    return column_features(
        [name for name in CENSUS_SPARSE if name not in removed],
        [name for name in CENSUS_DENSE if name not in removed],
        embedding_dim,
        CENSUS_FEATURE_GROUPS,
    )


def census_tasks(group: int) -> list[Task]:
    """The two binary tasks of ``group``."""
    return [Task(name) for name in _check_group(group)]
