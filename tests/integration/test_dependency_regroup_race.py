"""A change of a dependency's limits against an operator's revive of one of its chunks, at the
same moment, on PostgreSQL. The change locks its queues' rows in its own transaction and moves
the chunks after it, in batches; the revive locks its chunk and then reopens its queue. Before
the move went into batches, the change locked the queues and then the chunks in one transaction,
and PostgreSQL ended the deadlock by failing one of the two; the one that loses such a race
runs again whole."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from chunksync.app import App
from chunksync.deps import operate
from tests import rawsql

pytestmark = pytest.mark.timeout(60)
DEP = "job://api.example.com"


def dead_chunk_of_a_done_queue(app: App, url: str) -> tuple[str, str]:
    """(queue id, chunk id): the queue's one chunk went dead, and so the queue is done."""
    app.handler("job")(lambda ctx: None)
    queue = app.create_queue(f"{DEP}/pages", [{"n": 0}]).id
    chunk = str(rawsql.run(url, "SELECT id FROM chunks WHERE queue_id = %s", queue)[0][0])
    rawsql.run(url, "UPDATE chunks SET status = 'dead' WHERE id = %s", chunk)
    rawsql.run(url, "UPDATE queues SET status = 'completed' WHERE id = %s", queue)
    return queue, chunk


def started(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """`work` on a thread of its own, and where its result (or its exception) will be."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(work())
        except Exception as exc:  # the test says what it was
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def until_another_waits_for_a_lock(url: str, holder: int, what: str) -> None:
    """Until a session of this database other than the test's and `holder` waits for a lock."""
    deadline = time.monotonic() + 20
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND pid <> %s AND wait_event_type = 'Lock'"
    )
    while rawsql.run(url, query, holder) == [(0,)]:
        assert time.monotonic() < deadline, f"the {what} never waited"
        time.sleep(0.02)


def test_a_change_of_limits_during_a_revive_moves_the_revived_chunk(pg_url: str) -> None:
    with App(pg_url) as app:
        queue, chunk = dead_chunk_of_a_done_queue(app, pg_url)

        revive = rawsql.connect(pg_url)
        revive.autocommit = False
        revive.execute("UPDATE chunks SET status = 'pending' WHERE id = %s", [chunk])
        thread, changed = started(
            lambda: operate.set_limits(app.deps, DEP, {"connections": 2}, reason="x")
        )
        # The change's move waits for the chunk the revive holds (the change's own transaction,
        # which locked the queue, has committed: before the batches it waited holding it)...
        until_another_waits_for_a_lock(pg_url, revive.info.backend_pid, "change")
        # ... and the revive reopens the queue, commits, and the move goes on.
        revive.execute("UPDATE queues SET status = 'active' WHERE id = %s", [queue])
        revive.commit()
        revive.close()
        thread.join(30)

        assert len(changed) == 1 and isinstance(changed[0], tuple), changed
        assert app.deps.get(DEP).limits.connections == 2
        rows = rawsql.run(pg_url, "SELECT status, claim_group FROM chunks WHERE id = %s", chunk)
        assert rows == [("pending", DEP)]  # revived, and in its dependency's new group
        assert len(operate.history(app.backend, DEP)) == 1  # the change, audited once


def test_a_revive_that_loses_a_deadlock_runs_again_whole(pg_url: str) -> None:
    """The other way round: the revive waits first, for the queue that a connection of the
    test's own holds, which then wants the chunk (as a change of limits did before its move
    went into batches), and loses."""
    with App(pg_url) as app:
        queue, chunk = dead_chunk_of_a_done_queue(app, pg_url)

        change = rawsql.connect(pg_url)
        change.autocommit = False
        change.execute("SELECT 1 FROM queues WHERE id = %s FOR NO KEY UPDATE", [queue])
        thread, revived = started(lambda: app.manager.retry_chunk(chunk, reason="x"))
        until_another_waits_for_a_lock(pg_url, change.info.backend_pid, "revive")
        # The revive holds the chunk and waits for the queue; the change now wants the chunk.
        change.execute("UPDATE chunks SET claim_group = %s WHERE id = %s", [DEP, chunk])
        change.commit()
        change.close()
        thread.join(30)

        assert len(revived) == 1 and not isinstance(revived[0], Exception), revived
        rows = rawsql.run(pg_url, "SELECT status, claim_group FROM chunks WHERE id = %s", chunk)
        assert rows == [("pending", DEP)]
        assert app.manager.get_queue(queue).status.value == "active"
        audited = rawsql.run(pg_url, "SELECT count(*) FROM audit_log WHERE action = 'retry_chunk'")
        assert audited == [(1,)]  # the revive, audited once
