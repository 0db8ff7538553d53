"""PostgreSQL backend: psycopg 3, by default at most five connections a process, LISTEN/NOTIFY.

Connections:

1. the *pool* (psycopg_pool): every named query. One connection until a worker starts; then
   room for its slots and its heartbeat (`use_connections`: by default slots + 1, at most 4,
   chunksync.runtime.worker.DB_CONNECTIONS_MAX), opened only when a thread waits for
   one and closed after ten idle minutes. A slot's claim behind a lock no longer holds up the
   heartbeat, and fast chunks' slots do not queue for one connection (four slots on one
   spent 59% of their time waiting for it). `pool_size` given when the backend is opened fixes
   the size. A thread already inside a transaction joins it, so nested use never waits for a
   second connection.
2. the *control* connection (autocommit, opened on first use by a worker): it LISTENs on
   `chunksync_work`, which triggers notify when a chunk becomes runnable, and holds the session
   advisory lock that elects the one process running maintenance. A process that dies closes
   it, the server frees the lock, and the next process to try takes over.

Every psycopg call whose error can reach a caller runs inside `with self._errors:` (a
`PsycopgErrors`, chunksync.backends.pgerrors), the one place psycopg's exceptions are converted
into chunksync's.
Migrations are run by `backends/migrate.py`; this module supplies their lock: one transaction
holding a transaction advisory lock. Single statements run outside an explicit transaction
(autocommit) and are retried here on a serialization failure or a deadlock, which rolled them
back whole (`base.retry_busy`); a multi-statement transaction cannot be replayed from here, so
its `BackendBusy` goes to the caller (the worker pauses and tries again; an operator's change
that may lose a deadlock runs in `base.in_transaction`, which runs it again whole).
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import psycopg
import psycopg_pool
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import Format, TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.string import TextBinaryLoader, TextLoader

from chunksync import sql
from chunksync.backends.base import Backend, Params, Row, Session, Table, retry_busy, rows_json
from chunksync.backends.migrate import apply_migrations, migrate_database, recorded_version
from chunksync.backends.pgerrors import PsycopgErrors
from chunksync.exceptions import BackendError, BackendUnavailable, ConfigurationError
from chunksync.ids import uuid_text
from chunksync.redact import redact_url

DIALECT = "postgres"
POOL_SIZE = 1  # until a worker asks for more (use_connections); plus the control connection
POOL_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10
KEEPALIVE_IDLE_SECONDS = 10  # a host that vanishes loses its maintenance lock within ~30 s
CONTROL_TICK_SECONDS = 0.25  # how often the control thread checks leadership and stop
CONTROL_RECONNECT_SECONDS = 1.0
LEADER_FIRST_TRY_SECONDS = 2.0
NOTIFY_CHANNEL = "chunksync_work"
MIGRATION_LOCK_KEY = 0x6368756E6B730001  # "chunks" + 1
MAINTENANCE_LOCK_KEY = 0x6368756E6B730002
TRY_ADVISORY_LOCK = b"SELECT pg_try_advisory_lock(%s)"
_LONE_PERCENT = re.compile(r"%(?!\(\w+\)s)")

_T = TypeVar("_T")
_OPTIONS = frozenset(
    {"pool_size", "pool_timeout_s", "connect_timeout", "notify", "application_name", "tenant"}
)
# The setting row-level security reads (migration 0017): the tenant a session sees, '*' for all.
TENANT_SETTING = "chunksync.tenant"
ALL_TENANTS = "*"


def to_psycopg(text: str) -> bytes:
    """`:name` placeholders (not `::type` casts) to psycopg's `%(name)s`; a query written with
    `%(name)s` already passes unchanged, and any other `%` is escaped."""
    escaped = _LONE_PERCENT.sub("%%", text)
    return sql.NAMED_PARAM.sub(r"%(\1)s", escaped).encode()


class _JsonbText(Loader):
    """A jsonb value in binary form (a version byte, then the text) as its text."""

    format = Format.BINARY

    def load(self, data: Buffer) -> str:
        return bytes(data[1:]).decode()


class _UuidText(Loader):
    """A uuid in binary form (16 bytes) as its text."""

    format = Format.BINARY

    def load(self, data: Buffer) -> str:
        return uuid_text(bytes(data).hex())


def _configure(conn: psycopg.Connection[Any], tenant: str = ALL_TENANTS) -> None:
    # JSON columns come back as their text, so that the models read both backends alike
    # (a payload that is a JSON string stays distinguishable from the text of an object).
    conn.adapters.register_loader("jsonb", TextLoader)
    conn.adapters.register_loader("json", TextLoader)
    # uuids come back as strings, as on SQLite: psycopg's own text loader (its C one) rather
    # than a Python one.
    conn.adapters.register_loader("uuid", TextLoader)
    # The same in binary form (Session.fetch_table's): the statements it runs hot send their
    # uuids and JSON as text, where psycopg's C loader reads them; these keep any other's alike.
    conn.adapters.register_loader("jsonb", _JsonbText)
    conn.adapters.register_loader("json", TextBinaryLoader)
    conn.adapters.register_loader("uuid", _UuidText)
    # No JIT compilation: every statement here is short, and the fair claim's plan is estimated
    # dear enough to be compiled at each call (measured mid-drain: 56 of a claim's 79 ms were
    # JIT, for a plan that runs in 20). A SET, not a startup option, which poolers may refuse.
    conn.execute(b"SET jit = off")
    # The tenants this connection's statements see under row-level security (0017): every
    # tenant for a worker or an operator, one for a process opened with `tenant=`. A request
    # for one tenant narrows it for its own transaction only (`PostgresBackend.for_tenant`).
    conn.execute(b"SELECT set_config(%s, %s, false)", [TENANT_SETTING, tenant])


_SET_LOCAL_TENANT = b"SELECT set_config(%s, %s, true)"
# The claim, planned once a connection (a generic plan) rather than at each call: its plan took
# 1.6-1.8 ms a claim to make, 7-8% of its server CPU at 512 chunks, and on a fleet's history (a
# million chunks, one queue or all, a tenant at its quota, the aged lane, a claim of one) the
# generic plan has the custom plan's shape and runs in its time (docs/benchmarks.md, session
# 24; tests/contract/test_postgres_indexes.py holds it). Only with JIT off, as every connection
# here has it: the generic plan's estimate is dear enough to be compiled, ~90 ms a claim.
# For its own transaction only: no other statement is planned blind to its parameters.
GENERIC_PLAN_QUERIES = frozenset({"claim_chunks"})
_GENERIC_PLAN = b"SET LOCAL plan_cache_mode = force_generic_plan"
_GENERIC_PLAN_DONE = b"SET LOCAL plan_cache_mode TO DEFAULT"
_SCOPE_CHECK = (
    b"SELECT chunksync_scope(current_user), current_user,"
    b" (SELECT tableowner FROM pg_tables WHERE tablename = 'chunks'"
    b" AND schemaname = current_schema())"
)


def _fetch_flag(conn: psycopg.Connection[Any], statement: bytes, key: int) -> bool:
    row = conn.execute(statement, [key]).fetchone()
    return bool(row and row[0])


def _tenant_option(value: object) -> str:
    tenant = str(value).strip()
    if not tenant:
        raise ConfigurationError("a tenant must be named: use '*' for every tenant")
    return tenant


class PostgresSession(Session):
    # Whether this session's transaction is its one statement's own (PostgresBackend._single):
    # then it ends with the statement, and a SET LOCAL with it, so nothing is set back.
    alone = False

    def __init__(
        self, conn: psycopg.Connection[Any], queries: dict[str, bytes], errors: PsycopgErrors
    ) -> None:
        self._conn = conn
        self._queries = queries
        self._errors = errors

    def _sql(self, name: str) -> bytes:
        try:
            return self._queries[name]
        except KeyError:
            raise BackendError(f"no query named '{name}' for PostgreSQL") from None

    def execute(self, name: str, params: Params | None = None) -> int:
        with self._errors, self._conn.cursor() as cur:
            cur.execute(self._sql(name), dict(params or {}))
            return cur.rowcount

    def execute_many(self, name: str, params: Iterable[Params]) -> None:
        with self._errors, self._conn.cursor() as cur:
            cur.executemany(self._sql(name), [dict(p) for p in params])

    def execute_rows(self, name: str, rows: Sequence[Sequence[Any]]) -> None:
        self.execute(name, {"batch": rows_json(rows)})

    def fetch_all(self, name: str, params: Params | None = None) -> list[Row]:
        with self._errors, self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql(name), dict(params or {}))
            return cur.fetchall() if cur.description is not None else []

    def fetch_one(self, name: str, params: Params | None = None) -> Row | None:
        rows = self.fetch_all(name, params)
        return rows[0] if rows else None

    def fetch_table(self, name: str, params: Params | None = None) -> Table:
        # psycopg's own tuple rows, in binary form: the claim's and the finish's. A number's is
        # cheaper to send and to read than its text (a claimed chunk's row: 4.2 -> 2.9 us of
        # client CPU with its uuids and JSON sent as text, which psycopg reads in C).
        # A query of GENERIC_PLAN_QUERIES gets its generic plan within a transaction (a SET
        # LOCAL outside one would end with its own statement), set back for what follows in a
        # caller's transaction (in its own, the COMMIT ends it: one round trip fewer a claim).
        in_transaction = self._conn.info.transaction_status == TransactionStatus.INTRANS
        generic = name in GENERIC_PLAN_QUERIES and in_transaction
        with self._errors, self._conn.cursor(binary=True) as cur:
            if generic:
                cur.execute(_GENERIC_PLAN)
            cur.execute(self._sql(name), dict(params or {}))
            table: Table = ((), [])
            if cur.description is not None:
                table = tuple(d.name for d in cur.description), cur.fetchall()
            if generic and not self.alone:
                cur.execute(_GENERIC_PLAN_DONE)
            return table

    def script(self, text: str) -> int:
        with self._errors:
            return self._conn.execute(text.encode()).rowcount


class PostgresBackend(Backend):
    """PostgreSQL from a `postgresql://user:password@host:port/dbname` URL.

    Options: `pool_size` (connections for queries, fixed; by default 1, grown for a worker's
    slots by `use_connections`), `pool_timeout_s`,
    `connect_timeout`, `notify` (LISTEN for wake-ups, default True), `application_name`,
    `tenant` (the tenant every connection sees under row-level security; '*', the default,
    is every tenant).
    """

    dialect = DIALECT
    sql_health_interface = True
    tenant_scoping = True
    claim_groups = True

    def __init__(
        self, url: str, *, create: bool = True, migrate: bool = True, **options: Any
    ) -> None:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigurationError(f"unknown PostgreSQL option(s): {', '.join(sorted(unknown))}")
        self.url = url
        self._tenant = _tenant_option(options.get("tenant", ALL_TENANTS))
        self._scope: str | None = None  # one tenant per transaction (for_tenant), or none
        self._view = False
        self._errors = PsycopgErrors(url)
        self._notify = bool(options.get("notify", True))
        self._conninfo = self._make_conninfo(url, options)
        self._queries = {name: to_psycopg(text) for name, text in sql.queries(DIALECT).items()}
        self._local = threading.local()
        self._control: _Control | None = None
        self._control_lock = threading.Lock()
        self._closed = False
        self._pool_fixed = "pool_size" in options
        self._connect_first(create)
        if migrate:
            self.migrate()
        self._pool = psycopg_pool.ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=int(options.get("pool_size", POOL_SIZE)),
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=float(options.get("pool_timeout_s", POOL_TIMEOUT_SECONDS)),
            name="chunksync",
            open=False,
        )
        try:
            with self._errors:
                self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
            self._check_scope()
        except BackendError:
            self._pool.close()
            raise

    def _check_scope(self) -> None:
        """Say so now if row-level security (0017) would show this role nothing of what it is
        to see: a role that neither owns the tables nor is a member of their owner's role sees
        nothing under '*', which a worker would take for an empty database."""
        with self._connection() as conn:
            try:
                row = conn.execute(_SCOPE_CHECK).fetchone()
            except psycopg.errors.UndefinedFunction:
                return  # a database from before 0017: nothing to check
        if row is None or row[0] == self._tenant:
            return
        role, owner = row[1], row[2]
        wanted = "every tenant" if self._tenant == ALL_TENANTS else f"tenant {self._tenant}"
        raise ConfigurationError(
            f"the role {role} may not see {wanted} under row-level security: run chunksync as "
            f"the role that owns its tables or a member of it (GRANT {owner} TO {role}), or "
            "bind the role to its one tenant (chunksync tenants grant)"
        )

    @staticmethod
    def _make_conninfo(url: str, options: dict[str, Any]) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in {"postgres", "postgresql"} or not parts.path.strip("/"):
            raise ConfigurationError(
                f"invalid PostgreSQL URL '{redact_url(url)}': use postgresql://user@host/dbname"
            )
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigurationError(f"invalid PostgreSQL URL '{redact_url(url)}'") from exc
        extra: dict[str, Any] = {
            "connect_timeout": options.get("connect_timeout", CONNECT_TIMEOUT_SECONDS),
            "keepalives": 1,
            "keepalives_idle": KEEPALIVE_IDLE_SECONDS,
            "keepalives_interval": KEEPALIVE_IDLE_SECONDS,
            "keepalives_count": 3,
        }
        if "application_name" not in given:
            import os

            extra["application_name"] = options.get("application_name", f"chunksync-{os.getpid()}")
        return make_conninfo(url, **{k: v for k, v in extra.items() if k not in given})

    def _connect(self, conninfo: str | None = None) -> psycopg.Connection[Any]:
        with self._errors:
            conn = psycopg.Connection.connect(conninfo or self._conninfo, autocommit=True)
            self._configure(conn)
        return conn

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        _configure(conn, self._tenant)

    @property
    def every_tenant(self) -> bool:
        return self._tenant == ALL_TENANTS and self._scope is None

    def for_tenant(self, tenant: str) -> PostgresBackend:
        """This backend as one tenant sees it under row-level security, on the same pool: each
        transaction and statement narrows the setting for itself alone (`set_config(..., true)`
        ends with the transaction), so the next user of a pooled connection gets none of it.
        Closing the view closes nothing."""
        view = copy.copy(self)
        view._scope = _tenant_option(tenant)
        view._local = threading.local()  # never joins a transaction of another scope
        view._view = True
        return view

    def _connect_first(self, create: bool) -> None:
        """Connect once to give a clear error now; create the database if it is missing."""
        try:
            self._connect().close()
        except BackendUnavailable as exc:
            if not create or exc.sqlstate != "3D000":
                raise
            self._create_database()

    def _create_database(self) -> None:
        name = unquote(urlsplit(self.url).path.lstrip("/"))
        admin = make_conninfo(self._conninfo, dbname="postgres")
        with self._connect(admin) as conn, self._errors:
            try:
                conn.execute(b"CREATE DATABASE " + psycopg.sql.Identifier(name).as_bytes(conn))
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it a moment ago

    # --- transactions -----------------------------------------------------------------

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[PostgresSession]:
        joined: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if joined is not None:  # nested use on the same thread joins the outer transaction
            yield PostgresSession(joined, self._queries, self._errors)
            return
        with self._connection() as conn:
            self._local.conn = conn
            try:
                with self._errors, conn.transaction():  # BEGIN or COMMIT may fail
                    if self._scope is not None:
                        conn.execute(_SET_LOCAL_TENANT, [TENANT_SETTING, self._scope])
                    yield PostgresSession(conn, self._queries, self._errors)
            finally:
                self._local.conn = None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise BackendUnavailable("the PostgreSQL backend is closed")
        try:
            with self._errors, self._pool.connection() as conn:  # none within the pool's timeout
                yield conn
        except BackendUnavailable as exc:
            timed_out = isinstance(exc.__cause__, psycopg_pool.PoolTimeout)
            busy = self._all_in_use() if timed_out else None
            if busy is None:
                raise
            raise BackendUnavailable(busy) from exc.__cause__

    def _all_in_use(self) -> str | None:
        """Why no connection came free, when the pool has them all and none is back: a statement
        that waits (a lock, a claim reading a long way), not a server out of reach, which the
        pool's own words ("cannot connect") say."""
        stats = self._pool.get_stats()
        if stats.get("pool_size", 0) < self._pool.max_size or stats.get("pool_available", 0):
            return None
        name = conninfo_to_dict(self._conninfo).get("application_name", "")
        return (
            f"no connection to PostgreSQL at {redact_url(self.url)} came free in "
            f"{self._pool.timeout:.0f} s: this process's {self._pool.max_size} pooled "
            "connection(s) stayed in use by statements that did not end (waiting for a lock? "
            f"see pg_stat_activity where application_name = '{name}')"
        )

    def transaction(self, *, write: bool = True) -> AbstractContextManager[PostgresSession]:
        return self._transaction(write)

    def list_param(self, values: Sequence[str]) -> list[str]:
        """A Python list, sent as an array (the queries cast it: `:kinds::text[]`)."""
        return list(values)

    def _single(self, run: Callable[[PostgresSession], _T], *, transaction: bool = False) -> _T:
        """One statement in autocommit (or, with `transaction`, alone in a transaction of its
        own): atomic alone, so a lost race is retried here."""
        if getattr(self._local, "conn", None) is not None:
            return run(PostgresSession(self._local.conn, self._queries, self._errors))

        def once() -> _T:
            if transaction or self._scope is not None:  # a setting needs one to end with
                with self._transaction(True) as session:
                    session.alone = True
                    return run(session)
            with self._connection() as conn:
                return run(PostgresSession(conn, self._queries, self._errors))

        return retry_busy(once)

    def fetch_one(self, name: str, params: Params | None = None) -> Row | None:
        return self._single(lambda s: s.fetch_one(name, params))

    def fetch_all(
        self, name: str, params: Params | None = None, *, write: bool = False
    ) -> list[Row]:
        return self._single(lambda s: s.fetch_all(name, params))

    def fetch_table(self, name: str, params: Params | None = None, *, write: bool = False) -> Table:
        own = name in GENERIC_PLAN_QUERIES  # a transaction of its own, for its plan's setting
        return self._single(lambda s: s.fetch_table(name, params), transaction=own)

    def execute(self, name: str, params: Params | None = None) -> int:
        return self._single(lambda s: s.execute(name, params))

    # --- schema -----------------------------------------------------------------

    def schema_version(self) -> int:
        with self._connect() as conn:
            return recorded_version(self, PostgresSession(conn, self._queries, self._errors))

    def migrate(self) -> int:
        where = f"at {redact_url(self.url)}"
        return migrate_database(self, self._migration, where, self._migration_outside)

    def apply_migrations_only(self, upto: int | None = None) -> None:
        """Build the schema from the numbered migrations alone (the migration tests' path)."""
        apply_migrations(self, self._migration, upto, self._migration_outside)

    @contextmanager
    def _migration(self) -> Iterator[PostgresSession]:
        """One transaction on a connection of its own, holding the migration lock: concurrent
        starts apply nothing twice. (The pool may not exist yet: migrate runs before it.)"""
        with self._migration_lock() as conn, conn.transaction():
            yield PostgresSession(conn, self._queries, self._errors)

    @contextmanager
    def _migration_outside(self) -> Iterator[PostgresSession]:
        """The same lock, each statement committing on its own (`CREATE INDEX CONCURRENTLY`)."""
        with self._migration_lock() as conn:
            yield PostgresSession(conn, self._queries, self._errors)

    @contextmanager
    def _migration_lock(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own holding the migration lock for its session (released when it
        closes). The lock is polled, not waited for: a process waiting in a statement holds a
        snapshot, and `CREATE INDEX CONCURRENTLY` waits for every older snapshot, so the two
        would wait for each other."""
        with self._connect() as conn, self._errors:
            pause = 0.05
            while not _fetch_flag(conn, TRY_ADVISORY_LOCK, MIGRATION_LOCK_KEY):
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
            yield conn

    # --- wake-ups and the maintenance election ----------------------------------------

    def _control_thread(self) -> _Control:
        with self._control_lock:
            if self._closed:
                raise BackendUnavailable("the PostgreSQL backend is closed")
            if self._control is None:
                self._control = _Control(self, listen=self._notify)
                self._control.start()
            return self._control

    def subscribe_work(self, wake: Callable[[], None]) -> Callable[[], None]:
        if not self._notify:
            return lambda: None
        control = self._control_thread()
        control.add(wake)
        return lambda: control.remove(wake)

    def is_maintenance_leader(self, worker_id: str) -> bool:
        control = self._control_thread()
        if not control.want_leader:
            control.want_leader = True
            control.tried.wait(LEADER_FIRST_TRY_SECONDS)
        return control.leader

    def use_connections(self, n: int) -> None:
        if self._pool_fixed or n <= self._pool.max_size:
            return
        self._pool.resize(min_size=self._pool.min_size, max_size=n)

    def close(self) -> None:
        if self._view:
            return
        with self._control_lock:
            self._closed = True
            control, self._control = self._control, None
        if control is not None:
            control.stop()
        self._pool.close()


class _Control(threading.Thread):
    """Owns the control connection: LISTEN for wake-ups, hold the maintenance lock."""

    def __init__(self, backend: PostgresBackend, *, listen: bool) -> None:
        super().__init__(name="chunksync-pg-control", daemon=True)
        self._backend = backend
        self._listen = listen
        self._wakes: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.want_leader = False
        self.leader = False
        self.tried = threading.Event()

    def add(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._wakes.append(wake)

    def remove(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in self._wakes:
                self._wakes.remove(wake)

    def _fire(self) -> None:
        with self._lock:
            wakes = list(self._wakes)
        for wake in wakes:
            wake()

    def stop(self) -> None:
        self._halt.set()
        if self is not threading.current_thread():
            self.join(CONTROL_TICK_SECONDS * 8)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with self._backend._connect() as conn:
                    self._serve(conn)
            except (psycopg.Error, BackendError):
                pass  # the server went away: polling covers the gap, reconnect shortly
            self.leader = False
            self.tried.set()
            self._halt.wait(CONTROL_RECONNECT_SECONDS)

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        if self._listen:
            conn.execute(b"LISTEN " + NOTIFY_CHANNEL.encode())
            self._fire()  # wake-ups may have been missed while disconnected
        while not self._halt.is_set():
            if self.want_leader and not self.leader:
                self.leader = _fetch_flag(conn, TRY_ADVISORY_LOCK, MAINTENANCE_LOCK_KEY)
                self.tried.set()
            if self._listen:
                for _ in conn.notifies(timeout=CONTROL_TICK_SECONDS):
                    self._fire()
            else:
                self._halt.wait(CONTROL_TICK_SECONDS)
