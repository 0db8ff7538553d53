"""Worker trends, alerts, retention and Prometheus metrics against hand-computed figures,
identical on every backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chunksync.app import App
from chunksync.exceptions import ConfigurationError
from chunksync.models import Attempt, ChunkStatus, ErrorCategory, Outcome
from chunksync.observe import alerts, health, metrics, retention, trends
from chunksync.observe.model import HealthThresholds
from chunksync.results import FinishResult
from chunksync.runtime.upkeep import feed_retry_budgets

pytestmark = pytest.mark.timeout(60)
C = ErrorCategory


def record(
    app: App,
    outcome: Outcome,
    seconds: float,
    category: ErrorCategory | None = None,
    *,
    worker: str = "w1",
    rss: int | None = None,
) -> str:
    token, [chunk] = app.manager.claim(worker, ["job"])
    status = {Outcome.COMPLETED: ChunkStatus.COMPLETED, Outcome.DEAD: ChunkStatus.DEAD}.get(
        outcome, ChunkStatus.PENDING
    )
    result = FinishResult(
        status,
        outcome,
        category=category,
        delay_s=0.0 if status is not ChunkStatus.PENDING else -1.0,
        dead_reason="x" if status is ChunkStatus.DEAD else None,
        message=None if category is None else f"{category} failure",
    )
    a = Attempt(
        chunk_id=chunk.id,
        queue_id=chunk.queue_id,
        tenant=chunk.tenant,
        worker_id=worker,
        attempt=chunk.attempts,
        started_at=0.0,
        finished_at=seconds,
        outcome=outcome,
        category=category,
        rss_bytes=rss,
    )
    assert app.manager.finish(chunk, token, result, a)
    return chunk.id


@pytest.fixture
def history(app: App) -> App:
    app.handler("job")(lambda ctx: None)
    app.create_queue("job://api.example.com", [{}] * 5, name="pages")
    app.manager.register_worker("w1", "h", 1, 1)
    app.manager.register_worker("w2", "h", 2, 1)
    record(app, Outcome.COMPLETED, 0.02, rss=100)
    record(app, Outcome.COMPLETED, 0.2, worker="w2", rss=300)
    record(app, Outcome.RETRIED, 3.0, C.AUTH, rss=200)
    record(app, Outcome.DEAD, 0.004, C.NOT_FOUND)
    return app


def test_worker_trends(history: App) -> None:
    by_worker = {t.id: t for t in trends.worker_trends(history.manager)}
    assert set(by_worker) == {"w1", "w2"}
    w1, w2 = by_worker["w1"], by_worker["w2"]
    assert (w1.attempts, w1.completed, w1.max_rss_bytes, w1.last_rss_bytes) == (3, 1, 200, 200)
    assert (w2.attempts, w2.completed, w2.max_rss_bytes) == (1, 1, 300)
    assert w1.alive and w1.chunks_per_s is not None and w1.chunks_per_s > 0
    assert sum(b["completed"] for b in w1.series) == 1


def test_metrics_by_hand(history: App) -> None:
    body, content_type = metrics.render(history.manager)
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert (
        samples[
            ("chunksync_chunks_processed_total", (("category", "none"), ("outcome", "completed")))
        ]
        == 2
    )
    assert (
        samples[
            ("chunksync_chunks_processed_total", (("category", "auth"), ("outcome", "retried")))
        ]
        == 1
    )
    assert samples[("chunksync_retries_total", ())] == 1
    assert samples[("chunksync_deferrals_total", ())] == 0
    assert samples[("chunksync_workers_alive", ())] == 2
    [(key, backlog)] = [(k, v) for k, v in samples.items() if k[0] == "chunksync_backlog"]
    assert backlog == 2 and ("queue", "pages") in key[1]
    # completed took 0.02 s and 0.2 s: one in the 0.025 bucket, both by 0.25, sum 0.22
    le = {
        dict(k[1])["le"]: v
        for k, v in samples.items()
        if k[0] == "chunksync_processing_seconds_bucket" and ("outcome", "completed") in k[1]
    }
    assert (le["0.01"], le["0.025"], le["0.1"], le["0.25"], le["+Inf"]) == (0, 1, 1, 2, 2)
    total = samples[("chunksync_processing_seconds_sum", (("outcome", "completed"),))]
    assert total == pytest.approx(0.22)


def test_alerts_fire_once_resolve_and_fire_again(history: App, db_url: str) -> None:
    t = HealthThresholds(min_attempts=4)  # 2 failures of 4 attempts: 50 %, critical
    cfg = alerts.AlertConfig(t)
    events = alerts.evaluate(history.manager, cfg)
    keys = {e.key: e for e in events}
    [queue] = history.manager.list_queues()
    assert set(keys) == {"error_rate", f"dead_chunks:{queue.id}", f"auth_failures:{queue.id}"}
    assert keys["error_rate"].severity == "critical"
    with App(db_url) as other:  # a second process sees them firing already: no duplicate
        assert alerts.evaluate(other.manager, cfg) == []
    assert alerts.evaluate(history.manager, cfg) == []
    [dead] = history.manager.list_chunks(status=ChunkStatus.DEAD)
    history.manager.cancel_queue(queue.id)
    resolved = alerts.evaluate(history.manager, alerts.AlertConfig(HealthThresholds()))
    assert {e.key for e in resolved} == {"error_rate"} and resolved[0].state == "resolved"
    assert {r["key"] for r in alerts.firing(history.manager)} == {
        f"dead_chunks:{queue.id}",
        f"auth_failures:{queue.id}",
    }
    again = alerts.evaluate(history.manager, cfg)
    assert [e.key for e in again] == ["error_rate"] and again[0].state == "firing"
    assert dead.status is ChunkStatus.DEAD


def test_backlog_sla_and_no_workers(app: App) -> None:
    app.handler("job")(lambda ctx: None)
    q = app.create_queue("job://x", [{}] * 2, name="slow")
    cfg = alerts.AlertConfig(HealthThresholds())
    assert {e.rule for e in alerts.evaluate(app.manager, cfg)} == {"no_workers"}
    alerts.set_queue_sla(app.manager, "slow", 0.001)
    deadline_rules: set[str] = set()
    for _ in range(100):  # the oldest chunk ages past 1 ms within a few evaluations
        deadline_rules |= {e.rule for e in alerts.evaluate(app.manager, cfg)}
        if "backlog_sla" in deadline_rules:
            break
    assert "backlog_sla" in deadline_rules
    alerts.set_queue_sla(app.manager, q.id, None)
    assert {e.key for e in alerts.evaluate(app.manager, cfg)} == {f"backlog_sla:{q.id}"}
    with pytest.raises(ConfigurationError):
        alerts.set_queue_sla(app.manager, q.id, -1)


def _age(db_url: str, table: str, column: str, seconds: float, where: str = "1=1") -> None:
    sql = f"UPDATE {table} SET {column} = {column} - {seconds} WHERE {where}"
    if db_url.startswith("sqlite:"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(sql)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as pg:
            pg.execute(sql.encode())


def test_retention_in_small_batches(history: App, db_url: str) -> None:
    month = 31 * retention.DAY_SECONDS
    _age(db_url, "attempts", "finished_at", month, "outcome <> 'retried'")  # 3 of 4
    _age(db_url, "chunks", "finished_at", month)  # 2 completed + 1 dead; pending ones have none
    _age(db_url, "audit_log", "at", month)
    history.manager.cancel_chunk(history.manager.list_chunks(status=ChunkStatus.PENDING)[0].id)
    batches: list[int] = []
    done = retention.cleanup(
        history.manager,
        30 * retention.DAY_SECONDS,
        batch=2,
        between_batches=lambda: batches.append(1),
    )
    assert (done.attempts, done.chunks, done.audit) == (3, 3, 0)  # the fresh cancel stays
    assert len(batches) == 2  # 3 attempts and 3 chunks each took a full batch then a partial one
    left = {c.status for c in history.manager.list_chunks()}
    assert left == {ChunkStatus.PENDING, ChunkStatus.CANCELLED}
    assert retention.cleanup(history.manager).total == 0


def test_parse_age_and_thresholds_file(tmp_path: Path) -> None:
    assert retention.parse_age("30d") == 30 * 86400 and retention.parse_age("90m") == 5400
    assert retention.parse_age("12") == 12 * 86400
    with pytest.raises(ConfigurationError):
        retention.parse_age("soon")
    path = tmp_path / "health.toml"
    path.write_text("[health]\nerror_rate_degraded = 0.2\nmin_attempts = 5\n", encoding="utf-8")
    t = health.load_thresholds(path)
    assert (t.error_rate_degraded, t.min_attempts, t.error_rate_critical) == (0.2, 5, 0.5)
    path.write_text("[health]\nerror_rate = 1\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="unknown health threshold"):
        health.load_thresholds(path)


def test_a_stressed_dependency_degrades_and_feeds_the_retry_budget(history: App) -> None:
    t = HealthThresholds(min_attempts=4, error_rate_degraded=0.5, error_rate_critical=0.9)
    [dep] = trends.dependency_health(history.manager, t)
    assert (dep.dependency, dep.attempts_5m, dep.failures_5m) == ("job://api.example.com", 4, 2)
    assert dep.stressed
    budget = history.budgets.get("job://api.example.com")
    assert not budget.stressed
    history.configure(health=HealthThresholds(min_attempts=4, feed_retry_budgets=True))
    fed = feed_retry_budgets(history.manager, history.registry, history.settings.health)
    assert fed == ["job://api.example.com"]
    assert budget.stressed  # the retry policy's stress check now reads the shared signal
    s = health.system_summary(
        history.manager, HealthThresholds(min_attempts=100), budgets=history.budgets
    )
    assert s.stressed_dependencies == ["job://api.example.com"]
    assert "dependency stressed: job://api.example.com" in s.reasons


def test_per_queue_series_name_the_top_queues_and_sum_the_rest(app: App) -> None:
    """At 5,000 tenants' ten folders the per-queue series were 100,000 and a scrape took 6 s:
    the top N by value keep their names, the rest are one series per other label's value."""
    app.handler("pages")(lambda ctx: 1)
    for n, size in enumerate([5, 1, 3, 2, 4, 2]):
        app.create_queue("pages://x", [{"i": i} for i in range(size)], name=f"q{n}")
    app.create_queue("pages://x", [{}], name="other")  # a queue named so is folded too
    app.manager.pause_queue(app.manager.get_queue("q3").id)

    def series(top: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        body, _ = metrics.render(app.manager, top_queues=top)
        found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name in ("chunksync_backlog", "chunksync_recommended_workers"):
                    labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "queue_id"))
                    found.setdefault(s.name, {})[labels] = s.value
        return found

    every, few = series(100), series(2)
    backlog = few["chunksync_backlog"]
    named = sorted(dict(k)["queue"] for k in backlog if dict(k)["queue"] != "other")
    assert named == ["q0", "q4"]  # the two largest backlogs
    # q1, q2, q5 and the queue named "other"
    assert backlog[(("queue", "other"), ("status", "active"))] == 1 + 3 + 2 + 1
    assert backlog[(("queue", "other"), ("status", "paused"))] == 2  # q3
    for name in ("chunksync_backlog", "chunksync_recommended_workers"):
        assert sum(few[name].values()) == sum(every[name].values())
        assert len(few[name]) <= 2 + 2  # two named, the rest one series a status or verdict
    with pytest.raises(ConfigurationError, match="CHUNKSYNC_METRICS_QUEUES"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CHUNKSYNC_METRICS_QUEUES", "many")
            metrics.render(app.manager)


def test_a_storm_of_one_rule_is_announced_once(app: App) -> None:
    """A provider's outage puts every tenant's queue in one rule at once: each alert is kept
    and listed, but the log, `notify` and the webhook get one event counting them."""
    from tests.servers.webhook_receiver import webhook_receiver

    app.handler("job")(lambda ctx: None)
    app.manager.register_worker("w1", "h", 1, 1)
    n = alerts.STORM + 2
    queues = [app.create_queue("job://x", [{}], name=f"q{i:02d}") for i in range(n)]
    few = app.create_queue("job://x", [{}], name="alone")
    for _ in range(n + 1):
        record(app, Outcome.DEAD, 0.01, C.NOT_FOUND)
    heard: list[alerts.AlertEvent] = []
    with webhook_receiver() as receiver:
        cfg = alerts.AlertConfig(HealthThresholds(min_attempts=10_000), receiver.url)
        events = alerts.evaluate(app.manager, cfg, notify=heard.append, background=False)
        assert len(events) == n + 1  # every change is returned and kept
        assert len(alerts.firing(app.manager)) == n + 1
        [storm] = heard
        assert (storm.key, storm.count, storm.state) == ("dead_chunks:*", n + 1, "firing")
        assert storm.message.startswith(f"{n + 1} dead_chunks alerts firing at once: queue ")
        [posted] = receiver.events("alert")
        assert posted["count"] == n + 1 and posted["key"] == "dead_chunks:*"
        for q in queues[:-1]:  # all but two resolve: their dead chunks run again
            app.manager.retry_queue(q.id)
        resolved = alerts.evaluate(app.manager, cfg, notify=heard.append, background=False)
        assert len(resolved) == n - 1 and heard[1].count == n - 1
        app.manager.retry_queue(queues[-1].id)
        app.manager.retry_queue(few.id)
        alerts.evaluate(app.manager, cfg, notify=heard.append, background=False)
        assert [e.count for e in heard[2:]] == [1, 1]  # two: not a storm
        assert len(receiver.events("alert")) == 4
