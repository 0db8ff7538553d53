"""Every index of `attempts` on SQLite is read by some statement: each attempt row writes every
index of the table, so one that no plan reads costs every attempt and serves nothing (migration
0013 dropped two such). The plans are SQLite's own (EXPLAIN QUERY PLAN) of every named query,
on a database a worker has written attempts to. And a sync plan's count of stored messages
reads indexes only, never a message's row. A tenant's reads find its chunks without an index of
them by every status (migration 0015), and a queue's chunks by status without its completed ones
(migration 0017)."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

from chunksync import sql
from chunksync.app import App
from chunksync.models import ChunkStatus, ErrorCategory


def _plan(conn: sqlite3.Connection, text: str) -> list[str]:
    """SQLite's plan of a query (EXPLAIN QUERY PLAN, each step's text), its parameters null."""
    params = dict.fromkeys(sql.NAMED_PARAM.findall(text))
    return [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + text, params)]


def indexes_read(path: Path) -> dict[str, set[str]]:
    """Each index SQLite's plans read, with the named queries whose plans read it."""
    read: dict[str, set[str]] = {}
    with closing(sqlite3.connect(path)) as conn:
        for name, text in sql.queries("sqlite").items():
            if "?1" in text:  # positional (Session.execute_rows): an INSERT, which reads none
                continue
            for step in _plan(conn, text):
                for index in re.findall(r"\bINDEX (\w+)", step):
                    read.setdefault(index, set()).add(name)
    return read


def plans_of(path: Path, names: tuple[str, ...]) -> dict[str, list[str]]:
    """SQLite's plan of each named query, on a new database at `path`."""
    with App(f"sqlite:///{path}"):
        pass
    with closing(sqlite3.connect(path)) as conn:
        return {name: _plan(conn, sql.queries("sqlite")[name]) for name in names}


def test_every_index_of_attempts_is_read_by_a_statement(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    with App(f"sqlite:///{path}") as app:
        app.handler("noop")(lambda ctx: None)
        queue = app.create_queue("noop://plans", ({"n": n} for n in range(50)))
        app.worker(concurrency=1).run_until_done([queue.id])
    conn = sqlite3.connect(path)
    try:
        indexes = {
            str(row[0])
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'"
                " AND tbl_name = 'attempts' AND sql IS NOT NULL"
            )
        }
        assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (50,)
    finally:
        conn.close()
    read = indexes_read(path)
    assert indexes, "attempts has no index at all"
    unread = sorted(indexes - set(read))
    assert not unread, f"indexes of attempts no statement reads: {unread}"
    # The queue summaries read the covering index that replaced the two dropped ones.
    assert {"health_queue_timed_count", "metrics_attempts"} <= read["attempts_queue_outcome"]


def test_a_plans_count_of_stored_messages_reads_no_message_row(tmp_path: Path) -> None:
    # A message's deleted_at comes after its raw bytes: a count that reads it walks every
    # message's overflow pages. The plan's count reads the primary key and the gone messages'
    # partial index only.
    plan = plans_of(tmp_path / "store.db", ("store_count_messages",))["store_count_messages"]
    searches = [step for step in plan if step.startswith("SEARCH")]
    assert len(searches) == 2, plan
    assert "COVERING INDEX sqlite_autoindex_mail_messages_1" in searches[0], plan
    assert "INDEX mail_messages_deleted" in searches[1], plan


