"""A PostgreSQL restart while a capped dependency's connection permits are held: the permits
are rows, so they survive it (the cap still holds, no process takes a second set), the workers
carry on through it, no chunk is lost, and every permit is given back when they stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.deps.model import Limits
from chunksync.deps.store import Claimed
from chunksync.models import ChunkStatus
from chunksync.retry import StressConfig
from tests.chaos.harness import RestartablePg
from tests.servers import missing_server
from tests.servers.pgcluster import PG_BIN, available

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]
API = "job://api.example.com"
CAP = 2
CONFIG = StressConfig()


@pytest.fixture
def cluster() -> Iterator[RestartablePg]:
    if not available():
        missing_server(f"PostgreSQL 15 is not installed ({PG_BIN}): run scripts/test-servers.sh")
    pg = RestartablePg()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def _claim(app: App, queue_id: str, worker: str, limit: int, permit: str | None = None) -> Claimed:
    """The dependency's own claim of the queue's chunks, as `worker` (under `permit`)."""
    return app.deps.claim(
        API, queue_id=queue_id, worker_id=worker, kinds=["job"], limit=limit, lease_s=60.0,
        config=CONFIG, permit=permit,
    )  # fmt: skip


def test_permits_survive_a_restart_and_the_cap_holds_through_it(cluster: RestartablePg) -> None:
    url = cluster.create_database("permits")
    with App(url) as app:
        app.dependency(API, connections=CAP)
        app.handler("job")(lambda ctx: None)
        queue = app.create_queue(f"{API}/pages", [{"n": n} for n in range(4)])
        held = [_claim(app, queue.id, "w1", 1) for _ in range(CAP)]
        assert all(h.permit and len(h.chunks) == 1 for h in held)
    cluster.restart(0.5)
    with App(url) as app:
        assert app.deps.get(API).slots_in_use == CAP  # the permits are rows: they came back
        late = _claim(app, queue.id, "w2", 1)
        assert late.chunks == [] and late.waiting_for == "connections"
        again = _claim(app, queue.id, "w1", 5, permit=held[0].permit)
        assert len(again.chunks) == 2 and again.permit == held[0].permit


def test_workers_run_through_a_restart_within_the_cap(cluster: RestartablePg) -> None:
    url = cluster.create_database("fleet")
    running, most, lock = 0, 0, threading.Lock()
    with App(url) as app:
        app.deps.declare(API, Limits(connections=CAP))

        @app.handler("job")
        def job(ctx: ChunkContext) -> int:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                time.sleep(0.02)
            finally:
                with lock:
                    running -= 1
            return 1

        queue = app.create_queue(f"{API}/pages", [{"n": n} for n in range(150)])
        worker = app.worker(concurrency=4, poll_s=0.05, lease_s=5.0)
        runner = threading.Thread(target=worker.run_until_done, args=([queue.id],))
        runner.start()
        deadline = time.monotonic() + 60
        while len(app.manager.list_chunks(queue.id, status=ChunkStatus.COMPLETED)) < 20:
            assert time.monotonic() < deadline, "the worker never got going"
            time.sleep(0.05)
        cluster.restart(1.0)
        runner.join(180)
        assert not runner.is_alive()
        chunks = app.manager.list_chunks(queue.id)
        assert [c for c in chunks if c.status is not ChunkStatus.COMPLETED] == []
        assert 0 < most <= CAP
        assert app.deps.get(API).slots_in_use == 0  # every permit given back at the stop
