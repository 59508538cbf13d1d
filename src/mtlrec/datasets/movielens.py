"""MovieLens-100K: 100,000 ratings (1-5) of 1,682 movies by 943 users, 1997-1998.

Harper & Konstan, "The MovieLens Datasets: History and Context", ACM Transactions on
Interactive Intelligent Systems (TiiS) 5(4), 2015. Two tasks on every rating: ``like``
(rating >= 4, binary) and ``rating`` itself (regression), with user attributes (age,
gender, occupation, zip code), item attributes (genres, release year) and each user's
viewing history before the rating (strictly earlier timestamps only, so no leakage).

The data is not bundled (its licence forbids redistribution) and never downloaded;
:func:`load_movielens` reads a folder in either of two layouts:

* GroupLens's ``ml-100k/`` (https://grouplens.org/datasets/movielens/100k/, unzip
  ``ml-100k.zip``): ``u.data``, ``u.item`` and ``u.user``;
* RecBole's atomic files ``ml-100k.inter``, ``ml-100k.item`` and ``ml-100k.user``, shipped
  in the recbole wheel: ``pip download --no-deps recbole==1.2.1``, unzip the ``.whl`` and
  use ``recbole/dataset_example/ml-100k/``.
"""

from __future__ import annotations

import csv
import logging
import os
from itertools import compress
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import ConfigError, DataError
from ..features import DenseFeature, Feature, SequenceFeature, SparseFeature
from ..tasks import Task

logger = logging.getLogger(__name__)

#: label columns: like (rating >= 4, binary) and the rating (regression)
MOVIELENS_TASKS = ("like", "rating")
#: genre flags of GroupLens ``u.item``, in the order of ``u.genre``
MOVIELENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
#: file names of each layout
MOVIELENS_FILES = {
    "grouplens": ("u.data", "u.item", "u.user"),
    "recbole": ("ml-100k.inter", "ml-100k.item", "ml-100k.user"),
}
_COLUMNS = (
    "user_id", "item_id", "rating", "timestamp", "like", "age", "gender", "occupation",
    "zip_prefix", "genres", "year", "history",
)  # fmt: skip
_HOW_TO_GET = (
    "get ml-100k.zip from https://grouplens.org/datasets/movielens/100k/ and unzip it "
    "(u.data, u.item, u.user), or run `pip download --no-deps recbole==1.2.1`, unzip the "
    ".whl and point path at recbole/dataset_example/ml-100k/"
)


def _layout(path: Path) -> tuple[str, Path]:
    """The layout (``"grouplens"`` / ``"recbole"``) of the folder ``path`` (or of its
    ``ml-100k/`` subfolder) and that folder."""
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataError(f"MovieLens-100K not found: {path} {what}; {_HOW_TO_GET}")
    for folder in (path, path / "ml-100k"):
        for layout, names in MOVIELENS_FILES.items():
            if (folder / names[0]).is_file():
                missing = [name for name in names if not (folder / name).is_file()]
                if missing:
                    raise DataError(
                        f"MovieLens-100K ({layout} layout) incomplete in {folder}: "
                        f"{', '.join(missing)} missing next to {names[0]}; {_HOW_TO_GET}"
                    )
                return layout, folder
    looked = " or ".join(", ".join(names) for names in MOVIELENS_FILES.values())
    raise DataError(
        f"MovieLens-100K not found in {path} (nor in {path / 'ml-100k'}): looked for {looked}; "
        f"{_HOW_TO_GET}"
    )


def _read(file: Path, sep: str, encoding: str, header: bool) -> pd.DataFrame:
    """All cells of ``file`` as strings ('' when empty); a RecBole header is cut at ':'."""
    try:
        frame = pd.read_csv(
            file,
            sep=sep,
            header=0 if header else None,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
            encoding=encoding,
        )
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{file}: cannot read it as a MovieLens file ({error})") from error
    if header:
        frame.columns = [str(c).split(":", 1)[0].strip() for c in frame.columns]
    return frame


