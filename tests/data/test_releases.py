"""Loaders for every GroupLens layout (folder and zip), and validation of user ratings files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.core.errors import DataError
from recommender.data import load_movielens, read_ratings

# -- small releases in each layout, written byte for byte as GroupLens does --------------------

CSV_LAYOUT = {
    "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
                   "2,1,0.5,964982224\n",
    "movies.csv": 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n'
                  '3,"American President, The (1995)",Comedy|Drama|Romance\n'
                  "5,Untitled,(no genres listed)\n",
    "tags.csv": "userId,movieId,tag,timestamp\n2,1,pixar,1445714994\n2,3,1995,1445714996\n",
    "links.csv": "movieId,imdbId,tmdbId\n1,0114709,862\n3,0112346,\n5,0000005,5\n",
}
DAT_1M = {
    "ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
    "movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                  "661::Légende, La (1994)::Animation|Children's|Musical\n",
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
}
DAT_10M = {
    "ratings.dat": "1::122::5::838985046\n1::185::4.5::838983525\n2::122::3.5::868245777\n",
    "movies.dat": "122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action|Thriller\n",
    "tags.dat": "15::122::excellent!::1215184630\n20::185::note: good::1188263867\n",
}
_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
           "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
           "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _flags(*on: str) -> str:
    return "|".join("1" if g in on else "0" for g in _GENRES)


ML_100K = {
    "u.data": "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250950\n",
    "u.item": f"242|Kolya (1996)|24-Jan-1997||http://x|{_flags('Comedy')}\n"
              f"302|L.A. Confidential (1997)|01-Jan-1997||http://x|"
              f"{_flags('Crime', 'Film-Noir', 'Mystery', 'Thriller')}\n"
              f"303|Café au lait (1994)|01-Jan-1994||http://x|{_flags('unknown')}\n",
    "u.genre": "".join(f"{g}|{i}\n" for i, g in enumerate(_GENRES)) + "\n",
    "u.user": "186|39|F|executive|00000\n196|49|M|writer|55105\n",
}


def _write(root: Path, files: dict[str, str], as_zip: bool, folder: str) -> Path:
    """Write ``files`` (latin-1, as GroupLens does) into ``root/folder`` or a zip of it."""
    if as_zip:
        path = root / f"{folder}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, text in files.items():
                zf.writestr(f"{folder}/{name}", text.encode("latin-1"))
        return path
    path = root / folder
    path.mkdir()
    for name, text in files.items():
        (path / name).write_bytes(text.encode("latin-1"))
    return path


def _check_ratings(ratings: pd.DataFrame, n: int) -> None:
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert [str(t) for t in ratings.dtypes] == ["int32", "int32", "float32", "int64"]
    assert len(ratings) == n


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_csv_layout(tmp_path, as_zip):
    data = load_movielens(_write(tmp_path, CSV_LAYOUT, as_zip, "ml-test"))
    assert (data.name, data.layout) == ("ml-test", "csv")
    _check_ratings(data.ratings, 3)
    assert data.ratings["rating"].tolist() == [4.0, 4.5, 0.5]
    movies = data.movies.set_index("movieId")
    assert movies.loc[3, "title"] == "American President, The (1995)"
    assert movies.loc[1, "genres"] == ["Adventure", "Animation", "Children"]
    assert movies.loc[5, "genres"] == []
    assert movies.loc[1, "year"] == 1995 and pd.isna(movies.loc[5, "year"])
    assert str(movies["year"].dtype) == "Int64"
    assert data.tags["tag"].tolist() == ["pixar", "1995"]  # a numeric tag stays text
    assert data.links["imdbId"].tolist() == ["0114709", "0112346", "0000005"]
    assert data.links["tmdbId"].isna().tolist() == [False, True, False]


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_dat_layout_1m_latin1_with_users(tmp_path, as_zip):
    data = load_movielens(_write(tmp_path, DAT_1M, as_zip, "ml-1m"))
    assert data.layout == "dat" and data.tags is None
    _check_ratings(data.ratings, 3)
    movies = data.movies.set_index("movieId")
    assert movies.loc[661, "title"] == "Légende, La (1994)"
    assert movies.loc[661, "genres"] == ["Animation", "Children's", "Musical"]
    assert data.users["userId"].tolist() == [1, 2]
    assert data.users["age"].tolist() == [1, 56] and data.users["zip"].tolist() == ["48067",
                                                                                   "70072"]


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_dat_layout_10m_with_tags(tmp_path, as_zip):
    data = load_movielens(_write(tmp_path, DAT_10M, as_zip, "ml-10M100K"))
    _check_ratings(data.ratings, 3)
    assert data.ratings["rating"].tolist() == [5.0, 4.5, 3.5]
    assert data.tags["tag"].tolist() == ["excellent!", "note: good"]
    assert data.tags["timestamp"].dtype == np.int64 and data.users is None


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_100k_layout(tmp_path, as_zip):
    data = load_movielens(_write(tmp_path, ML_100K, as_zip, "ml-100k"))
    assert data.layout == "100k"
    _check_ratings(data.ratings, 3)
    movies = data.movies.set_index("movieId")
    assert movies.loc[302, "genres"] == ["Crime", "Film-Noir", "Mystery", "Thriller"]
    assert movies.loc[303, "genres"] == []  # "unknown" is no genre
    assert movies.loc[303, "title"] == "Café au lait (1994)"
    assert data.users.set_index("userId").loc[196, "occupation"] == "writer"


def test_unknown_folder_and_missing_release_are_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no ratings.csv, ratings.dat or u.data"):
        load_movielens(tmp_path / "empty")
    with pytest.raises(DataError, match="recommender data fetch ml-1m"):
        load_movielens("ml-1m", data_root=tmp_path)


def test_real_ml_latest_small(shared_data):
    data = load_movielens("ml-latest-small", data_root=shared_data)
    assert len(data.ratings) == 100_004 and data.ratings["userId"].nunique() == 671
    assert data.tags is not None and data.links is not None


# -- read_ratings: every bad input names the file, and the line and column where it is ---------

@pytest.mark.parametrize("text, fragments", [
    ("userId,movieId,timestamp\n1,2,3\n", ["missing column(s) rating"]),
    ("userId,movieId,rating\n1,2,4\nx,3,4\n", ["line 3", "column userId", "'x'"]),
    ("userId,movieId,rating\n1,2,4\n1,3,good\n", ["line 3", "column rating", "'good'"]),
    ("userId,movieId,rating\n1,2,4\n1,3,5.5\n", ["line 3", "column rating", "5.5",
                                                 "0.5-5"]),
    ("userId,movieId,rating\n1,2,4\n1,3,\n", ["line 3", "column rating", "empty"]),
    ("userId,movieId,rating\n1,2,4\n1,3,NaN\n", ["line 3", "column rating", "'NaN'"]),
    ("userId,movieId,rating\n1,2,4\n1,3,3\n1,2,5\n", ["line 4", "duplicate", "userId 1",
                                                      "movieId 2"]),
    ("", ["empty"]),
    ("userId,movieId,rating,timestamp\n", ["no ratings"]),
    ("userId,movieId,rating\n1,2.5,4\n", ["line 2", "column movieId", "whole number"]),
], ids=["missing-column", "non-numeric-id", "non-numeric-rating", "out-of-range", "empty-value",
        "nan", "duplicate-pair", "empty-file", "header-only", "fractional-id"])
def test_read_ratings_rejects(tmp_path, text, fragments):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_ratings(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_read_ratings_normalises(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("userId,movieId,rating\n1,10,3.5\n2,10,5\n")
    ratings = read_ratings(path)
    _check_ratings(ratings, 2)
    assert ratings["timestamp"].tolist() == [0, 0]


@pytest.mark.parametrize("text, fragments", [
    ("userId,movieId,rating\n1,2,4\n3000000000,3,4\n",
     ["line 3", "column userId", "3000000000", "32 bits"]),
    ("userId,movieId,rating\n1,2,4\n1,-2147483649,4\n", ["line 3", "column movieId", "32 bits"]),
    ("userId,movieId,rating\n1,2,4\ninf,3,4\n", ["line 3", "column userId", "'inf'", "finite"]),
    ("userId,movieId,rating\n1,2,4\n1,3,-inf\n", ["line 3", "column rating", "finite"]),
    ("userId,movieId,rating\n\n1,2,4\n\n\n1,3,9\n", ["line 6", "column rating", "9"]),
    ("userId,movieId,rating\r\n1,2,4\r\n\r\n1,2,5\r\n", ["line 4", "duplicate"]),
], ids=["beyond-int32", "below-int32", "inf-id", "inf-rating", "blank-lines-counted",
        "crlf-blank-duplicate"])
def test_read_ratings_rejects_without_changing_ids(tmp_path, text, fragments):
    path = tmp_path / "mine.csv"
    path.write_bytes(text.encode())
    with pytest.raises(DataError) as info:
        read_ratings(path)
    message = str(info.value)
    assert str(path) in message and len(message.splitlines()) == 1
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("content", [
    b"\xef\xbb\xbfuserId,movieId,rating\n1,10,3.5\n2,10,5\n",  # byte-order mark
    b"userId,movieId,rating\r\n1,10,3.5\r\n2,10,5\r\n",  # Windows line endings
    b'"userId","movieId","rating"\n"1","10","3.5"\n"2","10","5"\n',  # quoted fields
    b"userId, movieId, rating\n1, 10, 3.5\n2, 10, 5\n",  # spaces after the commas
    b"userId,movieId,rating,timestamp,comment\n1,10,3.5,5,\"great, really\"\n2,10,5,6,\n",
    b"\nuserId,movieId,rating\n\n1,10,3.5\n\n2,10,5\n\n",  # blank lines anywhere
], ids=["bom", "crlf", "quoted", "spaces", "extra-columns", "blank-lines"])
def test_read_ratings_reads_odd_but_valid_files(tmp_path, content):
    path = tmp_path / "mine.csv"
    path.write_bytes(content)
    ratings = read_ratings(path)
    _check_ratings(ratings, 2)
    assert ratings["userId"].tolist() == [1, 2] and ratings["rating"].tolist() == [3.5, 5.0]


def test_release_with_ids_beyond_int32_is_refused_not_wrapped(tmp_path):
    files = {**CSV_LAYOUT, "ratings.csv": "userId,movieId,rating,timestamp\n"
                                          "3000000000,1,4.0,964982703\n"}
    folder = _write(tmp_path, files, False, "ml-odd")
    with pytest.raises(DataError, match=r"ratings\.csv: userId 3000000000 does not fit"):
        load_movielens(folder)


def test_read_ratings_gives_what_the_checked_text_path_gives(tmp_path):
    # valid files are parsed as numbers at once; the result is the one the text path (which
    # names the line and column of a problem) gives, dtypes included
    from recommender.data.validation import validate_ratings

    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({"userId": rng.permutation(n) + 1, "movieId": rng.integers(1, 90, n),
                          "rating": rng.integers(1, 11, n) / 2,
                          "timestamp": rng.integers(0, 2**40, n)})
    path = tmp_path / "mine.csv"
    frame.to_csv(path, index=False)
    as_text = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(read_ratings(path), validate_ratings(as_text, str(path)))
