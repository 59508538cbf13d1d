"""A synthetic two-task data set with a user-history sequence feature (numpy, vectorised).

Each row is one impression: a user (``user_id``, ``user_segment``, ``user_activity``),
a candidate item (``item_id``, ``item_category``, ``item_price``), the user's previous
items ``history`` (a Parquet ``list<int64>``, oldest first, 0 to 50 items, about 30 on
average) and two binary labels, ``click`` and ``like``.

Every user has one stream of items in time order: items from the user's favourite
categories (latent user vector against category vectors) or from the global popularity
ranking. An impression of the user at stream position ``t`` shows item ``stream[t]`` with
history ``stream[t-50:t]``; users already have 0 to 30 items before their first logged
impression. Both labels are Bernoulli(sigmoid(logit)) with the interaction of the mean
latent vector of the history items and the candidate item's latent vector as the largest
term, plus user-item affinity, item, segment, activity, price and category effects. All
randomness comes from one ``numpy.random.default_rng(seed)``; rows are shuffled, then
the first ``rows`` are the train set and the next ``test_rows`` the test set.

    python benchmarks/_sequence_data.py DIR [--rows 200000] [--test-rows 50000] [--seed 0]

writes ``DIR/train.parquet``, ``DIR/test.parquet`` and ``DIR/spec.json`` (the format of
``_common.load_dataset``, plus ``sequence`` and ``groups``). The module also holds the
peers' history encoding (:func:`peer_sequence_data`); it imports neither mtlrec nor a
peer library, since it runs under both interpreters.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

USERS = 10_000
ITEMS = 2_000
SEGMENTS = 10
CATEGORIES = 20
MAX_LEN = 50
LATENT = 8
PRIOR_ITEMS = 30  # a user's stream holds 0..PRIOR_ITEMS items before its first impression
TRAIN_ROWS = 200_000
TEST_ROWS = 50_000
SPARSE = ["user_id", "user_segment", "item_id", "item_category"]
DENSE = ["user_activity", "item_price"]
TASKS = ["click", "like"]
SEQUENCE = [{"name": "history", "max_len": MAX_LEN, "pooling": "mean", "shares": "item_id"}]
GROUPS = {
    "user_id": "user",
    "user_segment": "user",
    "user_activity": "user",
    "history": "user",
    "item_id": "item",
    "item_category": "item",
    "item_price": "item",
}
SPEC: dict[str, Any] = {
    "sparse": SPARSE,
    "dense": DENSE,
    "sequence": SEQUENCE,
    "tasks": TASKS,
    "groups": GROUPS,
    "embedding_dim": 16,
}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


def make_tables(
    rows: int = TRAIN_ROWS, test_rows: int = TEST_ROWS, seed: int = 0
) -> tuple[pa.Table, pa.Table]:
    """(train, test) Arrow tables of ``rows`` and ``test_rows`` impressions."""
    rng = np.random.default_rng(seed)
    total = rows + test_rows

    # items: category, latent vector (category direction + own part), popularity, price
    item_category = rng.integers(0, CATEGORIES, ITEMS)
    category_vectors = rng.normal(size=(CATEGORIES, LATENT))
    item_vectors = (
        0.8 * category_vectors[item_category] + 0.6 * rng.normal(size=(ITEMS, LATENT))
    ) / np.sqrt(LATENT)
    popularity = 1.0 / (rng.permutation(ITEMS) + 10.0) ** 0.8
    category_price = rng.normal(3.0, 0.7, CATEGORIES)
    item_price = np.exp(category_price[item_category] + 0.4 * rng.normal(size=ITEMS))
    item_bias = rng.normal(0.0, 0.3, ITEMS)

    # users: segment, latent vector, activity (how many impressions they get)
    user_segment = rng.integers(0, SEGMENTS, USERS)
    segment_vectors = rng.normal(size=(SEGMENTS, LATENT))
    user_vectors = (
        0.5 * segment_vectors[user_segment] + 0.85 * rng.normal(size=(USERS, LATENT))
    ) / np.sqrt(LATENT)
    user_activity = rng.lognormal(0.0, 0.6, USERS)
    taste = user_vectors @ category_vectors.T * 1.5  # (users, categories) logits
    taste = np.exp(taste - taste.max(axis=1, keepdims=True))
    taste_cdf = np.cumsum(taste / taste.sum(axis=1, keepdims=True), axis=1)

    # streams: prior items, then one item per impression
    impressions = rng.multinomial(total, user_activity / user_activity.sum())
    prior = rng.integers(0, PRIOR_ITEMS + 1, USERS)
    stream_length = prior + impressions
    stream_start = np.concatenate([[0], np.cumsum(stream_length)[:-1]])
    stream_user = np.repeat(np.arange(USERS), stream_length)
    n_stream = len(stream_user)
    stream = np.empty(n_stream, dtype=np.int64)
    favourite = rng.random(n_stream) < 0.6  # else: by global popularity
    u = rng.random(n_stream)[favourite]
    cats = (taste_cdf[stream_user[favourite]] < u[:, None]).sum(axis=1)
    cats = np.minimum(cats, CATEGORIES - 1)
    favourite_items = np.empty(len(cats), dtype=np.int64)
    for c in range(CATEGORIES):
        members = np.flatnonzero(item_category == c)
        where = cats == c
        p = popularity[members] / popularity[members].sum()
        favourite_items[where] = rng.choice(members, size=int(where.sum()), p=p)
    stream[favourite] = favourite_items
    stream[~favourite] = rng.choice(
        ITEMS, size=int((~favourite).sum()), p=popularity / popularity.sum()
    )

    # impressions: user, stream position, history window
    user = np.repeat(np.arange(USERS), impressions)
    step = np.arange(total) - np.repeat(np.cumsum(impressions) - impressions, impressions)
    position = stream_start[user] + prior[user] + step
    length = np.minimum(prior[user] + step, MAX_LEN)
    item = stream[position]

    # mean latent vector of the history items (cumulative sums over the streams)
    cumulative = np.vstack([np.zeros(LATENT), np.cumsum(item_vectors[stream], axis=0)])
    history_mean = (cumulative[position] - cumulative[position - length]) / np.maximum(length, 1)[
        :, None
    ]

    v = item_vectors[item]
    history_term = _standardise((history_mean * v).sum(axis=1))
    affinity = _standardise((user_vectors[user] * v).sum(axis=1))
    activity = _standardise(np.log(user_activity[user]))
    price = _standardise(np.log(item_price[item]))
    segment_click = rng.normal(0.0, 0.4, SEGMENTS)
    category_like = rng.normal(0.0, 0.4, CATEGORIES)
    click_logit = (
        -1.0
        + 1.3 * history_term
        + 0.6 * affinity
        + item_bias[item]
        + segment_click[user_segment[user]]
        + 0.3 * activity
    )
    like_logit = (
        -1.8
        + 1.0 * history_term
        + 0.8 * affinity
        - 0.5 * price
        + category_like[item_category[item]]
        + 0.3 * history_term * affinity
    )
    click = (rng.random(total) < _sigmoid(click_logit)).astype(np.int64)
    like = (rng.random(total) < _sigmoid(like_logit)).astype(np.int64)

    # the history cells: stream[position - length : position] for every row
    order = rng.permutation(total)
    user, item, position, length = user[order], item[order], position[order], length[order]
    click, like = click[order], like[order]
    offsets = np.concatenate([[0], np.cumsum(length)])
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], length)
    values = stream[np.repeat(position - length, length) + within]

    def table(lo: int, hi: int) -> pa.Table:
        start, stop = offsets[lo], offsets[hi]
        history = pa.ListArray.from_arrays(
            pa.array(offsets[lo : hi + 1] - start, pa.int32()),
            pa.array(values[start:stop], pa.int64()),
        )
        return pa.table(
            {
                "user_id": pa.array(user[lo:hi], pa.int64()),
                "user_segment": pa.array(user_segment[user[lo:hi]], pa.int64()),
                "user_activity": pa.array(user_activity[user[lo:hi]], pa.float32()),
                "item_id": pa.array(item[lo:hi], pa.int64()),
                "item_category": pa.array(item_category[item[lo:hi]], pa.int64()),
                "item_price": pa.array(item_price[item[lo:hi]], pa.float32()),
                "history": history,
                "click": pa.array(click[lo:hi], pa.int64()),
                "like": pa.array(like[lo:hi], pa.int64()),
            }
        )

    return table(0, rows), table(rows, total)


def write_dataset(
    folder: str | Path, rows: int = TRAIN_ROWS, test_rows: int = TEST_ROWS, seed: int = 0
) -> Path:
    """Write train/test Parquet files and ``spec.json`` to ``folder``; returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = make_tables(rows, test_rows, seed)
    pq.write_table(train, folder / "train.parquet")
    pq.write_table(test, folder / "test.parquet")
    spec = {**SPEC, "seed": seed, "train_rows": rows, "test_rows": test_rows}
    (folder / "spec.json").write_text(json.dumps(spec))
    return folder