def test_a_tenants_reads_find_its_chunks_without_an_index_of_every_status(tmp_path: Path) -> None:
    # Migration 0015: chunks_tenant_status changed at every claim and finish. A tenant's chunks
    # in flight are counted through a partial index of them alone, covering; its waiting and
    # dead chunks through its queues. None of its reads walks the chunks table.
    path = tmp_path / "tenants.db"
    names = ("tenant_queued", "tenants_list", "tenant_health", "list_chunks_tenant",
             "claim_chunks", "claim_chunks_of")  # fmt: skip
    plans = plans_of(path, names)
    with closing(sqlite3.connect(path)) as conn:
        chunk_indexes = {
            str(row[0])
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'chunks'"
            )
        }
    assert "chunks_tenant_status" not in chunk_indexes
    assert "chunks_tenant_in_flight" in chunk_indexes
    for name in ("tenant_queued", "tenants_list", "tenant_health", "list_chunks_tenant"):
        scans = [step for step in plans[name] if re.match(r"SCAN (chunks|c|p)\b", step)]
        assert not scans, (name, plans[name])
    for name in ("tenant_health", "claim_chunks", "claim_chunks_of"):
        counted = [step for step in plans[name] if "COVERING INDEX chunks_tenant_in_flight" in step]
        assert counted, (name, plans[name])
    # A tenant's list of chunks reads its queues' chunks in queue order, with no sort of them.
    assert not any("TEMP B-TREE" in step for step in plans["list_chunks_tenant"])


# Every read of a queue's chunks by status (migration 0017): each repeats the index's condition,
# without which SQLite would read all of the queue's chunks through (queue_id, seq).
QUEUE_OPEN_READERS = (
    "get_queue", "list_queues", "list_queues_page", "list_queues_tenant", "queue_open_chunk",
    "complete_queue_if_done", "cancel_queue_chunks", "health_system", "deps_list",
    "claim_chunks_of", "health_queue_slas", "metrics_backlog", "health_queue_chunks",
    "health_queues_chunks", "slo_queues", "scale_queues", "tenant_health", "metrics_tenants",
    "tenant_queued", "tenants_list",
)  # fmt: skip


def test_a_queues_chunks_by_status_are_read_without_its_completed_ones(tmp_path: Path) -> None:
    # chunks_queue_open leaves the completed chunks out: a finish writes no entry in it. A read
    # that named only the status would find the queue's chunks through (queue_id, seq) instead,
    # its whole history, completed chunks and all.
    path = tmp_path / "open.db"
    plans = plans_of(path, QUEUE_OPEN_READERS)
    with closing(sqlite3.connect(path)) as conn:
        indexes = dict(
            conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                         " AND tbl_name = 'chunks' AND sql IS NOT NULL").fetchall()
        )  # fmt: skip
    assert "chunks_queue_status" not in indexes
    assert indexes["chunks_queue_open"].endswith("WHERE status <> 'completed'")
    for name, plan in plans.items():
        assert any("INDEX chunks_queue_open" in step for step in plan), (name, plan)
    # A query written later that names a status but not the condition reads the queue's chunks
    # by (queue_id, seq): only the reads of all of a queue's chunks may.
    with closing(sqlite3.connect(path)) as conn:
        by_queue = {
            name
            for name, text in sql.queries("sqlite").items()
            if "?1" not in text
            and any("sqlite_autoindex_chunks_2 (queue_id=?)" in s for s in _plan(conn, text))
        }
    assert by_queue == {"next_seq", "check_queue_totals", "list_chunks_tenant", "chunks_search"}


def test_the_search_reads_a_tenants_queues_and_counts_from_the_queues(tmp_path: Path) -> None:
    # A tenant's first page reads its queues' chunks in (queue_id, seq) order, not every chunk
    # of the queues that sort before its own; with no text or category the count reads the
    # queues' counts (and, for the completed, the open chunks of each), never a chunk's row.
    plans = plans_of(tmp_path / "search.db", ("chunks_search", "chunks_search_count"))
    page = plans["chunks_search"]
    assert any("sqlite_autoindex_chunks_2 (queue_id=?)" in step for step in page), page
    assert not any("TEMP B-TREE" in step for step in page), page
    count = plans["chunks_search_count"]
    assert any("COVERING INDEX chunks_queue_open (queue_id=?)" in step for step in count), count


