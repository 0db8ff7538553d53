"""SQLite backend: the embedded default. WAL mode, one connection per thread.

Writers take the lock up front (`BEGIN IMMEDIATE`) so that two transactions never deadlock on a
read-to-write upgrade, and ask for it again every few milliseconds until the busy timeout
(`_begin_write`), then `BackendBusy`; other statements wait through SQLite's busy handler.

Every sqlite3 call runs inside `with SQLITE_ERRORS:`, the one place sqlite3's exceptions are
converted into chunksync's. Migrations are run by `backends/migrate.py`; this module supplies
their lock (`BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from chunksync import sql
from chunksync.backends.base import Backend, Params, Row, Session, Table
from chunksync.backends.migrate import apply_migrations, migrate_database, recorded_version
from chunksync.exceptions import (
    BackendBusy,
    BackendError,
    BackendUnavailable,
    ChunksyncError,
    ConfigurationError,
    IntegrityConflict,
    SchemaError,
)

DIALECT = "sqlite"
BUSY_TIMEOUT_MS = 30_000
BEGIN_RETRIES = 5
BEGIN_RETRY_PAUSE_SECONDS = 0.05
ROWS_PER_INSERT = 64  # rows of a many-row INSERT (a power of two; x ~25 parameters: < 32,766)
WRITE_POLL_MIN_SECONDS = 0.0005  # a writer waiting for the write lock asks again after this,
WRITE_POLL_MAX_SECONDS = 0.004  # doubling up to this
# A transaction's changed pages stay in memory up to this many (~4 MiB of 4 KiB pages) before
# SQLite writes them to the WAL early ("spills"): at its default (the 2 MiB page cache) a
# sync's 500-message transaction (~650 pages) spilled, and a page changed after its spill was
# written twice. 100,000 messages, each against 4,000 pages in four rounds: no threshold 6.51
# s (CPU 8.44) against 6.36 (8.11), 1,000 pages 6.42 (8.27) against 6.33 (8.12); 4,000 pages
# held ~11 MB more at a sync's peak (a merge of Message-ID keys). The cache stays 2 MiB.
SPILL_PAGES = 1000  # not 1024 or 4096: SQLite also reads N as a boolean, by its low byte (0: off)


def path_from_url(url: str) -> str:
    """sqlite:///relative.db, sqlite:////abs/path.db, sqlite:///:memory: -> a file path."""
    usage = "use sqlite:///relative/path.db or sqlite:////abs/path.db"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 host
        raise ConfigurationError(f"invalid SQLite URL '{url}': {exc}; {usage}") from None
    if parts.scheme.lower() != "sqlite" or parts.netloc not in {"", "localhost"}:
        raise ConfigurationError(f"invalid SQLite URL '{url}': {usage}")
    path = unquote(parts.path)
    if "\x00" in path:
        raise ConfigurationError(f"invalid SQLite URL '{url}': a file name cannot hold a NUL byte")
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise ConfigurationError(f"invalid SQLite URL '{url}': it names no file")
    return path


def convert_error(exc: sqlite3.Error) -> BackendError:
    """Map every sqlite3 exception to chunksync's tree (tested over all of sqlite3's classes)."""
    text = str(exc)
    name = getattr(exc, "sqlite_errorname", "") or ""
    lowered = text.lower()
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityConflict(f"SQLite refused the write: {text}")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in lowered:
        return BackendBusy(f"SQLite database is busy: {text}")
    if name.startswith("SQLITE_NOTADB") or "not a database" in lowered:
        return SchemaError(f"the file is not a SQLite database ({text})")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in lowered:
        return BackendUnavailable(f"cannot open the SQLite database: {text}")
    if name.startswith("SQLITE_CORRUPT") or "malformed" in lowered:
        return BackendError(
            f"the SQLite database file is damaged ({text}): stop the workers and run "
            "'chunksync check', which says what to do"
        )
    if name.startswith("SQLITE_FULL") or "database or disk is full" in lowered:
        return BackendError(
            f"the disk holding the SQLite database is full ({text}): the write was rolled "
            "back, nothing committed is lost; free some space and start again"
        )
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in lowered:
        return BackendError(
            f"SQLite could not read or write its files ({text}): the database file, its -wal "
            "or its -shm file was removed, or the disk is full or failing; run 'chunksync check'"
        )
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        return BackendError(f"SQLite error: {text}")
    return BackendError(f"SQLite driver error ({type(exc).__name__}): {text}")


