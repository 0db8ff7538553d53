"""Per-tenant health and metrics, identical on every backend: a tenant's figures count only its
own queues, and the top N tenants plus "other" add up to the totals."""

from __future__ import annotations

from collections import Counter

import pytest

from chunksync.app import App
from chunksync.exceptions import NotFound
from chunksync.manager import Manager
from chunksync.models import Attempt, ChunkStatus, ErrorCategory, Outcome
from chunksync.observe import health, metrics
from chunksync.observe.tenant_health import (
    OTHER,
    tenant_figures,
    tenant_summary,
    top_tenants,
    totals,
)
from chunksync.results import FinishResult


def finish(m: Manager, outcome: Outcome, category: ErrorCategory | None = None) -> str:
    """Claim one chunk and finish it with `outcome` now; the tenant it belonged to."""
    token, [chunk] = m.claim("w1", ["job"])
    status = {Outcome.COMPLETED: ChunkStatus.COMPLETED, Outcome.DEAD: ChunkStatus.DEAD}[outcome]
    now = m.now()
    result = FinishResult(status, outcome, category=category, items=1, delay_s=0.0, dead_reason="x")
    a = Attempt(
        chunk_id=chunk.id,
        queue_id=chunk.queue_id,
        tenant=chunk.tenant,
        worker_id="w1",
        attempt=chunk.attempts,
        started_at=now - 1.0,
        finished_at=now,
        outcome=outcome,
        category=category,
        items_processed=1,
    )
    assert m.finish(chunk, token, result, a)
    return chunk.tenant


@pytest.fixture
def mixed(app: App) -> App:
    """Three tenants of different sizes; some chunks done, dead and in flight."""
    app.handler("job")(lambda ctx: None)
    m = app.manager
    m.tenants.set("acme", actor="test", reason="contract", max_in_flight=50, max_queued=500)
    m.tenants.set("idle", actor="test", reason="contract", weight=2)  # declared, no queue
    for tenant, sizes in (("acme", (6, 4)), ("beta", (5,)), ("gamma", (2,))):
        for i, n in enumerate(sizes):
            m.create_queue(
                f"{tenant}-{i}", "job:", "job", [{"n": k} for k in range(n)], tenant=tenant
            )
    finish(m, Outcome.COMPLETED)
    finish(m, Outcome.DEAD, ErrorCategory.AUTH)
    finish(m, Outcome.COMPLETED)
    m.claim("w2", ["job"], limit=2)  # two in flight
    return app


def by_tenant(m: Manager) -> dict[str, Counter[str]]:
    """Chunks by tenant and status, counted from the chunks themselves."""
    out: dict[str, Counter[str]] = {}
    for c in m.list_chunks(limit=10_000):
        out.setdefault(c.tenant, Counter())[c.status.value] += 1
    return out


def test_a_tenants_health_counts_only_its_own_queues(mixed: App) -> None:
    m = mixed.manager
    counts = by_tenant(m)
    system = health.system_summary(m)
    attempts = Counter(
        a["tenant"] for c in m.list_chunks(limit=10_000) for a in m.list_attempts(c.id)
    )
    seen = 0
    for tenant in ("acme", "beta", "gamma"):
        s = tenant_summary(m, tenant, system)
        mine = counts[tenant]
        assert (s.backlog, s.in_flight, s.dead) == (
            mine["pending"],
            mine["processing"],
            mine["dead"],
        ), tenant
        assert s.queues == len(m.list_queues(tenant=tenant)) >= s.active_queues
        assert s.attempts_60m == attempts[tenant] and s.attempts_5m == attempts[tenant]
        seen += s.backlog
    assert seen == system.backlog
    acme = tenant_summary(m, "acme", system)
    assert (acme.queues, acme.max_in_flight, acme.max_queued) == (2, 50, 500)
    assert acme.oldest_pending_age_s is not None
    failed = {t: s for t in ("acme", "beta", "gamma") if (s := tenant_summary(m, t, system)).dead}
    [(dead_tenant, summary)] = failed.items()
    assert summary.top_failure_categories == [("auth", 1)]
    assert summary.error_rate_60m == pytest.approx(1 / attempts[dead_tenant])


def test_a_declared_tenant_without_queues_is_healthy_and_empty(mixed: App) -> None:
    m = mixed.manager
    s = tenant_summary(m, "idle", health.system_summary(m))
    assert (s.queues, s.backlog, s.in_flight, s.attempts_60m) == (0, 0, 0, 0)
    assert s.state.value == "healthy" and s.error_rate_5m is None


def test_an_unknown_tenant_is_not_found(mixed: App) -> None:
    m = mixed.manager
    with pytest.raises(NotFound, match="no tenant 'nobody'"):
        tenant_summary(m, "nobody", health.system_summary(m))


def test_queues_and_chunks_filter_by_tenant(mixed: App) -> None:
    m = mixed.manager
    assert sorted(q.name for q in m.list_queues(tenant="acme")) == ["acme-0", "acme-1"]
    assert m.list_queues(tenant="nobody") == []
    beta = m.list_chunks(tenant="beta", limit=100)
    assert len(beta) == 5 and {c.tenant for c in beta} == {"beta"}
    done = m.list_chunks(tenant="acme", status=ChunkStatus.PENDING, limit=100)
    assert {c.tenant for c in done} <= {"acme"}
    # Across its queues, in queue order, the limit over them all: the first page of a tenant
    # with two queues is the whole listing's first chunks.
    everything = m.list_chunks(tenant="acme", limit=1000)
    assert len({c.queue_id for c in everything}) == 2
    assert [(c.queue_id, c.seq) for c in everything] == sorted(
        (c.queue_id, c.seq) for c in everything
    )
    assert m.list_chunks(tenant="acme", limit=3) == everything[:3]


@pytest.mark.parametrize("top", [0, 1, 2, 3, 20])
def test_top_tenants_and_other_add_up_to_the_totals(mixed: App, top: int) -> None:
    m = mixed.manager
    counts = by_tenant(m)
    figures = tenant_figures(m.backend)
    shown = top_tenants(figures, top)
    everything = Counter[str]()
    for c in counts.values():
        everything.update(c)
    assert totals(shown.values()) == everything
    named = [t for t in shown if t != OTHER]
    assert len(named) == min(top, len(figures))
    # The named ones are those with the largest backlog (ties by name).
    ranked = sorted(counts, key=lambda t: (-counts[t]["pending"], t))
    assert named == ranked[: len(named)]
    if OTHER in shown:
        left = [t for t in figures if t not in named]
        assert shown[OTHER].backlog == sum(counts.get(t, Counter())["pending"] for t in left)
        assert shown[OTHER].in_flight_quota is None


def test_the_exposition_labels_top_tenants_and_other(mixed: App) -> None:
    m = mixed.manager
    text = metrics.render(m, top_tenants=1)[0].decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("chunksync_tenant_chunks{")]
    tenants = {ln.split('tenant="')[1].split('"')[0] for ln in lines}
    assert len(tenants) == 2 and OTHER in tenants
    total = sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)
    assert total == len(m.list_chunks(limit=10_000))
    assert 'chunksync_tenant_in_flight{tenant="other"}' in text
