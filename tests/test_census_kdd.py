"""Census-Income (KDD) loader, checked on a small fixture of rows copied from the UCI files."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest

import mtlrec.datasets.census_kdd as census_kdd
from mtlrec.datasets import (
    CENSUS_DENSE,
    CENSUS_GROUPS,
    CENSUS_SPARSE,
    census_features,
    census_kdd_dir,
    census_tasks,
    load_census_kdd,
)
from mtlrec.exceptions import ConfigError, DataError
from mtlrec.features import DenseFeature, SparseFeature
from mtlrec.preprocessing import Preprocessor
from mtlrec.tasks import Task

FIXTURE = Path(__file__).parent / "data" / "census_kdd"
DATA, TEST = "census-income.data.gz", "census-income.test.gz"
LABELS = ["income", "marital", "education_college"]
#: the 40 attributes then instance_weight, in file order (instance_weight is field 25)
ATTRIBUTES = [
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
    "year",
]  # fmt: skip


def raw_rows(name: str) -> list[list[str]]:
    """Fields of every row of a fixture file, split by hand (no pandas)."""
    text = gzip.decompress((FIXTURE / name).read_bytes()).decode()
    rows = [[field.strip() for field in line.split(",")] for line in text.splitlines()]
    assert all(len(row) == 42 for row in rows)
    return rows


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(ATTRIBUTES[:25]).reset_index(drop=True)


@pytest.fixture(scope="module")
def paper() -> census_kdd.CensusKDD:
    return load_census_kdd(FIXTURE)


def test_columns_and_dtypes(paper) -> None:
    assert paper.mode == "paper"
    assert list(paper.train.columns) == ATTRIBUTES + LABELS
    assert len(CENSUS_SPARSE) == 33 and len(CENSUS_DENSE) == 7
    assert set(CENSUS_SPARSE) | set(CENSUS_DENSE) | {"instance_weight"} == set(ATTRIBUTES)
    for frame in paper[:3]:
        assert frame[CENSUS_DENSE + LABELS].dtypes.eq("int64").all()
        assert frame["instance_weight"].dtype == "float64"
        values = frame[CENSUS_SPARSE].stack().dropna()
        assert values.map(type).eq(str).all()
        assert not values.str.contains(r"^\s|\s$").any()  # trailing spaces stripped


def test_first_row_values(paper) -> None:
    first = paper.train.iloc[0]
    assert (first["age"], first["education"], first["marital_stat"]) == (
        73,
        "High school graduate",
        "Widowed",
    )
    assert first["instance_weight"] == pytest.approx(1700.09)
    assert (first["year"], first["veterans_benefits"], first["weeks_worked_in_year"]) == (
        "95",
        "2",
        0,
    )
    assert pd.isna(first["migration_code_change_in_msa"])
    assert paper.train.iloc[2]["citizenship"] == "Foreign born- Not a citizen of U S"


@pytest.mark.parametrize("name", [DATA, TEST])
def test_question_mark_is_missing(paper, name: str) -> None:
    rows = raw_rows(name)
    frame = paper.train if name == DATA else pd.concat([paper.validation, paper.test])
    missing = frame[ATTRIBUTES].isna().sum()
    expected = [sum(row[i] == "?" for row in rows) for i in range(len(ATTRIBUTES))]
    assert missing.tolist() == expected
    assert sum(expected) > 0 and missing["country_of_birth_self"] > 0
    assert not frame[CENSUS_SPARSE].eq("?").any().any()


def test_na_hispanic_origin_is_a_category(paper) -> None:
    hispanic = paper.train["hispanic_origin"]
    assert hispanic.notna().all()
    assert hispanic.eq("NA").sum() == 2
    assert sorted(hispanic[hispanic.eq("NA")].index) == [34, 35]


def test_numeric_looking_codes_are_strings(paper) -> None:
    row = paper.train.iloc[1]
    codes = ["detailed_industry_recode", "detailed_occupation_recode", "year"]
    assert [row[c] for c in codes] == ["4", "34", "94"]
    assert row["own_business_or_self_employed"] == "0"
    assert set(paper.train["year"]) == {"94", "95"}
    assert set(paper.train["veterans_benefits"]) <= {"0", "1", "2"}


def test_labels_hand_checked(paper) -> None:
    train = paper.train
    # read off the fixture (0-based line numbers of `zcat census-income.data.gz`)
    assert train.index[train["income"] == 1].tolist() == [25, 26, 28]
    assert train.index[train["education_college"] == 1].tolist() == [6, 14, 16, 21, 27, 28, 31]
    assert train.index[train["marital"] == 1].tolist() == [2, 3, 4, 7, 10, 11, 14, 15, 16, 18,
                                                          20, 27, 33]  # fmt: skip
    # associates degrees (rows 23 and 26) are not college
    assert train.loc[[23, 26], "education"].str.startswith("Associates degree").all()
    assert train.loc[[23, 26], "education_college"].tolist() == [0, 0]
    assert train["education"].nunique() == 17


@pytest.mark.parametrize("name", [DATA, TEST])
def test_labels_match_raw_fields(paper, name: str) -> None:
    rows = raw_rows(name)
    frame = paper.train if name == DATA else pd.concat([paper.validation, paper.test])
    college = {"Bachelors", "Masters", "Doctorate", "Prof school"}
    assert frame["income"].sum() == sum(row[41] == "50000+." for row in rows) == 3
    assert frame["marital"].sum() == sum(row[7] == "Never married" for row in rows)
    assert frame["education_college"].sum() == sum(
        any(row[4].startswith(word + " ") for word in college) for row in rows
    )


def test_features_and_tasks() -> None:
    one, two = census_features(1, embedding_dim=8), census_features(2)
    assert len(one) == 39 and len(two) == 38
    names_one, names_two = [f.name for f in one], [f.name for f in two]
    assert "marital_stat" not in names_one and "education" in names_one
    assert not {"marital_stat", "education"} & set(names_two)
    assert set(names_one) - set(names_two) == {"education"}
    for names in (names_one, names_two):
        assert "instance_weight" not in names and not set(LABELS) & set(names)
        assert names[-7:] == CENSUS_DENSE
    assert all(isinstance(f, SparseFeature) and f.embedding_dim == 8 for f in one[:32])
    assert all(isinstance(f, DenseFeature) for f in one[32:])
    for features in (one, two):  # POSO's and PEPNet's groups; the others ignore them
        assert {f.name: f.group for f in features if f.group} == {
            "age": "user", "sex": "user", "race": "user", "hispanic_origin": "user",
            "class_of_worker": "domain",
        }  # fmt: skip
    assert census_tasks(1) == [Task("income"), Task("marital")]
    assert census_tasks(2) == [Task("education_college"), Task("marital")]
    assert [tuple(t.name for t in census_tasks(g)) for g in (1, 2)] == [
        CENSUS_GROUPS[1],
        CENSUS_GROUPS[2],
    ]
    for bad in (0, 3, "1"):
        with pytest.raises(ConfigError, match="group"):
            census_features(bad)
        with pytest.raises(ConfigError, match="group"):
            census_tasks(bad)


def test_frames_feed_the_preprocessor(paper) -> None:
    pre = Preprocessor(census_features(2, embedding_dim=4), census_tasks(2)).fit(paper.train)
    batch = pre.transform(paper.validation)
    assert tuple(batch.sparse.shape) == (len(paper.validation), 31)
    assert batch.labels.shape[1] == 2


def test_paper_split(paper) -> None:
    train, validation, test = paper.train, paper.validation, paper.test
    assert len(train) == 36 and (len(validation), len(test)) == (16, 15)
    both = pd.concat([validation, test])
    assert not both.duplicated().any()  # disjoint (the fixture rows are unique)
    whole = load_census_kdd(FIXTURE, seed=5)
    pd.testing.assert_frame_equal(sort_rows(both), sort_rows(pd.concat(whole[1:3])))
    again = load_census_kdd(FIXTURE)
    for mine, other in zip(paper[:3], again[:3], strict=True):
        pd.testing.assert_frame_equal(mine, other)
    pd.testing.assert_frame_equal(whole.train, train)  # the training file is not shuffled
    assert not whole.validation.equals(validation)


def test_test_only_split(tmp_path) -> None:
    shutil.copy(FIXTURE / TEST, tmp_path / TEST)
    first = load_census_kdd(tmp_path, seed=3)
    assert first.mode == "test-only"
    assert [len(f) for f in first[:3]] == [21, 5, 5]  # 31 rows: 2/3 : 1/6 : 1/6, rounded
    parts = pd.concat(first[:3])
    assert not parts.duplicated().any()
    every = census_kdd._read(tmp_path / TEST)
    pd.testing.assert_frame_equal(sort_rows(parts), sort_rows(every))
    second = load_census_kdd(tmp_path, seed=4)
    assert not second.train.equals(first.train)
    pd.testing.assert_frame_equal(load_census_kdd(tmp_path, seed=3).test, first.test)


def test_missing_files_message(tmp_path) -> None:
    folder = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_census_kdd(folder)
    message = str(info.value)
    for part in ("census-income.data(.gz)", "census-income.test(.gz)", str(folder),
                 "census-income-mld/", "download=True", "--download"):  # fmt: skip
        assert part in message
    shutil.copy(FIXTURE / DATA, tmp_path / DATA)  # the training file alone is not enough
    with pytest.raises(DataError, match=r"looked for census-income\.test\(\.gz\) in"):
        load_census_kdd(tmp_path)


def test_default_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MTLREC_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert census_kdd_dir() == tmp_path / ".cache" / "mtlrec" / "census-kdd"
    assert census_kdd_dir("~/x") == tmp_path / "x"
    monkeypatch.setenv("MTLREC_DATA_DIR", str(tmp_path / "data"))
    assert census_kdd_dir() == tmp_path / "data" / "census-kdd"
    shutil.copytree(FIXTURE, tmp_path / "data" / "census-kdd")
    assert len(load_census_kdd().train) == 36


def fake_opener(requested: list[str]):
    def opener(url: str, timeout: float) -> io.BytesIO:
        requested.append(url)
        return io.BytesIO((FIXTURE / url.rsplit("/", 1)[1]).read_bytes())

    return opener


def test_download(tmp_path, monkeypatch) -> None:
    for name in (DATA, TEST):
        md5 = hashlib.md5(gzip.decompress((FIXTURE / name).read_bytes())).hexdigest()
        monkeypatch.setitem(census_kdd.CENSUS_KDD_MD5, name.removesuffix(".gz"), md5)
    requested: list[str] = []
    monkeypatch.setattr(census_kdd, "urlopen", fake_opener(requested))
    folder = tmp_path / "new"
    loaded = load_census_kdd(folder, download=True)
    assert requested == [census_kdd.CENSUS_KDD_URL + name for name in (DATA, TEST)]
    assert sorted(p.name for p in folder.iterdir()) == [DATA, TEST]
    assert loaded.mode == "paper" and len(loaded.train) == 36
    # a present file (plain or gzipped) is neither fetched again nor overwritten
    partial = tmp_path / "partial"
    partial.mkdir()
    plain = gzip.decompress((FIXTURE / DATA).read_bytes())
    (partial / "census-income.data").write_bytes(plain)
    requested.clear()
    assert load_census_kdd(partial, download=True).mode == "paper"
    assert requested == [census_kdd.CENSUS_KDD_URL + TEST]
    assert sorted(p.name for p in partial.iterdir()) == ["census-income.data", TEST]
    assert (partial / "census-income.data").read_bytes() == plain


def test_download_checksum_mismatch(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(census_kdd, "urlopen", fake_opener([]))  # fixture != the real md5
    with pytest.raises(DataError, match=r"md5 .* expected 887f4dc410a99bc332bddbb0a4195b88"):
        load_census_kdd(tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []  # the bad download is deleted


def test_plain_files(tmp_path, paper) -> None:
    for name in (DATA, TEST):
        plain = gzip.decompress((FIXTURE / name).read_bytes())
        (tmp_path / name.removesuffix(".gz")).write_bytes(plain)
    loaded = load_census_kdd(tmp_path)
    assert loaded.mode == "paper"
    for mine, other in zip(loaded[:3], paper[:3], strict=True):
        pd.testing.assert_frame_equal(mine, other)


def test_bad_label_is_rejected(tmp_path) -> None:
    text = gzip.decompress((FIXTURE / TEST).read_bytes()).replace(b"- 50000.", b"-50000", 1)
    (tmp_path / "census-income.test").write_bytes(text)
    with pytest.raises(DataError, match="last field"):
        load_census_kdd(tmp_path)
