"""PostgreSQL keeps each queue's count of its chunks on its row (queues.n_chunks, 0022), so
that a queue's completed chunks are its count less the others and the index of chunks by queue
and status holds no completed chunk (0023). The count must follow every writer: chunksync's
batches, a single-row INSERT as the release before 0022 writes, retention's deletes, a queue
deleted whole; 0023's count of the queues older than 0022 must be exact while chunks arrive;
and `chunksync check` finds a count that drifted."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from chunksync import search
from chunksync.app import App
from chunksync.check import check_database
from chunksync.models import ChunkStatus
from chunksync.observe.retention import cleanup
from tests.rawsql import connect, run

pytestmark = pytest.mark.timeout(120)

FAST: dict[str, Any] = {"poll_s": 0.05, "time_scale": 0.001, "lease_s": 5.0}
BACKFILL = (
    "UPDATE queues SET n_chunks = chunksync_count_queue_chunks(id)"
    " WHERE id IN (SELECT id FROM queues WHERE n_chunks IS NULL LIMIT 100)"
)
ONE_CHUNK = (
    "INSERT INTO chunks (id, queue_id, seq, payload, run_after, created_at, updated_at)"
    " VALUES ({id}, %s, %s, '{{}}', 0, 0, 0)"
)
ID = {"postgresql": "gen_random_uuid()", "sqlite": "lower(hex(randomblob(16)))"}


def kept_and_held(url: str, queue_id: str) -> tuple[Any, ...]:
    [row] = run(
        url,
        "SELECT n_chunks, (SELECT count(*) FROM chunks WHERE queue_id = q.id)"
        " FROM queues q WHERE id = %s",
        queue_id,
    )
    return tuple(row)


def test_every_writer_keeps_the_count(app: App, db_url: str) -> None:
    queue = app.create_queue("demo://faults?chunks=2500&seed=1&failure_rate=0")
    assert kept_and_held(db_url, queue.id) == (2500, 2500)  # three batches
    app.manager.add_chunks(queue.id, [{"n": i} for i in range(7)])
    for seq in (10_001, 10_002):  # as the code before the count inserts: a chunk a statement
        run(db_url, ONE_CHUNK.format(id=ID[db_url.split(":")[0]]), queue.id, seq)
    assert kept_and_held(db_url, queue.id) == (2509, 2509)
    app.worker(concurrency=4, **FAST).run_until_done([queue.id], timeout_s=90)
    totals = {k.value: v for k, v in app.manager.get_queue(queue.id).totals.items()}
    # the demo's own 2,500 complete; the nine it does not know die (bad data)
    assert (totals["completed"], totals["dead"], sum(totals.values())) == (2500, 9, 2509)
    cleanup(app.manager, older_than_s=0, batch=1000)  # retention, in batches
    assert kept_and_held(db_url, queue.id) == (0, 0)
    run(db_url, ONE_CHUNK.format(id=ID[db_url.split(":")[0]]), queue.id, 1)
    run(db_url, "DELETE FROM queues WHERE id = %s", queue.id)  # its chunks go with it
    assert check_database(app.backend).ok


def test_check_finds_a_count_that_drifted(app: App, db_url: str) -> None:
    queue = app.create_queue("demo://faults?chunks=5&seed=5&failure_rate=0")
    run(db_url, "UPDATE queues SET n_chunks = n_chunks + 1 WHERE id = %s", queue.id)
    report = check_database(app.backend)
    assert not report.ok and report.violations == 1
    [finding] = report.findings
    assert finding.check == "check_queue_totals" and queue.id in finding.line()
    assert "UPDATE queues SET n_chunks" in finding.line()


@pytest.mark.postgres
def test_completed_is_the_count_less_the_others(pg_url: str) -> None:
    with App(pg_url) as app:
        queue = app.create_queue("demo://faults?chunks=40&seed=3&failure_rate=0.5")
        app.worker(concurrency=2, **FAST).run_until_done([queue.id], timeout_s=90)
        with connect(pg_url) as conn:
            counted = dict(
                conn.execute(
                    "SELECT status, count(*) FROM chunks WHERE queue_id = %s GROUP BY status",
                    [queue.id],
                ).fetchall()
            )
            summary = conn.execute(
                "SELECT totals FROM get_queue_health_summary(%s)", [queue.id]
            ).fetchone()
        got = {k.value: v for k, v in app.manager.get_queue(queue.id).totals.items() if v}
        assert got == counted
        assert summary is not None
        assert {k: v for k, v in summary[0].items() if v} == counted


def waiting_for_a_lock(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return row is not None and row[0] > 0


@pytest.mark.postgres
@pytest.mark.parametrize("first", ["insert", "count"])
def test_the_count_of_an_older_queue_is_exact_while_chunks_arrive(pg_url: str, first: str) -> None:
    """A queue from before 0022 (NULL), counted by 0023's statement while a transaction adds
    chunks to it: whichever takes the queue's row first, the count ends exact."""
    with App(pg_url) as app:
        queue = app.create_queue("demo://faults?chunks=30&seed=1&failure_rate=0")
    with connect(pg_url) as conn:
        conn.execute("UPDATE queues SET n_chunks = NULL WHERE id = %s", [queue.id])
    adder, counter = connect(pg_url), connect(pg_url)
    try:
        add: tuple[str, list[Any]] = (ONE_CHUNK.format(id=ID["postgresql"]), [queue.id, 100])
        count: tuple[str, list[Any]] = (BACKFILL, [])
        (holder, held), (waiter, waits) = (
            ((adder, add), (counter, count))
            if first == "insert"
            else ((counter, count), (adder, add))
        )
        holder.execute("BEGIN")
        holder.execute(*held)  # holds the queue's row: the trigger's lock, or the count's
        thread = threading.Thread(target=waiter.execute, args=waits)
        thread.start()
        deadline = time.monotonic() + 30
        while not waiting_for_a_lock(holder) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting_for_a_lock(holder) and thread.is_alive()  # for the queue's row
        holder.execute("COMMIT")
        thread.join(30)
        assert not thread.is_alive()
    finally:
        adder.close()
        counter.close()
    assert kept_and_held(pg_url, queue.id) == (31, 31)


