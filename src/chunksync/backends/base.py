"""The contract every backend meets: open, close, run named queries in a transaction.

This module is the contract alone: it imports no driver and no backend. Which backend a URL
names is decided in `chunksync.backends.open_backend`.

A backend knows nothing about chunks. It runs the named queries of its dialect's queries.sql
(`execute`, `execute_many`, `execute_rows`, `fetch_one`, `fetch_all`) inside `transaction()`,
returns dict rows, applies migrations, and converts its driver's errors into chunksync's
(`BackendError` and subclasses, raised `from` the driver error). All chunk logic lives once,
in `manager.py`.
"""

from __future__ import annotations

import abc
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import orjson

from chunksync.exceptions import BackendBusy, ConfigurationError, RaceLost

Row = dict[str, Any]
Params = Mapping[str, Any]
Table = tuple[tuple[str, ...], list[tuple[Any, ...]]]  # column names, rows as tuples


def strict_json(value: Any) -> str:
    """JSON as every dialect stores it: compact, no NaN or Infinity (PostgreSQL's jsonb refuses
    them); raises TypeError or ValueError for what JSON cannot hold."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def rows_json(rows: Sequence[Sequence[Any]]) -> str:
    """A batch of rows the engine built itself (a finish's results, the attempts' metrics) as
    the same compact JSON, by orjson: ~0.2 us a chunk where `json` took ~2.9 (a float's
    shortest repr is most of it), of a no-op chunk's ~23 us of worker CPU. orjson writes NaN
    and Infinity as null where `strict_json` refuses them, so a batch's builder checks its
    floats (`finite`); user data (payloads, checkpoints, details) goes through `strict_json`."""
    return orjson.dumps(rows).decode()


def finite(value: float | None) -> float | None:
    """`value`, refused as `strict_json` would refuse it if it is NaN or infinite."""
    if value is not None and not math.isfinite(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return value


class Session(abc.ABC):
    """One connection inside one transaction."""

    @abc.abstractmethod
    def execute(self, name: str, params: Params | None = None) -> int:
        """Run a named statement; return the number of rows it changed."""

    @abc.abstractmethod
    def execute_many(self, name: str, params: Iterable[Params]) -> None:
        """Run a named statement once per parameter set."""

    @abc.abstractmethod
    def execute_rows(self, name: str, rows: Sequence[Sequence[Any]]) -> None:
        """Write a batch of rows (each its values in the statement's order), each dialect its
        quickest way: PostgreSQL takes the batch as one JSON array (`:batch`), one statement;
        SQLite runs the statement once per row (`?1`, `?2`...): a batch of 512 attempt rows took
        it 18 us a row so, 29 through JSON (`json_extract` parses a row's array per value).
        The rows are the engine's own, their floats finite (`rows_json`)."""

    @abc.abstractmethod
    def fetch_one(self, name: str, params: Params | None = None) -> Row | None:
        """Run a named query; return its first row or None."""

    @abc.abstractmethod
    def fetch_all(self, name: str, params: Params | None = None) -> list[Row]:
        """Run a named query; return every row."""

    @abc.abstractmethod
    def fetch_table(self, name: str, params: Params | None = None) -> Table:
        """Run a named query; return its column names and its rows as tuples. For the claim,
        which loads hundreds of rows a batch: a dict per row cost more than the row's values."""

    @abc.abstractmethod
    def script(self, text: str) -> int:
        """Run a whole SQL script, statement by statement (a migration, the schema); return the
        number of rows its last statement changed (a backfill's batch: -1 when not known)."""


BUSY_TRIES = 5
BUSY_PAUSE_SECONDS = 0.02
_T = TypeVar("_T")


def retry_busy(run: Callable[[], _T], busy: type[BackendBusy] = BackendBusy) -> _T:
    """`run` again, after a growing pause, when the database turned it away (`busy`), up to
    BUSY_TRIES times in all. Only for work that such an error rolls back whole: a statement
    alone, or a transaction run whole by `run`, so that running it again is running it once."""
    for attempt in range(BUSY_TRIES):
        try:
            return run()
        except busy:
            if attempt == BUSY_TRIES - 1:
                raise
            time.sleep(BUSY_PAUSE_SECONDS * (attempt + 1) * (1 + random.random()))
    raise AssertionError("unreachable")


def in_transaction(backend: Backend, work: Callable[[Session], _T]) -> _T:
    """`work` in a transaction of its own, run again whole should the database roll it back as
    the loser of a deadlock or of a serialization race (`RaceLost`; a database merely locked,
    SQLite's busy writer, is reported as before, after its own wait). For an operator's change
    that locks rows in another order than the workers and other operators do, such as a revived
    chunk reopening its queue (chunk, then queue) against a change of limits locking its queues,
    and a batch of its move locking chunks a worker's finish holds. A transaction of its own:
    inside another, it would join that one, which no replay of its part can mend."""

    def once() -> _T:
        with backend.transaction() as s:
            return work(s)

    return retry_busy(once, RaceLost)


class Backend(abc.ABC):
    dialect: str
    url: str
    # Capabilities, declared by each backend so that the layers above never test the dialect:
    # whether the database answers health questions through its SQL interface (the functions
    # get_queue_health_summary() and get_system_health_metrics()).
    sql_health_interface: bool = False
    # whether the database itself keeps one tenant from another's rows (row-level security,
    # tenant roles and tokens, `for_tenant`).
    tenant_scoping: bool = False
    # whether the message store logs stored messages' Message-ID keys and merges them into a
    # sorted table (the sqlite_*_message_ids queries) rather than keeping an index as it goes.
    message_id_log: bool = False
    # whether each chunk carries its claim group (its dependency's name when that one is limited,
    # else ''; PostgreSQL's migration 0025), so that a change of a dependency's limits moves its
    # chunks to their new group (the pg_deps_regroup queries, chunksync.deps.regroup).
    claim_groups: bool = False

    @abc.abstractmethod
    def transaction(self, *, write: bool = True) -> AbstractContextManager[Session]:
        """A session in a transaction, committed on success and rolled back on error."""

    @abc.abstractmethod
    def list_param(self, values: Sequence[str]) -> object:
        """A list of text values as this dialect's queries take it as one parameter (a text
        array on PostgreSQL, JSON text on SQLite): the one place the encoding is chosen."""

    @abc.abstractmethod
    def migrate(self) -> int:
        """Bring the schema up to date under a lock; return the version. Refuse a newer one."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The version recorded in the database (0 for an empty one)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection."""

    def use_connections(self, n: int) -> None:
        """Let up to `n` threads of this process run statements at once (a worker's slots and
        its heartbeat). A pooled backend grows its pool to `n` unless its size was given when it
        was opened; it never shrinks it. SQLite gives each thread its own connection already."""
        return None

    def subscribe_work(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake()` when chunks may have become runnable; returns an unsubscribe function.
        Backends without notifications (SQLite) rely on polling alone."""
        return lambda: None

    def is_maintenance_leader(self, worker_id: str) -> bool:
        """Whether this worker runs maintenance (stuck-chunk recovery, retention) now.
        With one machine every worker may; PostgreSQL elects one with an advisory lock."""
        return True

    @property
    def every_tenant(self) -> bool:
        """Whether this backend sees every tenant's rows (not one tenant's view)."""
        return True

    def for_tenant(self, tenant: str) -> Backend:
        """This backend as one tenant sees it, enforced by the database (row-level security on
        PostgreSQL). A backend that cannot enforce it refuses: SQLite's one file is one trust
        domain (docs/tenants.md)."""
        raise ConfigurationError(
            "one tenant's view needs PostgreSQL's row-level security: on SQLite one database "
            "file is one trust domain (docs/tenants.md)"
        )

    def fetch_one(self, name: str, params: Params | None = None) -> Row | None:
        with self.transaction(write=False) as s:
            return s.fetch_one(name, params)

    def fetch_all(
        self, name: str, params: Params | None = None, *, write: bool = False
    ) -> list[Row]:
        """One statement on its own. `write`: it changes rows (an UPDATE ... RETURNING), so
        SQLite takes the write lock up front; PostgreSQL runs it in autocommit either way."""
        with self.transaction(write=write) as s:
            return s.fetch_all(name, params)

    def fetch_table(self, name: str, params: Params | None = None, *, write: bool = False) -> Table:
        """`fetch_all`'s statement on its own, its rows as `Session.fetch_table` returns them."""
        with self.transaction(write=write) as s:
            return s.fetch_table(name, params)

    def execute(self, name: str, params: Params | None = None) -> int:
        with self.transaction() as s:
            return s.execute(name, params)

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
