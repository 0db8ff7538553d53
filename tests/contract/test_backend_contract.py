"""The backend contract, on every backend: named queries, dict rows of the same kinds,
transactions, error conversion, migrations, and the lease fencing the manager builds on them."""

from __future__ import annotations

import inspect
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import pytest

from chunksync import sql
from chunksync.app import App
from chunksync.backends import Backend, open_backend
from chunksync.backends.sqlite import SQLITE_ERRORS
from chunksync.exceptions import (
    BackendBusy,
    BackendError,
    BackendUnavailable,
    IntegrityConflict,
    NotFound,
    SchemaError,
)
from chunksync.models import Attempt, Chunk, ChunkStatus, Outcome
from chunksync.results import FinishResult
from tests.rawsql import run

pytestmark = pytest.mark.timeout(60)

DIALECTS = ["sqlite", "postgres"]
_PARAM = re.compile(rf"{sql.NAMED_PARAM.pattern}|%\((\w+)\)s")


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "state") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def attempt_for(chunk_id: str, queue_id: str, worker: str) -> Attempt:
    return Attempt(
        chunk_id=chunk_id,
        queue_id=queue_id,
        tenant="default",
        worker_id=worker,
        attempt=1,
        started_at=0.0,
        finished_at=0.01,
        outcome=Outcome.COMPLETED,
        chunk_size=1,
        items_processed=1,
    )


DONE = FinishResult(ChunkStatus.COMPLETED, Outcome.COMPLETED, items=1)


# --- the named queries: one set, one signature, on every dialect ---------------------------


def test_every_dialect_has_the_same_query_names() -> None:
    # PostgreSQL alone ships the SQL health interface; its queries are named pg_*. SQLite alone
    # logs Message-ID keys (its backend's `message_id_log`); those queries are named sqlite_*.
    postgres = {name for name in sql.queries("postgres") if not name.startswith("pg_")}
    assert postgres == {name for name in sql.queries("sqlite") if not name.startswith("sqlite_")}


@pytest.mark.parametrize("name", ["claim_chunks", "claim_chunks_of"])
def test_each_claim_returns_every_field_of_a_chunk(name: str) -> None:
    """A claim that names its columns (PostgreSQL's, read in binary) names every field of a
    Chunk and the fair order's place: one it left out would load as None (`Chunk.from_table`
    takes a lease or a checkpoint as optional), and the chunk would lose it silently."""
    for dialect in ("postgres", "sqlite"):
        returning = sql.queries(dialect)[name].rsplit("RETURNING", 1)[1].strip()
        if returning in ("*", "c.*"):
            continue
        named = {item.split(" AS ")[-1].strip().removeprefix("c.") for item in returning.split(",")}
        assert named == {f.name for f in fields(Chunk)} | {"fair_key"}, (dialect, name)


_POSITIONAL = re.compile(r"\?(\d+)")


@pytest.mark.parametrize(
    "name", sorted(n for n in sql.queries("sqlite") if not n.startswith("sqlite_"))
)
def test_every_query_takes_the_same_parameters(name: str) -> None:
    def text(dialect: str) -> str:
        return re.sub(r"'[^']*'", "''", re.sub(r"--[^\n]*", "", sql.queries(dialect)[name]))

    def params(dialect: str) -> set[str]:
        return {a or b for a, b in _PARAM.findall(text(dialect))}

    positions = {int(n) for n in _POSITIONAL.findall(text("sqlite"))}
    if positions:  # a statement for Session.execute_rows: a row's values by position
        assert positions == set(range(1, max(positions) + 1)), positions
        assert params("sqlite") == set() and params("postgres") == {"batch"}
    else:
        assert params("postgres") == params("sqlite")


def test_a_batch_of_rows_is_written_whole_or_not_at_all(app: App) -> None:
    m = app.manager
    app.handler("noop")(lambda ctx: None)
    queue = app.create_queue("noop", payloads=[{"n": 1}, {"n": 2}])
    first, second = m.list_chunks(queue_id=queue.id)
    rows = [
        [c.id, queue.id, "default", "wörker", 1, 0.25, "retried", 3, 2, 8.0, None,
         "timeout", "rule ✓", "said «no»", 1.5, None]
        for c in (first, second)
    ]  # fmt: skip
    with pytest.raises(RuntimeError), app.backend.transaction() as s:
        s.execute_rows("insert_attempts", rows)
        raise RuntimeError("rolled back")
    assert m.list_attempts(first.id) == []
    with app.backend.transaction() as s:
        s.execute_rows("insert_attempts", rows)
        s.execute_rows("insert_attempts", [])
    for chunk in (first, second):
        (row,) = m.list_attempts(chunk.id)
        assert (row["worker_id"], row["outcome"], row["chunk_size"], row["items_processed"]) == (
            "wörker", "retried", 3, 2,
        )  # fmt: skip
        assert (row["category"], row["rule"], row["message"]) == ("timeout", "rule ✓", "said «no»")
        assert row["processing_s"] == 0.25 and row["retry_delay_s"] == 1.5
        assert row["items_per_s"] == 8.0 and row["efficiency"] is None and row["rss_bytes"] is None
        assert abs(row["finished_at"] - row["started_at"] - 0.25) < 1e-6


