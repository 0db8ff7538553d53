"""A worker's claims of limited dependencies' chunks at a fleet's size (a cap per mail account),
on every backend: what it leaves unasked, and what it still asks.

At 2,000 capped accounts a worker of four slots spent a quarter of its CPU looking at every
budget after every batch, a claim in two found its account drained, and an empty plain claim
beside each dependency's claim cost the database more than that claim."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from chunksync.app import App
from chunksync.deps.gate import Flow
from chunksync.deps.model import Limits
from chunksync.deps.store import DependencyStore
from chunksync.manager import Manager
from chunksync.models import Attempt, ChunkStatus, ErrorCategory, Outcome
from chunksync.results import FinishResult
from chunksync.retry import StressConfig
from chunksync.runtime import claims as claims_module
from chunksync.runtime.claims import Claims

KINDS = ["job"]
CONFIG = StressConfig(capacity=10.0, probe_min_interval_s=0.3, probe_interval_s=1.0)


@pytest.fixture
def app(db_url: str) -> Iterator[App]:
    with App(db_url) as made:
        made.handler("job")(lambda ctx: 1)
        yield made


def capped(app: App, account: str, chunks: int) -> str:
    """A queue of `chunks` behind a cap of one connection, its dependency's name."""
    name = f"job://{account}"
    DependencyStore(app.backend).declare(name, Limits(connections=1))
    app.create_queue(f"{name}/INBOX", [{"n": n} for n in range(chunks)])
    return name


