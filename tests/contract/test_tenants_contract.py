"""Tenants' rules, identical on every backend: weights, aging, quotas, a newcomer behind a flood."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from chunksync.app import App
from chunksync.exceptions import QuotaExceeded
from chunksync.manager import Manager
from chunksync.models import Attempt, ChunkStatus, ErrorCategory, Outcome
from chunksync.results import FinishResult

KINDS = ["job"]


def enqueue(m: Manager, tenant: str, n: int, *, priority: int = 0, name: str = "") -> str:
    queue = m.create_queue(
        name or f"{tenant}-{priority}",
        "job:",
        "job",
        [{"n": i} for i in range(n)],
        tenant=tenant,
        priority=priority,
    )
    return queue.id


def claimed(m: Manager, limit: int) -> list[str]:
    """The tenants of the chunks one claim takes, in the claim's order."""
    _, chunks = m.claim("w1", KINDS, limit=limit)
    return [c.tenant for c in chunks]


def test_weights_share_the_claims_within_a_tolerance(app: App) -> None:
    m = app.manager
    m.tenants.set("heavy", actor="test", reason="contract", weight=3)
    enqueue(m, "heavy", 400)
    enqueue(m, "light", 400)
    got: Counter[str] = Counter()
    for _ in range(20):
        got.update(claimed(m, 10))
    assert sum(got.values()) == 200
    # 3:1 of 200 claims is 150:50; one batch of slack either way.
    assert 140 <= got["heavy"] <= 160, got


def test_an_undeclared_tenant_gets_the_default_weight(app: App) -> None:
    m = app.manager
    for tenant in ("a", "b", "c"):
        enqueue(m, tenant, 100)
    got = Counter(claimed(m, 30))
    # The first tenant's first chunk was alone when it came: one place ahead, no more.
    assert sorted(got) == ["a", "b", "c"] and all(9 <= n <= 11 for n in got.values()), got


def test_a_new_tenants_first_chunk_is_claimed_promptly_behind_a_flood(app: App) -> None:
    m = app.manager
    enqueue(m, "flood", 3000)
    for _ in range(5):
        assert set(claimed(m, 20)) == {"flood"}
    enqueue(m, "newcomer", 1)
    # Its place is next to the flood's first waiting chunk, not after the flood's 2,900.
    assert "newcomer" in claimed(m, 4)


def _claim_all(m: Manager, n: int) -> None:
    """Claim `n` chunks, in claims of 100, leaving them in flight."""
    while n > 0:
        got = len(claimed(m, min(n, 100)))
        assert got, "nothing left to claim"
        n -= got


def test_a_newcomer_behind_a_paused_backlog_takes_turns_with_the_busy(app: App) -> None:
    # The paused queue's chunks keep their places at the head of the fair order while "busy"
    # runs 1,000 chunks. The newcomer's places start where the claims have reached, not at the
    # paused backlog's head: there, each of its 1,000 first chunks came before busy's next.
    m = app.manager
    enqueue(m, "busy", 2000)
    paused = enqueue(m, "paused", 2000)
    m.pause_queue(paused)
    _claim_all(m, 1000)
    enqueue(m, "newcomer", 1000)
    got = Counter(claimed(m, 100))
    assert set(got) == {"busy", "newcomer"} and 45 <= got["busy"] <= 55, got


def test_a_newcomer_behind_a_tenant_at_its_quota_takes_turns_with_the_busy(app: App) -> None:
    # A tenant at its in-flight quota (its one chunk in flight) keeps its backlog's places at
    # the head of the fair order; the newcomer's start where the claims have reached.
    m = app.manager
    m.tenants.set("capped", actor="test", reason="contract", max_in_flight=1)
    enqueue(m, "capped", 2000)
    enqueue(m, "busy", 2000)
    _claim_all(m, 1000)
    assert len(m.list_chunks(status=ChunkStatus.PROCESSING, tenant="capped")) == 1
    enqueue(m, "newcomer", 1000)
    got = Counter(claimed(m, 100))
    assert set(got) == {"busy", "newcomer"} and 45 <= got["busy"] <= 55, got


def test_a_quota_of_zero_holds_a_tenant_with_nothing_in_flight(app: App) -> None:
    # Nothing of it in flight: its room is its whole quota, 0 (on PostgreSQL a tenant without
    # chunks in flight is not among the grouped counts, and its room comes from the quota).
    m = app.manager
    m.tenants.set("held", actor="test", reason="contract", max_in_flight=0)
    m.tenants.set("roomy", actor="test", reason="contract", max_in_flight=3)
    enqueue(m, "held", 5)
    enqueue(m, "roomy", 5)
    enqueue(m, "free", 2)
    assert Counter(claimed(m, 20)) == {"roomy": 3, "free": 2}
    m.tenants.set("held", actor="test", reason="contract", max_in_flight=1)
    assert claimed(m, 20) == ["held"]


