"""A worker's statements on PostgreSQL run on room for its slots and its heartbeat: one of them
held up by a lock (an operator's transaction on the workers' table, a migration) leaves the
others their own connection. With one pooled connection (0.1.0's), the slots queued behind it."""

from __future__ import annotations

import time

import psycopg
import pytest

from chunksync.app import App
from chunksync.models import ChunkStatus

pytestmark = [pytest.mark.postgres]


def heartbeat_waits(url: str, pid_name: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            b"SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            b" AND application_name = %s",
            [pid_name],
        ).fetchone()
    return bool(row and row[0])


def drain_while_the_heartbeat_waits(url: str, db_connections: int | None) -> int:
    """Chunks completed within 10 s by a worker of two slots whose heartbeat waits for a lock
    on its own row (the chunks enqueued and counted by another app: its own pool)."""
    with App(url, application_name="chunksync-held-beat") as app, App(url) as outside:
        app.handler("beat")(lambda ctx: None)
        outside.handler("beat")(lambda ctx: None)
        worker = app.worker(concurrency=2, poll_s=0.05, lease_s=0.6, db_connections=db_connections)
        holder = psycopg.connect(url)
        try:
            worker.start()
            holder.execute(b"SELECT 1 FROM workers WHERE id = %s FOR UPDATE", [worker.id])
            deadline = time.monotonic() + 30
            while not heartbeat_waits(url, "chunksync-held-beat"):
                assert time.monotonic() < deadline, "the heartbeat never waited for the lock"
                time.sleep(0.05)
            queue = outside.create_queue("beat://x", [{"n": n} for n in range(20)])
            deadline = time.monotonic() + 10
            done = 0
            while done < 20 and time.monotonic() < deadline:
                done = outside.manager.get_queue(queue.id).totals.get(ChunkStatus.COMPLETED, 0)
                time.sleep(0.05)
            return done
        finally:
            holder.rollback()
            holder.close()
            worker.stop()


def test_slots_run_while_the_heartbeat_waits_for_a_lock(pg_url: str) -> None:
    assert drain_while_the_heartbeat_waits(pg_url, None) == 20


def test_one_connection_a_worker_queues_its_slots_behind_the_heartbeat(pg_url: str) -> None:
    # The setting for a fleet short of connections keeps 0.1.0's one: the contrast that shows
    # the test above is about the pool's room.
    assert drain_while_the_heartbeat_waits(pg_url, 1) == 0