def test_results_have_the_same_columns_and_kinds(sqlite_url: str, pg_url: str) -> None:
    shapes = []
    for url in (sqlite_url, pg_url):
        with App(url) as app:
            app.handler("noop")(lambda ctx: None)
            queue = app.create_queue("noop", payloads=[{"n": 1}, "text", 2])
            token, chunks = app.manager.claim("w", ["noop"], limit=1)
            app.manager.finish(chunks[0], token, DONE, attempt_for(chunks[0].id, queue.id, "w"))
            app.manager.register_worker("w", "host", 1, 1)
            b = app.backend
            rows = {
                "get_queue": b.fetch_one("get_queue", {"id": queue.id, "tenant": "default"}),
                "get_chunk": b.fetch_one("get_chunk", {"id": chunks[0].id}),
                "list_attempts": b.fetch_one("list_attempts", {"chunk_id": chunks[0].id}),
                "get_worker": b.fetch_one("get_worker", {"id": "w"}),
                "now": b.fetch_one("now"),
                "health_hourly": b.fetch_one("health_hourly", {"window_s": 3600.0}),
                "health_system": b.fetch_one(
                    "health_system", {"worker_timeout_s": 60.0, "window_s": 3600.0}
                ),
            }
            shapes.append(
                {name: {k: _kind(v) for k, v in (row or {}).items()} for name, row in rows.items()}
            )
    # A chunk's claim group is PostgreSQL's alone (migration 0025): no Chunk field reads it,
    assert shapes[1]["get_chunk"].pop("claim_group") == "str"
    # Nor a queue's walk of its chunks to another group (migration 0027): no Queue field.
    assert shapes[1]["get_queue"].pop("regroup_seq") == "null"
    assert shapes[0] == shapes[1]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | int):
        return "int"
    if isinstance(value, float):
        return "float"
    return type(value).__name__


# --- transactions and errors ---------------------------------------------------------------


def _queue_params(queue_id: str) -> dict[str, Any]:
    return {
        "id": queue_id,
        "tenant": "default",
        "name": "q",
        "source": "noop",
        "kind": "noop",
        "priority": 0,
        "policy": "default",
        "max_attempts": 3,
    }


QUEUE_ID = "0f6a5b8e-5a1e-4c55-9a57-1f4d6b8d2a10"


def test_a_transaction_that_raises_is_rolled_back(app: App) -> None:
    with pytest.raises(RuntimeError), app.backend.transaction() as s:
        s.execute("insert_queue", _queue_params(QUEUE_ID))
        raise RuntimeError("boom")
    assert app.backend.fetch_one("get_queue", {"id": QUEUE_ID, "tenant": "default"}) is None


def test_a_nested_transaction_joins_the_outer_one(app: App) -> None:
    with pytest.raises(RuntimeError), app.backend.transaction() as s:
        s.execute("insert_queue", _queue_params(QUEUE_ID))
        assert app.backend.fetch_one("get_queue", {"id": QUEUE_ID, "tenant": "default"})
        raise RuntimeError("boom")
    assert app.backend.fetch_one("get_queue", {"id": QUEUE_ID, "tenant": "default"}) is None


def test_a_committed_transaction_is_visible(app: App) -> None:
    with app.backend.transaction() as s:
        s.execute("insert_queue", _queue_params(QUEUE_ID))
    row = app.backend.fetch_one("get_queue", {"id": QUEUE_ID, "tenant": "default"})
    assert row is not None and row["id"] == QUEUE_ID and row["n_pending"] == 0


def test_a_duplicate_key_is_an_integrity_conflict(app: App, db_url: str) -> None:
    app.backend.execute("insert_queue", _queue_params(QUEUE_ID))
    with pytest.raises(IntegrityConflict) as caught:
        app.backend.execute("insert_queue", _queue_params(QUEUE_ID))
    assert caught.value.__cause__ is not None
    if db_url.startswith("postgres"):
        assert caught.value.sqlstate == "23505"


