"""The rollups are folded off the write path: figures are exact right after a burst of attempts,
before and after a fold, and no fold (repeated, or two at once) counts an attempt twice; on
every backend."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from chunksync.app import App
from chunksync.models import ErrorCategory, Outcome
from chunksync.observe import health, rollups, trends
from tests.contract.test_health_contract import attempt
from tests.contract.test_rollups_contract import _sql

C = ErrorCategory
BURST = [
    (Outcome.COMPLETED, 0.2, None, 10),
    (Outcome.RETRIED, 1.5, C.NETWORK, 0),
    (Outcome.COMPLETED, 0.7, None, 30),
    (Outcome.DEAD, 0.05, C.NOT_FOUND, 0),
    (Outcome.RETRIED, 2.5, C.RATE_LIMIT, 0),
]


def _scalar(db_url: str, query: str) -> float:
    """One number read straight from the tables, past every view and named query."""
    if db_url.startswith("sqlite:"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        try:
            value = conn.execute(query).fetchone()[0]
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as pg:
            row = pg.execute(query.encode()).fetchone()
            value = row[0] if row else None
    return float(value or 0)


def burst(app: App, rounds: int) -> None:
    for _ in range(rounds):
        for outcome, seconds, category, items in BURST:
            attempt(app, outcome, seconds, category, items)


def figures(app: App) -> dict[str, object]:
    """Every health figure the rollups feed, as the readers give them."""
    [q] = app.manager.list_queues()
    data = health.queue_summary(app.manager, q).as_dict()
    for moving in ("throughput_chunks_per_s", "oldest_pending_age_s", "eta_s"):
        data.pop(moving)  # a rate or an age measured up to now
    s = health.system_summary(app.manager)
    data["system"] = (s.attempts_5m, s.attempts_60m, dict(s.top_failure_categories))
    data["hours"] = [h["attempts"] for h in trends.hourly(app.manager)]
    minutes = app.backend.fetch_all("health_minutes", {"window_s": 3600.0})
    data["minutes"] = sum(int(r["n"]) for r in minutes)
    latency = app.backend.fetch_all("health_queue_latency", {"queue_id": q.id})
    data["latency"] = sum(int(r["n"]) for r in latency)
    # Sums of floats added in another order may differ in their last bit, nothing more.
    return {k: float(f"{v:.9g}") if isinstance(v, float) else v for k, v in data.items()}


@pytest.fixture
def busy(app: App) -> App:
    app.handler("job")(lambda ctx: None)
    app.create_queue("job://x", [{}] * 200)
    return app


def test_figures_are_exact_before_and_after_a_fold(busy: App, db_url: str) -> None:
    burst(busy, 4)
    before = figures(busy)
    assert before["attempts"] == 20 and before["system"][0] == 20
    assert before["minutes"] == before["latency"] == 20
    assert rollups.fold(busy.manager, lag_s=0) == 20
    assert figures(busy) == before
    assert _scalar(db_url, "SELECT SUM(n) FROM attempt_rollups WHERE width_s = 3600") == 20
    burst(busy, 2)  # a second burst: ten in the rollups' tail
    after = figures(busy)
    assert after["attempts"] == 30 and after["system"][0] == 30 and after["latency"] == 30
    assert rollups.fold(busy.manager, lag_s=0) == 10
    assert figures(busy) == after


def test_a_repeated_fold_counts_nothing_twice(busy: App, db_url: str) -> None:
    burst(busy, 2)
    expected = figures(busy)
    assert rollups.fold(busy.manager, lag_s=0) == 10
    for _ in range(3):
        assert rollups.fold(busy.manager, lag_s=0) == 0
        assert rollups.fold(busy.manager) == 0  # the lagged fold: nothing new past the mark
    assert figures(busy) == expected
    assert _scalar(db_url, "SELECT SUM(n) FROM attempt_rollups WHERE width_s = 60") == 10
    for width in (3600, 0):
        assert _scalar(db_url, f"SELECT SUM(n) FROM attempt_rollups WHERE width_s = {width}") == 10
        latency = f"SELECT SUM(n) FROM attempt_latency_rollups WHERE width_s = {width}"
        assert _scalar(db_url, latency) == 10


def _age_the_mark(db_url: str) -> None:
    """Make the previous fold a minute older: the lag is measured on the database's clock, whose
    'now' on SQLite moves in whole milliseconds (and a machine's clock may step back), so a
    test waiting for it to pass a tiny lag fails now and then."""
    _sql(db_url, "UPDATE attempt_rollup_marks SET seen_at = seen_at - 60")


def test_a_lagged_fold_waits_for_the_ids_it_saw(busy: App, db_url: str) -> None:
    burst(busy, 1)
    assert rollups.fold(busy.manager, lag_s=0) == 5
    burst(busy, 1)
    expected = figures(busy)
    _age_the_mark(db_url)
    assert rollups.fold(busy.manager, lag_s=30.0) == 0  # saw none of these yet: it notes them
    assert rollups.fold(busy.manager, lag_s=30.0) == 0  # not long enough since
    assert figures(busy) == expected
    _age_the_mark(db_url)
    assert rollups.fold(busy.manager, lag_s=30.0) == 5  # now they are folded
    assert figures(busy) == expected


def test_folders_racing_count_each_attempt_once(busy: App, db_url: str) -> None:
    burst(busy, 2)
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def folder() -> None:
        try:
            start.wait()
            for _ in range(5):
                rollups.fold(busy.manager, lag_s=0)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=folder) for _ in range(2)]
    for t in threads:
        t.start()
    start.wait()
    burst(busy, 2)  # attempts written while the two fold
    for t in threads:
        t.join(60)
    assert not errors
    expected_n = 20
    assert figures(busy)["attempts"] == expected_n
    rollups.fold(busy.manager, lag_s=0)
    for width in (3600, 0):
        rows = f"SELECT SUM(n) FROM attempt_rollups WHERE width_s = {width}"
        assert _scalar(db_url, rows) == expected_n
        latency = f"SELECT SUM(n) FROM attempt_latency_rollups WHERE width_s = {width}"
        assert _scalar(db_url, latency) == expected_n
    after = figures(busy)
    assert rollups.rebuild(busy.manager) is not None
    assert figures(busy) == after


def test_a_folded_attempt_corrected_moves_its_figures(busy: App, db_url: str) -> None:
    burst(busy, 1)
    rollups.fold(busy.manager, lag_s=0)
    _sql(db_url, "UPDATE attempts SET finished_at = finished_at - 7200 WHERE outcome = 'dead'")
    s = health.system_summary(busy.manager)
    assert s.attempts_5m == 4 and s.attempts_60m == 4
    assert dict(s.top_failure_categories) == {"network": 1, "rate_limit": 1}
    assert [h["attempts"] for h in trends.hourly(busy.manager)] == [1, 4]
    assert _scalar(db_url, "SELECT SUM(n) FROM attempt_rollups WHERE width_s = 3600") == 5


def _rows(db_url: str, query: str) -> list[tuple[object, ...]]:
    """Rows read straight from the tables."""
    if db_url.startswith("sqlite:"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        try:
            return list(conn.execute(query).fetchall())
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as pg:
        return list(pg.execute(query.encode()).fetchall())


def test_a_fold_holds_each_widths_groups_of_the_raw_attempts(busy: App, db_url: str) -> None:
    """Every rollup row a fold writes (minute, hour, all time) holds exactly the figures of its
    group of raw attempts, grouped here in Python: attempts spread over minutes and hours, with
    and without an efficiency, slow claims and late completions among them."""
    burst(busy, 6)  # 30 attempts of every outcome
    # Spread them over minutes and hours (by id), give every other one an efficiency, and make
    # the shifted ones slow claims and late completions against the queue's objectives.
    _sql(
        db_url,
        "UPDATE attempts SET finished_at = finished_at + (id % 4) * 1900 + (id % 3) * 61,"
        " started_at = started_at + (id % 4) * 1900 + (id % 3) * 61,"
        " efficiency = CASE WHEN id % 2 = 1 THEN 0.25 * (id % 5) END",
    )
    _sql(db_url, "UPDATE queues SET wait_objective_s = 1000, deadline_s = 1000")
    rollups.fold(busy.manager, lag_s=0)
    raw = _rows(
        db_url,
        "SELECT a.queue_id, a.tenant, a.outcome, COALESCE(a.category, ''), a.finished_at,"
        " a.started_at, a.processing_s, a.items_processed, COALESCE(a.retry_delay_s, 0),"
        " a.efficiency, a.attempt, a.started_at - c.created_at, a.finished_at - c.created_at"
        " FROM attempts a JOIN chunks c ON c.id = a.chunk_id",
    )
    assert len(raw) == 30
    expected: dict[tuple[object, ...], list[float]] = {}
    for q, tenant, outcome, category, fin, start, secs, items, delay, eff, nth, waited, took in raw:
        for width in (60, 3600, 0):
            bucket = int(float(fin) // width) * width if width else 0
            key = (width, str(q), bucket, tenant, outcome, category)
            figures = [
                1,
                float(secs),
                int(items),
                float(delay),
                float(eff or 0),
                int(eff is not None),
                int(nth == 1),
                int(nth == 1 and float(waited) > 1000),
                int(outcome == "completed" and float(took) > 1000),
            ]
            found = expected.setdefault(key, [0] * len(figures) + [float(start)])
            for i, value in enumerate(figures):
                found[i] += value
            found[-1] = min(found[-1], float(start))
    written = _rows(
        db_url,
        "SELECT width_s, queue_id, bucket, tenant, outcome, category, n, processing_s, items,"
        " retry_delay_s, efficiency_sum, efficiency_n, first_attempts, slow_claims, late,"
        " first_started_at FROM attempt_rollups WHERE width_s IN (0, 60, 3600)",
    )
    got = {
        (int(r[0]), str(r[1]), int(r[2]), r[3], r[4], r[5]): [float(v) for v in r[6:]]
        for r in written
    }
    assert set(got) == set(expected)
    assert len({k[2] for k in expected if k[0] == 3600}) > 1  # the spread crossed hours
    assert any(v[7] for v in expected.values()) and any(v[8] for v in expected.values())
    for key, values in expected.items():
        assert got[key] == pytest.approx(values), key
    # The latency histograms (hour and all time) likewise, one count per bin.
    bins: dict[tuple[int, str, int, int], int] = {}
    for q, _, outcome, _, fin, _, secs, *_ in raw:
        if outcome in ("stuck", "held"):
            continue
        for width in (3600, 0):
            bucket = int(float(fin) // width) * width if width else 0
            key4 = (width, str(q), bucket, rollups.latency_bin(float(secs)))
            bins[key4] = bins.get(key4, 0) + 1
    histogram = _rows(
        db_url, "SELECT width_s, queue_id, bucket, bin, n FROM attempt_latency_rollups"
    )
    assert {(int(w), str(q), int(b), int(n)): int(c) for w, q, b, n, c in histogram} == bins
    assert len({k[3] for k in bins}) > 1  # several bins
