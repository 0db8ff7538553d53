"""schema.sql is the truth; the numbered migrations must build the very same database."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from chunksync import sql
from chunksync.backends.sqlite import SQLiteBackend
from chunksync.exceptions import SchemaError


def catalog(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        found: dict[str, object] = {}
        for table in tables:
            found[f"table {table}"] = sorted(conn.execute(f"PRAGMA table_info({table})").fetchall())
            found[f"fks {table}"] = sorted(
                conn.execute(f"PRAGMA foreign_key_list({table})").fetchall()
            )
        for name, text in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ):
            found[f"index {name}"] = re.sub(r"\s+", " ", text).strip()
        found["versions"] = conn.execute("SELECT version, name FROM schema_version").fetchall()
        return found
    finally:
        conn.close()


def test_migrations_build_the_same_database_as_schema_sql(tmp_path: Path) -> None:
    from_schema = SQLiteBackend(f"sqlite:///{tmp_path / 'schema.db'}")
    from_schema.close()
    from_migrations = SQLiteBackend(f"sqlite:///{tmp_path / 'migrations.db'}", migrate=False)
    from_migrations.apply_migrations_only()
    from_migrations.close()
    assert catalog(tmp_path / "schema.db") == catalog(tmp_path / "migrations.db")


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in sql.migrations("sqlite")]
    assert versions == list(range(1, len(versions) + 1))


def test_migrate_is_idempotent_and_refuses_a_newer_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    backend = SQLiteBackend(url)
    assert backend.migrate() == backend.migrate() == sql.latest_version("sqlite")
    backend.close()
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("INSERT INTO schema_version VALUES (9999, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="newer than this chunksync"):
        SQLiteBackend(url)


def test_a_partly_migrated_database_is_brought_up_to_date(tmp_path: Path) -> None:
    first = sql.migrations("sqlite")[0]
    backend = SQLiteBackend(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=False)
    backend.apply_migrations_only(upto=first.version)
    assert backend.schema_version() == first.version
    assert backend.migrate() == backend.migrate() == sql.latest_version("sqlite")
    backend.close()
    assert catalog(tmp_path / "db.sqlite")["versions"] == [
        (m.version, m.name) for m in sql.migrations("sqlite")
    ]


def test_tables_without_a_version_are_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE chunks (id int)")
    conn.close()
    with pytest.raises(SchemaError, match="no schema version"):
        SQLiteBackend(f"sqlite:///{tmp_path / 'db.sqlite'}")
