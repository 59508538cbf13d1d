"""A tiny MovieLens-100K look-alike written in both layouts (GroupLens and RecBole).

8 users, 13 items, 62 ratings. User 1's ratings are hand-made (two share a timestamp);
item 12 has no release date and no genre, item 13 only the ``unknown`` genre flag, item
11 a non-ASCII title (latin-1 in GroupLens, UTF-8 in RecBole), user 8 a zip code with a
leading zero and user 7 a Canadian one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

#: user id -> (age, gender, occupation, zip code)
USERS = {
    1: (24, "M", "technician", "85711"),
    2: (53, "F", "other", "94043"),
    3: (23, "M", "writer", "32067"),
    4: (24, "M", "technician", "43537"),
    5: (33, "F", "other", "15213"),
    6: (42, "M", "executive", "98101"),
    7: (57, "M", "administrator", "T8H1N"),
    8: (36, "F", "administrator", "05201"),
}
#: item id -> (title, GroupLens release date, release year or None, genres)
ITEMS = {
    1: ("Toy Story", "01-Jan-1995", 1995, ["Animation", "Children's", "Comedy"]),
    2: ("GoldenEye", "01-Jan-1995", 1995, ["Action", "Adventure", "Thriller"]),
    3: ("Four Rooms", "01-Jan-1995", 1995, ["Thriller"]),
    4: ("Get Shorty", "01-Jan-1995", 1995, ["Action", "Comedy", "Drama"]),
    5: ("Copycat", "01-Jan-1995", 1995, ["Crime", "Drama", "Thriller"]),
    6: ("Shanghai Triad", "01-Jan-1995", 1995, ["Drama"]),
    7: ("Twelve Monkeys", "01-Jan-1995", 1995, ["Drama", "Sci-Fi"]),
    8: ("Babe", "01-Jan-1995", 1995, ["Children's", "Comedy", "Drama"]),
    9: ("Dead Man Walking", "01-Jan-1995", 1995, ["Drama"]),
    10: ("Richard III", "22-Jan-1996", 1996, ["Drama", "War"]),
    11: ("Café au lait", "01-Jan-1993", 1993, ["Comedy"]),
    12: ("unknown", "", None, []),
    13: ("Good Morning", "04-Feb-1971", 1971, ["unknown"]),
}
T0 = 880_000_000
#: user 1, by hand: (item, rating, timestamp); items 3 and 4 share a timestamp
USER_1 = [(1, 5, T0 + 100), (2, 3, T0 + 200), (4, 4, T0 + 300), (3, 2, T0 + 300),
          (5, 4, T0 + 400), (6, 1, T0 + 500)]  # fmt: skip
#: user 1's histories at history_len=3, by item rated
USER_1_HISTORY_3 = {1: [], 2: [1], 3: [1, 2], 4: [1, 2], 5: [2, 3, 4], 6: [3, 4, 5]}


def ratings() -> list[tuple[int, int, int, int]]:
    """(user, item, rating, timestamp) of every rating, in file order (not sorted)."""
    rng = np.random.default_rng(7)
    rows = [(1, item, rating, time) for item, rating, time in USER_1]
    for user in range(2, 9):
        for item in rng.choice(np.arange(1, 14), size=8, replace=False):
            # few distinct times, so ties within and across users
            rows.append(
                (user, int(item), int(rng.integers(1, 6)), T0 + 50 * int(rng.integers(0, 12)))
            )
    order = rng.permutation(len(rows))
    return [rows[k] for k in order]


def write_grouplens(folder: Path) -> Path:
    """``u.data``, ``u.item`` (latin-1) and ``u.user`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings()))
    lines = []
    for item, (title, date, _, genres) in ITEMS.items():
        flags = "|".join("1" if g in genres else "0" for g in GENRES)
        url = f"http://us.imdb.com/M/title-exact?{title.replace(' ', '%20')}"
        lines.append(f"{item}|{title} ({date[-4:]})|{date}||{url}|{flags}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
    (folder / "u.user").write_text(
        "".join(f"{u}|{a}|{g}|{o}|{z}\n" for u, (a, g, o, z) in USERS.items())
    )
    return folder


def write_recbole(folder: Path, inter_columns: tuple[str, ...] | None = None) -> Path:
    """``ml-100k.inter``, ``.item``, ``.user`` in ``folder``; ``inter_columns`` reorders
    (and may extend, with ``extra:float``) the interaction file's columns."""
    folder.mkdir(parents=True, exist_ok=True)
    header = {"user_id": "token", "item_id": "token", "rating": "float", "timestamp": "float"}
    header["extra"] = "float"
    columns = inter_columns or ("user_id", "item_id", "rating", "timestamp")
    lines = ["\t".join(f"{c}:{header[c]}" for c in columns) + "\n"]
    for u, i, r, t in ratings():
        values = {"user_id": u, "item_id": i, "rating": r, "timestamp": t, "extra": 0.5}
        lines.append("\t".join(str(values[c]) for c in columns) + "\n")
    (folder / "ml-100k.inter").write_text("".join(lines))
    lines = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"]
    for item, (title, _, year, genres) in ITEMS.items():
        lines.append(f"{item}\t{title}\t{year or 'unkonwn'}\t{' '.join(genres)}\n")
    (folder / "ml-100k.item").write_text("".join(lines), encoding="utf-8")
    lines = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"]
    lines += [f"{u}\t{a}\t{g}\t{o}\t{z}\n" for u, (a, g, o, z) in USERS.items()]
    (folder / "ml-100k.user").write_text("".join(lines))
    return folder


def write_movielens(root: Path) -> tuple[Path, Path]:
    """Both layouts of the same data: ``root/grouplens`` and ``root/recbole``."""
    return write_grouplens(root / "grouplens"), write_recbole(root / "recbole")
