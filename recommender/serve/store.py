"""The ratings store: users and ratings added through the API, in a real database.

SQLite is the embedded default (one file, WAL journal, ``synchronous=FULL``, so a rating is on
disk before the API acknowledges it, and a killed server loses nothing it acknowledged);
the same code runs against PostgreSQL given a URL, for several server processes sharing one
store. Users created through the API hold a secret, kept here only as its hash
(:mod:`recommender.serve.auth`). Every statement is parameterised (SQLAlchemy Core) and every write is one transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from recommender.core.errors import UsageError

__all__ = ["RatingsStore", "StoredRating", "database_url", "REMOVED"]

REMOVED = 0.0  # a stored rating of 0 stars hides the dataset's rating of the movie

_META = sa.MetaData()
USERS = sa.Table(
    "users", _META,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(64), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=True),  # None: only the operator writes
    sa.Column("deleted_at", sa.Float, nullable=True),  # kept, so that no id is given twice
)
RATINGS = sa.Table(
    "ratings", _META,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("movie_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("rating", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Built once: the hot reads of every recommendation (SQLAlchemy caches their compiled form).
_USER_RATINGS = (sa.select(RATINGS.c.movie_id, RATINGS.c.rating, RATINGS.c.updated_at)
                 .where(RATINGS.c.user_id == sa.bindparam("user_id"))
                 .order_by(RATINGS.c.movie_id))
_USERS_RATINGS = (sa.select(RATINGS.c.user_id, RATINGS.c.movie_id, RATINGS.c.rating,
                            RATINGS.c.updated_at)
                  .where(RATINGS.c.user_id.in_(sa.bindparam("users", expanding=True)))
                  .order_by(RATINGS.c.user_id, RATINGS.c.movie_id))
_LIVE_USERS = sa.select(USERS.c.user_id).where(
    USERS.c.user_id.in_(sa.bindparam("users", expanding=True)) & USERS.c.deleted_at.is_(None))


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


def _add_missing_columns(engine: sa.Engine) -> None:
    """Bring a store made by an earlier version up to date: the columns it lacks, added
    empty (its users then have no secret: only the operator writes their ratings)."""
    present = {c["name"] for c in sa.inspect(engine).get_columns("users")}
    missing = [c for c in USERS.columns if c.name not in present]
    with engine.begin() as conn:
        for column in missing:
            kind = column.type.compile(engine.dialect)
            conn.execute(sa.text(f"ALTER TABLE users ADD COLUMN {column.name} {kind}"))


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
        # 16 pooled connections: the app's read and write threads (8 each) never open more.
        self.engine = sa.create_engine(url, pool_size=16, max_overflow=24,
                                       pool_pre_ping=self.dialect == "postgresql")
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.first_user_id = int(first_user_id)
        _META.create_all(self.engine)
        _add_missing_columns(self.engine)
        self.label = (_shown(url.database) if self.dialect == "sqlite"
                      else url.render_as_string(hide_password=True))

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """One round trip to the database (raises when it cannot be reached)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- users -----------------------------------------------------------------------------

    def create_user(self, name: str | None = None, secret_hash: str | None = None,
                    ratings: dict[int, float] | None = None, retries: int = 20) -> int:
        """A new user id, one above the largest ever given (retried when two servers race),
        with its secret's hash and first ratings, in one transaction."""
        for _ in range(retries):
            try:
                with self.engine.begin() as conn:
                    top = conn.execute(sa.select(sa.func.max(USERS.c.user_id))).scalar()
                    user_id = max(top or 0, self.first_user_id) + 1
                    conn.execute(USERS.insert().values(user_id=user_id, name=name,
                                                       secret_hash=secret_hash,
                                                       created_at=time.time()))
                    if ratings:
                        self._upsert(conn, user_id, ratings)
                return user_id
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError("could not allocate a user id: too many concurrent sign-ups")

    def has_user(self, user_id: int) -> bool:
        """Whether the API created ``user_id`` and it was not deleted."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(USERS.c.user_id).where(
                (USERS.c.user_id == user_id) & USERS.c.deleted_at.is_(None))).first() is not None

    def secret_hash(self, user_id: int) -> str | None:
        """The hash of the user's secret; ``None`` for a user the API did not create (or
        deleted, or created before users had secrets)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(USERS.c.secret_hash).where(
                (USERS.c.user_id == user_id) & USERS.c.deleted_at.is_(None))).scalar()

    def delete_user(self, user_id: int) -> bool:
        """Forget the user's ratings, name and secret in one transaction; the id stays taken.
        Returns whether there was such a user."""
        with self.engine.begin() as conn:
            conn.execute(RATINGS.delete().where(RATINGS.c.user_id == user_id))
            done = conn.execute(USERS.update().where(
                (USERS.c.user_id == user_id) & USERS.c.deleted_at.is_(None)).values(
                name=None, secret_hash=None, deleted_at=time.time()))
        return done.rowcount > 0

    # -- ratings ---------------------------------------------------------------------------

    def put_ratings(self, user_id: int, ratings: dict[int, float]) -> float:
        """Add or change ``{movie_id: rating}`` of one user in one transaction; returns the
        time stamp written."""
        now = time.time()
        if not ratings:
            return now
        with self.engine.begin() as conn:
            self._upsert(conn, user_id, ratings, now)
        return now

    def _upsert(self, conn: sa.Connection, user_id: int, ratings: dict[int, float],
                now: float | None = None) -> None:
        rows = [{"user_id": user_id, "movie_id": int(m), "rating": float(r),
                 "updated_at": now or time.time()} for m, r in ratings.items()]
        insert = (postgresql if self.dialect == "postgresql" else sqlite).insert(RATINGS)
        upsert = insert.on_conflict_do_update(
            index_elements=[RATINGS.c.user_id, RATINGS.c.movie_id],
            set_={"rating": insert.excluded.rating, "updated_at": insert.excluded.updated_at})
        conn.execute(upsert, rows)

    def delete_ratings(self, user_id: int, movie_ids: list[int]) -> int:
        """Remove the user's stored ratings of ``movie_ids``; returns how many there were."""
        with self.engine.begin() as conn:
            return conn.execute(RATINGS.delete().where(
                (RATINGS.c.user_id == user_id) & RATINGS.c.movie_id.in_(movie_ids))).rowcount

    def ratings(self, user_id: int) -> list[StoredRating]:
        """Every rating the user gave through the API, by movie id (:data:`REMOVED` marks a
        dataset rating the user removed)."""
        with self.engine.connect() as conn:
            return [StoredRating(int(m), float(r), float(t))
                    for m, r, t in conn.execute(_USER_RATINGS, {"user_id": user_id})]

    def ratings_of(self, user_ids: list[int]) -> tuple[dict[int, list[StoredRating]], set[int]]:
        """Every API rating of each of ``user_ids``, and which of them the API created (and
        did not delete), in one round trip: the reads of many requests at once."""
        found: dict[int, list[StoredRating]] = {u: [] for u in user_ids}
        with self.engine.connect() as conn:
            for u, m, r, t in conn.execute(_USERS_RATINGS, {"users": user_ids}):
                found[int(u)].append(StoredRating(int(m), float(r), float(t)))
            created = {int(u) for (u,) in conn.execute(_LIVE_USERS, {"users": user_ids})}
        return found, created

    def all_ratings(self) -> list[tuple[int, int, float]]:
        """``(user_id, movie_id, rating)`` of every stored rating (benchmarks, exports)."""
        query = sa.select(RATINGS.c.user_id, RATINGS.c.movie_id, RATINGS.c.rating)
        with self.engine.connect() as conn:
            return [(int(u), int(m), float(r)) for u, m, r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """Users (not deleted) and stored ratings: two table scans, for occasional use."""
        with self.engine.connect() as conn:
            users = conn.execute(sa.select(sa.func.count()).select_from(USERS).where(
                USERS.c.deleted_at.is_(None))).scalar()
            ratings = conn.execute(sa.select(sa.func.count()).select_from(RATINGS)).scalar()
        return {"users": int(users), "ratings": int(ratings)}
