"""Bad input through the real CLI: one clear sentence, a non-zero exit, never a traceback, and
the database it was pointed at left as it was. (The basic database-URL, missing-file, newer-
schema and not-a-database cases are in test_cli.py; mail URIs and folders in test_mail_cli.py.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync.app import App
from chunksync.exceptions import InvalidPayload
from tests.acceptance.test_cli import one_error, run
from tests.servers.pgcluster import PASSWORD_USER, PgCluster, free_port


def dump(url: str) -> list[str]:
    """Everything stored, as SQL text (independent of WAL checkpoints and page layout)."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def stored(sqlite_url: str) -> Iterator[str]:
    """A database holding a queue; each test checks that its mistake changed nothing in it."""
    with App(sqlite_url) as app:
        app.create_queue("demo://faults?chunks=25&seed=3")
    before = dump(sqlite_url)
    yield sqlite_url
    assert dump(sqlite_url) == before, "a refused command changed the database"


POLICIES = {
    "not_toml.toml": ("[categories\nretry = ", "is not valid TOML"),
    "unknown_category.toml": ("[categories.sunspots]\nretry = true\n", "unknown error category"),
    "negative.toml": ("[categories.network]\nbase_s = -1\n", "finite and non-negative"),
    "unknown_key.toml": (
        "[categories.network]\nbase = 1\n",
        "[categories.network] has an unknown key 'base'; valid keys are base_s",
    ),
    "limit.toml": ("[categories.network]\nlimit = 'three'\n", "'limit' must be a whole number"),
    "not_a_table.toml": ("[categories]\nnetwork = 3\n", "expected a table"),
    "jitter.toml": ("jitter = 5\n", "jitter must be in [0, 1)"),
    "stress.toml": (
        "[stress]\nbucket = 3\n",
        "[stress] has an unknown key 'bucket'; valid keys are capacity",
    ),
    "steps.toml": ("[categories.auth]\nschedule = 'steps'\nsteps = []\n", "non-empty 'steps'"),
    "schedule.toml": ("[categories.auth]\nschedule = 'fibonacci'\n", "invalid schedule"),
    "nan.toml": ("[categories.auth]\nbase_s = nan\n", "finite and non-negative"),
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_malformed_policy_files(stored: str, tmp_path: Path, name: str) -> None:
    text, says = POLICIES[name]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert says in one_error(run("bench-policy", "--policy", str(path), db=stored, expect=1))


def test_unreadable_and_missing_policy_files(stored: str, tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "cannot read policy file" in one_error(
        run("bench-policy", "--policy", str(binary), db=stored, expect=1)
    )
    missing = tmp_path / "missing.toml"
    assert "does not exist" in one_error(
        run("bench-policy", "--policy", str(missing), db=stored, expect=1)
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://[/x.db", "invalid database URL"),  # urlsplit's ValueError: a traceback before
        ("postgresql://u@[::1/db", "invalid database URL"),
        ("sqlite:///tmp/nul%00byte.db", "cannot hold a NUL byte"),  # was: embedded null byte
        ("sqlite://host/x.db", "invalid SQLite URL"),
        ("sqlite:///", "it names no file"),
        ("postgresql://u@127.0.0.1:1/db?sslmode=bogus", "cannot connect to PostgreSQL"),
    ],
)
def test_malformed_database_urls(url: str, says: str) -> None:
    assert says in one_error(run("status", db=url, expect=1))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["sync", "imap://a@[x/INBOX"], "invalid IMAP URI"),
        (["sync", "imap://alice@127.0.0.1/INBOX?connections=zero"], "must be a positive number"),
        (["sync", "imap://alice@127.0.0.1/INBOX?compress=maybe"], "must be yes or no"),
        (["sync", "imap:///INBOX"], "needs a user and a host"),
        (["sync", "mbox:///no/such/file.mbox"], "no mbox file at"),
        (["sync", "gopher://example.com/1"], "not a mailbox"),
        (["--app", "no_such_module_x:app", "status"], "cannot import 'no_such_module_x'"),
        (["--app", "tests.fixtures.apps:nothing", "status"], "neither an App"),
        (["--app", ":app", "status"], "should look like package.module:app"),
    ],
)
def test_bad_sources_and_apps(stored: str, args: list[str], says: str) -> None:
    assert says in one_error(run(*args, db=stored, expect=1))


def test_export_into_a_folder_that_cannot_exist(stored: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    one_error(run("export", str(blocker / "out"), db=stored, expect=1))


def test_invalid_payloads_store_nothing(sqlite_url: str) -> None:
    with App(sqlite_url) as app:
        app.handler("pages")(lambda ctx: 1)
        for bad in (float("nan"), {"when": object()}, {"n": float("inf")}):
            with pytest.raises(InvalidPayload, match="not JSON-serialisable"):
                app.create_queue("pages://x", [{"n": 1}, bad])
        assert app.manager.list_queues() == []  # the good payload before it is not kept either
        with pytest.raises(InvalidPayload, match="max_attempts"):
            app.create_queue("pages://x", [{"n": 1}], max_attempts=0)
        assert app.manager.list_queues() == []


def test_a_newer_database_is_left_untouched(stored: str) -> None:
    path = stored.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'future', 0)")
    conn.close()
    before = dump(stored)
    for args in (["status"], ["init"], ["worker", "--until-done"], ["recover"]):
        assert "newer than this chunksync" in one_error(run(*args, db=stored, expect=1))
    assert dump(stored) == before
    with sqlite3.connect(path) as conn:  # give the fixture its database back
        conn.execute("DELETE FROM schema_version WHERE version = 999")
    conn.close()


@pytest.mark.postgres
def test_postgres_down_is_one_sentence() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/chunksync"
    for args in (["status"], ["init"], ["health"]):
        err = one_error(run(*args, db=url, expect=1))
        assert "cannot connect to PostgreSQL" in err and "refused" in err.lower()


@pytest.mark.postgres
def test_postgres_refusing_the_password_is_one_sentence(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url("postgres", user=PASSWORD_USER, password="Wr0ng-Pa55word")
    proc = run("status", db=url, expect=1)
    err = one_error(proc)
    assert "password authentication failed" in err
    assert "Wr0ng-Pa55word" not in proc.stdout + proc.stderr