def _need(frame: pd.DataFrame, file: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{file}: columns {missing} missing from the header (found "
            f"{list(frame.columns)}); expected a RecBole atomic file with "
            f"{', '.join(f'{c}:<type>' for c in columns)}"
        )
    return frame


def _integers(values: pd.Series, file: Path, column: str) -> np.ndarray:
    """``values`` as int64; a DataError naming the file and column for anything else."""
    numbers = pd.to_numeric(values.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
    if bad.any():
        examples = values[bad].unique()[:5].tolist()
        raise DataError(f"{file}: column {column!r} must hold integers, found {examples}")
    return numbers.astype(np.int64)


def _columns(file: Path, frame: pd.DataFrame, count: int) -> pd.DataFrame:
    if frame.shape[1] != count:
        raise DataError(
            f"{file}: expected {count} '|'- or tab-separated fields per line, got "
            f"{frame.shape[1]}; is it the GroupLens ml-100k file?"
        )
    return frame


def _grouplens(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    data, item, user = (folder / name for name in MOVIELENS_FILES["grouplens"])
    ratings = _columns(data, _read(data, "\t", "latin-1", header=False), 4)
    ratings.columns = ["user_id", "item_id", "rating", "timestamp"]
    items = _columns(item, _read(item, "|", "latin-1", header=False), 5 + len(MOVIELENS_GENRES))
    flags = items.iloc[:, 5:].to_numpy() == "1"  # (items, 19)
    release = pd.to_datetime(items[2].str.strip(), format="%d-%b-%Y", errors="coerce")
    items = pd.DataFrame(
        {
            "item_id": items[0],
            "year": release.dt.year.astype(np.float64),
            "genres": [list(compress(MOVIELENS_GENRES, row)) for row in flags],
        }
    )
    users = _columns(user, _read(user, "|", "latin-1", header=False), 5)
    users.columns = ["user_id", "age", "gender", "occupation", "zip_code"]
    return ratings, items, users


def _recbole(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    inter, item, user = (folder / name for name in MOVIELENS_FILES["recbole"])
    ratings = _need(
        _read(inter, "\t", "utf-8", header=True),
        inter,
        ("user_id", "item_id", "rating", "timestamp"),
    )
    items = _need(
        _read(item, "\t", "utf-8", header=True), item, ("item_id", "release_year", "class")
    )
    items = pd.DataFrame(
        {
            "item_id": items["item_id"],
            # the real file spells a missing year "unkonwn" (and has one "V"): NaN
            "year": pd.to_numeric(items["release_year"].str.strip(), errors="coerce").astype(
                np.float64
            ),
            "genres": [cell.split() for cell in items["class"]],
        }
    )
    users = _need(
        _read(user, "\t", "utf-8", header=True),
        user,
        ("user_id", "age", "gender", "occupation", "zip_code"),
    )
    return ratings, items, users


def _lookup(keys: np.ndarray, ids: np.ndarray, what: Path, by: Path) -> np.ndarray:
    """Row of each of ``ids`` in ``keys`` (unique), or a DataError naming both files."""
    index = pd.Index(keys)
    if not index.is_unique:
        duplicated = index[index.duplicated()].unique()[:5].tolist()
        raise DataError(f"{what}: ids {duplicated} are listed more than once")
    rows = index.get_indexer(ids)
    if (rows < 0).any():
        unknown = np.unique(ids[rows < 0])[:5].tolist()
        raise DataError(
            f"{by} rates ids {unknown} that {what} does not describe; are the files from "
            f"the same copy of ml-100k?"
        )
    return rows


def _histories(user: np.ndarray, item: np.ndarray, time: np.ndarray, length: int) -> list:
    """Per row: the items its user rated strictly before its time, oldest first, at most
    the ``length`` most recent. Rows must be sorted by (user, time, item)."""
    n = len(user)
    position = np.arange(n)
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = user[1:] != user[:-1]
    new_time = new_user.copy()
    new_time[1:] |= time[1:] != time[:-1]
    user_start = np.maximum.accumulate(np.where(new_user, position, 0))  # (N,)
    end = np.maximum.accumulate(np.where(new_time, position, 0))  # first row of the tie
    start = np.maximum(user_start, end - length)
    items = item.tolist()  # Python ints, sliced per row
    return [items[a:b] for a, b in zip(start.tolist(), end.tolist(), strict=True)]


def load_movielens(path: str | os.PathLike, history_len: int = 50) -> pd.DataFrame:
    """All ratings of MovieLens-100K with user, item and history columns, one row each.

    Rows are sorted by (timestamp, user_id, item_id), index 0..N-1. Columns: int64
    ``user_id``, ``item_id``; float32 ``rating`` (1-5); int64 ``timestamp`` (Unix
    seconds); int64 ``like`` (rating >= 4); int64 ``age``; str ``gender``,
    ``occupation`` and ``zip_prefix`` (first two characters of the zip code); ``genres``
    (lists of genre names as in ``u.genre``, ``"unknown"`` included; [] when none);
    float64 ``year`` (release year, NaN when unknown); ``history`` (lists of int item
    ids: what the user rated strictly before this row's timestamp, oldest first, ties by
    item id, the ``history_len`` most recent; rows with equal timestamps never see each
    other).

    Args:
        path: a folder with GroupLens's ``u.data``, ``u.item``, ``u.user`` or RecBole's
            ``ml-100k.inter``, ``ml-100k.item``, ``ml-100k.user`` (or its parent, holding
            ``ml-100k/``).
        history_len: most recent items kept per history (>= 1).

    Raises:
        DataError: a missing folder or file, a missing column, a non-integer id, age or
            timestamp, a rating outside 1-5, or a rated id the item/user file lacks.
    """
    if isinstance(history_len, bool) or not isinstance(history_len, int | np.integer):
        raise ConfigError(f"history_len must be an integer >= 1, got {history_len!r}")
    if history_len < 1:
        raise ConfigError(f"history_len must be an integer >= 1, got {history_len!r}")
    layout, folder = _layout(Path(path).expanduser())
    ratings, items, users = _grouplens(folder) if layout == "grouplens" else _recbole(folder)
    data, item_file, user_file = (folder / name for name in MOVIELENS_FILES[layout])

    user_id = _integers(ratings["user_id"], data, "user_id")
    item_id = _integers(ratings["item_id"], data, "item_id")
    timestamp = _integers(ratings["timestamp"], data, "timestamp")
    rating = pd.to_numeric(ratings["rating"].str.strip(), errors="coerce").to_numpy()
    if not ((rating >= 1) & (rating <= 5)).all():  # NaN fails too
        examples = ratings["rating"][~((rating >= 1) & (rating <= 5))].unique()[:5].tolist()
        raise DataError(f"{data}: column 'rating' must hold numbers 1-5, found {examples}")

    order = np.lexsort((item_id, timestamp, user_id))  # by user, then time, then item
    user_id, item_id, timestamp, rating = (a[order] for a in (user_id, item_id, timestamp, rating))
    history = _histories(user_id, item_id, timestamp, int(history_len))

    item_rows = _lookup(_integers(items["item_id"], item_file, "item_id"), item_id, item_file, data)
    user_rows = _lookup(_integers(users["user_id"], user_file, "user_id"), user_id, user_file, data)
    item_genres = items["genres"].tolist()
    frame = pd.DataFrame(
        {
            "user_id": user_id,
            "item_id": item_id,
            "rating": rating.astype(np.float32),
            "timestamp": timestamp,
            "like": (rating >= 4).astype(np.int64),
            "age": _integers(users["age"], user_file, "age")[user_rows],
            "gender": users["gender"].str.strip().to_numpy()[user_rows].astype(str),
            "occupation": users["occupation"].str.strip().to_numpy()[user_rows].astype(str),
            "zip_prefix": users["zip_code"].str.strip().str[:2].to_numpy()[user_rows].astype(str),
            "genres": [list(item_genres[k]) for k in item_rows.tolist()],
            "year": items["year"].to_numpy(dtype=np.float64)[item_rows],
            "history": history,
        }
    )
    frame = frame.sort_values(["timestamp", "user_id", "item_id"], kind="stable")
    frame = frame.reset_index(drop=True)
    logger.info(
        "MovieLens-100K (%s layout) from %s: %d ratings, %d users, %d items",
        layout,
        folder,
        len(frame),
        frame["user_id"].nunique(),
        frame["item_id"].nunique(),
    )
    return frame


def split_by_time(
    frame: pd.DataFrame, test_fraction: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test frames cut at one global time: the ``1 - test_fraction`` quantile
    of ``timestamp``. Test holds the rows at or after the cut, train the rows before it,
    so every train timestamp precedes every test timestamp (ties go to test, which can
    make it a little larger than ``test_fraction``). Both keep ``frame``'s row order,
    index reset.
    """
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float | np.floating)
        or not 0 < test_fraction < 1
    ):
        raise ConfigError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if "timestamp" not in frame.columns:
        raise DataError(
            f"split_by_time: no 'timestamp' column (columns: {list(frame.columns)[:10]}); "
            f"pass the frame of load_movielens"
        )
    if len(frame) == 0:
        raise DataError("split_by_time: the frame has no rows to split")
    time = frame["timestamp"].to_numpy()
    cut = np.quantile(time, 1 - float(test_fraction))
    test = time >= cut
    if test.all() or not test.any():
        raise DataError(
            f"split_by_time: the cut at timestamp {cut} leaves "
            f"{'no train' if test.all() else 'no test'} rows ({len(frame)} rows); it needs "
            f"rows at more than one timestamp"
        )
    return frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)


def movielens_tasks() -> list[Task]:
    """``like`` (binary) and ``rating`` (regression)."""
    return [Task("like"), Task("rating", type="regression")]


def movielens_features(history: bool = True, groups: bool = True) -> list[Feature]:
    """Feature specs of :func:`load_movielens`: user then item features, then (when
    ``history``) the history pooled by mean, sharing the ``item_id`` embeddings.

    With ``groups`` each spec carries its entity group (``"user"`` / ``"item"``), else
    none.
    """
    user = {"group": "user"} if groups else {}
    item = {"group": "item"} if groups else {}
    features: list = [
        SparseFeature("gender", **user),
        SparseFeature("occupation", **user),
        SparseFeature("zip_prefix", **user),
        DenseFeature("age", **user),
        SparseFeature("user_id", **user),
        SparseFeature("item_id", **item),
        SequenceFeature("genres", pooling="sum", max_len=6, **item),
        DenseFeature("year", **item),
    ]
    if history:
        features.append(
            SequenceFeature("history", max_len=50, pooling="mean", shares="item_id", **user)
        )
    return features