def test_a_claim_with_no_queue_to_claim_from_reads_no_chunk(tmp_path: Path) -> None:
    # As on PostgreSQL: a claim of kinds no active queue has must not read the backlog in order
    # for nothing. Its work (SQLite's virtual machine steps) does not grow with the backlog.
    path = tmp_path / "claim.db"
    with App(f"sqlite:///{path}") as app:
        app.handler("noop")(lambda ctx: None)
        app.create_queue("noop://small", ({"n": n} for n in range(100)))
        small = _claim_steps(path, ["another fleet's kind"])
        app.create_queue("noop://big", ({"n": n} for n in range(20_000)))
    big = _claim_steps(path, ["another fleet's kind"])
    assert big <= small * 2, (small, big)
    assert _claim_steps(path, ["noop"]) > big  # the same claim with a queue to claim from


def _claim_steps(path: Path, kinds: list[str]) -> int:
    """SQLite's virtual machine steps (in hundreds) for one claim, rolled back."""
    params = {"lease_s": 30.0, "worker_id": "w", "limit": 512, "kinds": json.dumps(kinds),
              "exclude": "[]", "queue_id": None, "aging_s": 300.0, "token": "t"}  # fmt: skip
    return _steps(path, "claim_chunks", params)


def test_a_listing_of_a_few_chunks_by_status_reads_no_history(tmp_path: Path) -> None:
    # `chunksync chunks --status processing` (or dead) read every chunk in (queue_id, seq) order
    # when fewer than its limit matched: 76 ms at 300,000 chunks. Its work now does not grow
    # with the completed chunks, and each listing still returns what the filters say, in order.
    path = tmp_path / "listing.db"
    with App(f"sqlite:///{path}") as app:
        app.handler("noop")(lambda ctx: None)
        queues = [app.create_queue("noop://a", ({"n": n} for n in range(60))).id]
        queues.append(app.create_queue("noop://b", ({"n": n} for n in range(60))).id)
        with closing(sqlite3.connect(path)) as conn:
            conn.execute(
                "UPDATE chunks SET status = 'dead', finished_at = created_at, dead_reason = 'x',"
                " last_category = CASE WHEN seq % 2 = 0 THEN 'auth' END WHERE seq % 10 = 3"
            )
            conn.execute("UPDATE chunks SET status = 'cancelled', finished_at = created_at"
                         " WHERE seq % 10 = 5")  # fmt: skip
            conn.commit()
        app.manager.claim("w", ["noop"], limit=15)
        small = {s: _listing_steps(path, s) for s in ("processing", "dead")}
        _check_listings(app, queues)
        app.create_queue("noop://c", ({"n": n} for n in range(20_000)))
        with closing(sqlite3.connect(path)) as conn:  # history: completed chunks
            conn.execute("UPDATE chunks SET status = 'completed', finished_at = created_at"
                         " WHERE status = 'pending' AND seq > 100")  # fmt: skip
            conn.commit()
        for status, steps in small.items():
            assert _listing_steps(path, status) <= steps * 2 + 1, status
        assert _listing_steps(path, "completed") > small["processing"]  # a listing that reads
        _check_listings(app, queues)


def _check_listings(app: App, queues: list[str]) -> None:
    every = sorted(app.manager.list_chunks(limit=10**6), key=lambda c: (c.queue_id, c.seq))
    for status in (None, *ChunkStatus):
        for queue_id in (None, queues[1]):
            for category in (None, ErrorCategory.AUTH):
                wanted = [
                    c.id
                    for c in every
                    if (status is None or c.status is status)
                    and (queue_id is None or c.queue_id == queue_id)
                    and (category is None or c.last_category is category)
                ][:7]
                found = app.manager.list_chunks(queue_id, status, category, limit=7)
                assert [c.id for c in found] == wanted, (status, queue_id, category)


def _listing_steps(path: Path, status: str) -> int:
    params = {"queue_id": None, "status": status, "category": None, "limit": 100}
    return _steps(path, "list_chunks", params)


def _steps(path: Path, name: str, params: dict[str, object]) -> int:
    """SQLite's virtual machine steps (in hundreds) for one named query, rolled back."""
    text = sql.queries("sqlite")[name]
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    with closing(sqlite3.connect(path)) as conn:
        conn.set_progress_handler(count, 100)
        conn.execute("BEGIN")
        conn.execute(text, params).fetchall()
        conn.rollback()
    return steps[0]
