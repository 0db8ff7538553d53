"""A worker whose clock is minutes ahead or behind (faked in the process): leases, retry times
and recovery are reckoned on the database's clock, so the skew changes nothing that matters."""

from __future__ import annotations

import threading
import time

import pytest

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.exceptions import RetryLater
from chunksync.models import ChunkStatus

LEASE_SECONDS = 5.0
RETRY_SECONDS = 1.0


@pytest.mark.parametrize("skew_s", [600.0, -600.0], ids=["ahead", "behind"])
def test_a_skewed_worker_clock_changes_nothing(
    app: App, monkeypatch: pytest.MonkeyPatch, skew_s: float
) -> None:
    seen: dict[str, float] = {}
    lock = threading.Lock()

    @app.handler("skewed")
    def skewed(ctx: ChunkContext) -> int:
        chunk = app.manager.get_chunk(ctx.chunk.id)
        with lock:
            seen.setdefault("lease_left", (chunk.lease_expires_at or 0) - app.manager.now())
            if ctx.payload["n"] == 0 and "retried" not in seen:
                seen["retried"] = 1.0
                raise RetryLater("come back soon", delay_s=RETRY_SECONDS)
        return 1

    queue = app.create_queue("skewed://x", [{"n": n} for n in range(4)])
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + skew_s)
    app.worker(concurrency=2, poll_s=0.05, lease_s=LEASE_SECONDS).run_until_done(
        [queue.id], timeout_s=120
    )
    monkeypatch.setattr(time, "time", real)
    assert 0 < seen["lease_left"] <= LEASE_SECONDS + 1  # the database's clock, not the skew
    chunks = app.manager.list_chunks(queue.id, limit=10)
    assert {c.status for c in chunks} == {ChunkStatus.COMPLETED}
    [first] = [c for c in chunks if c.seq == min(c.seq for c in chunks)]
    attempts = app.manager.list_attempts(first.id)
    retried = [a for a in attempts if a["outcome"] == "retried"]
    # The policy's delay (its floor may exceed the handler's ask), far below the skew: the
    # retry ran within the test, on the database's clock.
    assert retried and retried[0]["retry_delay_s"] < abs(skew_s) / 10
    assert app.manager.recover_stuck("test", lambda _q: app.policy(queue.policy)) == []
