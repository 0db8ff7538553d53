"""Objectives, burn rates and scaling advice from the rollups, alike on every backend."""

from __future__ import annotations

import pytest

from chunksync.app import App
from chunksync.deps.model import Limits
from chunksync.deps.store import DependencyStore
from chunksync.exceptions import ConfigurationError
from chunksync.models import ErrorCategory, Outcome
from chunksync.observe import capacity, metrics, slo
from tests.contract.test_health_contract import attempt
from tests.contract.test_rollups_contract import _sql

C = ErrorCategory


@pytest.fixture
def late(app: App, db_url: str) -> App:
    """Five chunks queued 100 s ago, under objectives of 30 s (wait) and 50 s (deadline); all
    five tried (a retried chunk goes behind those that waited), one back to waiting."""
    app.handler("job")(lambda ctx: None)
    q = app.create_queue("job://x", [{}] * 5)
    capacity.set_objectives(app.manager, q.id, 30.0, 50.0)
    _sql(db_url, "UPDATE chunks SET created_at = created_at - 100")
    attempt(app, Outcome.RETRIED, 1.0, C.NETWORK, 0)
    attempt(app, Outcome.RETRIED, 3.0, C.RATE_LIMIT, 0)
    attempt(app, Outcome.COMPLETED, 2.0, None, 100)
    attempt(app, Outcome.DEAD, 0.5, C.NOT_FOUND, 0)
    attempt(app, Outcome.COMPLETED, 4.0, None, 300)
    attempt(app, Outcome.COMPLETED, 2.0, None, 100)
    return app


def test_objectives_count_slow_claims_and_late_completions(late: App) -> None:
    report = {s.objective: s for s in capacity.slo_report(late.manager)}
    wait, deadline = report["wait"], report["deadline"]
    assert (wait.events_1h, wait.bad_share_1h) == (5, 1.0)  # five first claims, all slow
    assert (deadline.events_1h, deadline.bad_share_1h) == (3, 1.0)  # three late completions
    assert wait.burn_fast == pytest.approx(1.0 / 0.05)
    assert wait.budget_left is not None and wait.budget_left < 0
    assert {a["window"] for a in wait.alerts} == {"fast", "slow"}
    [tenant] = {s.subject for s in capacity.slo_report(late.manager, tenants=True)}
    assert tenant == "tenant default"


def test_objectives_must_be_positive(late: App) -> None:
    [q] = late.manager.list_queues()
    with pytest.raises(ConfigurationError):
        capacity.set_objectives(late.manager, q.id, -1.0, None)


def test_scale_advice_reads_service_time_and_limits(late: App) -> None:
    [advice] = capacity.scale_advice(late.manager)
    assert advice.service_s == pytest.approx(8.0 / 3)
    assert advice.backlog == 1 and advice.verdict in {"add", "ok", "remove"}
    [q] = late.manager.list_queues()
    store = DependencyStore(late.backend)
    store.declare("api", Limits(connections=1))
    store.name_queue(q.id, "api")
    [bound] = capacity.scale_advice(late.manager, database_per_s=0.0001)
    assert "database" in bound.reason and bound.recommended_slots == 1


def test_prometheus_has_the_advice_and_the_budget(late: App) -> None:
    text, _ = metrics.render(late.manager)
    assert b"chunksync_recommended_workers{" in text
    assert b'chunksync_slo_error_budget_left{objective="wait",subject="queue ' in text
    assert b"chunksync_slo_burn_rate{" in text
    assert slo.FAST.threshold(slo.Objective("wait", 30.0)) == pytest.approx(14.4)


def test_burning_objectives_fire_alerts(late: App) -> None:
    from chunksync.observe import alerts

    fired = {e.key for e in alerts.evaluate(late.manager) if e.state == "firing"}
    assert any(k.startswith("slo_burn:queue job://x:wait:fast") for k in fired)
    assert any(k.startswith("slo_burn:queue job://x:deadline:") for k in fired)


def test_a_new_error_category_is_an_alert_with_evidence(app: App) -> None:
    app.handler("job")(lambda ctx: None)
    app.create_queue("job://y", [{}] * 12)
    for _ in range(10):
        attempt(app, Outcome.DEAD, 0.1, C.AUTH, 0)
    found = capacity.degradations(app.manager)
    assert [(e.rule, e.after) for e in found] == [("new_error_pattern", 1.0)]
    assert "auth failures are 100% of recent attempts" in found[0].message
