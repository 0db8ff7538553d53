"""Health answers against figures computed by hand, identical on every backend."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from chunksync.app import App
from chunksync.models import Attempt, ChunkStatus, ErrorCategory, Outcome
from chunksync.observe import health, listing, rollups, trends
from chunksync.observe.model import HealthState, HealthThresholds, assess
from chunksync.results import FinishResult

C = ErrorCategory


def attempt(
    app: App, outcome: Outcome, seconds: float, category: ErrorCategory | None, items: int
) -> None:
    token, [chunk] = app.manager.claim("w1", ["job"])
    status = {
        Outcome.COMPLETED: ChunkStatus.COMPLETED,
        Outcome.DEAD: ChunkStatus.DEAD,
    }.get(outcome, ChunkStatus.PENDING)
    result = FinishResult(
        status,
        outcome,
        category=category,
        items=items,
        delay_s=0.0 if status is not ChunkStatus.PENDING else -1.0,
        dead_reason="x" if status is ChunkStatus.DEAD else None,
    )
    a = Attempt(
        chunk_id=chunk.id,
        queue_id=chunk.queue_id,
        tenant=chunk.tenant,
        worker_id="w1",
        attempt=chunk.attempts,
        started_at=0.0,
        finished_at=seconds,
        outcome=outcome,
        category=category,
        items_processed=items,
        retry_delay_s=2.0 if outcome is Outcome.RETRIED else None,
    )
    assert app.manager.finish(chunk, token, result, a)


@pytest.fixture
def measured(app: App) -> App:
    app.handler("job")(lambda ctx: None)
    q = app.create_queue("job://x", [{}] * 4)
    # Hand-made history: 6 attempts over 4 chunks.
    attempt(app, Outcome.RETRIED, 1.0, C.NETWORK, 0)  # chunk 1 fails ...
    attempt(app, Outcome.RETRIED, 3.0, C.RATE_LIMIT, 0)  # chunk 2 fails ...
    attempt(app, Outcome.COMPLETED, 2.0, None, 100)  # chunk 3
    attempt(app, Outcome.DEAD, 0.5, C.NOT_FOUND, 0)  # chunk 4
    attempt(app, Outcome.COMPLETED, 4.0, None, 300)  # chunk 1 (retried, run_after passed)
    attempt(app, Outcome.COMPLETED, 2.0, None, 100)  # chunk 2
    assert app.manager.get_queue(q.id).status.value == "failed"
    return app


def test_queue_summary_by_hand(measured: App) -> None:
    [q] = measured.manager.list_queues()
    s = health.queue_summary(measured.manager, q)
    assert s.attempts == 6 and s.completed_attempts == 3 and s.failed_attempts == 3
    assert s.retries == 2 and s.dead_attempts == 1 and s.deferrals == 0
    assert s.success_rate == pytest.approx(0.5)
    assert s.failures_by_category == {"network": 1, "rate_limit": 1, "not_found": 1}
    assert s.avg_processing_s == pytest.approx(12.5 / 6)
    # percentile_cont(0.95) of [0.5, 1, 2, 2, 3, 4]: rank 4.75 -> 3 + 0.75 * (4 - 3)
    assert s.p95_processing_s == pytest.approx(3.75)
    assert s.items_per_s == pytest.approx(500 / 8.0)
    assert s.total_retry_delay_s == pytest.approx(4.0)
    assert s.totals == {"pending": 0, "processing": 0, "completed": 3, "dead": 1, "cancelled": 0}
    assert s.progress == 1.0 and s.dead == 1 and s.stuck == 0 and s.eta_s == 0.0


def test_system_summary_and_state(measured: App) -> None:
    s = health.system_summary(measured.manager)
    assert s.attempts_5m == 6 and s.error_rate_5m == pytest.approx(0.5)
    assert s.top_failure_categories[0][1] == 1 and len(s.top_failure_categories) == 3
    assert s.dead == 1 and s.backlog == 0 and s.active_queues == 0
    assert s.state is HealthState.HEALTHY  # 6 attempts are too few to judge a rate
    strict = health.system_summary(measured.manager, HealthThresholds(min_attempts=5))
    assert strict.state is HealthState.CRITICAL
    assert strict.reasons == ["50% of 6 attempts failed in the last 5 minutes"]


def test_hourly_trend(measured: App) -> None:
    [hour] = trends.hourly(measured.manager)
    assert hour["attempts"] == 6 and hour["successes"] == 3
    assert hour["failures"] == {"network": 1, "rate_limit": 1, "not_found": 1}


@pytest.mark.parametrize(
    ("args", "state", "reason"),
    [
        (
            (0, 10, None, 0, None, 0, 0),
            HealthState.CRITICAL,
            "no live workers while 10 chunks wait",
        ),
        ((2, 10, 7200.0, 0, None, 0, 0), HealthState.DEGRADED, "has waited 7200 s"),
        ((2, 0, None, 100, 0.2, 0, 0), HealthState.DEGRADED, "20% of 100 attempts failed"),
        ((2, 0, None, 100, 0.05, 3, 0), HealthState.DEGRADED, "3 chunk(s) stuck"),
        ((2, 0, None, 100, 0.05, 0, 4), HealthState.DEGRADED, "4 authentication failure(s)"),
        ((2, 0, None, 100, 0.05, 0, 0), HealthState.HEALTHY, None),
    ],
)
def test_assess_thresholds(args: tuple[Any, ...], state: HealthState, reason: str | None) -> None:
    got, reasons = assess(HealthThresholds(), *args)
    assert got is state
    assert (reason is None and reasons == []) or any(reason in r for r in reasons if reason)


def test_backlog_and_oldest_pending_count_active_queues_of_every_priority(
    app: App, db_url: str
) -> None:
    """The backlog counts each active queue's pending chunks; the oldest pending chunk is the
    oldest of any priority whose queue is active (a paused queue's older chunks do not count)."""
    from tests.contract.test_rollups_contract import _sql

    app.handler("job")(lambda ctx: None)
    paused = app.create_queue("job://paused", [{}] * 3, priority=9)
    app.manager.pause_queue(paused.id, actor="test")
    low = app.create_queue("job://low", [{}] * 2, priority=1)
    high = app.create_queue("job://high", [{}] * 4, priority=5)
    # Ages written, not slept for: an hour for the paused queue, half an hour for the low one.
    for queue, age_s in ((paused, 3600), (low, 1800)):
        _sql(db_url, f"UPDATE chunks SET created_at = created_at - {age_s}"
                     f" WHERE queue_id = '{queue.id}'")  # fmt: skip
    before = health.queue_summary(app.manager, low).oldest_pending_age_s
    s = health.system_summary(app.manager)
    after = health.queue_summary(app.manager, low).oldest_pending_age_s
    assert s.backlog == 6 and s.active_queues == 2
    high_age = health.queue_summary(app.manager, high).oldest_pending_age_s
    assert before is not None and after is not None and high_age is not None
    assert high_age < 1800 <= before
    assert s.oldest_pending_age_s is not None and before <= s.oldest_pending_age_s <= after


def test_a_list_of_summaries_agrees_with_each_summary(measured: App) -> None:
    """The dashboard's list reads every queue at once; its figures are each summary's, the p95
    read from the histogram (within one bin) instead of the raw rows."""
    measured.create_queue("job://waiting", [{}] * 2)  # a backlog and no attempt yet
    queues = measured.manager.list_queues()
    listed = listing.queue_summaries(measured.manager, queues)
    assert [s.queue_id for s in listed] == [q.id for q in queues]
    # Read at different moments: ages and rates over "now" differ by the time between.
    close = {
        "p95_processing_s": {"rel": rollups.LATENCY_RATIO - 1},
        "oldest_pending_age_s": {"abs": 1.0},
        "throughput_chunks_per_s": {"rel": 0.05},
        "eta_s": {"rel": 0.05},
    }
    for q, s in zip(queues, listed, strict=True):
        one = health.queue_summary(measured.manager, q).as_dict()
        got = s.as_dict()
        for key, tolerance in close.items():
            mine, theirs = got.pop(key), one.pop(key)
            assert (mine is None) == (theirs is None), key
            if theirs is not None:
                assert mine == pytest.approx(theirs, **tolerance), key
        assert got == one
    assert listing.queue_summaries(measured.manager, []) == []


def test_many_summaries_read_at_once_are_each_summary(
    measured: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`health` over many queues reads their summaries a page at a time (one statement a page
    on PostgreSQL): the same figures as each queue's own, p95 included, in the order asked,
    a queue removed since it was listed (an id that names none) left out."""
    measured.create_queue("job://waiting", [{}] * 2)
    kept = measured.manager.list_queues()
    gone = dataclasses.replace(kept[0], id=str(uuid.uuid4()))  # names no queue
    monkeypatch.setattr(health, "SUMMARY_PAGE", 2)  # 3 queues: a page of 2, then 1
    many = health.queue_summaries(measured.manager, [kept[0], gone, kept[1]])
    assert [s.queue_id for s in many] == [q.id for q in kept]
    for q, s in zip(kept, many, strict=True):
        one, got = health.queue_summary(measured.manager, q).as_dict(), s.as_dict()
        for key in ("oldest_pending_age_s", "throughput_chunks_per_s", "eta_s"):  # over "now"
            mine, theirs = got.pop(key), one.pop(key)
            assert (mine is None) == (theirs is None), key
            if theirs is not None:
                assert mine == pytest.approx(theirs, abs=1.0, rel=0.05), key
        assert got == one
    assert health.queue_summaries(measured.manager, []) == []
