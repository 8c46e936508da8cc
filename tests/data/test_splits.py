"""Splits: sizes, disjoint and covering, seeded, and the u20 protocol on the real data."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from recommender.data import splits
from recommender.core.errors import DataError

SPLITS = {
    "random": lambda r, seed: splits.random_split(r, 0.2, seed),
    "per_user": lambda r, seed: splits.per_user_split(r, 0.2, seed),
    "validation": lambda r, seed: splits.validation_split(r, 0.1, seed),
    "temporal": lambda r, seed: splits.temporal_split(r, 0.2),
    "leave_last_2": lambda r, seed: splits.leave_last_n(r, 2),
    "cold_users": lambda r, seed: splits.cold_start_split(r, "user", 0.2, seed),
    "cold_movies": lambda r, seed: splits.cold_start_split(r, "movie", 0.2, seed),
}


def _pairs(df: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(df["userId"].tolist(), df["movieId"].tolist()))


@pytest.mark.parametrize("name", SPLITS)
def test_disjoint_covering_and_seeded(synthetic_small, name):
    r = synthetic_small.ratings
    train, test = SPLITS[name](r, 0)
    assert len(train) + len(test) == len(r) and len(test) > 0
    assert _pairs(train).isdisjoint(_pairs(test))
    assert _pairs(train) | _pairs(test) == _pairs(r)
    again = SPLITS[name](r, 0)
    pd.testing.assert_frame_equal(again[1], test)
    if name not in ("temporal", "leave_last_2"):
        assert not SPLITS[name](r, 1)[1].equals(test)


def test_sizes(synthetic_small):
    r = synthetic_small.ratings
    assert len(splits.random_split(r, 0.25, 3)[1]) == 3_750
    assert len(splits.temporal_split(r, 0.1)[1]) == 1_500
    n = r.groupby("userId").size()
    _, test = splits.per_user_split(r, 0.2, 5)
    expected = np.maximum(1, np.floor(0.2 * n + 0.5)).astype(int)
    pd.testing.assert_series_equal(test.groupby("userId").size(), expected)


def test_temporal_and_leave_last_respect_time(synthetic_small):
    r = synthetic_small.ratings
    train, test = splits.temporal_split(r, 0.2)
    assert train["timestamp"].max() <= test["timestamp"].min()
    train, test = splits.leave_last_n(r, 3)
    assert (test.groupby("userId").size() == 3).all()
    last_train = train.groupby("userId")["timestamp"].max()
    first_test = test.groupby("userId")["timestamp"].min()
    assert (last_train <= first_test).all()


def test_leave_last_ties_and_short_users():
    r = pd.DataFrame({"userId": [1, 1, 1, 2], "movieId": [5, 9, 7, 3],
                      "rating": [4.0] * 4, "timestamp": [10, 20, 20, 10]})
    train, test = splits.leave_last_n(r, 1)
    assert _pairs(test) == {(1, 9)}  # tie at t=20: the higher movieId counts as later
    assert (2, 3) in _pairs(train)  # a user with one rating keeps it


@pytest.mark.parametrize("by", ["user", "movie"])
def test_cold_start_holds_out_whole_entities(synthetic_small, by):
    train, test = splits.cold_start_split(synthetic_small.ratings, by, 0.2, 0)
    column = f"{by}Id"
    assert set(train[column]).isdisjoint(test[column])
    n = synthetic_small.ratings[column].nunique()
    assert test[column].nunique() == round(0.2 * n)


def test_validation_keeps_every_user_in_fit(synthetic_small):
    train, _ = splits.per_user_split(synthetic_small.ratings, 0.2, 0)
    fit, validation = splits.validation_split(train, 0.1, 0)
    assert set(fit["userId"]) == set(train["userId"]) >= set(validation["userId"])


@pytest.mark.parametrize("call, match", [
    (lambda r: splits.random_split(r, 0.0, 0), "strictly between 0 and 1"),
    (lambda r: splits.per_user_split(r, 1.0, 0), "strictly between 0 and 1"),
    (lambda r: splits.temporal_split(r, -0.1), "strictly between 0 and 1"),
    (lambda r: splits.validation_split(r, 1.5, 0), "strictly between 0 and 1"),
    (lambda r: splits.cold_start_split(r, "genre", 0.2, 0), "'user' or 'movie'"),
    (lambda r: splits.leave_last_n(r, 0), "n must be >= 1"),
    (lambda r: splits.random_split(r.iloc[:0], 0.2, 0), "cannot split 0 rating"),
    (lambda r: splits.temporal_split(r.drop(columns="timestamp"), 0.2), "no column timestamp"),
])
def test_bad_arguments(synthetic_small, call, match):
    with pytest.raises(DataError, match=match):
        call(synthetic_small.ratings)


def test_from_files(tmp_path):
    (tmp_path / "train.csv").write_text("userId,movieId,rating\n1,1,4\n1,2,3\n")
    (tmp_path / "test.csv").write_text("userId,movieId,rating\n1,3,9\n")
    with pytest.raises(DataError, match="test.csv, line 2, column rating"):
        splits.from_files(tmp_path / "train.csv", tmp_path / "test.csv")
    (tmp_path / "test.csv").write_text("userId,movieId,rating\n1,3,5\n")
    train, test = splits.from_files(tmp_path / "train.csv", tmp_path / "test.csv")
    assert (len(train), len(test)) == (2, 1) and test["rating"].dtype == np.float32


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_ml100k_fold(tmp_path, as_zip):
    files = {"u1.base": "1\t10\t4\t881250949\n2\t10\t3\t881250950\n",
             "u1.test": "1\t20\t5\t881250951\n", "ua.base": "1\t10\t4\t1\n",
             "ua.test": "1\t20\t5\t2\n2\t20\tx\t3\n"}
    if as_zip:
        path = tmp_path / "ml-100k.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, text in files.items():
                zf.writestr(f"ml-100k/{name}", text)
    else:
        path = tmp_path / "ml-100k"
        path.mkdir()
        for name, text in files.items():
            (path / name).write_text(text)
    train, test = splits.ml100k_fold(path, "u1")
    assert (len(train), len(test)) == (2, 1) and train["timestamp"].dtype == np.int64
    with pytest.raises(DataError, match=r"ua.test, line 2, column rating"):
        splits.ml100k_fold(path, "ua")
    with pytest.raises(DataError, match="no u2.base inside"):
        splits.ml100k_fold(path, "u2")
    with pytest.raises(DataError, match="unknown ml-100k fold 'u6'"):
        splits.ml100k_fold(path, "u6")


def test_u20_protocol_on_real_data(shared_data):
    ratings = pd.read_csv(shared_data / "ml-latest-small" / "ratings.csv")
    n = ratings.groupby("userId").size()
    expected = np.maximum(1, np.floor(0.2 * n + 0.5)).astype(int)
    train, test = splits.per_user_split(ratings, 0.2, seed=0)
    assert (len(train), len(test)) == (80_001, 20_003)
    pd.testing.assert_series_equal(test.groupby("userId").size(), expected)
    published = shared_data.parent / "benchmarks" / "ml-latest-small-u20"
    if not published.is_dir():
        pytest.skip("the published u20 split is absent")
    train, test = splits.from_files(published / "train.csv", published / "test.csv")
    pd.testing.assert_series_equal(test.groupby("userId").size(), expected, check_dtype=False,
                                   check_index_type=False)
    assert _pairs(train).isdisjoint(_pairs(test))
    assert _pairs(train) | _pairs(test) == _pairs(ratings)
