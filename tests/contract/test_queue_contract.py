"""The queue's rules, identical on every backend: claim, lease fencing, recovery, interventions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chunksync.app import App
from chunksync.exceptions import ConfigurationError, InvalidPayload, NotFound, StateError
from chunksync.models import (
    Attempt,
    Chunk,
    ChunkStatus,
    ErrorCategory,
    Outcome,
    QueueStatus,
)
from chunksync.results import FinishResult
from chunksync.retry import DEFAULT_POLICY

KINDS = ["job"]
LEASE_S = 30.0


@pytest.fixture
def jobs(app: App) -> App:
    app.handler("job")(lambda ctx: None)
    return app


def attempt_of(chunk: Chunk, worker: str = "w1") -> Attempt:
    return Attempt(
        chunk_id=chunk.id,
        queue_id=chunk.queue_id,
        tenant=chunk.tenant,
        worker_id=worker,
        attempt=chunk.attempts,
        started_at=0.0,
        finished_at=0.01,
        outcome=Outcome.COMPLETED,
    )


def complete(app: App, chunk: Chunk, token: str, worker: str = "w1") -> bool:
    result = FinishResult(ChunkStatus.COMPLETED, Outcome.COMPLETED, items=1)
    return app.manager.finish(chunk, token, result, attempt_of(chunk, worker))


def test_create_queue_with_tenant_priority_and_totals(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{"n": i} for i in range(5)], tenant="acme", priority=3)
    assert q.tenant == "acme" and q.priority == 3 and q.status is QueueStatus.ACTIVE
    assert q.total == 5 and q.totals[ChunkStatus.PENDING] == 5
    chunks = jobs.manager.list_chunks(q.id)
    assert [c.seq for c in chunks] == [1, 2, 3, 4, 5]
    assert all(c.tenant == "acme" and c.priority == 3 for c in chunks)
    assert chunks[2].payload == {"n": 2}
    assert jobs.manager.get_queue(q.name, tenant="acme").id == q.id
    row = jobs.manager.queue_row(q.id)  # a worker's look: the row without counting chunks
    assert (row.id, row.tenant, row.status, row.totals) == (q.id, "acme", QueueStatus.ACTIVE, {})
    with pytest.raises(NotFound):
        jobs.manager.queue_row(q.name)  # by id only


def test_chunks_get_their_policys_attempts_unless_told(jobs: App) -> None:
    jobs.add_policy(replace(DEFAULT_POLICY, name="patient", max_attempts=8))
    patient = jobs.create_queue("job://p", [{}], policy="patient")
    told = jobs.create_queue("job://t", [{}], policy="patient", max_attempts=2)
    plain = jobs.create_queue("job://d", [{}])
    for queue, attempts in ((patient, 8), (told, 2), (plain, DEFAULT_POLICY.max_attempts)):
        assert jobs.manager.get_queue(queue.id).max_attempts == attempts
        assert [c.max_attempts for c in jobs.manager.list_chunks(queue.id)] == [attempts]


def test_bad_payloads_and_names_are_refused_clearly(jobs: App) -> None:
    with pytest.raises(InvalidPayload, match="not JSON-serialisable"):
        jobs.create_queue("job://x", [{"when": object()}])
    with pytest.raises(InvalidPayload):
        jobs.create_queue("job://x", [{"x": float("nan")}])
    with pytest.raises(ConfigurationError, match="unknown source kind 'nope'"):
        jobs.create_queue("nope://x", [{}])
    with pytest.raises(ConfigurationError, match="unknown retry policy"):
        jobs.create_queue("job://x", [{}], policy="gentle")
    with pytest.raises(NotFound):
        jobs.manager.get_queue("no-such-queue")
    assert jobs.manager.list_queues() == []  # nothing half-created


def test_text_one_dialect_cannot_store_is_refused_in_both(jobs: App) -> None:
    with pytest.raises(InvalidPayload, match=r"NUL character \(\\u0000\), which PostgreSQL"):
        jobs.create_queue("job://x", [{"name": "a\x00b"}])
    with pytest.raises(InvalidPayload, match="lone surrogate"):
        jobs.create_queue("job://x", [{"name": "a\udcffb"}])
    assert jobs.manager.list_queues() == []
    # A backslash followed by "u0000" is text like any other.
    q = jobs.create_queue("job://x", [{"path": "C:\\u0000", "k\\": "\\\\u0000"}])
    assert jobs.manager.list_chunks(q.id)[0].payload == {"path": "C:\\u0000", "k\\": "\\\\u0000"}


def test_claim_takes_highest_priority_then_oldest(jobs: App) -> None:
    low = jobs.create_queue("job://low", [{"q": "low"}] * 2, priority=0)
    high = jobs.create_queue("job://high", [{"q": "high"}] * 2, priority=5)
    token, claimed = jobs.manager.claim("w1", KINDS, limit=3, lease_s=LEASE_S)
    assert [c.queue_id for c in claimed] == [high.id, high.id, low.id]
    assert [c.seq for c in claimed] == [1, 2, 1]
    assert all(c.status is ChunkStatus.PROCESSING and c.attempts == 1 for c in claimed)
    assert all(c.lease_token == token and c.worker_id == "w1" for c in claimed)


def test_claim_skips_paused_queues_future_chunks_and_unknown_kinds(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{}] * 2)
    jobs.manager.pause_queue(q.id)
    assert jobs.manager.claim("w1", KINDS, limit=5)[1] == []
    jobs.manager.resume_queue(q.id)
    assert jobs.manager.claim("w1", ["other"], limit=5)[1] == []
    token, [chunk] = jobs.manager.claim("w1", KINDS)
    retry = FinishResult(ChunkStatus.PENDING, Outcome.RETRIED, delay_s=3600.0)
    assert jobs.manager.finish(chunk, token, retry, attempt_of(chunk))
    _, rest = jobs.manager.claim("w1", KINDS, limit=5)
    assert [c.id for c in rest] == [
        c.id for c in jobs.manager.list_chunks(q.id) if c.id != chunk.id
    ]


def test_claims_never_overlap(jobs: App) -> None:
    jobs.create_queue("job://x", [{}] * 10)
    seen: set[str] = set()
    for worker in ("w1", "w2", "w3", "w4", "w5"):
        _, claimed = jobs.manager.claim(worker, KINDS, limit=3)
        ids = {c.id for c in claimed}
        assert not ids & seen
        seen |= ids
    assert len(seen) == 10


def test_complete_finishes_the_queue(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{}] * 2)
    token, chunks = jobs.manager.claim("w1", KINDS, limit=2)
    assert complete(jobs, chunks[0], token)
    assert jobs.manager.get_queue(q.id).status is QueueStatus.ACTIVE
    assert complete(jobs, chunks[1], token)
    q = jobs.manager.get_queue(q.id)
    assert q.status is QueueStatus.COMPLETED and q.totals[ChunkStatus.COMPLETED] == 2
    attempts = jobs.manager.list_attempts(chunks[0].id)
    assert [a["outcome"] for a in attempts] == ["completed"]


def test_a_result_or_attempt_with_a_float_json_cannot_hold_writes_nothing(jobs: App) -> None:
    # The engine's batches are written by orjson, which would write NaN as null.
    jobs.create_queue("job://x", [{}])
    token, [chunk] = jobs.manager.claim("w1", KINDS)
    pending = FinishResult(ChunkStatus.PENDING, Outcome.RETRIED, delay_s=float("nan"))
    with pytest.raises(ValueError, match="not JSON compliant"):
        jobs.manager.finish(chunk, token, pending, attempt_of(chunk))
    slow = replace(attempt_of(chunk), finished_at=float("inf"))
    done = FinishResult(ChunkStatus.COMPLETED, Outcome.COMPLETED, items=1)
    with pytest.raises(ValueError, match="not JSON compliant"):
        jobs.manager.finish(chunk, token, done, slow)
    assert jobs.manager.list_attempts(chunk.id) == []
    assert jobs.manager.list_chunks(chunk.queue_id)[0].status is ChunkStatus.PROCESSING
    assert complete(jobs, chunk, token)


def test_a_dead_chunk_fails_the_queue_with_its_reason(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{}])
    token, [chunk] = jobs.manager.claim("w1", KINDS)
    dead = FinishResult(
        ChunkStatus.DEAD,
        Outcome.DEAD,
        category=ErrorCategory.NOT_FOUND,
        message="HTTPError: 404",
        dead_reason="not_found is never retried",
    )
    assert jobs.manager.finish(chunk, token, dead, attempt_of(chunk))
    chunk = jobs.manager.get_chunk(chunk.id)
    assert chunk.status is ChunkStatus.DEAD and chunk.dead_reason == "not_found is never retried"
    assert chunk.last_category is ErrorCategory.NOT_FOUND
    assert jobs.manager.get_queue(q.id).status is QueueStatus.FAILED


def test_deferral_gives_the_attempt_back(jobs: App) -> None:
    jobs.create_queue("job://x", [{}])
    token, [chunk] = jobs.manager.claim("w1", KINDS)
    defer = FinishResult(
        ChunkStatus.PENDING,
        Outcome.DEFERRED,
        delay_s=0.0,
        attempts_delta=-1,
        deferrals_delta=1,
        category=ErrorCategory.NETWORK,
    )
    assert jobs.manager.finish(chunk, token, defer, attempt_of(chunk))
    chunk = jobs.manager.get_chunk(chunk.id)
    assert chunk.status is ChunkStatus.PENDING and chunk.attempts == 0 and chunk.deferrals == 1


def test_a_stale_worker_cannot_overwrite_the_new_owner(jobs: App) -> None:
    jobs.create_queue("job://x", [{}])
    old_token, [chunk] = jobs.manager.claim("w-old", KINDS, lease_s=-1.0)
    [recovery] = jobs.manager.recover_stuck("w-new", lambda q: DEFAULT_POLICY)
    assert recovery.reason == "stuck" and recovery.to_status is ChunkStatus.PENDING
    new_token, [again] = jobs.manager.claim("w-new", KINDS)
    assert again.id == chunk.id and again.attempts == 2
    # The old owner wakes up and tries to finish and to heartbeat: both refused.
    assert not complete(jobs, chunk, old_token, "w-old")
    assert not jobs.manager.heartbeat_chunk(chunk.id, old_token, LEASE_S)
    assert jobs.manager.get_chunk(chunk.id).status is ChunkStatus.PROCESSING
    assert complete(jobs, again, new_token, "w-new")
    outcomes = [(a["worker_id"], a["outcome"]) for a in jobs.manager.list_attempts(chunk.id)]
    assert outcomes == [("w-old", "stuck"), ("w-old", "lost_lease"), ("w-new", "completed")]


def test_late_finalize_racing_recovery(jobs: App) -> None:
    """Whoever writes first wins; the other write is rejected, never both."""
    jobs.create_queue("job://x", [{}])
    token, [chunk] = jobs.manager.claim("w-old", KINDS, lease_s=-1.0)
    assert complete(jobs, chunk, token, "w-old")  # the worker finishes just in time
    assert jobs.manager.recover_stuck("w-new", lambda q: DEFAULT_POLICY) == []
    assert jobs.manager.get_chunk(chunk.id).status is ChunkStatus.COMPLETED


def test_recovery_is_audited_and_counts_the_attempt(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{}])
    _, [chunk] = jobs.manager.claim("w-dead", KINDS, lease_s=-1.0)
    jobs.manager.recover_stuck("w-live", lambda q: DEFAULT_POLICY)
    chunk = jobs.manager.get_chunk(chunk.id)
    assert chunk.status is ChunkStatus.PENDING and chunk.attempts == 1
    assert chunk.last_category is ErrorCategory.TIMEOUT and chunk.crash_count == 1
    [entry] = jobs.manager.list_audit(chunk_id=chunk.id)
    assert entry.action == "recover_stuck" and entry.actor == "w-live" and entry.reason == "stuck"
    assert entry.queue_id == q.id and entry.details["previous_worker"] == "w-dead"


def test_three_crashes_in_a_row_is_a_crash_loop(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{}], max_attempts=10)
    for _ in range(3):
        _, [chunk] = jobs.manager.claim("w-dead", KINDS, lease_s=-1.0)
        jobs.manager.recover_stuck("w-live", lambda q: DEFAULT_POLICY)
    chunk = jobs.manager.get_chunk(chunk.id)
    assert chunk.status is ChunkStatus.DEAD and chunk.dead_reason == "crash_loop"
    assert jobs.manager.get_queue(q.id).status is QueueStatus.FAILED


def test_a_normal_finish_resets_the_crash_count(jobs: App) -> None:
    jobs.create_queue("job://x", [{}], max_attempts=10)
    for _ in range(2):
        _, [chunk] = jobs.manager.claim("w-dead", KINDS, lease_s=-1.0)
        jobs.manager.recover_stuck("w-live", lambda q: DEFAULT_POLICY)
    token, [chunk] = jobs.manager.claim("w1", KINDS)
    retry = FinishResult(ChunkStatus.PENDING, Outcome.RETRIED, category=ErrorCategory.NETWORK)
    jobs.manager.finish(chunk, token, retry, attempt_of(chunk))
    assert jobs.manager.get_chunk(chunk.id).crash_count == 0


def test_stuck_out_of_attempts_goes_dead(jobs: App) -> None:
    jobs.create_queue("job://x", [{}], max_attempts=1)
    _, [chunk] = jobs.manager.claim("w-dead", KINDS, lease_s=-1.0)
    [recovery] = jobs.manager.recover_stuck("w-live", lambda q: DEFAULT_POLICY)
    assert recovery.to_status is ChunkStatus.DEAD
    assert jobs.manager.get_chunk(chunk.id).dead_reason == "stuck: out of attempts"


def test_a_silent_worker_is_lost_and_its_chunks_recovered(jobs: App) -> None:
    jobs.create_queue("job://x", [{}])
    jobs.manager.register_worker("w-silent", "host", 1, 1)
    _, [chunk] = jobs.manager.claim("w-silent", KINDS, lease_s=3600.0)
    assert jobs.manager.recover_stuck("w2", lambda q: DEFAULT_POLICY, worker_timeout_s=3600) == []
    recovered = jobs.manager.recover_stuck("w2", lambda q: DEFAULT_POLICY, worker_timeout_s=-1)
    assert [r.chunk_id for r in recovered] == [chunk.id]
    assert jobs.manager.get_worker("w-silent").status.value == "lost"
    actions = [e.action for e in jobs.manager.list_audit()]
    assert "worker_lost" in actions and "recover_stuck" in actions


def test_heartbeat_extends_the_lease_and_saves_a_checkpoint(jobs: App) -> None:
    jobs.create_queue("job://x", [{}])
    token, [chunk] = jobs.manager.claim("w1", KINDS, lease_s=-1.0)
    assert jobs.manager.heartbeat_chunk(chunk.id, token, 3600.0, checkpoint={"uid": 42}, items=7)
    assert jobs.manager.recover_stuck("w2", lambda q: DEFAULT_POLICY) == []
    chunk = jobs.manager.get_chunk(chunk.id)
    assert chunk.checkpoint == {"uid": 42} and chunk.items_processed == 7
    assert jobs.manager.extend_leases("w1", [(chunk.id, token)], 3600.0) == 1


# --- operator interventions -------------------------------------------------------------------


def test_retry_a_dead_chunk_and_a_whole_queue(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{}] * 2)
    token, chunks = jobs.manager.claim("w1", KINDS, limit=2)
    for c in chunks:
        dead = FinishResult(
            ChunkStatus.DEAD, Outcome.DEAD, dead_reason="permission is never retried"
        )
        jobs.manager.finish(c, token, dead, attempt_of(c))
    assert jobs.manager.get_queue(q.id).status is QueueStatus.FAILED
    revived = jobs.manager.retry_chunk(chunks[0].id, reason="token renewed")
    assert revived.status is ChunkStatus.PENDING and revived.attempts == 0
    assert revived.dead_reason is None
    assert jobs.manager.get_queue(q.id).status is QueueStatus.ACTIVE
    assert jobs.manager.retry_queue(q.id) == 1
    with pytest.raises(StateError, match="only a dead chunk can be retried"):
        jobs.manager.retry_chunk(chunks[0].id)
    with pytest.raises(StateError, match="no dead chunks"):
        jobs.manager.retry_queue(q.id)
    entries = jobs.manager.list_audit(queue_id=q.id)
    assert [e.action for e in entries] == ["retry_chunk", "retry_chunk"]
    assert entries[-1].reason == "token renewed" and entries[-1].actor == "operator"


def test_cancel_a_chunk_and_a_queue(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{}] * 3)
    token, [running] = jobs.manager.claim("w1", KINDS)
    first = jobs.manager.list_chunks(q.id, ChunkStatus.PENDING)[0]
    assert jobs.manager.cancel_chunk(first.id).status is ChunkStatus.CANCELLED
    with pytest.raises(StateError, match="already cancelled"):
        jobs.manager.cancel_chunk(first.id)
    assert jobs.manager.cancel_queue(q.id) == 2
    assert jobs.manager.get_queue(q.id).status is QueueStatus.CANCELLED
    # The worker that was running a chunk of it learns it was cancelled, not overwritten.
    assert not complete(jobs, running, token)
    assert jobs.manager.list_attempts(running.id)[-1]["outcome"] == "cancelled"
    assert jobs.manager.get_chunk(running.id).status is ChunkStatus.CANCELLED
    with pytest.raises(StateError, match="cannot be cancelled"):
        jobs.manager.cancel_queue(q.id)
    with pytest.raises(StateError):
        jobs.manager.retry_queue(q.id)


def test_pause_and_resume_refuse_the_wrong_state(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{}])
    assert jobs.manager.pause_queue(q.id).status is QueueStatus.PAUSED
    with pytest.raises(StateError, match="only a queue that is active"):
        jobs.manager.pause_queue(q.id)
    assert jobs.manager.resume_queue(q.id).status is QueueStatus.ACTIVE
    with pytest.raises(StateError, match="only a queue that is paused"):
        jobs.manager.resume_queue(q.id)


def test_release_a_stuck_chunk_and_requeue_a_dead_worker(jobs: App) -> None:
    jobs.create_queue("job://x", [{}] * 3)
    jobs.manager.register_worker("w-hung", "host", 1, 2)
    token, [a, b] = jobs.manager.claim("w-hung", KINDS, limit=2, lease_s=3600.0)
    with pytest.raises(StateError, match="is alive"):  # its handler would go on running
        jobs.manager.release_chunk(a.id)
    assert jobs.manager.get_chunk(a.id).status is ChunkStatus.PROCESSING
    released = jobs.manager.release_chunk(a.id, reason="hung on a huge message", force=True)
    assert released.status is ChunkStatus.PENDING and released.attempts == 1
    with pytest.raises(StateError, match="only a processing chunk can be released"):
        jobs.manager.release_chunk(a.id)
    with pytest.raises(StateError, match="is alive"):
        jobs.manager.requeue_worker("w-hung")
    assert jobs.manager.requeue_worker("w-hung", force=True) == 1
    assert jobs.manager.get_chunk(b.id).status is ChunkStatus.PENDING
    assert not complete(jobs, b, token, "w-hung")  # its late result is refused
    actions = [(e.action, e.chunk_id) for e in jobs.manager.list_audit()]
    assert ("release_chunk", a.id) in actions and ("release_chunk", b.id) in actions


def test_interventions_on_missing_things_say_so(jobs: App) -> None:
    for call in (
        lambda: jobs.manager.retry_chunk("nope"),
        lambda: jobs.manager.cancel_chunk("nope"),
        lambda: jobs.manager.release_chunk("nope"),
        lambda: jobs.manager.pause_queue("nope"),
        lambda: jobs.manager.requeue_worker("nope"),
    ):
        with pytest.raises(NotFound):
            call()


def test_add_chunks_reopens_a_finished_queue(jobs: App) -> None:
    q = jobs.create_queue("job://x", [{}])
    token, [chunk] = jobs.manager.claim("w1", KINDS)
    complete(jobs, chunk, token)
    assert jobs.manager.get_queue(q.id).status is QueueStatus.COMPLETED
    assert jobs.manager.add_chunks(q.id, [{"more": 1}]) == 1
    q = jobs.manager.get_queue(q.id)
    assert q.status is QueueStatus.ACTIVE and q.total == 2
    assert jobs.manager.list_chunks(q.id)[-1].seq == 2
