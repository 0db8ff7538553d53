"""The planner's statistics after a bulk enqueue (PostgreSQL): refreshed only when the insert is
big beside what the planner knows of the chunks, and never by waiting for a lock on the table
(autovacuum holds one while it works on it, and a wait cancels it)."""

from __future__ import annotations

import threading

import psycopg
import pytest

from chunksync.app import App
from tests import rawsql

pytestmark = pytest.mark.timeout(120)


def enqueue(app: App, n: int, tenant: str = "default") -> None:
    app.create_queue("job://example.com", [{"n": i} for i in range(n)], tenant=tenant)


def known_rows(url: str) -> float:
    """What the planner knows of the chunks' count (pg_class.reltuples, -1: never analyzed)."""
    return float(rawsql.run(url, "SELECT reltuples FROM pg_class WHERE relname = 'chunks'")[0][0])


def test_a_bulk_enqueue_refreshes_statistics_only_when_big_beside_the_known_rows(
    pg_url: str,
) -> None:
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        enqueue(app, 999)  # below 1,000: never
        assert known_rows(pg_url) < 0
        enqueue(app, 1500)  # the table never analyzed
        assert known_rows(pg_url) == 2499
        enqueue(app, 30_000)  # more than a tenth of the known rows
        assert known_rows(pg_url) == 32_499
        enqueue(app, 3000)  # less than a tenth: the planner's picture still holds
        assert known_rows(pg_url) == 32_499


def test_a_bulk_enqueue_does_not_wait_for_a_lock_on_the_chunks_table(pg_url: str) -> None:
    # A VACUUM or ANALYZE of chunks (autovacuum's) holds SHARE UPDATE EXCLUSIVE, as here. An
    # ANALYZE after the enqueue waited for it, and a wait for autovacuum's lock cancels it: a
    # fleet's enqueues could keep the busiest table from ever being vacuumed.
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        done = threading.Event()
        with psycopg.connect(pg_url) as holder:
            holder.execute("LOCK TABLE chunks IN SHARE UPDATE EXCLUSIVE MODE")

            def run() -> None:
                enqueue(app, 1500)
                done.set()

            worker = threading.Thread(target=run)
            worker.start()
            try:
                assert done.wait(20), "the enqueue waited for the lock on chunks"
            finally:
                holder.rollback()
                worker.join(30)
        assert known_rows(pg_url) < 0  # skipped, left to autovacuum's ANALYZE
        assert len(app.manager.list_chunks(limit=2000)) == 1500
