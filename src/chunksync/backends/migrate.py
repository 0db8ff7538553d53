"""The migration runner, written once for every dialect.

A backend supplies only what its dialect does differently: a transaction that holds the
migration lock (`BEGIN IMMEDIATE` on SQLite, a transaction advisory lock on PostgreSQL), whose
session runs scripts and the named queries of `queries_schema.sql`, and its encoding of a list
parameter. Everything else lives here: reading the recorded version, refusing a database newer
than this code or one that has chunksync's tables but no version, building a new database from
schema.sql, applying the pending numbered migrations in order and recording each.

Rolling upgrades (backends/plan.py says how a migration is read): a migration marked
`-- expand --` leaves the database usable by the code before it, and is recorded with the
oldest version whose code still works with it ("0010_name (works with 9)"). So a worker refuses
a newer database only when its newest migration needs newer code (a contract), and in
production mode (`CHUNKSYNC_MIGRATE=never`) nothing but `chunksync migrate` changes the schema:
a worker only checks that it can work with what it finds (`require_schema`).

Online migrations: a migration marked `-- outside a transaction --` (PostgreSQL's
`CREATE INDEX CONCURRENTLY`, which cannot run in one) runs statement by statement, each
committing on its own, on a connection that holds the migration lock for the session
(`outside`, supplied by the backend); it is recorded only after its last statement, so it must
be safe to run again from its first (`DROP INDEX CONCURRENTLY IF EXISTS` before each build: an
interrupted build leaves an invalid index behind). In such a migration, a statement after a line
`-- in batches --` is a backfill: it changes at most one batch of the rows not yet done (its
LIMIT), and runs again, each run committing on its own, until it changes none; so the fleet's
writes wait for one batch's row locks at most, and an interrupted backfill goes on where it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from chunksync import sql
from chunksync.backends.base import Backend, Session
from chunksync.backends.plan import Effect, effect, in_batches, is_expand
from chunksync.exceptions import SchemaError
from chunksync.redact import redact_url

# Tables that only chunksync creates: a database holding them but no version is refused.
CHUNKSYNC_TABLES = ("queues", "chunks")
_WORKS_WITH = re.compile(r"\(works with (\d+)\)$")
OUTSIDE_MARK = re.compile(r"^-- outside a transaction --$", re.MULTILINE)

Locked = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True, slots=True)
class Step:
    """One pending migration as `chunksync migrate --plan` shows it."""

    version: int
    name: str
    expand: bool
    effects: tuple[Effect, ...]
    outside: bool = False  # statement by statement, each committing on its own

    @property
    def online(self) -> bool:
        return all(e.online for e in self.effects)


@dataclass(frozen=True, slots=True)
class Plan:
    current: int  # the database's version (0: empty)
    latest: int  # this code's
    works_with: int  # the oldest code version that works with the database as it is
    steps: tuple[Step, ...]


def recorded_version(backend: Backend, session: Session) -> int:
    """The version recorded in the database; 0 for one without a schema_version table."""
    if not _tables(backend, session, ["schema_version"]):
        return 0
    row = session.fetch_one("schema_version")
    return int(row["version"] or 0) if row else 0


def migrate_database(
    backend: Backend, locked: Locked, where: str, outside: Locked | None = None
) -> int:
    """Bring the database up to date; return the version it is at. `locked()` opens a
    transaction holding the migration lock; `outside()` a session holding it with each statement
    committing on its own (for migrations marked to run outside a transaction). `where` names
    the database in messages (a file path, or "at postgresql://...")."""
    latest = sql.latest_version(backend.dialect)
    while True:
        with locked() as session:
            current = recorded_version(backend, session)
            if current > latest:
                _refuse_newer(session, where, current, latest)
                return current  # newer, but only expanded: this code works with it as it is
            if current == 0:
                if _tables(backend, session, CHUNKSYNC_TABLES):
                    raise SchemaError(
                        f"the database {where} has chunksync tables but no schema version"
                    )
                session.script(sql.schema(backend.dialect))
                _record(session, sql.migrations(backend.dialect), backend.dialect)
                return latest
            online = _apply_until_outside(session, backend.dialect, current)
        if online is None:
            return latest
        _apply_one(backend, online, outside)


def _apply_until_outside(session: Session, dialect: str, current: int) -> sql.Migration | None:
    """Apply the pending migrations in this transaction, up to the first that must run outside
    one; return that one (None: none is left)."""
    for migration in sql.migrations(dialect):
        if migration.version <= current:
            continue
        if runs_outside(migration.sql):
            return migration
        _refuse_batches(migration)
        session.script(migration.sql)
        _record(session, [migration], dialect)
    return None


def runs_outside(migration_sql: str) -> bool:
    return bool(OUTSIDE_MARK.search(migration_sql))


def apply_migrations(
    backend: Backend, locked: Locked, upto: int | None = None, outside: Locked | None = None
) -> None:
    """Build a database from the numbered migrations alone, up to version `upto` (all by
    default): the path the migration tests compare with schema.sql's."""
    with locked() as session:
        session.script(sql.version_table(backend.dialect))
    for migration in sql.migrations(backend.dialect):
        if upto is not None and migration.version > upto:
            break
        _apply_one(backend, migration, outside if runs_outside(migration.sql) else locked)