def _sqlite_error_classes() -> list[type[sqlite3.Error]]:
    found = {
        cls
        for _, cls in inspect.getmembers(sqlite3, inspect.isclass)
        if issubclass(cls, sqlite3.Error)
    }
    return sorted(found, key=lambda c: c.__qualname__)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("boom", None),
        ("database is locked", BackendBusy),
        ("file is not a database", SchemaError),
        ("unable to open database file", BackendUnavailable),
    ],
)
def test_every_sqlite3_exception_is_converted_at_the_boundary(
    message: str, expected: type[BackendError] | None
) -> None:
    """What SQLITE_ERRORS (the one boundary every sqlite3 call runs in) lets out, for every
    class sqlite3 has: a chunksync error raised from the driver's."""
    classes = _sqlite_error_classes()
    assert len(classes) >= 9  # Error and its eight DB-API subclasses
    for cls in classes:
        original = cls(message)
        with pytest.raises(BackendError) as caught, SQLITE_ERRORS:
            raise original
        want = IntegrityConflict if issubclass(cls, sqlite3.IntegrityError) else expected
        assert type(caught.value) is (want or BackendError), cls
        assert caught.value.__cause__ is original
    with pytest.raises(RuntimeError), SQLITE_ERRORS:  # anything else passes through untouched
        raise RuntimeError("not the driver's")


def test_a_list_parameter_is_encoded_by_the_backend(app: App) -> None:
    names = app.backend.list_param(["queues", "no_such_table", "chunks"])
    rows = app.backend.fetch_all("schema_tables", {"names": names})
    assert sorted(r["name"] for r in rows) == ["chunks", "queues"]


def test_an_unknown_query_is_a_backend_error(app: App) -> None:
    with pytest.raises(BackendError, match="no query named"):
        app.backend.fetch_one("no_such_query")


def test_an_id_that_is_not_a_uuid_is_not_found(app: App) -> None:
    with pytest.raises(NotFound):
        app.manager.get_queue("no-such-queue")
    with pytest.raises(NotFound):
        app.manager.get_chunk("no-such-chunk")


@pytest.mark.parametrize("payload", [{"a": [1, 2]}, "a string", 42, 1.5, None, [1, "é"], True])
def test_payloads_come_back_as_they_went_in(app: App, payload: Any) -> None:
    app.handler("noop")(lambda ctx: None)
    queue = app.create_queue("noop", payloads=[payload])
    (chunk,) = app.manager.list_chunks(queue.id)
    assert chunk.payload == payload and type(chunk.payload) is type(payload)


# --- migrations ------------------------------------------------------------------------------


def test_migrate_is_idempotent(db_url: str) -> None:
    latest = sql.latest_version(open_backend(db_url, migrate=False).dialect)
    with open_backend(db_url) as backend:
        assert backend.migrate() == latest
        assert backend.migrate() == latest
        assert backend.schema_version() == latest
    with open_backend(db_url) as again:
        assert again.schema_version() == latest


def test_a_newer_schema_is_refused(db_url: str) -> None:
    with open_backend(db_url) as backend:
        latest = backend.schema_version()
    run(
        db_url,
        f"INSERT INTO schema_version (version, name, applied_at) VALUES ({latest + 1}, 'x', 0)",
    )
    with pytest.raises(SchemaError, match="newer than this chunksync"):
        open_backend(db_url)


# --- the lease fencing the manager builds on -------------------------------------------------


def _expire(backend: Backend, chunk_id: str) -> None:
    """Wait, by the database's clock, until the chunk's lease has run out."""

    def expired() -> bool:
        row = backend.fetch_one("get_chunk", {"id": chunk_id})
        now = backend.fetch_one("now")
        assert row is not None and now is not None
        return float(row["lease_expires_at"]) < float(now["now"])

    wait_for(expired, what="the lease to expire")


def test_a_stale_workers_late_finish_is_rejected(app: App) -> None:
    app.handler("noop")(lambda ctx: None)
    queue = app.create_queue("noop", payloads=[{"n": 1}])
    m = app.manager
    stale_token, (chunk,) = m.claim("stale", ["noop"], lease_s=0.2)
    _expire(app.backend, chunk.id)
    recovered = m.recover_stuck("leader", lambda q: app.policy("default"))
    assert [r.chunk_id for r in recovered] == [chunk.id]
    token, (again,) = m.claim("fresh", ["noop"], lease_s=30)
    assert again.id == chunk.id and again.attempts == 2

    assert not m.finish(chunk, stale_token, DONE, attempt_for(chunk.id, queue.id, "stale"))
    assert m.get_chunk(chunk.id).status is ChunkStatus.PROCESSING
    assert m.finish(again, token, DONE, attempt_for(chunk.id, queue.id, "fresh"))

    outcomes = [a["outcome"] for a in m.list_attempts(chunk.id)]
    assert outcomes == [Outcome.STUCK, Outcome.LOST_LEASE, Outcome.COMPLETED]
    assert [e.action for e in m.list_audit(chunk_id=chunk.id)] == ["recover_stuck"]
    assert m.get_queue(queue.id).status == "completed"


