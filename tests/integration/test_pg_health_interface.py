"""The original SQL health interface on PostgreSQL agrees with chunksync's Python rules."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from chunksync.app import App
from chunksync.models import ErrorCategory
from chunksync.retry import (
    DEFAULT_POLICY,
    policy_from_mapping,
    policy_to_mapping,
)
from tests.servers import missing_server

C = ErrorCategory

CUSTOM = policy_from_mapping(
    {
        "name": "custom",
        "max_attempts": 7,
        "categories": {
            "rate_limit": {
                "schedule": "exponential",
                "base_s": 10,
                "factor": 4,
                "limit": 5,
                "max_s": 500,
            },
            "timeout": {"schedule": "linear", "base_s": 7, "limit": 6},
            "not_found": {"retry": True, "schedule": "steps", "steps": [60, 600], "limit": 2},
            "unknown": {"retry": False},
        },
        "stress": {
            "max_retries": 2,
            "delay_factor": 3.0,
            "defer_s": 10,
            "max_defer_s": 50,
            "max_deferrals": 4,
        },
    }
)


@pytest.fixture
def pg(pg_url: str) -> Iterator[App]:
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        yield app


def test_retry_decision_matches_python_on_every_category_and_attempt(pg: App) -> None:
    for policy, as_json in [
        (DEFAULT_POLICY, None),
        (CUSTOM, json.dumps(policy_to_mapping(CUSTOM))),
    ]:
        grid = itertools.product(
            list(C),
            range(1, 9),
            (False, True),
            (0, 1, 2),
            (0, 3, 4, 10),
            (None, 100.0),
            (False, True),
        )
        for category, attempts, stressed, stress_retries, deferrals, retry_after, probe in grid:
            expected = policy.decide(
                category,
                attempts,
                max_attempts=policy.max_attempts,
                retry_after_s=retry_after,
                stressed=stressed,
                stress_retries=stress_retries,
                deferrals=deferrals,
                probe=probe,
            )
            row = pg.backend.fetch_one(
                "pg_retry_decision",
                {
                    "category": category.value,
                    "attempts": attempts,
                    "max_attempts": policy.max_attempts,
                    "retry_after_s": retry_after,
                    "stressed": stressed,
                    "stress_retries": stress_retries,
                    "deferrals": deferrals,
                    "policy": as_json,
                    "probe": probe,
                },
            )
            assert row is not None
            case = (policy.name, category, attempts, stressed, stress_retries, deferrals, probe)
            assert row["action"] == expected.action.value, case
            assert row["delay_s"] == pytest.approx(expected.delay_s), case
            assert row["reason"] == expected.reason, case
            assert row["stress_retry"] == expected.stress_retry, case


def test_sql_default_policy_is_chunksync_default(pg: App) -> None:
    with psycopg.connect(pg.url) as conn:
        row = conn.execute("SELECT chunksync_default_policy()").fetchone()
    assert row is not None
    sql_policy = row[0]
    python = policy_to_mapping(DEFAULT_POLICY)
    assert sql_policy["categories"] == python["categories"]
    for key, value in sql_policy["stress"].items():
        assert python["stress"][key] == value, key
    assert policy_from_mapping(sql_policy).rules == DEFAULT_POLICY.rules


def test_should_retry_chunk_enhanced_reads_the_chunk(pg: App) -> None:
    pg.create_queue("job://x", [{}])
    _, [chunk] = pg.manager.claim("w1", ["job"])

    def ask(category: str, stressed: bool = False) -> dict[str, Any]:
        row = pg.backend.fetch_one(
            "pg_should_retry_chunk",
            {
                "chunk_id": chunk.id,
                "category": category,
                "stressed": stressed,
                "retry_after_s": None,
                "policy": None,
            },
        )
        assert row is not None
        return row

    assert ask("network") == {
        "should_retry": True,
        "action": "retry",
        "delay_s": 2.0,
        "reason": "network: retry 1",
    }
    assert ask("not_found")["should_retry"] is False
    assert ask("network", stressed=True)["delay_s"] == 4.0
    with psycopg.connect(pg.url) as conn, pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT * FROM should_retry_chunk_enhanced(%s, 'sleepy')", (chunk.id,))


def test_log_chunk_health_metrics_records_one_attempt(pg: App) -> None:
    q = pg.create_queue("job://x", [{}])
    [chunk] = pg.manager.list_chunks(q.id)
    with psycopg.connect(pg.url, autocommit=True) as conn:
        (new_id,) = conn.execute(
            "SELECT log_chunk_health_metrics(%s, %s, 'default', 'w9', 1, 0.25, 'retried', "
            "p_category => 'timeout', p_retry_delay_s => 3.0)",
            (chunk.id, q.id),
        ).fetchone() or (None,)
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute(
                "SELECT log_chunk_health_metrics(%s, %s, 'default', 'w9', 1, 0.1, 'meh')",
                (chunk.id, q.id),
            )
    [row] = pg.manager.list_attempts(chunk.id)
    assert row["id"] == new_id and row["outcome"] == "retried" and row["category"] == "timeout"
    assert row["finished_at"] - row["started_at"] == pytest.approx(0.25)


def test_cleanup_deletes_old_rows_in_batches(pg: App) -> None:
    q = pg.create_queue("job://x", [{}])
    [chunk] = pg.manager.list_chunks(q.id)
    with psycopg.connect(pg.url) as conn:
        for n in range(7):
            conn.execute(
                "SELECT log_chunk_health_metrics(%s, %s, 'default', 'w', %s, 0.1, 'completed')",
                (chunk.id, q.id, n + 1),
            )
        conn.execute(
            "UPDATE attempts SET finished_at = finished_at - 40 * 86400 WHERE attempt <= 5"
        )
    row = pg.backend.fetch_one("pg_cleanup_health", {"days": 30, "batch": 2})
    assert row is not None and row["deleted"] == 5
    assert [r["attempt"] for r in pg.manager.list_attempts(chunk.id)] == [6, 7]


def test_the_hourly_view_matches_python(pg: App) -> None:
    from chunksync.sources.demo import make_failure

    @pg.handler("script")
    def run(ctx: Any) -> int:
        if ctx.attempt == 1 and ctx.payload["fail"]:
            raise make_failure(ctx.payload["fail"])
        return 10

    payloads = [{"fail": f} for f in ("network", "timeout", None, "not_found", None)]
    q = pg.create_queue("script://x", payloads)
    pg.worker(poll_s=0.05, time_scale=0.001).run_until_done([q.id], timeout_s=30)
    [hour] = pg.backend.fetch_all("pg_hourly_summary", {"window_s": 86400})
    assert hour["attempts"] == 7 and hour["successes"] == 4 and hour["failures"] == 3
    by_category = hour["failures_by_category"]
    by_category = json.loads(by_category) if isinstance(by_category, str) else by_category
    assert by_category == {"network": 1, "timeout": 1, "not_found": 1}
    assert hour["p95_processing_s"] is not None and hour["items_per_s"] > 0


# Figures that move with `now` between the two reads.
CLOCKED = {"oldest_pending_age_s", "throughput_chunks_per_s", "eta_s"}


def _agree(sql: Any, computed: Any) -> None:
    """Two summaries agree field by field (the clocked figures to within the reads' gap)."""
    for name, value in dataclasses.asdict(sql).items():
        other = getattr(computed, name)
        if name in CLOCKED and isinstance(value, float) and isinstance(other, float):
            assert value == pytest.approx(other, rel=0.25, abs=1.0), name
        elif isinstance(value, float) and isinstance(other, float):
            assert value == pytest.approx(other, rel=1e-9), name
        elif name == "thresholds":
            assert value == dataclasses.asdict(other), name
        elif name == "dependencies":
            assert value == [dataclasses.asdict(d) for d in other], name
        else:
            assert value == other, name


def test_the_sql_interface_reader_agrees_with_the_named_query_reader(pg: App) -> None:
    from chunksync.observe import health, readers, trends
    from chunksync.observe.model import HealthThresholds
    from chunksync.sources.demo import make_failure

    @pg.handler("script")
    def run(ctx: Any) -> int:
        if ctx.attempt == 1 and ctx.payload["fail"]:
            raise make_failure(ctx.payload["fail"])
        return 10

    payloads = [{"fail": f} for f in ("network", "auth", None, "not_found", None, "timeout")]
    q = pg.create_queue("script://x", payloads)
    pg.worker(poll_s=0.05, time_scale=0.001).run_until_done([q.id], timeout_s=30)
    pg.create_queue("job://waiting", [{}] * 2)  # a backlog and no live worker
    assert readers.reader_for(pg.backend) is readers.SQL_INTERFACE
    for queue in pg.manager.list_queues():
        _agree(
            readers.SQL_INTERFACE.queue_summary(pg.manager, queue.id),
            readers.NAMED_QUERIES.queue_summary(pg.manager, queue.id),
        )
    for t in (HealthThresholds(), HealthThresholds(min_attempts=1, error_rate_degraded=0.2)):
        deps = trends.dependency_health(pg.manager, t)
        sql = readers.SQL_INTERFACE.system_summary(pg.manager, t, deps)
        _agree(sql, readers.NAMED_QUERIES.system_summary(pg.manager, t, deps))
        _agree(health.system_summary(pg.manager, t), sql)


def test_the_functions_work_in_psql(pg: App) -> None:
    if shutil.which("psql") is None:
        missing_server("psql is not installed (apt-get install postgresql-client-15)")
    pg.create_queue("job://x", [{}] * 3)
    out = subprocess.run(
        [
            "psql",
            pg.url,
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT state, backlog FROM get_system_health_metrics();",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    assert out == "critical|3"  # three chunks wait and no worker is alive


def test_health_state_rules_match_python_on_a_grid(pg: App) -> None:
    from chunksync.observe import model

    t = model.HealthThresholds()
    grid = itertools.product(
        (0, 2),
        (0, 12),
        (None, 120.0, 7300.0),
        (5, 40),
        (None, 0.05, 0.3, 0.75),
        (0, 2),
        (0, 3),
        ((), ("imap://a@mail.example.com",), ("demo://x", "pages://y")),
    )
    for alive, backlog, oldest, n5, rate, stuck, auth, stressed in grid:
        expected = model.assess(t, alive, backlog, oldest, n5, rate, stuck, auth, stressed)
        row = pg.backend.fetch_one(
            "pg_assess_health",
            {
                "workers_alive": alive,
                "backlog": backlog,
                "oldest_pending_age_s": oldest,
                "attempts_5m": n5,
                "error_rate_5m": rate,
                "stuck": stuck,
                "auth_failures_60m": auth,
                "error_rate_degraded": t.error_rate_degraded,
                "error_rate_critical": t.error_rate_critical,
                "min_attempts": t.min_attempts,
                "backlog_age_degraded_s": t.backlog_age_degraded_s,
                "stuck_degraded": t.stuck_degraded,
                "stressed": list(stressed),
            },
        )
        assert row is not None
        assert (row["state"], list(row["reasons"])) == (expected[0].value, expected[1])


def test_log_chunk_health_metrics_batch_objects_and_compact_rows_agree(pg: App) -> None:
    """A batch of objects (for people) and of arrays in the one-attempt form's order record the
    same rows, and so does the workers' own statement (`insert_attempts`: the function's INSERT
    without its checks); a bad outcome or category is refused by the function."""
    q = pg.create_queue("job://x", [{}, {}, {}])
    first, second, third = pg.manager.list_chunks(q.id)
    values = {
        "tenant": "default",
        "worker_id": "w9",
        "attempt": 2,
        "processing_s": 0.5,
        "outcome": "retried",
        "chunk_size": 7,
        "items_processed": 3,
        "items_per_s": 6.0,
        "efficiency": 0.9,
        "category": "rate_limit",
        "rule": "http:429",
        "message": "slow down",
        "retry_delay_s": 4.0,
        "rss_bytes": 12345,
    }
    as_object = {"chunk_id": first.id, "queue_id": q.id, **values}
    as_array = [second.id, q.id, *values.values()]  # the one-attempt form's order
    with psycopg.connect(pg.url, autocommit=True) as conn:
        for batch in ([as_object], [as_array]):
            conn.execute("SELECT log_chunk_health_metrics(%s::jsonb)", (json.dumps(batch),))
        for bad in ([{**as_object, "outcome": "meh"}], [[*as_array[:6], "meh", *as_array[7:]]]):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="outcome meh"):
                conn.execute("SELECT log_chunk_health_metrics(%s::jsonb)", (json.dumps(bad),))
        wrong = [[*as_array[:11], "sunspots", *as_array[12:]]]
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="category sunspots"):
            conn.execute("SELECT log_chunk_health_metrics(%s::jsonb)", (json.dumps(wrong),))
    with pg.backend.transaction() as s:
        s.execute_rows("insert_attempts", [[third.id, *as_array[1:]]])
    [a] = pg.manager.list_attempts(first.id)
    [b] = pg.manager.list_attempts(second.id)
    [c] = pg.manager.list_attempts(third.id)
    skip = {"id", "chunk_id", "started_at", "finished_at"}
    assert {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip
    }
    assert {k: v for k, v in c.items() if k not in skip} == {
        k: v for k, v in a.items() if k not in skip
    }
    assert c["finished_at"] - c["started_at"] == pytest.approx(0.5)
    assert a["outcome"] == "retried" and a["rule"] == "http:429" and a["rss_bytes"] == 12345
    assert a["finished_at"] - a["started_at"] == pytest.approx(0.5)
