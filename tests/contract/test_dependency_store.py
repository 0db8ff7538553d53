"""Dependency rows on every backend: slots, rate units and the gate, shared by every process.

Two App objects on one database stand for two worker processes (each has its own
connections): what one takes, the other sees at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from chunksync.app import App
from chunksync.deps.gate import Flow
from chunksync.deps.model import Limits, parse_rate
from chunksync.deps.store import DependencyStore
from chunksync.exceptions import NotFound
from chunksync.models import ChunkStatus
from chunksync.retry import StressConfig
from chunksync.sources.base import FunctionSource

KINDS = ["job"]
API = "job://api"
CONFIG = StressConfig(capacity=10.0, probe_min_interval_s=0.3, probe_interval_s=1.0)


def store_of(app: App) -> DependencyStore:
    return DependencyStore(app.backend)


@pytest.fixture
def fleet(db_url: str) -> Iterator[tuple[App, App]]:
    with App(db_url) as one, App(db_url) as two:
        for app in (one, two):
            app.handler("job")(lambda ctx: 1)
        yield one, two


def queue_of(app: App, dependency: str, n: int) -> list[str]:
    """A queue of job://DEPENDENCY: create_queue names its dependency (and makes its row)."""
    q = app.create_queue(f"job://{dependency}/pages", [{"n": i} for i in range(n)])
    return [q.id]


def claim(app: App, dep: str, limit: int, worker: str = "w1") -> list[str]:
    """Up to `limit` chunks of the dependency's active queues, by its own claim."""
    got = store_of(app).claim(
        dep, worker_id=worker, kinds=KINDS, limit=limit, lease_s=30.0, config=CONFIG
    )
    return [c.id for c in got.chunks]


def test_a_connection_cap_holds_across_processes_and_slots_come_back(
    fleet: tuple[App, App],
) -> None:
    # Each claim without a permit stands for a slot thread asking for a connection; a thread
    # runs a batch through its one permit.
    one, two = fleet
    store_of(one).declare(API, Limits(connections=3))
    queue_of(one, "api", 12)
    first = store_of(one).claim(
        API, worker_id="w1", kinds=KINDS, limit=2, lease_s=30.0, config=CONFIG
    )
    assert len(first.chunks) == 2 and first.waiting_for is None and first.permit is not None
    held = [
        store_of(app).claim(API, worker_id=w, kinds=KINDS, limit=2, lease_s=30.0, config=CONFIG)
        for app, w in ((one, "w1"), (two, "w2"))
    ]
    assert all(len(h.chunks) == 2 and h.permit for h in held)
    fourth = store_of(two).claim(
        API, worker_id="w2", kinds=KINDS, limit=5, lease_s=30.0, config=CONFIG
    )
    assert fourth.chunks == [] and fourth.waiting_for == "connections" and fourth.permit is None
    assert store_of(one).get(API).slots_in_use == 3
    assert store_of(one).free_slots(API, 3) == 0
    # The thread holding a permit claims on through it, without another slot.
    again = store_of(one).claim(
        API,
        worker_id="w1",
        kinds=KINDS,
        limit=2,
        lease_s=30.0,
        config=CONFIG,
        permit=first.permit,
    )
    assert len(again.chunks) == 2 and again.permit == first.permit
    assert store_of(two).get(API).slots_in_use == 3
    # A permit given back frees its slot for any process.
    store_of(one).release_permit(first.permit)
    assert len(claim(two, API, 5, worker="w2")) == 4
    assert store_of(two).get(API).cap_waits >= 1


def test_a_claim_under_a_permit_that_finds_nothing_gives_it_back(fleet: tuple[App, App]) -> None:
    one, two = fleet
    store_of(one).declare(API, Limits(connections=1))
    queue_of(one, "api", 2)
    got = store_of(one).claim(
        API, worker_id="w1", kinds=KINDS, limit=5, lease_s=30.0, config=CONFIG
    )
    assert len(got.chunks) == 2 and got.permit is not None
    empty = store_of(one).claim(
        API,
        worker_id="w1",
        kinds=KINDS,
        limit=5,
        lease_s=30.0,
        config=CONFIG,
        permit=got.permit,
    )
    assert empty.chunks == [] and empty.permit is None
    assert store_of(two).free_slots(API, 1) == 1


def test_a_dead_workers_slots_return_when_its_leases_are_recovered(
    fleet: tuple[App, App],
) -> None:
    one, two = fleet
    store_of(one).declare(API, Limits(connections=2))
    queue_of(one, "api", 5)
    for _ in range(2):  # two slot threads of a worker that dies
        got = store_of(one).claim(
            API, worker_id="dead", kinds=KINDS, limit=1, lease_s=0.2, config=CONFIG
        )
        assert len(got.chunks) == 1 and got.permit is not None
    assert claim(two, API, 2, worker="w2") == []
    time.sleep(0.3)  # the permits' time runs out, but their chunks still count as running
    assert claim(two, API, 2, worker="w2") == []
    recovered = two.manager.recover_stuck("w2", lambda q: two.policy("default"))
    assert len(recovered) == 2  # recovery is what gives the slots back
    assert len(claim(two, API, 2, worker="w2")) == 2