def test_priority_stays_strict_until_the_aging_bound(app: App) -> None:
    m = app.manager
    low = enqueue(m, "t", 5, priority=0)
    enqueue(m, "t", 50, priority=5)
    m.aging_s = 3600.0
    _, chunks = m.claim("w1", KINDS, limit=10)
    assert {c.priority for c in chunks} == {5}
    # Once a lower-priority chunk has waited longer than the bound, it goes before the rest.
    m.aging_s = 0.0
    _, chunks = m.claim("w1", KINDS, limit=3)
    assert [c.queue_id for c in chunks] == [low] * 3
    assert [c.seq for c in chunks] == [1, 2, 3]


def test_a_queued_quota_refuses_an_enqueue_whole(app: App) -> None:
    m = app.manager
    m.tenants.set("small", actor="test", reason="contract", max_queued=5)
    with pytest.raises(QuotaExceeded, match="at most 5 chunk") as refused:
        enqueue(m, "small", 6, name="too-big")
    assert "\n" not in str(refused.value)
    assert not [q for q in m.list_queues() if q.name == "too-big"]  # nothing half-written
    queue = enqueue(m, "small", 5)
    with pytest.raises(QuotaExceeded):
        m.add_chunks(queue, [{"n": 99}])
    assert len(m.list_chunks(queue)) == 5
    _, chunks = m.claim("w1", KINDS, limit=2)
    # Claimed chunks no longer wait: there is room for two more.
    assert m.add_chunks(queue, [{"n": 100}, {"n": 101}]) == 2
    assert len(chunks) == 2


def test_an_in_flight_quota_holds_across_claims(app: App) -> None:
    m = app.manager
    m.tenants.set("capped", actor="test", reason="contract", max_in_flight=2)
    enqueue(m, "capped", 10)
    enqueue(m, "free", 3)
    first = claimed(m, 10)
    assert Counter(first) == {"capped": 2, "free": 3}
    assert claimed(m, 10) == []
    _, chunks = m.claim("w2", KINDS, limit=1)
    assert chunks == []
    held = m.list_chunks(status=ChunkStatus.PROCESSING)
    capped = [c for c in held if c.tenant == "capped"]
    assert m.release(capped[0], capped[0].lease_token or "", refund=True)
    assert claimed(m, 10) == ["capped"]
    m.tenants.set("capped", actor="test", reason="contract", max_in_flight=None)
    assert len(claimed(m, 10)) == 8  # the other seven waiting, and the one released


def test_a_tenant_change_is_audited(app: App) -> None:
    m = app.manager
    m.tenants.set("acme", actor="alice", reason="bigger plan", weight=2.5, max_queued=100)
    policy = m.tenants.get("acme")
    assert (policy.weight, policy.max_queued, policy.max_in_flight) == (2.5, 100, None)
    entry = next(e for e in m.list_audit() if e.action == "tenant_set")
    assert (entry.actor, entry.reason) == ("alice", "bigger plan")
    loads = {t.policy.id: t for t in m.tenants.all()}
    assert loads["acme"].policy.declared and loads["acme"].pending == 0


def test_an_in_flight_quota_holds_when_workers_claim_at_once(app: App) -> None:
    m = app.manager
    m.tenants.set("capped", actor="test", reason="contract", max_in_flight=3)
    enqueue(m, "capped", 60)

    rounds, workers = 8, 6
    barrier = Barrier(workers)

    def claim_many(worker: int) -> int:
        taken = 0
        for _ in range(rounds):
            barrier.wait(timeout=60)  # every worker claims at the same moment
            taken += len(m.claim(f"w{worker}", KINDS, limit=1)[1])
        return taken

    with ThreadPoolExecutor(workers) as pool:
        taken = list(pool.map(claim_many, range(workers)))
    assert sum(taken) == 3, taken
    assert len(m.list_chunks(status=ChunkStatus.PROCESSING)) == 3


def test_a_retried_chunk_goes_behind_the_chunks_of_its_tenant_that_waited(app: App) -> None:
    # Its retry due at once, it still sorts behind its tenant's waiting chunks (as a job retried
    # later sorts behind those due before it), and another tenant's turn is not taken.
    m = app.manager
    enqueue(m, "a", 3)
    enqueue(m, "b", 3)
    token, [first] = m.claim("w1", KINDS, limit=1)
    assert first.tenant == "a" and first.payload == {"n": 0}
    now = m.now()
    result = FinishResult(ChunkStatus.PENDING, Outcome.RETRIED, delay_s=0.0)
    attempt = Attempt(
        chunk_id=first.id,
        queue_id=first.queue_id,
        tenant=first.tenant,
        worker_id="w1",
        attempt=1,
        started_at=now - 0.1,
        finished_at=now,
        outcome=Outcome.RETRIED,
        category=ErrorCategory.NETWORK,
    )
    assert m.finish(first, token, result, attempt)
    _, rest = m.claim("w1", KINDS, limit=6)
    order = [(c.tenant, c.payload["n"]) for c in rest]
    assert order.index(("a", 0)) > order.index(("a", 2)), order
    assert order.index(("b", 0)) < order.index(("a", 0)), order  # and behind b's turn