class _SQLiteErrors:
    """Converts a sqlite3 error leaving the `with` block, raised `from` it (in the manner of
    httpx's `map_httpcore_exceptions`). A class with one shared instance, `SQLITE_ERRORS`,
    rather than a generator-based context manager: entering it allocates nothing, and it wraps
    every statement of the claim/finish path."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, sqlite3.Error):
            raise convert_error(exc) from exc


SQLITE_ERRORS = _SQLiteErrors()


class MultiRowInsert:
    """An `INSERT ... VALUES (one row) [ON CONFLICT ...]` sent for many rows as statements of up
    to `ROWS_PER_INSERT` rows each. `sqlite3` lets go of the GIL at every step of a statement,
    and `executemany` steps once a row: with a second thread of the process wanting the GIL,
    each row of a batch handed it over and waited to get it back while holding SQLite's write
    lock. Rows are bound by position from the names of the one-row statement."""

    __slots__ = ("_texts", "head", "names", "tail", "values")

    def __init__(self, head: str, values: str, tail: str, names: tuple[str, ...]) -> None:
        self.head, self.values, self.tail, self.names = head, values, tail, names
        self._texts: dict[int, str] = {}

    def text(self, count: int) -> str:
        found = self._texts.get(count)
        if found is None:
            found = self._texts[count] = self.head + ", ".join([self.values] * count) + self.tail
        return found

    def send(self, conn: sqlite3.Connection, rows: Sequence[Params]) -> bool:
        """Insert `rows`; False (nothing sent) when a row lacks one of the parameters, so that
        `executemany` reports it as it would."""
        names = self.names
        try:
            flat = [row[name] for row in rows for name in names]
        except KeyError:
            return False
        width, start = len(names), 0
        for count in statement_sizes(len(rows)):
            conn.execute(self.text(count), flat[start * width : (start + count) * width])
            start += count
        return True


def statement_sizes(rows: int) -> Iterator[int]:
    """`ROWS_PER_INSERT` rows a statement, then the rest in powers of two: a few statement
    texts per query, so that they do not crowd the connection's statement cache."""
    full, rest = divmod(rows, ROWS_PER_INSERT)
    yield from [ROWS_PER_INSERT] * full
    size = ROWS_PER_INSERT
    while rest:
        size //= 2
        if rest >= size:
            yield size
            rest -= size


_INSERT_VALUES = re.compile(r"(?is)^\s*INSERT\s.*?\bVALUES\s*\(")
_QUOTED = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")""")
_MULTI_ROW: dict[str, MultiRowInsert | None] = {}


def multi_row_insert(sql: str) -> MultiRowInsert | None:
    """The many-row form of a one-row INSERT, or None for any other statement (one with a
    parameter outside its VALUES row, or with a second row)."""
    if sql in _MULTI_ROW:
        return _MULTI_ROW[sql]
    found: MultiRowInsert | None = None
    match = _INSERT_VALUES.match(sql)
    end = -1 if match is None else _closing(sql, match.end() - 1)
    if match is not None and end > 0:
        head, row, tail = sql[: match.end() - 1], sql[match.end() - 1 : end], sql[end:]
        values, names = _positional(row)
        plain = not _positional(head + tail)[1] and not re.search(r"(?i)\bRETURNING\b", tail)
        if names and plain and not tail.lstrip().startswith(","):
            found = MultiRowInsert(head, values, tail, names)
    _MULTI_ROW[sql] = found
    return found