def test_heartbeats_and_releases_are_fenced(app: App) -> None:
    app.handler("noop")(lambda ctx: None)
    app.create_queue("noop", payloads=[{"n": 1}])
    m = app.manager
    token, (chunk,) = m.claim("w", ["noop"], lease_s=5)
    assert m.heartbeat_chunk(chunk.id, token, 10, checkpoint={"at": 3}, items=3)
    assert not m.heartbeat_chunk(chunk.id, "00000000-0000-0000-0000-000000000000", 10)
    assert m.extend_leases("w", [(chunk.id, token)], 10) == 1
    assert m.extend_leases("w", [(chunk.id, "00000000-0000-0000-0000-000000000000")], 10) == 0
    assert m.extend_leases("other", [(chunk.id, token)], 10) == 0
    assert m.get_chunk(chunk.id).checkpoint == {"at": 3}
    assert m.release(chunk, token, refund=True)
    assert not m.release(chunk, token, refund=True)
    assert m.get_chunk(chunk.id).attempts == 0


def test_a_batch_is_released_in_one_statement_each_chunk_fenced(app: App) -> None:
    """A stopping worker gives its unrun chunks back at once; one whose lease another worker
    took meanwhile stays with that worker."""
    app.handler("noop")(lambda ctx: None)
    app.create_queue("noop", payloads=[1, 2, 3])
    m = app.manager
    token, chunks = m.claim("w", ["noop"], limit=3, lease_s=30)
    assert len(chunks) == 3
    assert m.heartbeat_chunk(chunks[1].id, token, 0.2)  # this one's lease alone runs out
    _expire(app.backend, chunks[1].id)
    m.recover_stuck("leader", lambda q: app.policy("default"))
    _, (taken,) = m.claim("other", ["noop"], lease_s=30)
    assert taken.id == chunks[1].id
    given = m.release_many([(c, token) for c in chunks], refund=True)
    assert given == {chunks[0].id, chunks[2].id}
    for chunk in (chunks[0], chunks[2]):
        row = m.get_chunk(chunk.id)
        assert (row.status, row.attempts, row.lease_token) == (ChunkStatus.PENDING, 0, None)
    kept = m.get_chunk(taken.id)
    assert (kept.status, kept.worker_id) == (ChunkStatus.PROCESSING, "other")
    assert m.release_many([], refund=True) == set()


def test_claims_follow_priority_and_skip_paused_queues(app: App) -> None:
    app.handler("noop")(lambda ctx: None)
    low = app.create_queue("noop", payloads=[1, 2], name="low")
    high = app.create_queue("noop", payloads=[3], name="high", priority=5)
    paused = app.create_queue("noop", payloads=[4], name="paused", priority=9)
    app.manager.pause_queue(paused.id)
    _, claimed = app.manager.claim("w", ["noop"], limit=10)
    assert [c.queue_id for c in claimed] == [high.id, low.id, low.id]
    assert [c.payload for c in claimed] == [3, 1, 2]
    assert app.manager.claim("w", ["other"], limit=10)[1] == []


@pytest.mark.parametrize("payload", [{"a": [1, 2]}, "a string", 42, 1.5, None, [1, "é"], True])
def test_a_claimed_chunk_loads_as_the_chunk_read_back(app: App, payload: Any) -> None:
    """The claim loads its rows as tuples (`Backend.fetch_table`, `Chunk.from_table`); every
    other read of a chunk as a dict (`Chunk.from_row`): both give the same chunk."""
    app.handler("noop")(lambda ctx: None)
    queue = app.create_queue("noop", payloads=[payload, {"n": 2}], priority=3)
    token, claimed = app.manager.claim("w", ["noop"], limit=10)
    assert len(claimed) == 2 and [c.seq for c in claimed] == [1, 2]
    for chunk in claimed:
        assert chunk == app.manager.get_chunk(chunk.id)
        assert chunk.status is ChunkStatus.PROCESSING and chunk.lease_token == token
        assert chunk.queue_id == queue.id and chunk.attempts == 1 and chunk.priority == 3
    assert type(claimed[0].payload) is type(payload) and claimed[0].payload == payload


def test_operator_interventions_are_audited(app: App) -> None:
    app.handler("noop")(lambda ctx: None)
    queue = app.create_queue("noop", payloads=[1, 2])
    m = app.manager
    first, second = m.list_chunks(queue.id)
    m.cancel_chunk(first.id)
    token, (chunk,) = m.claim("w", ["noop"])
    dead = FinishResult(ChunkStatus.DEAD, Outcome.DEAD, dead_reason="bad")
    m.finish(chunk, token, dead, attempt_for(chunk.id, queue.id, "w"))
    assert m.get_queue(queue.id).status == "failed"
    assert m.retry_chunk(second.id).status is ChunkStatus.PENDING
    assert m.get_queue(queue.id).status == "active"
    actions = [e.action for e in m.list_audit(queue_id=queue.id)]
    assert actions == ["retry_chunk", "cancel_chunk"]
