"""The migration runner, written once for every dialect.

A backend supplies only what its dialect does differently: a transaction that holds the
migration lock (`BEGIN IMMEDIATE` on SQLite, a transaction advisory lock on PostgreSQL), whose
session runs scripts and the named queries of `queries_schema.sql`, and its encoding of a list
parameter. Everything else lives here: reading the recorded version, refusing a database newer
than this code or one that has chunksync's tables but no version, building a new database from
schema.sql, applying the pending numbered migrations in order and recording each.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager

from chunksync import sql
from chunksync.backends.base import Backend, Session
from chunksync.exceptions import SchemaError

# Tables that only chunksync creates: a database holding them but no version is refused.
CHUNKSYNC_TABLES = ("queues", "chunks")


def recorded_version(backend: Backend, session: Session) -> int:
    """The version recorded in the database; 0 for one without a schema_version table."""
    if not _tables(backend, session, ["schema_version"]):
        return 0
    row = session.fetch_one("schema_version")
    return int(row["version"] or 0) if row else 0


def migrate_database(backend: Backend, locked: AbstractContextManager[Session], where: str) -> int:
    """Bring the database up to date inside `locked`; return the version it is at.
    `where` names the database in messages (a file path, or "at postgresql://...")."""
    latest = sql.latest_version(backend.dialect)
    with locked as session:
        current = recorded_version(backend, session)
        if current > latest:
            raise SchemaError(
                f"the database {where} has schema version {current}, newer than this "
                f"chunksync ({latest}): upgrade chunksync"
            )
        if current == 0:
            if _tables(backend, session, CHUNKSYNC_TABLES):
                raise SchemaError(
                    f"the database {where} has chunksync tables but no schema version"
                )
            session.script(sql.schema(backend.dialect))
            _record(session, sql.migrations(backend.dialect))
            return latest
        for migration in sql.migrations(backend.dialect):
            if migration.version > current:
                session.script(migration.sql)
                _record(session, [migration])
    return latest


def apply_migrations(
    backend: Backend, locked: AbstractContextManager[Session], upto: int | None = None
) -> None:
    """Build a database from the numbered migrations alone, up to version `upto` (all by
    default): the path the migration tests compare with schema.sql's."""
    with locked as session:
        session.script(sql.version_table(backend.dialect))
        for migration in sql.migrations(backend.dialect):
            if upto is None or migration.version <= upto:
                session.script(migration.sql)
                _record(session, [migration])


def _tables(backend: Backend, session: Session, names: Iterable[str]) -> bool:
    """Whether any of these tables exists."""
    found = session.fetch_all("schema_tables", {"names": backend.list_param(list(names))})
    return bool(found)


def _record(session: Session, applied: Iterable[sql.Migration]) -> None:
    session.execute_many(
        "record_schema_version", [{"version": m.version, "name": m.name} for m in applied]
    )