def test_extra_slots_count_against_the_cap_and_die_with_the_lease(fleet: tuple[App, App]) -> None:
    one, two = fleet
    store_of(one).declare(API, Limits(connections=2))
    queue_of(one, "api", 3)
    got = store_of(one).claim(
        API, worker_id="w1", kinds=KINDS, limit=1, lease_s=30.0, config=CONFIG
    )
    [chunk] = got.chunks
    slot = store_of(one).take_slot(API, chunk.id, got.token)
    assert slot is not None
    assert store_of(two).take_slot(API, chunk.id, got.token) is None  # 2 of 2 in use
    assert claim(two, API, 1, worker="w2") == []
    store_of(one).release_slot(slot)
    assert len(claim(two, API, 1, worker="w2")) == 1
    # A slot taken under a lease that is gone is refused (0 rows): the lease fences it.
    assert (
        store_of(one).take_slot("other", chunk.id, "00000000-0000-0000-0000-000000000000") is None
    )


def test_rate_units_are_shared_by_the_fleet(fleet: tuple[App, App]) -> None:
    one, two = fleet
    # One unit per 10 s: however slow this machine is, none comes back during the test.
    store_of(one).declare(API, Limits(rate=parse_rate("6/m"), burst=3))
    queue_of(one, "api", 20)
    assert len(claim(one, API, 10)) == 3  # the burst
    waited = store_of(two).claim(
        API, worker_id="w2", kinds=KINDS, limit=10, lease_s=30.0, config=CONFIG
    )
    assert waited.chunks == [] and waited.waiting_for == "rate" and 0 < waited.wait_s <= 10.0
    granted, wait = store_of(two).take(API, 5)
    assert granted == 0 and wait > 0
    assert store_of(one).get(API).rate_waits >= 1


def probe_due(app: App, name: str) -> None:
    """Make the gate's next probe due, as the clock would: written, not waited for."""
    state = store_of(app).get(name).state
    app.backend.execute(
        "deps_save",
        {
            "name": name,
            "tokens": state.tokens,
            "capacity": SLOW.capacity,
            "flow": state.flow.value,
            "next_probe_at": app.manager.now() - 1.0,
            "probe_interval_s": state.probe_interval_s,
            "gated_since": state.gated_since,
            "tat": state.tat,
            "probes": 0,
            "cap_waits": 0,
            "rate_waits": 0,
            "gate_waits": 0,
        },
    )


# Probes an hour apart: however slow this machine is, none falls due during a test by itself.
SLOW = StressConfig(capacity=10.0, probe_min_interval_s=3600.0, probe_interval_s=3600.0)


def test_the_gate_is_shared_one_probe_for_the_fleet(fleet: tuple[App, App]) -> None:
    one, two = fleet
    queue_of(one, "api", 10)
    for _ in range(4):  # four timeouts' worth of faults, reported by process one
        store_of(one).record(API, SLOW, cost=2.0, successes=0, probe_succeeded=False)
    assert store_of(two).get(API).state.flow is Flow.PROBING

    def probes() -> list[str]:
        granted = []
        for app, worker in ((one, "w1"), (two, "w2"), (one, "w3"), (two, "w4")):
            got = store_of(app).claim(
                API, worker_id=worker, kinds=KINDS, limit=5, lease_s=30, config=SLOW
            )
            assert len(got.chunks) <= 1 and got.probe is bool(got.chunks)
            granted += [worker] * len(got.chunks)
        return granted

    # Until the first probe is due, nobody gets a chunk; then exactly one process gets one.
    assert probes() == []
    probe_due(one, API)
    assert len(probes()) == 1
    assert probes() == []  # the next one is due an interval later
    state, _ = store_of(one).record(API, SLOW, cost=0.0, successes=1, probe_succeeded=True)
    assert state.flow is Flow.OK
    assert len(claim(two, API, 5, worker="w2")) == 5


def test_an_operator_stops_and_starts_a_dependency(fleet: tuple[App, App]) -> None:
    one, two = fleet
    queue_of(one, "api", 4)
    store_of(one).declare(API, Limits())
    store_of(one).set_flow(API, stopped=True, config=CONFIG)
    assert claim(two, API, 4, worker="w2") == []
    store_of(two).set_flow(API, stopped=False, config=CONFIG)
    assert len(claim(two, API, 4, worker="w2")) == 4
    with pytest.raises(NotFound, match="no dependency named 'nope'"):
        store_of(one).set_flow("nope", stopped=True, config=CONFIG)