def _apply_one(backend: Backend, migration: sql.Migration, opener: Locked | None) -> None:
    """One migration in its own transaction, or statement by statement outside one."""
    if opener is None:
        raise SchemaError(f"migration {migration.name} cannot run outside a transaction here")
    with opener() as session:
        if recorded_version(backend, session) >= migration.version:
            return  # another process applied it while we waited for the lock
        if runs_outside(migration.sql):
            for piece in statements(migration.sql):
                _run_outside(session, piece)
        else:
            _refuse_batches(migration)
            session.script(migration.sql)
        _record(session, [migration], backend.dialect)


def _run_outside(session: Session, statement: str) -> None:
    """One statement committing on its own; a backfill's, again until a run changes no row."""
    changed = session.script(statement)
    while changed > 0 and in_batches(statement):
        changed = session.script(statement)


def _refuse_batches(migration: sql.Migration) -> None:
    """A backfill in batches inside one transaction would hold every batch's row locks until
    the end: only a migration that runs outside a transaction may have one."""
    if in_batches(migration.sql):
        raise SchemaError(
            f"migration {migration.name} backfills in batches, which only a migration marked"
            " '-- outside a transaction --' can do"
        )


def require_schema(backend: Backend) -> int:
    """Production mode: check, without changing anything, that this code can work with the
    database as it is; return its version. One sentence says what to do otherwise."""
    where = f"at {redact_url(backend.url)}"
    latest = sql.latest_version(backend.dialect)
    with backend.transaction(write=False) as session:
        current = recorded_version(backend, session)
        if current > latest:
            _refuse_newer(session, where, current, latest)
        elif current < latest:
            raise SchemaError(
                f"the database {where} is at schema version {current} and this chunksync needs "
                f"{latest}: run 'chunksync migrate' (workers do not migrate in production mode)"
            )
    return current


def plan(backend: Backend) -> Plan:
    """What `migrate` would run on this database, each statement with the lock it takes."""
    latest = sql.latest_version(backend.dialect)
    with backend.transaction(write=False) as session:
        current = recorded_version(backend, session)
        works_with = _works_with(session) if current else 0
    if current == 0:
        pending = [sql.Migration(latest, "schema (a new database)", sql.schema(backend.dialect))]
    else:
        pending = [m for m in sql.migrations(backend.dialect) if m.version > current]
    steps = tuple(
        Step(
            m.version,
            m.name,
            is_expand(m.sql),
            _effects(backend.dialect, m.sql, current),
            runs_outside(m.sql),
        )
        for m in pending
    )
    return Plan(current, latest, works_with, steps)


def _effects(dialect: str, script: str, current: int) -> tuple[Effect, ...]:
    found = (effect(dialect, st) for st in statements(script))
    if current == 0:  # a new database: no worker is there to wait
        return tuple(Effect(e.statement, "none that matters: a new, empty database", True)
                     for e in found)  # fmt: skip
    return tuple(found)


def statements(script: str) -> list[str]:
    """A script's statements, split on semicolons at the end of a line outside dollar quotes
    (PostgreSQL function bodies): precise enough to name each statement's lock."""
    found, buffer, quoted = [], [], False
    for line in script.splitlines():
        buffer.append(line)
        quoted ^= line.count("$$") % 2 == 1
        if not quoted and line.split("--")[0].rstrip().endswith(";"):
            text = "\n".join(buffer).strip()
            if any(ln.strip() and not ln.strip().startswith("--") for ln in buffer):
                found.append(text.rstrip(";"))
            buffer = []
    return found


def _refuse_newer(session: Session, where: str, current: int, latest: int) -> None:
    if _works_with(session) > latest:
        raise SchemaError(
            f"the database {where} has schema version {current}, newer than this "
            f"chunksync ({latest}) can work with: upgrade chunksync"
        )


def _works_with(session: Session) -> int:
    """The oldest code version that works with the database: its newest migration's own
    version, unless that migration was recorded as an expand."""
    row = session.fetch_one("schema_latest")
    if row is None:
        return 0
    found = _WORKS_WITH.search(str(row["name"]))
    return int(found.group(1)) if found else int(row["version"])


def _recorded_name(migration: sql.Migration, dialect: str) -> str:
    """The name recorded for a migration: an expand carries the oldest version whose code
    still works with the database after it (that of the migration before it, or older)."""
    works_with = 0
    for m in sql.migrations(dialect):
        works_with = works_with if is_expand(m.sql) else m.version
        if m.version == migration.version:
            break
    return (
        migration.name
        if works_with == migration.version
        else (f"{migration.name} (works with {works_with})")
    )


def _tables(backend: Backend, session: Session, names: Iterable[str]) -> bool:
    """Whether any of these tables exists."""
    found = session.fetch_all("schema_tables", {"names": backend.list_param(list(names))})
    return bool(found)


def _record(session: Session, applied: Iterable[sql.Migration], dialect: str) -> None:
    session.execute_many(
        "record_schema_version",
        [{"version": m.version, "name": _recorded_name(m, dialect)} for m in applied],
    )