def describe(table: pa.Table) -> dict[str, float]:
    """History length and label statistics of one table."""
    lengths = np.asarray(table.column("history").combine_chunks().value_lengths())
    return {
        "rows": table.num_rows,
        "history_mean_length": float(lengths.mean()),
        "history_empty_share": float((lengths == 0).mean()),
        "history_full_share": float((lengths == MAX_LEN).mean()),
        **{f"{t}_rate": float(np.mean(table.column(t).to_numpy())) for t in TASKS},
    }


# ---------------------------------------------------------------------------- peers
def encode_items(train_items: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Peer ids of raw item ids, as ``_common.encode_for_peers`` gives the shared column:
    1 + the code of the value's string in the sorted train vocabulary, 0 if unseen."""
    classes = np.unique(train_items.astype(str))  # LabelEncoder.classes_ of the column
    keys = classes.astype(np.int64)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    pos = np.clip(np.searchsorted(sorted_keys, ids), 0, len(keys) - 1)
    found = sorted_keys[pos] == ids
    return np.where(found, order[pos] + 1, 0).astype(np.int64)


def pad_histories(cells: Any, train_items: np.ndarray, max_len: int) -> np.ndarray:
    """(rows, max_len) int64 peer ids: the last ``max_len`` items of each cell, encoded
    with :func:`encode_items` and post-padded with 0 (the peers' documented layout);
    an empty or missing cell is all 0."""
    kept = [np.empty(0, np.int64) if c is None else np.asarray(c)[-max_len:] for c in cells]
    lengths = np.fromiter((len(c) for c in kept), np.int64, len(kept))
    flat = np.concatenate(kept).astype(np.int64) if len(kept) else np.empty(0, np.int64)
    out = np.zeros((len(kept), max_len), np.int64)
    out[np.arange(max_len) < lengths[:, None]] = encode_items(train_items, flat)
    return out


def peer_sequence_data(args: argparse.Namespace) -> Any:
    """``_common.peer_data`` plus the sequence columns: each history as a post-padded
    (rows, max_len) array of its shared column's ids (untimed)."""
    from _common import peer_data

    def add_histories(data: Any, x_train: dict, x_test: dict) -> None:
        for seq in data.spec["sequence"]:
            shared = data.train[seq["shares"]].to_numpy()
            if not np.array_equal(encode_items(shared, shared), x_train[seq["shares"]]):
                raise SystemExit("history encoding does not match encode_for_peers")
            for frame, out in ((data.train, x_train), (data.test, x_test)):
                out[seq["name"]] = pad_histories(frame[seq["name"]], shared, seq["max_len"])

    return peer_data(args, add_histories)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rows", type=int, default=TRAIN_ROWS, help="train rows")
    parser.add_argument("--test-rows", type=int, default=TEST_ROWS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_dataset(args.folder, args.rows, args.test_rows, args.seed)
    for name in ("train", "test"):
        print(name, json.dumps(describe(pq.read_table(args.folder / f"{name}.parquet"))))


if __name__ == "__main__":
    main()