def test_a_workers_copy_follows_the_row_when_a_peer_reopens_it(fleet: tuple[App, App]) -> None:
    from chunksync.runtime.claims import Claims

    one, two = fleet
    queue_of(one, "api", 3)
    mine = Claims(one.manager, one.budgets, worker_id="w1", lease_s=30.0)
    budget = mine.budget(API, CONFIG)
    budget.charge(8.0)  # faults seen here: this worker's copy shuts the gate ...
    mine.report()  # ... and the row hears of it
    assert not budget.flowing and store_of(two).get(API).state.flow is Flow.PROBING
    # A peer's probe reopens the row; its successes fill the budget (the row's tokens: full).
    store_of(two).record(API, CONFIG, cost=0.0, successes=1, probe_succeeded=True)
    store_of(two).record(API, CONFIG, cost=0.0, successes=100, probe_succeeded=False)
    mine.special()  # this worker's first look at the fleet's rows (then every 0.2 s)
    assert budget.flowing and budget.tokens == CONFIG.capacity


def test_a_worker_of_one_queue_claims_only_its_chunks(fleet: tuple[App, App]) -> None:
    # A worker claiming from one queue (queue_id) takes a limited dependency's chunks only when
    # that queue is one of the dependency's, and then only that queue's: the claim names the
    # dependency and the queue, not the dependency's active queues (no longer read at all).
    from chunksync.runtime.claims import Claims

    one, _ = fleet
    store_of(one).declare(API, Limits(connections=3))
    [mine] = queue_of(one, "api", 2)
    queue_of(one, "api", 2)  # another queue of the dependency
    plain = one.create_queue("job://elsewhere/pages", [{"n": i} for i in range(2)]).id
    claims = Claims(one.manager, one.budgets, worker_id="w1", lease_s=30.0)

    def claimed(queue_id: str) -> list[str]:
        leases = claims.claim(KINDS, 10, queue_id=queue_id, special=claims.special())
        return [one.manager.get_chunk(c.id).queue_id for lease in leases for c in lease.chunks]

    assert claimed(plain) == [plain] * 2
    assert claimed(mine) == [mine] * 2
    assert claimed(mine) == [] and claimed(plain) == []


def test_a_dependencys_claims_keep_to_tenant_quotas_and_the_fair_order(
    fleet: tuple[App, App],
) -> None:
    """Chunks of a limited dependency are claimed apart from the plain claim; they too follow
    the tenants' fair order and never take a tenant past its in-flight quota."""
    one, two = fleet
    # Two queues of the dependency: its claim takes from every active one, named or not.
    one.create_queue("job://api/big", [{"n": i} for i in range(6)], tenant="big")
    one.create_queue("job://api/small", [{"n": i} for i in range(2)], tenant="small")
    store_of(one).declare(API, Limits(rate=parse_rate("1000/s"), burst=100))
    one.manager.tenants.set("big", actor="test", reason="quota", max_in_flight=2)
    first = claim(one, API, 3)
    tenants = [one.manager.get_chunk(c).tenant for c in first]
    assert len(first) == 3 and tenants.count("big") <= 2
    assert "small" in tenants  # the fair order: the small tenant is not behind big's backlog
    more = claim(two, API, 10, worker="w2")
    in_flight = [one.manager.get_chunk(c).tenant for c in first + more]
    assert in_flight.count("big") == 2  # the quota, across both processes' claims
    assert in_flight.count("small") == 2


class Keeping(FunctionSource):
    """A source that keeps a connection open between chunks, as the IMAP pool does: it is told
    how many permits of each dependency its worker still holds when one goes back."""

    def __init__(self) -> None:
        super().__init__("job", lambda ctx: 1)
        self.told: list[tuple[str, int]] = []

    def permits_held(self, dependency: str, permits: int) -> None:
        self.told.append((dependency, permits))


def test_a_permit_given_back_tells_the_sources_how_many_are_still_held(db_url: str) -> None:
    """A slot that finds no more work gives its permit back, and the worker's sources hear how
    many permits of the dependency it still holds: the IMAP pool closes idle connections beyond
    them, so another process's new connections do not find the account's cap taken by idle
    ones."""
    with App(db_url) as app:
        source = Keeping()
        app.register_source(source)
        store_of(app).declare(API, Limits(connections=2))
        [queue] = queue_of(app, "api", 6)
        deadline = time.monotonic() + 30

        def both_idle() -> bool:  # each slot found no work and gave its permit back
            held = [h for dependency, h in source.told if dependency == API]
            return (bool(held) and held[-1] == 0) or time.monotonic() > deadline

        # Not run_until_done: on a loaded machine the queue can be seen finished, and the
        # worker stopped, before its second slot has looked for more work.
        app.worker(concurrency=2, poll_s=0.02).run(until=both_idle, check_s=0.02)
        assert app.manager.get_queue(queue).totals.get(ChunkStatus.COMPLETED) == 6
        told = [held for dependency, held in source.told if dependency == API]
        assert told and told[-1] == 0 and all(0 <= held < 2 for held in told)
        assert store_of(app).free_slots(API, 2) == 2
