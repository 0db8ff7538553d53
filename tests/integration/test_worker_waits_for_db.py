"""A worker started while its database cannot be reached waits for it (a restart, a failover),
through the real `chunksync worker` command against a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from chunksync.app import App
from tests.chaos.proxy import FaultyProxy
from tests.servers.pgcluster import free_port

pytestmark = [pytest.mark.postgres]

CHUNKSYNC = str(Path(sys.executable).parent / "chunksync")


def through_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


def test_a_worker_waits_for_the_database_then_runs(pg_url: str) -> None:
    port = free_port()
    url = through_port(pg_url, port)
    worker = subprocess.Popen(
        [CHUNKSYNC, "--db", url, "worker", "--until-done", "--wait-for-db", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    first = worker.stderr.readline()  # the database is down: the worker says it waits
    assert "waiting up to 60 s for the database" in first, first
    assert worker.poll() is None, "the worker should still be waiting"
    proxy = FaultyProxy("127.0.0.1", urlsplit(pg_url).port or 5432, port=port).start()
    try:
        out, err = worker.communicate(timeout=60)
    finally:
        proxy.stop()
    assert worker.returncode == 0, err
    assert "Traceback" not in first + err
    assert "worker stopped after 0 chunk(s)" in out
    with App(pg_url) as app:
        assert any(w.status == "stopped" for w in app.manager.list_workers())


def test_a_database_that_never_comes_is_one_sentence(pg_url: str) -> None:
    url = through_port(pg_url, free_port())
    done = subprocess.run(
        [CHUNKSYNC, "--db", url, "worker", "--wait-for-db", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot connect to PostgreSQL" in done.stderr and "(waited 0.5 s)" in done.stderr
    assert "Traceback" not in done.stderr
