"""The attempt rollups against the raw attempts: same figures, kept past retention, corrected
with an attempt, recomputed on demand; on every backend."""

from __future__ import annotations

import sqlite3

import pytest

from chunksync.app import App
from chunksync.models import ErrorCategory, Outcome
from chunksync.observe import health, retention, rollups, trends
from tests.contract.test_health_contract import attempt

C = ErrorCategory


def _sql(db_url: str, statement: str) -> None:
    if db_url.startswith("sqlite:"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(statement)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as pg:
            pg.execute(statement.encode())


@pytest.fixture
def history(app: App) -> App:
    app.handler("job")(lambda ctx: None)
    app.create_queue("job://x", [{}] * 4)
    attempt(app, Outcome.RETRIED, 1.0, C.NETWORK, 0)
    attempt(app, Outcome.RETRIED, 3.0, C.RATE_LIMIT, 0)
    attempt(app, Outcome.COMPLETED, 2.0, None, 100)
    attempt(app, Outcome.DEAD, 0.5, C.NOT_FOUND, 0)
    attempt(app, Outcome.COMPLETED, 4.0, None, 300)
    attempt(app, Outcome.COMPLETED, 2.0, None, 100)
    return app


def test_rollups_hold_the_raw_figures(history: App) -> None:
    [q] = history.manager.list_queues()
    rows = history.backend.fetch_all("health_queue_attempts", {"queue_id": q.id})
    assert sum(int(r["n"]) for r in rows) == 6
    assert sum(float(r["processing_s"]) for r in rows) == pytest.approx(12.5)
    by_bin = history.backend.fetch_all("health_queue_latency", {"queue_id": q.id})
    assert sum(int(r["n"]) for r in by_bin) == 6
    assert {int(r["bin"]) for r in by_bin} == {
        rollups.latency_bin(s) for s in (1.0, 3.0, 2.0, 0.5, 4.0)
    }


def test_rebuild_recomputes_the_same_figures(history: App) -> None:
    [q] = history.manager.list_queues()

    def figures() -> dict[str, object]:
        data = health.queue_summary(history.manager, q).as_dict()
        data.pop("throughput_chunks_per_s")  # a rate over a window that ends now
        return data

    before = figures()
    assert rollups.rebuild(history.manager) is not None
    assert figures() == before
    assert health.system_summary(history.manager).attempts_5m == 6


def test_an_aged_attempt_leaves_the_recent_windows(history: App, db_url: str) -> None:
    _sql(db_url, "UPDATE attempts SET finished_at = finished_at - 7200 WHERE outcome = 'dead'")
    s = health.system_summary(history.manager)
    assert s.attempts_5m == 5 and s.attempts_60m == 5
    assert dict(s.top_failure_categories) == {"network": 1, "rate_limit": 1}
    hours = trends.hourly(history.manager)
    assert [h["attempts"] for h in hours] == [1, 5]
    [q] = history.manager.list_queues()
    assert health.queue_summary(history.manager, q).attempts == 6  # all-time: still six


def test_rollups_outlive_raw_attempts(history: App, db_url: str) -> None:
    [q] = history.manager.list_queues()
    before = health.queue_summary(history.manager, q)
    _sql(db_url, "UPDATE attempts SET finished_at = finished_at - 40 * 86400")
    assert retention.cleanup(history.manager).attempts == 6
    after = health.queue_summary(history.manager, q)
    assert after.attempts == 6 and after.failures_by_category == before.failures_by_category
    assert after.avg_processing_s == pytest.approx(before.avg_processing_s)
    # No raw row is left for the exact percentile: the histogram answers, within its bin width.
    assert after.p95_processing_s == pytest.approx(3.75, rel=rollups.LATENCY_RATIO - 1)
    assert rollups.rebuild(history.manager) is None  # nothing raw to recompute from
    assert health.queue_summary(history.manager, q).attempts == 6
    done = rollups.trim(history.manager, hour_keep_s=30 * 86400, minute_keep_s=3600)
    assert done.hours > 0 and done.minutes > 0 and done.latency > 0
    assert trends.hourly(history.manager, window_s=60 * 86400) == []  # the hours are gone
    # The all-time rows are never trimmed: the queue's summary still counts its whole life.
    kept = health.queue_summary(history.manager, q)
    assert kept.attempts == 6 and kept.failures_by_category == before.failures_by_category
    assert kept.p95_processing_s == after.p95_processing_s


def test_dependency_window_reads_the_rollups(history: App, db_url: str) -> None:
    rows = history.backend.fetch_all("health_dependency_window", {"window_s": 300.0})
    assert sum(int(r["n"]) for r in rows) == 6
    _sql(db_url, "UPDATE attempts SET finished_at = finished_at - 600")
    assert history.backend.fetch_all("health_dependency_window", {"window_s": 300.0}) == []