@pytest.mark.postgres
def test_no_index_holds_the_completed_chunks_by_queue(pg_url: str) -> None:
    with connect(pg_url) as conn:
        definition = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_queue_open'"
        ).fetchone()
        gone = conn.execute("SELECT to_regclass('chunks_queue_status_tenant')").fetchone()
    assert definition is not None and "WHERE (status <> 'completed'::text)" in definition[0]
    assert gone == (None,)


def test_the_search_counts_what_it_lists(app: App) -> None:
    """The dashboard's search: its count (on PostgreSQL from the queues' counts when no text or
    category is given) is the number of chunks its pages list, for every filter, and its pages
    are in queue order across queues and tenants, the offset counted over them all."""
    for tenant, chunks in (("acme", 30), ("beta", 12), ("acme", 7)):
        q = app.create_queue(
            f"demo://faults?chunks={chunks}&seed=2&failure_rate=0.4", tenant=tenant
        )
        app.worker(concurrency=2, **FAST).run_until_done([q.id], timeout_s=90)
    app.create_queue("demo://faults?chunks=5&seed=2&failure_rate=0", tenant="beta")  # waiting
    every = search.search(app.backend, search.ChunkQuery(limit=1000))
    assert len(every) == 54 and {c.status for c in every} >= {
        ChunkStatus.COMPLETED,
        ChunkStatus.PENDING,
    }
    assert [(c.queue_id, c.seq) for c in every] == sorted((c.queue_id, c.seq) for c in every)
    queries = [
        search.ChunkQuery(tenant=t, status=s, text=x, limit=1000)
        for t in (None, "acme", "beta", "nobody")
        for s in (None, ChunkStatus.COMPLETED, ChunkStatus.DEAD, ChunkStatus.PENDING)
        for x in ("", "faults")
    ]
    for query in queries:
        listed = search.search(app.backend, query)
        assert search.count(app.backend, query) == len(listed), query
        assert all(query.tenant in (None, c.tenant) for c in listed), query
    page = search.search(app.backend, search.ChunkQuery(limit=10, offset=25))
    assert page == every[25:35]
