"""The ratings store: users and ratings added through the API, in a real database.

SQLite is the embedded default (one file, WAL journal, ``synchronous=FULL``, so a rating is on
disk before the API acknowledges it, and a killed server loses nothing it acknowledged);
the same code runs against PostgreSQL given a URL, for several server processes sharing one
store. Every statement is parameterised (SQLAlchemy Core) and every write is one transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from recommender.core.errors import UsageError

__all__ = ["RatingsStore", "StoredRating", "database_url"]

_META = sa.MetaData()
USERS = sa.Table(
    "users", _META,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(64), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)
RATINGS = sa.Table(
    "ratings", _META,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("movie_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("rating", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Built once: the hot read of every recommendation (SQLAlchemy caches its compiled form).
_USER_RATINGS = (sa.select(RATINGS.c.movie_id, RATINGS.c.rating, RATINGS.c.updated_at)
                 .where(RATINGS.c.user_id == sa.bindparam("user_id"))
                 .order_by(RATINGS.c.movie_id))


@dataclass(frozen=True)
class StoredRating:
    movie_id: int
    rating: float
    updated_at: float


def database_url(target: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a file path (a path means a SQLite file).

    ``postgresql://`` URLs are served by psycopg 3.
    """
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser()}"


def _shown(path: str | None) -> str:
    """A SQLite path for messages: relative to the working folder when inside it."""
    if not path or path == ":memory:":
        return ":memory:"
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return resolved.name


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets readers run beside the one writer; FULL syncs the WAL at every commit."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class RatingsStore:
    """Users created through the API and every rating given through it.

    Args:
        target: a SQLAlchemy/PostgreSQL URL, or a path for a SQLite file (folders are made).
        first_user_id: new users get ids above this (the largest id of the dataset), so
            they never collide with the dataset's users.
    """

    def __init__(self, target: str | Path, first_user_id: int = 0):
        url = sa.engine.make_url(database_url(target))
        self.dialect = url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise UsageError(f"unsupported database {url.drivername!r}: use a SQLite path or a "
                             f"postgresql:// URL")
        if self.dialect == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # A server's connection can drop (pre-ping checks it at each checkout); a file cannot.
        self.engine = sa.create_engine(url, pool_size=8, max_overflow=32,
                                       pool_pre_ping=self.dialect == "postgresql")
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.first_user_id = int(first_user_id)
        _META.create_all(self.engine)
        self.label = (_shown(url.database) if self.dialect == "sqlite"
                      else url.render_as_string(hide_password=True))

    def close(self) -> None:
        self.engine.dispose()

    # -- users -----------------------------------------------------------------------------

    def create_user(self, name: str | None = None, retries: int = 20) -> int:
        """A new user id, one above the largest in use (retried when two servers race)."""
        for _ in range(retries):
            try:
                with self.engine.begin() as conn:
                    top = conn.execute(sa.select(sa.func.max(USERS.c.user_id))).scalar()
                    user_id = max(top or 0, self.first_user_id) + 1
                    conn.execute(USERS.insert().values(user_id=user_id, name=name,
                                                       created_at=time.time()))
                return user_id
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError("could not allocate a user id: too many concurrent sign-ups")

    def has_user(self, user_id: int) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(USERS.c.user_id).where(USERS.c.user_id == user_id)
                                ).first() is not None

    # -- ratings ---------------------------------------------------------------------------

    def put_ratings(self, user_id: int, ratings: dict[int, float]) -> float:
        """Add or change ``{movie_id: rating}`` of one user in one transaction; returns the
        time stamp written."""
        now = time.time()
        if not ratings:
            return now
        rows = [{"user_id": user_id, "movie_id": int(m), "rating": float(r), "updated_at": now}
                for m, r in ratings.items()]
        insert = (postgresql if self.dialect == "postgresql" else sqlite).insert(RATINGS)
        upsert = insert.on_conflict_do_update(
            index_elements=[RATINGS.c.user_id, RATINGS.c.movie_id],
            set_={"rating": insert.excluded.rating, "updated_at": insert.excluded.updated_at})
        with self.engine.begin() as conn:
            conn.execute(upsert, rows)
        return now

    def ratings(self, user_id: int) -> list[StoredRating]:
        """Every rating the user gave through the API, by movie id."""
        with self.engine.connect() as conn:
            return [StoredRating(int(m), float(r), float(t))
                    for m, r, t in conn.execute(_USER_RATINGS, {"user_id": user_id})]

    def all_ratings(self) -> list[tuple[int, int, float]]:
        """``(user_id, movie_id, rating)`` of every stored rating (benchmarks, exports)."""
        query = sa.select(RATINGS.c.user_id, RATINGS.c.movie_id, RATINGS.c.rating)
        with self.engine.connect() as conn:
            return [(int(u), int(m), float(r)) for u, m, r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            users = conn.execute(sa.select(sa.func.count()).select_from(USERS)).scalar()
            ratings = conn.execute(sa.select(sa.func.count()).select_from(RATINGS)).scalar()
        return {"users": int(users), "ratings": int(ratings)}
