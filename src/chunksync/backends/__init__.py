"""Database backends, picked from the URL scheme; each driver is imported only when used.

`open_backend` is the one place that knows which backends exist (in the manner of saq's
`Queue.from_url`): `base.py` is the contract alone and never imports a driver, so a program
that runs on SQLite never imports psycopg, and no backend module imports another.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from chunksync.backends.base import Backend, Session
from chunksync.exceptions import ConfigurationError
from chunksync.redact import redact_url

__all__ = ["Backend", "Session", "open_backend"]

POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
# Production mode: CHUNKSYNC_MIGRATE=never, and nothing but `chunksync migrate` changes the
# schema; a process opening the database only checks that it can work with it.
MIGRATE_ENV = "CHUNKSYNC_MIGRATE"


def migrates_implicitly() -> bool:
    """Whether opening a database brings its schema up to date (not in production mode)."""
    return os.environ.get(MIGRATE_ENV, "auto").strip().lower() != "never"


def open_backend(url: str, **options: Any) -> Backend:
    """Open the backend a URL names: sqlite:///path/to.db or postgresql://user@host/db.
    In production mode (CHUNKSYNC_MIGRATE=never) it checks the schema instead of migrating."""
    if options.get("migrate", True) and not migrates_implicitly():
        from chunksync.backends.migrate import require_schema

        backend = _open(url, **{**options, "migrate": False})
        try:
            require_schema(backend)
        except BaseException:
            backend.close()
            raise
        return backend
    return _open(url, **options)


def _open(url: str, **options: Any) -> Backend:
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 host
        raise ConfigurationError(f"invalid database URL '{redact_url(url)}': {exc}") from None
    if scheme == "sqlite":
        from chunksync.backends.sqlite import SQLiteBackend

        return SQLiteBackend(url, **options)
    if scheme in POSTGRES_SCHEMES:
        try:
            from chunksync.backends.postgres import PostgresBackend
        except ImportError as exc:  # psycopg is an optional dependency
            raise ConfigurationError(
                "PostgreSQL needs psycopg: pip install 'chunksync[postgres]'"
            ) from exc
        return PostgresBackend(url, **options)
    raise ConfigurationError(
        f"unsupported database URL '{redact_url(url)}': "
        "use sqlite:///path/to/file.db or postgresql://user@host/dbname"
    )
