"""Who may act for a user: per-user secrets, the operator token, the ``Authorization`` header.

A user created through the API gets a secret, shown once; the store keeps only its SHA-256.
The secret is 32 random bytes (``secrets.token_urlsafe``), so no guessing or precomputed table
can find it from the hash, and a fast hash is enough (a slow, salted one protects passwords
people choose). The operator token, at least 32 bytes, comes from an environment variable or
a file readable by its owner only, never from the command line (``ps`` shows every process's
arguments), and is never logged. Both travel as ``Authorization: Bearer <token>`` (the scheme
in any case, as RFC 9110 says) and are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recommender.core.errors import UsageError

__all__ = ["Access", "new_secret", "secret_hash", "bearer_token", "operator_token",
           "Unauthorised", "Forbidden", "TOKEN_ENV_VAR", "MIN_TOKEN_BYTES", "MAX_TOKEN_CHARS"]

TOKEN_ENV_VAR = "RECOMMENDER_OPERATOR_TOKEN"
MIN_TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 512


class Unauthorised(Exception):
    """No credentials, malformed ones, or not those the request needs (HTTP 401)."""


class Forbidden(Exception):
    """Credentials that can never do this, such as a user's secret on a dataset user (403)."""


@dataclass(frozen=True)
class Access:
    """Who may read and write which user's ratings.

    The operator token may do anything. A user created through the API may be written (and
    deleted) with that user's secret. Dataset users are read-only but for the operator.
    Reads are open unless ``private_reads`` (the default beyond loopback), when they follow the
    rule of writes.
    """

    operator_token: str | None = None
    private_reads: bool = False

    def is_operator(self, token: str | None) -> bool:
        return (token is not None and self.operator_token is not None
                and hmac.compare_digest(token.encode(), self.operator_token.encode()))

    def check(self, user_id: int, token: str | None, write: bool, dataset_user: bool,
              stored_hash: Callable[[int], str | None]) -> None:
        """Pass, or raise :class:`Unauthorised` or :class:`Forbidden` saying what is needed.

        Args:
            dataset_user: ``user_id`` is one of the dataset's users.
            stored_hash: the store's lookup of a user's secret hash (called only when needed).
        """
        if (not write and not self.private_reads) or self.is_operator(token):
            return
        if dataset_user:
            what = "changing" if write else "reading"
            if token is not None and write:
                raise Forbidden(f"user {user_id} comes with the dataset: their ratings are "
                                f"read-only (create your own user to rate)")
            raise Unauthorised(f"user {user_id} comes with the dataset: {what} their ratings "
                               f"needs the operator token")
        if token is None:
            raise Unauthorised(f"user {user_id}'s secret is needed (the one given when the "
                               f"user was created), as 'Authorization: Bearer <secret>'")
        if not _matches(token, stored_hash(user_id)):
            raise Unauthorised(f"that is not user {user_id}'s secret (or the user was deleted)")


def new_secret() -> str:
    """A user's secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """What the store keeps of a secret: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _matches(secret: str, stored_hash: str | None) -> bool:
    """Whether ``secret`` is the one whose hash the store holds (constant time)."""
    return stored_hash is not None and hmac.compare_digest(secret_hash(secret), stored_hash)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization`` header; ``None`` when there is none.

    Raises:
        Unauthorised: another scheme, a bare token, an empty or oversized one.
    """
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.casefold() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS \
            or any(c.isspace() for c in token):
        raise Unauthorised("send credentials as 'Authorization: Bearer <token>'")
    return token


def operator_token(path: str | Path | None = None) -> str | None:
    """The operator token from the file ``path`` (its first line) when given, else from
    ``RECOMMENDER_OPERATOR_TOKEN``; ``None`` when neither is set.

    Raises:
        UsageError: the file is missing or readable by others, or the token is shorter than
            32 bytes; or the variable of earlier versions is set (it is no longer read).
    """
    if os.environ.get("RECOMMENDER_WRITE_TOKEN"):
        raise UsageError(f"RECOMMENDER_WRITE_TOKEN is no longer read: put the token in "
                         f"{TOKEN_ENV_VAR} or in a file given by --operator-token-file")
    if path is not None:
        path = Path(path)
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--operator-token-file {path}: cannot read it ({exc})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(f"--operator-token-file {path}: other users can read it; "
                             f"chmod 600 {path}")
        token, where = (text.splitlines() or [""])[0].strip(), f"--operator-token-file {path}"
    else:
        token, where = os.environ.get(TOKEN_ENV_VAR, "").strip(), TOKEN_ENV_VAR
        if not token:
            return None
    if len(token.encode()) < MIN_TOKEN_BYTES or len(token) > MAX_TOKEN_CHARS \
            or any(c.isspace() for c in token):
        raise UsageError(f"{where}: the operator token must be {MIN_TOKEN_BYTES}-"
                         f"{MAX_TOKEN_CHARS} characters without spaces (make one with: "
                         f"python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token
