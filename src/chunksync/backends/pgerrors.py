"""PostgreSQL's errors in chunksync's terms: every psycopg exception converted into the tree of
chunksync.exceptions (`convert_error`), by its SQLSTATE or, for a refused connection that has
none, by libpq's words; in one line, without the URL's password. `PsycopgErrors` is the `with`
block the backend wraps every psycopg call in (chunksync.backends.postgres)."""

from __future__ import annotations

import re
from types import TracebackType

import psycopg
from psycopg.conninfo import conninfo_to_dict

from chunksync.exceptions import (
    BackendBusy,
    BackendError,
    BackendUnavailable,
    IntegrityConflict,
    RaceLost,
    SchemaError,
)
from chunksync.redact import redact, redact_url

_RACE_STATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock: rolled back
_BUSY_STATES = frozenset({"55P03"})  # a lock not available (lock_timeout, NOWAIT)
_UNAVAILABLE_STATES = frozenset({"3D000", "53300", "57P01", "57P02", "57P03"})
_UNAVAILABLE_CLASSES = frozenset({"08", "28"})
_CONNECT_STATES = (
    (re.compile(r'^database ".*" does not exist'), "3D000"),
    (re.compile(r"password authentication failed|no password supplied"), "28P01"),
    (re.compile(r"no pg_hba\.conf entry|role .* does not exist"), "28000"),
    (re.compile(r"too many clients"), "53300"),
    (re.compile(r"the database system is (starting|shutting) "), "57P03"),
)
_SCHEMA_STATES = frozenset({"42P01", "42703"})


def convert_error(exc: psycopg.Error, url: str = "") -> BackendError:
    """Map every psycopg exception to chunksync's tree (tested over all of psycopg's classes)."""
    state = exc.sqlstate
    text = _one_line(str(exc), url)
    if state in _RACE_STATES:
        return RaceLost(f"PostgreSQL is busy, try again: {text}", sqlstate=state)
    if state in _BUSY_STATES:
        return BackendBusy(f"PostgreSQL is busy, try again: {text}", sqlstate=state)
    if state is not None and state[:2] == "23":
        return IntegrityConflict(f"PostgreSQL refused the write: {text}", sqlstate=state)
    if state in _UNAVAILABLE_STATES or (state is not None and state[:2] in _UNAVAILABLE_CLASSES):
        return BackendUnavailable(_cannot_connect(text, url), sqlstate=state)
    if state is None and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return BackendUnavailable(_cannot_connect(text, url), sqlstate=_connect_state(text))
    if state == "42501" and "row-level security" in text:
        return BackendError(
            "refused by row-level security: the row is another tenant's (an account already "
            f"stored for one tenant is not another's), or no tenant is set: {text}",
            sqlstate=state,
        )
    if state in _SCHEMA_STATES:
        return SchemaError(f"not a chunksync database (or an older one): {text}", sqlstate=state)
    return BackendError(f"PostgreSQL error: {text}", sqlstate=state)


class PsycopgErrors:
    """Converts a psycopg error leaving the `with` block, raised `from` it (in the manner of
    httpx's `map_httpcore_exceptions`). One instance per backend, made once: it carries the URL
    whose password messages must not show, and entering it allocates nothing, as it wraps every
    statement of the claim/finish path."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, psycopg.Error):
            raise convert_error(exc, self.url) from exc


def _one_line(text: str, url: str) -> str:
    """The server's reason in one line: the last 'failed: ...' part, without the password."""
    first = (text.strip().splitlines() or [""])[0]
    reason = first.rsplit("failed: ", 1)[-1] if "connection" in first else first
    reason = reason.removeprefix("FATAL:").strip().rstrip(".")
    password = conninfo_to_dict(url).get("password") if "://" in url else None
    if password:
        reason = reason.replace(str(password), "***")
    return redact(reason)


def _connect_state(reason: str) -> str | None:
    """libpq reports a refused connection without a SQLSTATE: recover the usual ones."""
    for pattern, state in _CONNECT_STATES:
        if pattern.search(reason):
            return state
    return None


def _cannot_connect(reason: str, url: str) -> str:
    where = f" at {redact_url(url)}" if url else ""
    return f"cannot connect to PostgreSQL{where}: {reason}"
