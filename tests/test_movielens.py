"""MovieLens-100K loader: both layouts from a tiny hand-made copy, leak-free histories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mtlrec.features
from fixtures_movielens import (
    ITEMS,
    USER_1,
    USER_1_HISTORY_3,
    USERS,
    ratings,
    write_grouplens,
    write_movielens,
    write_recbole,
)
from mtlrec import ConfigError, DataError, Task
from mtlrec.datasets import (
    MOVIELENS_TASKS,
    load_movielens,
    movielens_features,
    movielens_tasks,
    split_by_time,
)

COLUMNS = [
    "user_id", "item_id", "rating", "timestamp", "like", "age", "gender", "occupation",
    "zip_prefix", "genres", "year", "history",
]  # fmt: skip
# the real files, when a copy sits in the shared data folder (never in the repository)
REAL = Path(__file__).parents[2] / "shared" / "data" / "ml-100k"


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return write_movielens(tmp_path)


def expected_histories(length: int) -> dict[tuple[int, int], list[int]]:
    """(user, item) -> history, by brute force over the raw ratings."""
    raw = ratings()
    out = {}
    for user, item, _, time in raw:
        before = sorted((t, i) for u, i, _, t in raw if u == user and t < time)
        out[user, item] = [i for _, i in before][-length:]
    return out


def row(frame: pd.DataFrame, user: int, item: int) -> pd.Series:
    match = frame[(frame["user_id"] == user) & (frame["item_id"] == item)]
    assert len(match) == 1
    return match.iloc[0]


def test_both_layouts_load_to_the_same_frame(folders: tuple[Path, Path]) -> None:
    grouplens, recbole = (load_movielens(folder) for folder in folders)
    pd.testing.assert_frame_equal(grouplens, recbole)
    assert list(grouplens.columns) == COLUMNS
    assert len(grouplens) == len(ratings()) == 62
    assert grouplens.index.equals(pd.RangeIndex(62))
    dtypes = grouplens.dtypes
    for name in ("user_id", "item_id", "timestamp", "like", "age"):
        assert dtypes[name] == np.int64, name
    assert dtypes["rating"] == np.float32
    assert dtypes["year"] == np.float64
    for name in ("gender", "occupation", "zip_prefix"):
        assert all(isinstance(v, str) for v in grouplens[name]), name
    for name in ("genres", "history"):
        assert all(isinstance(v, list) for v in grouplens[name]), name
    assert all(isinstance(i, int) for h in grouplens["history"] for i in h)
    keys = grouplens[["timestamp", "user_id", "item_id"]].to_numpy()
    assert [tuple(k) for k in keys] == sorted(tuple(k) for k in keys)


def test_recbole_columns_found_by_header_name(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    shuffled = write_recbole(
        tmp_path / "shuffled", inter_columns=("timestamp", "extra", "rating", "item_id", "user_id")
    )
    pd.testing.assert_frame_equal(load_movielens(shuffled), load_movielens(folders[1]))


def test_a_parent_folder_holding_ml_100k_is_accepted(tmp_path: Path) -> None:
    write_grouplens(tmp_path / "ml-100k")
    assert len(load_movielens(tmp_path)) == 62
    assert len(load_movielens(str(tmp_path / "ml-100k"))) == 62


@pytest.mark.parametrize("length", [1, 3, 50])
def test_history_is_every_strictly_earlier_rating_most_recent_kept(
    folders: tuple[Path, Path], length: int
) -> None:
    expected = expected_histories(length)
    for folder in folders:
        frame = load_movielens(folder, history_len=length)
        got = {
            (u, i): h
            for u, i, h in zip(frame["user_id"], frame["item_id"], frame["history"], strict=True)
        }
        assert got == expected


def test_no_history_item_is_rated_at_or_after_the_row(folders: tuple[Path, Path]) -> None:
    frame = load_movielens(folders[0])
    when = {(u, i): t for u, i, _, t in ratings()}
    for user, time, history in zip(
        frame["user_id"], frame["timestamp"], frame["history"], strict=True
    ):
        assert all(when[user, item] < time for item in history)
    assert sum(len(h) for h in frame["history"]) > 0


def test_user_1_by_hand_with_ties(folders: tuple[Path, Path]) -> None:
    frame = load_movielens(folders[1], history_len=3)
    mine = frame[frame["user_id"] == 1]
    assert mine["item_id"].tolist() == [1, 2, 3, 4, 5, 6]  # tie at T0 + 300 by item id
    assert dict(zip(mine["item_id"], mine["history"], strict=True)) == USER_1_HISTORY_3
    # the tied pair does not see each other
    assert 4 not in row(frame, 1, 3)["history"] and 3 not in row(frame, 1, 4)["history"]


def test_labels_and_attributes(folders: tuple[Path, Path]) -> None:
    frame = load_movielens(folders[0])
    assert (frame["like"] == (frame["rating"] >= 4).astype(np.int64)).all()
    assert frame["like"].sum() > 0 and (frame["like"] == 0).sum() > 0
    first = row(frame, 1, 1)
    assert (first["rating"], first["like"], first["timestamp"]) == (5.0, 1, USER_1[0][2])
    assert (first["age"], first["gender"], first["occupation"]) == (24, "M", "technician")
    assert first["zip_prefix"] == "85"
    assert row(frame, 1, 3)["like"] == 0
    zips = dict(zip(frame["user_id"], frame["zip_prefix"], strict=True))
    assert zips[8] == "05" and zips[7] == "T8"
    years = dict(zip(frame["item_id"], frame["year"], strict=True))
    genres = dict(zip(frame["item_id"], frame["genres"], strict=True))
    assert years[1] == 1995.0 and years[10] == 1996.0 and years[13] == 1971.0
    assert np.isnan(years[12])
    assert genres[1] == ["Animation", "Children's", "Comedy"]
    assert genres[7] == ["Drama", "Sci-Fi"]
    assert genres[12] == [] and genres[13] == ["unknown"]
    for item, (_, _, year, names) in ITEMS.items():
        if item in genres:
            assert genres[item] == names
            assert years[item] == year or (year is None and np.isnan(years[item]))
    ages = dict(zip(frame["user_id"], frame["age"], strict=True))
    assert ages == {u: a for u, (a, _, _, _) in USERS.items()}


def test_missing_folder_names_the_path_and_how_to_get_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere") as error:
        load_movielens(missing)
    assert "grouplens.org" in str(error.value) and "recbole==1.2.1" in str(error.value)


def test_empty_folder_names_the_files_looked_for(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_movielens(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    for name in ("u.data", "u.item", "u.user", "ml-100k.inter", "ml-100k.item", "ml-100k.user"):
        assert name in message


def test_incomplete_folder_names_the_missing_file(folders: tuple[Path, Path]) -> None:
    (folders[0] / "u.user").unlink()
    with pytest.raises(DataError, match=r"u\.user"):
        load_movielens(folders[0])
    (folders[1] / "ml-100k.item").unlink()
    with pytest.raises(DataError, match=r"ml-100k\.item"):
        load_movielens(folders[1])


def test_bad_contents_raise_data_errors(folders: tuple[Path, Path]) -> None:
    grouplens, recbole = folders
    data = grouplens / "u.data"
    data.write_text(data.read_text() + "1\t99\t3\t880000000\n")
    with pytest.raises(DataError, match=r"u\.item.*\[99\]|\[99\].*u\.item"):
        load_movielens(grouplens)
    data.write_text(data.read_text().replace("1\t99\t3", "1\t1\tx"))
    with pytest.raises(DataError, match="rating"):
        load_movielens(grouplens)
    user = recbole / "ml-100k.user"
    user.write_text(user.read_text().replace("zip_code:token", "zip:token"))
    with pytest.raises(DataError, match="zip_code"):
        load_movielens(recbole)


@pytest.mark.parametrize("length", [0, -1, 2.5, True])
def test_bad_history_len(folders: tuple[Path, Path], length: object) -> None:
    with pytest.raises(ConfigError, match="history_len"):
        load_movielens(folders[0], history_len=length)  # type: ignore[arg-type]


def test_split_by_time_cuts_at_one_time(folders: tuple[Path, Path]) -> None:
    frame = load_movielens(folders[0])
    for fraction in (0.1, 0.2, 0.5):
        train, test = split_by_time(frame, test_fraction=fraction)
        assert len(train) + len(test) == len(frame)
        assert len(train) > 0 and len(test) > 0
        assert train["timestamp"].max() < test["timestamp"].min()
        assert len(test) >= fraction * len(frame) - 1
        assert train.index.equals(pd.RangeIndex(len(train)))
        pd.testing.assert_frame_equal(
            pd.concat([train, test], ignore_index=True), frame, check_like=False
        )


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, True, "0.2", float("nan")])
def test_split_by_time_rejects_bad_fractions(folders: tuple[Path, Path], fraction: object) -> None:
    frame = load_movielens(folders[0])
    with pytest.raises(ConfigError, match="test_fraction"):
        split_by_time(frame, test_fraction=fraction)  # type: ignore[arg-type]


def test_split_by_time_needs_timestamps() -> None:
    with pytest.raises(DataError, match="timestamp"):
        split_by_time(pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(DataError, match="no train"):
        split_by_time(pd.DataFrame({"timestamp": [5, 5, 5]}))


def test_tasks() -> None:
    assert MOVIELENS_TASKS == ("like", "rating")
    assert movielens_tasks() == [Task("like"), Task("rating", type="regression")]


def test_features() -> None:
    features = movielens_features()
    names = [f.name for f in features]
    assert names == [
        "gender", "occupation", "zip_prefix", "age", "user_id", "item_id", "genres", "year",
        "history",
    ]  # fmt: skip
    groups = {f.name: f.group for f in features}
    assert {n for n, g in groups.items() if g == "item"} == {"item_id", "genres", "year"}
    assert all(g in ("user", "item") for g in groups.values())
    history = features[-1]
    assert isinstance(history, mtlrec.features.SequenceFeature)
    assert (history.max_len, history.pooling, history.shares) == (50, "mean", "item_id")
    genres = features[6]
    assert (genres.max_len, genres.pooling) == (6, "sum")
    plain = movielens_features(history=False, groups=False)
    assert [f.name for f in plain] == names[:-1]
    assert all(f.group is None for f in plain)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"no copy of ml-100k in {REAL}")
def test_real_data() -> None:  # pragma: no cover - needs the real files
    frame = load_movielens(REAL)
    assert len(frame) == 100_000
    assert frame["user_id"].nunique() == 943 and frame["item_id"].nunique() == 1682
    assert set(frame["gender"]) == {"M", "F"}
    assert 0.5 < frame["like"].mean() < 0.6
