"""A worker alive but cut off from its PostgreSQL for longer than its lease is not a dead one:
recovery takes its chunks meanwhile (the fleet goes on), but when the worker is back it gives
back the attempt and the crash each was charged, and its late results stay fenced out."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from chunksync.app import App
from chunksync.check import check_database
from chunksync.context import ChunkContext
from chunksync.models import ChunkStatus, Outcome, QueueStatus
from tests.chaos.proxy import FaultyProxy
from tests.integration.test_worker_waits_for_db import through_port

pytestmark = [pytest.mark.postgres]

CHUNKS = 3
CUT_SECONDS = 3600.0  # until healed, once the fleet has recovered: however slow the machine


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_stalled_worker_spends_no_attempt(pg_url: str) -> None:
    proxy = FaultyProxy("127.0.0.1", urlsplit(pg_url).port or 5432).start()
    release, runs, lock = threading.Event(), Counter[int](), threading.Lock()
    returned: list[int] = []
    try:
        with App(through_port(pg_url, proxy.port)) as cut_off, App(pg_url) as fleet:

            @cut_off.handler("wait")
            def wait(ctx: ChunkContext) -> int:
                with lock:
                    runs[ctx.payload["n"]] += 1
                release.wait(60)
                with lock:
                    returned.append(ctx.payload["n"])
                return 1

            # One attempt each: a recovery charged as a crash would leave them dead.
            queue = cut_off.create_queue("wait://x", [{"n": n} for n in range(CHUNKS)],
                                         max_attempts=1)  # fmt: skip
            worker = cut_off.worker(concurrency=CHUNKS, lease_s=1.0, poll_s=0.05)
            runner = threading.Thread(target=worker.run, daemon=True)
            runner.start()
            processing = lambda: fleet.manager.list_chunks(queue.id, ChunkStatus.PROCESSING)  # noqa: E731
            wait_for(lambda: len(processing()) == CHUNKS, "the worker to hold every chunk")
            # Each handler running, not only claimed: a slot between its claim and its handler
            # may still read the database (its queue's row), which the cut would fail.
            wait_for(lambda: sum(runs.values()) == CHUNKS, "every handler to start")
            proxy.cut(CUT_SECONDS)
            recovered: list[object] = []
            policy = fleet.policy(queue.policy)

            def recover() -> bool:
                found = fleet.manager.recover_stuck("fleet", lambda _q: policy, worker_timeout_s=2)
                recovered.extend(found)
                return len(recovered) >= CHUNKS

            wait_for(recover, "the fleet to recover the cut-off worker's chunks")
            dead = fleet.manager.list_chunks(queue.id, ChunkStatus.DEAD)
            assert len(dead) == CHUNKS  # charged as crashes: out of attempts, for now
            release.set()  # the handlers finish while cut off: their results come late
            wait_for(lambda: len(returned) == CHUNKS, "the handlers to return while cut off")
            proxy.heal()
            stalled = lambda: any(  # noqa: E731
                e.action == "worker_stalled" for e in fleet.manager.list_audit(limit=50)
            )
            wait_for(stalled, "the worker to come back and give the attempts back")
            wait_for(
                lambda: fleet.manager.get_queue(queue.id).status is QueueStatus.COMPLETED,
                "every chunk to complete",
            )
            worker.stop()
            runner.join(60)
            chunks = fleet.manager.list_chunks(queue.id, limit=100)
            assert {c.status for c in chunks} == {ChunkStatus.COMPLETED}
            # The attempt given back: one more allowed; attempts are never renumbered.
            assert all(c.attempts == 2 and c.max_attempts == 2 for c in chunks)
            assert all(c.dead_reason is None for c in chunks)
            rows = [a for c in chunks for a in fleet.manager.list_attempts(c.id)]
            outcomes = Counter(a["outcome"] for a in rows)
            stuck = [a for a in rows if a["outcome"] == Outcome.STUCK]
            assert len(stuck) == CHUNKS and {a["rule"] for a in stuck} == {"recovery:stalled"}
            assert outcomes[Outcome.COMPLETED] == CHUNKS
            assert outcomes[Outcome.LOST_LEASE] == CHUNKS  # the late results, fenced out
            assert all(n == 2 for n in runs.values())  # ran again, after the late one
            assert check_database(fleet.backend).ok
    finally:
        release.set()
        proxy.stop()
