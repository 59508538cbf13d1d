"""MineThatData (Hillstrom) loader: a hand-made csv, clear errors, and the real file if present."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlrec import ConfigError, DataError, DenseFeature, SparseFeature
from mtlrec.datasets import (
    HILLSTROM_DENSE,
    HILLSTROM_SPARSE,
    hillstrom_features,
    load_hillstrom,
    split_hillstrom,
)

REAL = Path(__file__).parents[2] / "shared" / "data" / "hillstrom" / "hillstrom.csv.gz"
HEADER = (
    "recency,history_segment,history,mens,womens,zip_code,newbie,channel,segment,visit,"
    "conversion,spend"
)
ROWS = [
    '10,"2) $100 - $200",142.44,1,0,Surburban,0,Phone,Womens E-Mail,0,0,0',
    '6,"3) $200 - $350",329.08,1,1,Rural,1,Web,No E-Mail,1,0,0',
    '7,"2) $100 - $200",180.65,0,1,Surburban,1,Web,Womens E-Mail,1,1,29.99',
    '2,"1) $0 - $100",45.34,1,0,Urban,0,Web,Mens E-Mail,0,0,0',
]


def write(path: Path, rows: list[str] = ROWS, header: str = HEADER, gz: bool = False) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_reads_a_file_or_the_folder_holding_it(tmp_path: Path, gz: bool) -> None:
    file = write(tmp_path / ("hillstrom.csv.gz" if gz else "hillstrom.csv"), gz=gz)
    for path in (file, tmp_path, str(tmp_path)):
        frame = load_hillstrom(path)
        assert len(frame) == 4
        assert frame["visit"].tolist() == [0, 1, 1, 0]
        assert frame["conversion"].tolist() == [0, 0, 1, 0]
        assert frame["visit"].dtype == frame["conversion"].dtype == np.int64
        assert frame["history_segment"].tolist()[:2] == ["2) $100 - $200", "3) $200 - $350"]
        assert frame["recency"].tolist() == [10, 6, 7, 2]
        assert frame["spend"].tolist() == [0.0, 0.0, 29.99, 0.0]


def test_columns_in_any_order_and_extra_columns_dropped(tmp_path: Path) -> None:
    frame = pd.read_csv(write(tmp_path / "a.csv"))
    shuffled = frame[list(reversed(frame.columns))].assign(extra=1)
    shuffled.to_csv(tmp_path / "hillstrom.csv", index=False)
    loaded = load_hillstrom(tmp_path)
    assert "extra" not in loaded.columns
    pd.testing.assert_frame_equal(loaded, load_hillstrom(tmp_path / "a.csv"))


def test_missing_path_and_empty_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no hillstrom.csv or hillstrom.csv.gz in the folder"):
        load_hillstrom(tmp_path)
    with pytest.raises(DataError, match=r"nowhere\.csv does not exist"):
        load_hillstrom(tmp_path / "nowhere.csv")


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    header = HEADER.replace(",spend", "")
    rows = [r.rsplit(",", 1)[0] for r in ROWS]
    with pytest.raises(DataError, match=r"columns \['spend'\] are missing; expected the header"):
        load_hillstrom(write(tmp_path / "h.csv", rows, header))


def test_a_conversion_without_a_visit_is_refused(tmp_path: Path) -> None:
    rows = [*ROWS, '3,"1) $0 - $100",40.0,1,0,Urban,0,Web,Mens E-Mail,0,1,10']
    with pytest.raises(DataError, match=r"1 row.* conversion = 1 but visit = 0"):
        load_hillstrom(write(tmp_path / "h.csv", rows))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('3,"1) $0 - $100",40.0,1,0,Urban,0,Web,Mens E-Mail,2,0,0', "'visit' must be 0 or 1"),
        ('3,"1) $0 - $100",lots,1,0,Urban,0,Web,Mens E-Mail,0,0,0', "'history' must hold num"),
        ('3,"1) $0 - $100",40.0,1,0,,0,Web,Mens E-Mail,0,0,0', r"missing values.*'zip_code'"),
    ],
)
def test_malformed_values_are_named(tmp_path: Path, row: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_hillstrom(write(tmp_path / "h.csv", [*ROWS, row]))


def test_split_is_seeded_disjoint_and_sized() -> None:
    frame = pd.DataFrame({"i": np.arange(100)})
    a, b = split_hillstrom(frame, seed=3), split_hillstrom(frame, seed=3)
    assert [len(p) for p in a] == [70, 10, 20]
    for left, right in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(left, right)
    assert sorted(pd.concat(a)["i"]) == list(range(100))
    assert not a.test["i"].equals(split_hillstrom(frame, seed=4).test["i"])
    assert [len(p) for p in split_hillstrom(frame, validation=0.0, test=0.3)] == [70, 0, 30]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"test": 0.0}, "test must be > 0"),
        ({"validation": 0.5, "test": 0.5}, "validation \\+ test < 1"),
        ({"test": 1.2}, "test must be a share in"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_split_options(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_hillstrom(pd.DataFrame({"i": range(10)}), **options)


def test_features_leave_out_spend_and_the_labels() -> None:
    features = hillstrom_features(embedding_dim=3)
    assert [f.name for f in features] == [*HILLSTROM_SPARSE, *HILLSTROM_DENSE]
    assert all(isinstance(f, SparseFeature) and f.embedding_dim == 3 for f in features[:7])
    assert all(isinstance(f, DenseFeature) for f in features[7:])
    assert {"spend", "visit", "conversion"}.isdisjoint(f.name for f in features)


@pytest.mark.skipif(not REAL.is_file(), reason=f"{REAL} not present")
def test_the_real_file() -> None:
    frame = load_hillstrom(REAL)
    assert len(frame) == 64_000
    assert frame["visit"].mean() == pytest.approx(0.1468, abs=5e-5)
    assert frame["conversion"].mean() == pytest.approx(0.0090, abs=5e-5)
    assert (frame.loc[frame["conversion"] == 1, "visit"] == 1).all()
    assert set(frame["segment"]) == {"Mens E-Mail", "Womens E-Mail", "No E-Mail"}
    assert frame["history_segment"].nunique() == 7
