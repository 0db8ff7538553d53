"""Rolling upgrades: `chunksync migrate --plan` names each step's lock, `chunksync migrate`
applies it, production mode never migrates implicitly, and a worker refuses only a database
whose newest migration needs newer code (a contract), in one sentence."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync import sql
from chunksync.backends import MIGRATE_ENV, open_backend
from chunksync.backends.migrate import plan, statements
from chunksync.backends.plan import effect, is_expand
from chunksync.backends.sqlite import SQLiteBackend
from chunksync.exceptions import SchemaError
from tests.acceptance.test_cli import one_error, run

LATEST = sql.latest_version("sqlite")
BACKFILL = (
    "UPDATE chunks SET note = '' WHERE id IN (SELECT id FROM chunks WHERE note IS NULL LIMIT 500)"
)


@pytest.mark.parametrize(
    ("statement", "pg_online", "pg_lock"),
    [
        ("CREATE INDEX CONCURRENTLY i ON chunks (seq)", True, "SHARE UPDATE EXCLUSIVE on chunks"),
        ("CREATE UNIQUE INDEX i ON chunks (seq)", False, "SHARE on chunks"),
        ("ALTER TABLE chunks ADD COLUMN note text", True, "ACCESS EXCLUSIVE on chunks"),
        ("ALTER TABLE chunks ADD COLUMN n integer DEFAULT 0;  -- why", True, "for a moment"),
        ("ALTER TABLE chunks ALTER COLUMN seq TYPE bigint", False, "rewritten"),
        ("CREATE TABLE IF NOT EXISTS notes (id int)", True, "none on existing tables"),
        ("UPDATE chunks SET note = ''", False, "small batches"),
        ("DROP INDEX IF EXISTS chunks_old", True, "ACCESS EXCLUSIVE on chunks_old"),
        ("DROP INDEX CONCURRENTLY IF EXISTS chunks_old", True, "SHARE UPDATE EXCLUSIVE"),
        ("ALTER TABLE chunks FORCE ROW LEVEL SECURITY", True, "for a moment (catalog only)"),
        ("CREATE POLICY p ON chunks TO CURRENT_USER USING (true)", True, "EXCLUSIVE on chunks"),
        ("ALTER TABLE chunks ALTER COLUMN note SET DEFAULT f()", True, "catalog only"),
        ("ALTER TABLE chunks SET (fillfactor = 45)", True, "SHARE UPDATE EXCLUSIVE on chunks"),
        ("ALTER TABLE chunks SET (user_catalog_table = true)", False, "everything waits"),
        ("VACUUM FULL chunks", False, "unknown"),
        (f"-- in batches --\n{BACKFILL}", True, "one batch's row locks at a time"),
        ("-- in batches --\nUPDATE chunks SET note = ''", False, "small batches"),  # no LIMIT
        (BACKFILL, False, "small batches"),  # not marked: one statement over the whole table
    ],
)
def test_each_statement_is_read_for_its_lock(statement: str, pg_online: bool, pg_lock: str) -> None:
    found = effect("postgres", statement)
    assert found.online is pg_online and pg_lock in found.lock
    assert effect("sqlite", statement).lock  # SQLite names its one lock too


def test_statements_keep_function_bodies_whole() -> None:
    script = "CREATE FUNCTION f() RETURNS int AS $$\nSELECT 1;\n$$ LANGUAGE sql;\nDROP TABLE x;\n"
    assert len(statements(script)) == 2


@pytest.fixture
def older(tmp_path: Path) -> str:
    """A database one migration behind this code."""
    url = f"sqlite:///{tmp_path / 'older.db'}"
    backend = SQLiteBackend(url, migrate=False)
    backend.apply_migrations_only(upto=LATEST - 1)
    backend.close()
    return url


def test_the_plan_names_what_will_run_then_migrate_runs_it(older: str) -> None:
    with open_backend(older, migrate=False) as backend:
        found = plan(backend)
    assert (found.current, found.latest) == (LATEST - 1, LATEST)
    [step] = found.steps
    assert step.version == LATEST and step.effects
    assert step.expand == is_expand(sql.migrations("sqlite")[-1].sql)
    out = run("migrate", "--plan", db=older).stdout
    assert f"{LATEST:04d} {step.name}" in out and "lock:" in out
    shown = json.loads(run("migrate", "--plan", "--json", db=older).stdout)
    assert shown["steps"][0]["version"] == LATEST and "online" in shown["steps"][0]
    assert f"schema at version {LATEST}: 1 migration step(s)" in run("migrate", db=older).stdout
    assert "nothing to run" in run("migrate", "--plan", db=older).stdout


@pytest.fixture
def production() -> Iterator[None]:
    os.environ[MIGRATE_ENV] = "never"
    try:
        yield
    finally:
        del os.environ[MIGRATE_ENV]


def test_production_mode_never_migrates_implicitly(older: str, production: None) -> None:
    with pytest.raises(SchemaError, match="run 'chunksync migrate'"):
        open_backend(older)
    with sqlite3.connect(older.removeprefix("sqlite:///")) as conn:
        (version,) = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    conn.close()
    assert version == LATEST - 1  # untouched
    cmd = [sys.executable, "-m", "chunksync", "--db", older, "worker", "--until-done"]
    env = {**os.environ, MIGRATE_ENV: "never"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "chunksync migrate" in one_error(proc)
    run("migrate", db=older)
    open_backend(older).close()  # now the worker's check passes


def add_version(url: str, version: int, name: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, ?, 0)", (version, name))
    conn.close()


def test_a_newer_expanded_database_is_worked_with(sqlite_url: str) -> None:
    open_backend(sqlite_url).close()
    add_version(sqlite_url, LATEST + 1, f"future_column (works with {LATEST})")
    with open_backend(sqlite_url) as backend:  # N beside N+1 through the expand phase
        assert backend.schema_version() == LATEST + 1
    assert "newer than this chunksync" not in run("status", db=sqlite_url).stderr
    add_version(sqlite_url, LATEST + 2, "drop_old_column")  # the contract
    with pytest.raises(SchemaError, match="newer than this chunksync"):
        open_backend(sqlite_url)
    assert "upgrade chunksync" in one_error(run("worker", "--until-done", db=sqlite_url, expect=1))


def test_a_backfill_in_batches_needs_a_migration_outside_a_transaction(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside one transaction, every batch's row locks would last until the end: refused, in one
    sentence, before anything runs."""
    open_backend(sqlite_url).close()
    shipped = sql.migrations("sqlite")
    backfill = sql.Migration(LATEST + 1, "note_backfill", f"-- in batches --\n{BACKFILL};\n")
    monkeypatch.setattr(sql, "migrations", lambda dialect: (*shipped, backfill))
    with pytest.raises(SchemaError, match="only a migration marked '-- outside a transaction --'"):
        open_backend(sqlite_url)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (LATEST,)


@pytest.mark.postgres
def test_the_plan_on_postgresql(pg_empty_url: str) -> None:
    from chunksync.backends.postgres import PostgresBackend

    latest = sql.latest_version("postgres")
    backend = PostgresBackend(pg_empty_url, migrate=False)
    try:
        backend.apply_migrations_only(upto=17)
        step = plan(backend).steps[0]  # the first online migration: built concurrently
        assert (step.version, step.expand, step.outside, step.online) == (18, True, True, True)
        assert [e.lock.split(" on ")[0] for e in step.effects] == ["SHARE UPDATE EXCLUSIVE"] * 3
        assert backend.migrate() == latest and plan(backend).steps == ()
    finally:
        backend.close()
