"""A worker's stop ends, and closes what it opened, while the database holds its claim: a
lock on the chunks (a migration's, an operator's `CREATE INDEX`) keeps the claim waiting and the
process's one pooled connection with it."""

from __future__ import annotations

import logging
import os
import time

import psycopg
import pytest

from chunksync.app import App
from chunksync.models import ChunkStatus

pytestmark = [pytest.mark.postgres]


def waits_for_the_lock(url: str) -> bool:
    """The worker's pooled connection waits for the lock (its claim's, its upkeep's...)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            b"SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            b" AND application_name LIKE 'chunksync-%'"
        ).fetchall()
    return bool(rows)


def test_a_stop_ends_while_the_database_holds_the_claim(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with App(pg_url, pool_timeout_s=1.0) as app:
        app.handler("held")(lambda ctx: 1)
        queue = app.create_queue("held://x", [{"n": 1}])
        chunks = app.manager.list_chunks(queue.id)
        holder = psycopg.connect(pg_url)  # a transaction that holds the table
        holder.execute(b"LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE")
        worker = app.worker(poll_s=0.05, lease_s=30.0, shutdown_grace_s=0.2)
        try:
            worker.start()
            deadline = time.monotonic() + 30
            while not waits_for_the_lock(pg_url):
                assert time.monotonic() < deadline, "the worker never waited for the lock"
                time.sleep(0.05)
            with caplog.at_level(logging.ERROR):
                worker.stop()  # returns (its last step's database error was raised)
        finally:
            holder.rollback()
            holder.close()
        assert f"worker {worker.id} could not be marked stopped" in caplog.text
        # The pool's words were "cannot connect to PostgreSQL", with the server a step away.
        busy = "no connection to PostgreSQL at postgresql://chunksync_app@"
        assert busy in caplog.text and "stayed in use by statements that did not end" in caplog.text
        assert f"application_name = 'chunksync-{os.getpid()}'" in caplog.text
        assert "cannot connect" not in caplog.text
        # The claim went on once the lock was gone, after the stop: it gives its chunk back.
        deadline = time.monotonic() + 30
        while (chunk := app.manager.get_chunk(chunks[0].id)).status is not ChunkStatus.PENDING:
            assert time.monotonic() < deadline, f"the late claim kept its chunk: {chunk}"
            time.sleep(0.05)
        assert chunk.attempts == 0 and chunk.lease_token is None
