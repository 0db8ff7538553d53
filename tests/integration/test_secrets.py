"""Planted secrets never come out: a password and a token in the database URL, in the source
URI, in server error texts and in a handler's exceptions (tests/fixtures/secrets_app.py), run
by a real worker process, then looked for in every place chunksync writes or shows: the worker's
log, every database row (SQLite's raw file, WAL and shared memory; every PostgreSQL table as
text), the Prometheus metrics, every dashboard page and API answer, and the CLI's output."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from chunksync.app import App
from chunksync.models import ChunkStatus
from chunksync.observe import metrics
from tests.acceptance.web_server import serve
from tests.fixtures import secrets_app
from tests.fixtures.secrets_app import FORMS, PASSWORD, SECRETS, SOURCE, TOKEN

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_TOKEN = "dash-Pl4nted-0perator-Token-4242"
ALL_SECRETS = (*SECRETS, DASHBOARD_TOKEN)


def needles() -> list[bytes]:
    """Each secret as it could leak: raw, URL-quoted, base64."""
    found: list[bytes] = []
    for secret in ALL_SECRETS:
        raw = secret.encode()
        found += [raw, quote(secret, safe="").encode(), base64.b64encode(raw)]
    return found


def assert_clean(where: str, data: bytes | str) -> None:
    blob = data.encode() if isinstance(data, str) else data
    for needle in needles():
        assert needle not in blob, f"a planted secret ({needle[:6]!r}...) leaked into {where}"


@pytest.fixture
def secret_db_url(db_url: str) -> str:
    """The database URL with the planted password in it (the test cluster trusts loopback, so
    the password is carried everywhere but never needed)."""
    if db_url.startswith("postgresql://postgres@"):
        return db_url.replace("postgres@", f"postgres:{quote(PASSWORD)}@", 1)
    return db_url


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "chunksync", "--db", url, "--verbose"]
    command += ["--app", "tests.fixtures.secrets_app:make_app", *args]
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def leaky_app(secret_db_url: str) -> Iterator[App]:
    with secrets_app.make_app(secret_db_url) as app:
        yield app


def raw_database(app: App, url: str) -> bytes:
    """Every byte the database holds for us."""
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:///"))
        parts = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        return b"".join(p.read_bytes() for p in parts if p.exists())
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM "
            "information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
            "('pg_catalog', 'information_schema')"
        ).fetchall()
        assert len(tables) >= 5
        text = []
        for (table,) in tables:
            rows = conn.execute(f"SELECT t::text FROM {table} t".encode()).fetchall()
            text += [r[0] for r in rows]
    return "\n".join(text).encode()


@pytest.mark.timeout(180)
def test_planted_secrets_never_come_out(leaky_app: App, secret_db_url: str) -> None:
    app, url = leaky_app, secret_db_url
    payloads = [{"form": form} for form in FORMS for _ in range(2)]
    queue = app.create_queue(SOURCE, payloads, policy=secrets_app.POLICY, max_attempts=2)
    assert_clean("the queue's name and source", f"{queue.name} {queue.source}")

    worker = cli(url, "worker", "--until-done", "-c", "2", "--lease", "5", "--poll", "0.1")
    assert worker.returncode == 0, worker.stderr
    assert_clean("the worker's output", worker.stdout + worker.stderr)
    assert "-> dead" in worker.stderr  # the failures were logged (without their messages)

    chunks = app.manager.list_chunks(queue.id, limit=1000)
    assert {c.status for c in chunks} == {ChunkStatus.COMPLETED, ChunkStatus.DEAD}
    assert sum("***" in (c.last_error or "") for c in chunks) >= 2 * 6  # not just dropped

    outputs = [
        cli(url, *args)
        for args in (
            ["status", "--json"],
            ["chunks", "--limit", "100"],
            ["chunks", "--json", "--limit", "100"],
            ["health", "--json"],
            ["alerts"],
            ["retry", chunks[0].id],
            ["sync", f"imap://alice:{PASSWORD}@127.0.0.1:1/INBOX"],
        )
    ]
    for done in outputs:
        assert "Traceback" not in done.stderr, done.stderr
        assert_clean(f"`chunksync {' '.join(done.args[6:])}`", done.stdout + done.stderr)

    body, _ = metrics.render(app.manager)
    assert b"chunksync_" in body
    assert_clean("the Prometheus metrics", body)

    with serve(app, token=DASHBOARD_TOKEN) as base, httpx.Client(base_url=base) as client:
        paths = ["/", "/queues", "/chunks", "/chunks?status=dead", "/metrics", "/openapi.json"]
        paths += ["/fragments/overview", "/fragments/queues", "/fragments/chunks"]
        paths += ["/api/overview", "/api/queues", "/api/charts", "/api/chunks", "/login"]
        for chunk in chunks:
            paths += [f"/chunks/{chunk.id}", f"/fragments/chunks/{chunk.id}"]
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
            assert_clean(f"the dashboard's {path}", answer.content)
        refused = client.post(f"/api/chunks/{chunks[0].id}/retry")
        assert refused.status_code in (401, 403)
        assert_clean("a refused action", refused.content)

    assert_clean("the database", raw_database(app, url))
    assert TOKEN not in SOURCE.replace(TOKEN, "")  # the test's own sanity: secrets were planted
