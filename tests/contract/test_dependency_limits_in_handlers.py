"""Handlers reach the fleet's limits: ctx.slot() takes an extra connection slot under the
chunk's lease, ctx.take() spends rate units; with no limit set, neither waits."""

from __future__ import annotations

import threading
import time

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.models import QueueStatus

FAST = {"poll_s": 0.05, "lease_s": 10.0}


def test_extra_slots_keep_the_fleet_within_its_connection_cap(app: App) -> None:
    # Cap 4: each chunk holds one slot, and its handler opens a second connection for part of
    # its run. Two slots (threads) each holding two connections is what the cap allows.
    app.dependency("job://api.example.com", connections=4)
    open_now, most = [0], [0]
    lock = threading.Lock()

    def opened(n: int) -> None:
        with lock:
            open_now[0] += n
            most[0] = max(most[0], open_now[0])

    @app.handler("job")
    def two_connections(ctx: ChunkContext) -> int:
        opened(1)
        try:
            with ctx.slot():
                opened(1)
                time.sleep(0.01)
                opened(-1)
        finally:
            opened(-1)
        return 1

    q = app.create_queue("job://api.example.com/pages", [{"n": n} for n in range(40)])
    app.worker(concurrency=2, **FAST).run_until_done([q.id], timeout_s=60)
    assert app.manager.get_queue(q.id).status is QueueStatus.COMPLETED
    assert 2 <= most[0] <= 4
    assert app.deps.get("job://api.example.com").slots_in_use == 0  # every slot came back


def test_rate_units_taken_by_handlers_count_for_the_fleet(app: App) -> None:
    # 100 units per second, burst 10: each chunk's claim takes one unit and its handler 4 more,
    # so 30 chunks spend 150 units. The claim reserves its units up to half a second ahead, so
    # some may fall before the first handler's stamp; the handlers' own 120 units alone take at
    # least ~1.05 s at the limit's pace, whatever the slots.
    app.dependency("job://api.example.com", rate="100/s", burst=10)
    stamps: list[float] = []

    @app.handler("job")
    def priced(ctx: ChunkContext) -> int:
        ctx.take(4)
        stamps.append(time.monotonic())
        return 1

    q = app.create_queue("job://api.example.com/pages", [{"n": n} for n in range(30)])
    app.worker(concurrency=4, **FAST).run_until_done([q.id], timeout_s=60)
    assert app.manager.get_queue(q.id).status is QueueStatus.COMPLETED
    assert len(stamps) == 30
    assert max(stamps) - min(stamps) >= (120 - 10 - 5) / 100  # the pace of the limit
    assert app.deps.get("job://api.example.com").rate_waits >= 1


def test_without_limits_slot_and_take_return_at_once(app: App) -> None:
    @app.handler("job")
    def free(ctx: ChunkContext) -> int:
        with ctx.slot():
            ctx.take(1000)
        return 1

    q = app.create_queue("job://free.example.com/pages", [{"n": n} for n in range(20)])
    app.worker(concurrency=2, **FAST).run_until_done([q.id], timeout_s=60)
    assert app.manager.get_queue(q.id).status is QueueStatus.COMPLETED
    dep = app.deps.get("job://free.example.com")
    assert (dep.rate_waits, dep.cap_waits, dep.slots_in_use) == (0, 0, 0)