def _positional(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with each `:name` outside quotes turned into `?`, and the names in order."""
    names: list[str] = []
    parts = _QUOTED.split(text)  # quoted spans at the odd places
    for at in range(0, len(parts), 2):
        names += sql.NAMED_PARAM.findall(parts[at])
        parts[at] = sql.NAMED_PARAM.sub("?", parts[at])
    return "".join(parts), tuple(names)


def _closing(sql: str, start: int) -> int:
    """The offset just past the parenthesis that closes the one at `start` (quoted text
    skipped), or -1."""
    depth, quote = 0, ""
    for at in range(start, len(sql)):
        char = sql[at]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return at + 1
    return -1


class SQLiteSession(Session):
    def __init__(self, conn: sqlite3.Connection, queries: dict[str, str]) -> None:
        self._conn = conn
        self._queries = queries

    def _sql(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            raise BackendError(f"no query named '{name}' for SQLite") from None

    def execute(self, name: str, params: Params | None = None) -> int:
        with SQLITE_ERRORS:
            cursor = self._conn.execute(self._sql(name), dict(params or {}))
            if cursor.description is not None:
                cursor.fetchall()  # RETURNING statements count their rows when read
            return cursor.rowcount

    def execute_many(self, name: str, params: Iterable[Params]) -> None:
        sql = self._sql(name)
        rows = params if isinstance(params, Sequence) else list(params)
        insert = multi_row_insert(sql) if len(rows) > 1 else None
        with SQLITE_ERRORS:
            if insert is None or not insert.send(self._conn, rows):
                self._conn.executemany(sql, (dict(p) for p in rows))

    def execute_rows(self, name: str, rows: Sequence[Sequence[Any]]) -> None:
        with SQLITE_ERRORS:
            self._conn.executemany(self._sql(name), rows)

    def fetch_all(self, name: str, params: Params | None = None) -> list[Row]:
        columns, rows = self.fetch_table(name, params)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def fetch_one(self, name: str, params: Params | None = None) -> Row | None:
        rows = self.fetch_all(name, params)
        return rows[0] if rows else None

    def fetch_table(self, name: str, params: Params | None = None) -> Table:
        with SQLITE_ERRORS:
            cursor = self._conn.execute(self._sql(name), dict(params or {}))
            return tuple(d[0] for d in cursor.description or ()), cursor.fetchall()

    def script(self, text: str) -> int:
        changed = -1
        with SQLITE_ERRORS:
            for statement in iter_statements(text):
                changed = self._conn.execute(statement).rowcount
        return changed


class SQLiteBackend(Backend):
    dialect = DIALECT
    message_id_log = True

    def __init__(self, url: str, *, create: bool = True, migrate: bool = True) -> None:
        self.url = url
        self.path = path_from_url(url)
        if self.path != ":memory:":
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ConfigurationError(
                    f"cannot create the database: folder {parent} does not exist"
                )
            if not create and not Path(self.path).exists():
                raise ConfigurationError(f"no database at {self.path}: run 'chunksync init' first")
        self._queries = sql.queries(DIALECT)
        self._wal_path = "" if self.path == ":memory:" else self.path + "-wal"
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._closed = False
        if migrate:
            self.migrate()

    def _connect(self) -> sqlite3.Connection:
        if self._closed:  # a thread that outlived close() closes its own connection now
            own: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if own is not None:
                self._local.conn = self._local.wal = None
                own.close()
            raise BackendUnavailable("the SQLite backend is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with SQLITE_ERRORS:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA cache_spill = {SPILL_PAGES}")
        if mode is None:
            raise SchemaError(f"{self.path} did not accept WAL mode")
        self._local.conn = conn
        with self._lock:
            self._all.append((threading.current_thread(), conn))
        return conn

    def _begin(self, conn: sqlite3.Connection, write: bool) -> None:
        if write:
            self._begin_write(conn)
            return
        for attempt in range(BEGIN_RETRIES):
            try:
                with SQLITE_ERRORS:
                    conn.execute("BEGIN")
                return
            except BackendBusy:
                if attempt == BEGIN_RETRIES - 1:
                    raise
                time.sleep(BEGIN_RETRY_PAUSE_SECONDS * (attempt + 1))

    def _begin_write(self, conn: sqlite3.Connection) -> None:
        """`BEGIN IMMEDIATE`, the write lock asked for every WRITE_POLL_MAX_SECONDS at most
        until the busy timeout. SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25... ms
        between tries: two processes writing in turns (a sync and its helper) each slept up to
        25 ms past the other's commit, and spent a third of a 30,000-message sync waiting."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = WRITE_POLL_MIN_SECONDS
        with SQLITE_ERRORS:
            conn.execute("PRAGMA busy_timeout = 0")  # this statement's waits are ours
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.Error as exc:
                    error = convert_error(exc)  # the one reading of what SQLite refused
                    if not isinstance(error, BackendBusy) or time.monotonic() >= deadline:
                        raise error from exc
                time.sleep(pause)
                pause = min(pause * 2, WRITE_POLL_MAX_SECONDS)
        finally:
            with SQLITE_ERRORS:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _check_wal(self) -> None:
        """Refuse to go on once the WAL file this connection writes to was deleted or replaced
        under it. SQLite does not notice: this connection keeps writing to the deleted file
        while a process that opens the database afterwards starts a new one and no longer sees
        those writes, so the two drift apart in silence. While a connection is open nothing of
        SQLite's own deletes the WAL, so a change of its identity is always someone else's."""
        try:
            found = os.stat(self._wal_path)
            now: tuple[int, int] | None = (found.st_dev, found.st_ino)
        except FileNotFoundError:
            now = None
        seen: tuple[int, int] | None = getattr(self._local, "wal", None)
        if seen is not None and now != seen:
            raise BackendError(
                f"the SQLite write-ahead log {self._wal_path} was deleted or replaced while "
                "this process had the database open: writes since its last checkpoint may be "
                f"lost; stop every process using {self.path} and run 'chunksync check'"
            )
        if now is not None:
            self._local.wal = now

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[SQLiteSession]:
        conn = self._connect()
        if conn.in_transaction:  # nested use on the same thread joins the outer transaction
            yield SQLiteSession(conn, self._queries)
            return
        if self._wal_path:
            self._check_wal()
        self._begin(conn, write)
        try:
            yield SQLiteSession(conn, self._queries)
        except BaseException:
            conn.rollback()
            raise
        try:
            with SQLITE_ERRORS:
                conn.commit()
        except BackendError:
            conn.rollback()
            raise

    def transaction(self, *, write: bool = True) -> AbstractContextManager[SQLiteSession]:
        return self._transaction(write)

    def list_param(self, values: Sequence[str]) -> str:
        """JSON text, read with json_each() in the queries."""
        return json.dumps(list(values))

    def schema_version(self) -> int:
        with self._transaction(write=False) as session:
            return recorded_version(self, session)

    def migrate(self) -> int:
        return migrate_database(self, self._migrating, where=self.path)

    def apply_migrations_only(self, upto: int | None = None) -> None:
        """Build the schema from the numbered migrations alone (the migration tests' path)."""
        apply_migrations(self, self._migrating, upto)

    def _migrating(self) -> AbstractContextManager[SQLiteSession]:
        return self._transaction(write=True)

    def close(self) -> None:
        """Close this thread's connection and those of threads that have ended. A live thread's
        connection may be in use right now (a worker slot outliving its stop): closing it from
        here would race its statement, which crashes sqlite3, so that thread closes its own the
        next time it touches this backend."""
        self._closed = True
        me = threading.current_thread()
        with self._lock:
            mine = [(t, c) for t, c in self._all if t is me or not t.is_alive()]
            self._all = [(t, c) for t, c in self._all if t is not me and t.is_alive()]
        for _, conn in mine:
            try:
                conn.close()
            except (sqlite3.Error, ChunksyncError):  # closing is best effort
                pass
        self._local.conn = self._local.wal = None


def iter_statements(script: str) -> Iterator[str]:
    """Split an SQL script into complete statements; comment-only pieces are dropped."""
    buffer: list[str] = []
    for line in script.splitlines(keepends=True):
        buffer.append(line)
        candidate = "".join(buffer)
        if sqlite3.complete_statement(candidate):
            if _has_code(candidate):
                yield candidate.strip()
            buffer = []
    rest = "".join(buffer)
    if _has_code(rest):
        yield rest.strip()


def _has_code(text: str) -> bool:
    return any(ln.strip() and not ln.strip().startswith("--") for ln in text.splitlines())
