"""A change of a dependency's limits against an operator's revive of one of its chunks, at the
same moment, on PostgreSQL: the change moves the dependency's chunks to their new claim group
with their queues' rows locked first, the revive locks its chunk and then reopens its queue.
PostgreSQL ends such a deadlock by failing one of the two; the change runs again whole."""

from __future__ import annotations

import threading
import time

import pytest

from chunksync.app import App
from chunksync.deps import operate
from tests import rawsql

pytestmark = pytest.mark.timeout(60)
DEP = "job://api.example.com"


def waiting_for_a_lock(url: str, pid: int) -> bool:
    rows = rawsql.run(url, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", pid)
    return bool(rows) and rows[0][0] == "Lock"


def test_a_change_of_limits_that_loses_a_deadlock_runs_again_whole(pg_url: str) -> None:
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        queue = app.create_queue(f"{DEP}/pages", [{"n": 0}])
        chunk = rawsql.run(pg_url, "SELECT id FROM chunks WHERE queue_id = %s", queue.id)[0][0]
        # The queue's one chunk went dead, and so the queue is done.
        rawsql.run(pg_url, "UPDATE chunks SET status = 'dead' WHERE id = %s", chunk)
        rawsql.run(pg_url, "UPDATE queues SET status = 'completed' WHERE id = %s", queue.id)

        revive = rawsql.connect(pg_url)
        revive.autocommit = False
        revive.execute("UPDATE chunks SET status = 'pending' WHERE id = %s", [chunk])
        changed: list[object] = []

        def change() -> None:
            try:
                changed.append(operate.set_limits(app.deps, DEP, {"connections": 2}, reason="x"))
            except Exception as exc:  # the test says what it was
                changed.append(exc)

        thread = threading.Thread(target=change)
        thread.start()
        # The change holds the queue's row and waits for the chunk the revive holds...
        deadline = time.monotonic() + 20
        holder = revive.info.backend_pid
        while not any(
            waiting_for_a_lock(pg_url, pid)
            for (pid,) in rawsql.run(
                pg_url,
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND pid <> %s",
                holder,
            )
        ):
            assert time.monotonic() < deadline, "the change never waited for the chunk"
            time.sleep(0.02)
        # ... and the revive reopens the queue: each waits for the other.
        revive.execute("UPDATE queues SET status = 'active' WHERE id = %s", [queue.id])
        revive.commit()
        revive.close()
        thread.join(30)

        assert len(changed) == 1 and isinstance(changed[0], tuple), changed
        assert app.deps.get(DEP).limits.connections == 2
        rows = rawsql.run(pg_url, "SELECT status, claim_group FROM chunks WHERE id = %s", chunk)
        assert rows == [("pending", DEP)]  # revived, and in its dependency's new group
        assert len(operate.history(app.backend, DEP)) == 1  # the change, audited once


def test_a_revive_that_loses_a_deadlock_runs_again_whole(pg_url: str) -> None:
    """The other way round: the revive waits first, for the queue a change of limits holds (a
    connection of the test's own, locking as the change does), and loses."""
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        queue = app.create_queue(f"{DEP}/pages", [{"n": 0}])
        chunk = rawsql.run(pg_url, "SELECT id FROM chunks WHERE queue_id = %s", queue.id)[0][0]
        rawsql.run(pg_url, "UPDATE chunks SET status = 'dead' WHERE id = %s", chunk)
        rawsql.run(pg_url, "UPDATE queues SET status = 'completed' WHERE id = %s", queue.id)

        change = rawsql.connect(pg_url)
        change.autocommit = False
        change.execute("SELECT 1 FROM queues WHERE id = %s FOR NO KEY UPDATE", [queue.id])
        revived: list[object] = []

        def revive() -> None:
            try:
                revived.append(app.manager.retry_chunk(str(chunk), reason="x"))
            except Exception as exc:  # the test says what it was
                revived.append(exc)

        thread = threading.Thread(target=revive)
        thread.start()
        deadline = time.monotonic() + 20
        holder = change.info.backend_pid
        while not any(
            waiting_for_a_lock(pg_url, pid)
            for (pid,) in rawsql.run(
                pg_url,
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND pid <> %s",
                holder,
            )
        ):
            assert time.monotonic() < deadline, "the revive never waited for the queue"
            time.sleep(0.02)
        # The revive holds the chunk and waits for the queue; the change now wants the chunk.
        change.execute("UPDATE chunks SET claim_group = %s WHERE id = %s", [DEP, chunk])
        change.commit()
        change.close()
        thread.join(30)

        assert len(revived) == 1 and not isinstance(revived[0], Exception), revived
        rows = rawsql.run(pg_url, "SELECT status, claim_group FROM chunks WHERE id = %s", chunk)
        assert rows == [("pending", DEP)]
        assert app.manager.get_queue(queue.id).status.value == "active"
        audited = rawsql.run(pg_url, "SELECT count(*) FROM audit_log WHERE action = 'retry_chunk'")
        assert audited == [(1,)]  # the revive, audited once