class Counted:
    """Calls of the dependencies' claims and of the plain claim, by dependency."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dependency: list[str] = []
        self.plain = 0
        dependency_claim, plain_claim = DependencyStore.claim, Manager.claim

        def counted_dependency(store: DependencyStore, name: str, **kw: Any) -> Any:
            self.dependency.append(name)
            return dependency_claim(store, name, **kw)

        def counted_plain(manager: Manager, *args: Any, **kw: Any) -> Any:
            self.plain += 1
            return plain_claim(manager, *args, **kw)

        monkeypatch.setattr(DependencyStore, "claim", counted_dependency)
        monkeypatch.setattr(Manager, "claim", counted_plain)


def claim(claims: Claims, limit: int = 5) -> list[str]:
    leases = claims.claim(KINDS, limit, queue_id=None, special=claims.special())
    return [chunk.queue_id for lease in leases for chunk in lease.chunks]


def test_a_drained_accounts_permit_goes_back_without_a_claim(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = capped(app, "u1@mail.example", 2)
    claims = Claims(app.manager, app.budgets, worker_id="w1", lease_s=30.0)
    told: list[tuple[str, int]] = []
    claims.on_permit_back = lambda name, held: told.append((name, held))
    counted = Counted(monkeypatch)
    assert len(claim(claims)) == 2  # fewer than asked: the account has no more
    assert DependencyStore(app.backend).free_slots(account, 1) == 0
    assert claim(claims) == []  # its permit given back, without a claim that finds nothing
    assert counted.dependency == [account]
    assert told == [(account, 0)] and DependencyStore(app.backend).free_slots(account, 1) == 1
    # The next read of the list tries it again: new chunks of a drained account are claimed.
    app.create_queue(f"{account}/Sent", [{"n": 0}])
    monkeypatch.setattr(claims_module, "SPECIAL_REFRESH_SECONDS", 0.0)
    claims._refresh_s = 0.0
    assert len(claim(claims)) == 1 and counted.dependency == [account, account]


def test_beside_dependencies_chunks_an_empty_plain_claim_is_not_asked_again_at_once(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = capped(app, "u1@mail.example", 2), capped(app, "u2@mail.example", 2)
    claims = Claims(app.manager, app.budgets, worker_id="w1", lease_s=30.0)
    counted = Counted(monkeypatch)
    assert len(claim(claims)) == 2 and counted.plain == 1  # it found nothing
    assert len(claim(claims)) == 2 and counted.plain == 1  # not asked again so soon
    assert sorted(counted.dependency) == sorted([first, second])
    plain = app.create_queue("job://plain/pages", [{"n": 0}])
    assert claim(claims) == [plain.id]  # with no dependency's chunks, it is always asked
    assert counted.plain == 2
    app.create_queue("job://plain/more", [{"n": 0}])
    capped(app, "u3@mail.example", 1)
    monkeypatch.setattr(claims_module, "PLAIN_RECHECK_SECONDS", 0.0)
    claims._refresh_s = claims._read_at = -1.0  # read the list again at once
    assert len(claim(claims)) == 2 and counted.plain == 3  # a dependency's chunk, and a plain one


def test_a_batch_reports_its_own_dependencies_and_every_budget_each_second(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DependencyStore(app.backend)
    first, second = capped(app, "u1@mail.example", 1), capped(app, "u2@mail.example", 1)
    claims = Claims(app.manager, app.budgets, worker_id="w1", lease_s=30.0)
    budgets = [claims.budget(name, CONFIG) for name in (first, second)]
    claims.report()  # every budget: nothing charged, nothing written
    for budget in budgets:
        budget.charge(8.0)  # faults: this worker's copies shut their gates
    claims.report([first])  # a batch of the first account's chunks
    assert store.get(first).state.flow is Flow.PROBING
    assert store.get(second).state.flow is Flow.OK  # not this batch's, and within the second
    monkeypatch.setattr(claims_module, "REPORT_ALL_SECONDS", 0.0)
    claims.report([first])
    assert store.get(second).state.flow is Flow.PROBING  # every budget's, at its interval


def test_an_account_whose_chunks_all_wait_costs_a_read_not_a_claim(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider's backoff: the account's queue is active, its chunk waits an hour. Each read
    of the list of limited dependencies used to cost every worker a claim's transaction for
    each such account (some ten statements); the list now says which have a runnable chunk."""
    account = capped(app, "u1@mail.example", 1)
    got = DependencyStore(app.backend).claim(
        account, worker_id="w0", kinds=KINDS, limit=1, lease_s=30.0, config=CONFIG
    )
    [chunk] = got.chunks
    waits = FinishResult(
        ChunkStatus.PENDING, Outcome.RETRIED, delay_s=3600.0, category=ErrorCategory.RATE_LIMIT
    )
    attempt = Attempt(
        chunk_id=chunk.id, queue_id=chunk.queue_id, tenant=chunk.tenant, worker_id="w0",
        attempt=chunk.attempts, started_at=0.0, finished_at=1.0, outcome=Outcome.RETRIED,
        category=ErrorCategory.RATE_LIMIT, retry_delay_s=3600.0,
    )  # fmt: skip
    assert app.manager.finish(chunk, got.token, waits, attempt)
    DependencyStore(app.backend).release_permit(str(got.permit))
    claims = Claims(app.manager, app.budgets, worker_id="w1", lease_s=30.0)
    counted = Counted(monkeypatch)
    ready: list[str] = []
    read = DependencyStore.ready

    def counted_ready(store: DependencyStore, name: str, *args: Any) -> tuple[int, bool]:
        ready.append(name)
        return read(store, name, *args)

    monkeypatch.setattr(DependencyStore, "ready", counted_ready)
    assert account in claims.special()  # its queue is active, and the list says it waits
    assert claim(claims) == [] and claim(claims) == []
    assert counted.dependency == [] and ready == []  # no claim, no read, until the next list
    # Found runnable by the list, drained since (another worker's claim): one read, no claim.
    claims._drained.clear()
    assert claim(claims) == [] and claim(claims) == []
    assert counted.dependency == [] and ready == [account]


def test_a_permit_of_an_account_gone_from_the_list_goes_back(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account whose queue finished drops out of the list of limited dependencies: a permit
    still held for it goes back at the slot's next claim, not when it expires."""
    account = capped(app, "u1@mail.example", 3)
    claims = Claims(app.manager, app.budgets, worker_id="w1", lease_s=30.0)
    assert len(claim(claims, limit=3)) == 3  # all of them: not marked drained
    claims._drained.clear()  # as if the list were read again meanwhile ...
    claims._special = {}  # ... without the account (its queue finished)
    claims._read_at = time.monotonic() + 3600  # and not read again in this claim
    assert DependencyStore(app.backend).free_slots(account, 1) == 0
    assert claim(claims) == []
    assert DependencyStore(app.backend).free_slots(account, 1) == 1
