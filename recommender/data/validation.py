"""Ratings tables people bring: read a CSV, check every value, normalise the columns.

Every problem is one :class:`~recommender.core.errors.DataError` that names the file, the line
as an editor counts it and the column; never a bare pandas traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recommender.core.errors import DataError

__all__ = ["read_ratings", "validate_ratings", "normalise_ratings", "RATING_COLUMNS",
           "RATING_SCALE"]

RATING_COLUMNS = ("userId", "movieId", "rating", "timestamp")
REQUIRED_RATING_COLUMNS = ("userId", "movieId", "rating")
RATING_SCALE = (0.5, 5.0)
_INT32 = np.iinfo(np.int32)  # ids are int32 (as in lenskit); larger ones are refused

def normalise_ratings(df: pd.DataFrame, source: str = "ratings") -> pd.DataFrame:
    """Typed columns; ids that do not fit in int32 are refused, never wrapped around."""
    for column in ("userId", "movieId"):
        values = df[column].to_numpy()
        outside = (values < _INT32.min) | (values > _INT32.max)
        if outside.any():
            raise DataError(f"{source}: {column} {values[np.flatnonzero(outside)[0]]} does not "
                            f"fit in 32 bits (ids go up to {_INT32.max:,})")
    out = pd.DataFrame({
        "userId": df["userId"].astype(np.int32),
        "movieId": df["movieId"].astype(np.int32),
        "rating": df["rating"].astype(np.float32),
        "timestamp": (df["timestamp"] if "timestamp" in df else pd.Series(0, index=df.index))
        .fillna(0).astype(np.int64),
    })
    return out.reset_index(drop=True)


def read_ratings(path: str | Path, rating_scale: tuple[float, float] = RATING_SCALE,
                 sep: str = ",") -> pd.DataFrame:
    """Read and validate a ratings CSV (``userId,movieId,rating[,timestamp]``).

    Every problem is raised as a :class:`DataError` that names the file, the line (1-based,
    header included, blank lines counted, as an editor shows it) and the column; never a bare
    pandas traceback. Odd but valid files are read as they are meant: a byte-order mark, CRLF
    line endings, quoted fields, spaces after the separator, blank lines, extra columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    valid = _read_valid(path, sep, rating_scale)
    if valid is not None:
        return valid
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                         encoding="utf-8-sig", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header "
                        f"'{','.join(RATING_COLUMNS)}' and at least one rating") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).strip()})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return validate_ratings(df, str(path), rating_scale, line_of=_file_lines(path))


def _read_valid(path: Path, sep: str, rating_scale: tuple[float, float]) -> pd.DataFrame | None:
    """The normalised ratings of a file with nothing to report, parsed as numbers at once
    (reading every field as text first, to name a bad one, was most of the reading time);
    ``None`` at the first sign of a problem, for :func:`read_ratings` to read the file as
    text and name it, with its line and column."""
    try:
        df = pd.read_csv(path, sep=sep, encoding="utf-8-sig", skipinitialspace=True,
                         usecols=lambda column: str(column).strip() in RATING_COLUMNS)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    df.columns = [str(c).strip() for c in df.columns]
    if (df.empty or df.columns.duplicated().any()
            or any(c not in df.columns for c in REQUIRED_RATING_COLUMNS)):
        return None
    for column in df.columns:
        values = df[column].to_numpy()
        if values.dtype.kind not in "iuf":
            return None
        if values.dtype.kind == "f":
            if not np.isfinite(values).all():  # NaN (an empty field) included
                return None
            if column != "rating" and (values != np.floor(values)).any():
                return None
        if column in ("userId", "movieId") and (
                (values < _INT32.min).any() or (values > _INT32.max).any()):
            return None
    rating = df["rating"].to_numpy()
    if ((rating < rating_scale[0]) | (rating > rating_scale[1])).any():
        return None
    ratings = normalise_ratings(df, str(path))
    pairs = (ratings["userId"].to_numpy(np.int64) << 32) | (
        ratings["movieId"].to_numpy(np.int64) & 0xFFFFFFFF)
    return None if pd.Series(pairs).duplicated().any() else ratings


def _file_lines(path: Path):
    """Map a data row (0-based) to its line in ``path``, skipping blank lines as pandas does.

    The file is scanned only when a message needs a line number."""
    def line_of(row: int) -> int:
        seen = -1  # the header is row -1
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    if seen == row:
                        return number
                    seen += 1
        return row + 2
    return line_of


def validate_ratings(df: pd.DataFrame, source: str = "ratings",
                     rating_scale: tuple[float, float] = RATING_SCALE,
                     line_of=None) -> pd.DataFrame:
    """Check columns, types, range, NaN and duplicates; return normalised ratings.

    Args:
        df: the table as read (any dtypes; text is parsed).
        source: the file name used in messages.
        rating_scale: the lowest and highest valid rating.
        line_of: maps row ``i`` of ``df`` to its line in the file (default ``i + 2``: a
            header and no blank lines).
    """
    line_of = line_of or (lambda row: row + 2)
    missing = [c for c in REQUIRED_RATING_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; found "
                        f"{', '.join(map(str, df.columns)) or 'none'} (expected "
                        f"{','.join(RATING_COLUMNS)})")
    if df.empty:
        raise DataError(f"{source}: no ratings (the file has a header but no rows)")
    df = df.reset_index(drop=True)

    def fail(mask, column: str, what) -> None:
        if mask.any():
            row = int(np.flatnonzero(mask)[0])
            raise DataError(f"{source}, line {line_of(row)}, column {column}: {what(row)}")

    columns = [c for c in RATING_COLUMNS if c in df.columns]
    numeric = {}
    for column in columns:
        raw = df[column]
        values = pd.to_numeric(raw, errors="coerce")
        shown = raw.to_numpy()
        fail(values.isna().to_numpy(), column, lambda r: "value is empty" if pd.isna(shown[r])
             else f"value is not a number: {shown[r]!r}")
        array = values.to_numpy(np.float64)
        fail(~np.isfinite(array), column, lambda r: f"{shown[r]!r} is not a finite number")
        if column != "rating":
            fail(array != np.floor(array), column, lambda r: f"{shown[r]!r} is not a whole number")
        if column in ("userId", "movieId"):
            fail((array < _INT32.min) | (array > _INT32.max), column,
                 lambda r: f"id {shown[r]} does not fit in 32 bits (ids go up to {_INT32.max:,})")
        numeric[column] = values
    low, high = rating_scale
    rating = numeric["rating"].to_numpy()
    fail((rating < low) | (rating > high), "rating",
         lambda r: f"{rating[r]:g} is outside the rating scale {low:g}-{high:g}")
    ratings = normalise_ratings(pd.DataFrame(numeric), source)
    dup = ratings.duplicated(["userId", "movieId"]).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        u, m = (int(v) for v in ratings.loc[row, ["userId", "movieId"]])
        raise DataError(f"{source}, line {line_of(row)}: duplicate rating for userId {u}, "
                        f"movieId {m} (each user-movie pair may appear once)")
    return ratings
